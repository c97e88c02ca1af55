"""Every notebook runs top to bottom with a real kernel on the embedded default (local server,
generated data, faster than real time), and none is committed with outputs."""

from __future__ import annotations

import importlib
import time
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))

#: package names a notebook calls that other parts of the package provide; a notebook whose
#: names are missing is skipped with the reason (not failed) until they land
REQUIRES = {
    "01-quickstart.ipynb": ["diareval.report:timeline_from_run"],
    "02-accuracy-over-time.ipynb": ["diareval.report:der_windows_figure",
                                    "diareval.report:turn_k_figure",
                                    "diareval.report:stability_figure",
                                    "diareval.report:speaker_count_figure"],
    "04-models-and-max-speakers.ipynb": ["diareval.report:comparison_figure",
                                         "diareval.report:speaker_count_figure"],
    "05-noise.ipynb": ["diareval.report:noise_figure", "diareval.report:comparison_figure"],
    "06-bring-your-own-logs.ipynb": ["diareval.score:score_logs",
                                     "diareval.report:der_seen_figure"],
}
#: notebooks that stream with the baseline engine (it computes: these take longest)
SLOW = {"04-models-and-max-speakers.ipynb", "05-noise.ipynb"}


def _missing(path: Path) -> list[str]:
    missing = []
    for name in REQUIRES.get(path.name, []):
        module, attribute = name.split(":")
        if not hasattr(importlib.import_module(module), attribute):
            missing.append(name)
    return missing


def test_notebooks_have_no_outputs_and_a_parameters_cell():
    nbformat = pytest.importorskip("nbformat")
    assert [p.name for p in NOTEBOOKS] == [
        "01-quickstart.ipynb", "02-accuracy-over-time.ipynb", "03-known-limitations.ipynb",
        "04-models-and-max-speakers.ipynb", "05-noise.ipynb", "06-bring-your-own-logs.ipynb"]
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert not [c for c in code if c.outputs or c.execution_count], \
            f"{path.name} is committed with outputs (clear them before committing)"
        first = code[0].source
        for name in ("DATASET", "BACKEND", "MODELS", "MAX_SPEAKERS", "SPEED"):
            assert f"\n{name} = " in first, f"{path.name}: no {name} in the parameters cell"
        assert "parameters" in code[0].metadata.get("tags", [])


@pytest.fixture(scope="module")
def data_cache(tmp_path_factory):
    """One dataset cache for every notebook (the conversations are generated once)."""
    return tmp_path_factory.mktemp("notebook-data")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path, monkeypatch, data_cache):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("espeakng_loader")
    if path.name in SLOW:
        pytest.importorskip("faster_whisper")
    missing = _missing(path)
    if missing:
        pytest.skip(f"{path.name} calls {', '.join(missing)}, not in this tree yet")
    monkeypatch.delenv("ASSEMBLYAI_API_KEY", raising=False)
    monkeypatch.setenv("DIAREVAL_DATA", str(data_cache))
    notebook = nbformat.read(path, as_version=4)
    start = time.monotonic()
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    elapsed = time.monotonic() - start
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, "\n".join(f"{o.ename}: {o.evalue}" for o in errors)
    # every figure cell drew, and a table or text came out
    figure_cells = [cell for cell in notebook.cells if cell.cell_type == "code"
                    and "figure" in cell.source and cell.source.rstrip().endswith(";")]
    for cell in figure_cells:
        assert any("image/png" in o.get("data", {}) for o in cell.outputs), cell.source
    assert any(o.get("data", {}).get("text/plain") or o.get("text") for o in outputs)
    assert list(tmp_path.glob("runs/*/scores/sessions.csv")) or \
        list(tmp_path.glob("runs/*/*/scores/sessions.csv")) or path.name.startswith("06")
    if path.name == "04-models-and-max-speakers.ipynb":
        # the open-source baseline engine vs the oracle on the same recordings: a real,
        # significant difference (the compare acceptance, with the real engines)
        text = "".join(o.get("text", "") for o in outputs)
        rows = [line for line in text.splitlines() if "__baseline" in line and " der " in line]
        assert rows and "interval excludes 0" in rows[0], text[-3000:]
    if path.name == "01-quickstart.ipynb":
        assert (tmp_path / "runs/01-quickstart/report.html").exists()
    assert elapsed < 180, f"{path.name} took {elapsed:.0f} s (the issue asks < 3 min)"
