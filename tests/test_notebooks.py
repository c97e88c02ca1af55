"""The notebooks run top to bottom (on the local server, generated data, faster than real time)."""

from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("espeakng_loader")
    monkeypatch.delenv("ASSEMBLYAI_API_KEY", raising=False)
    monkeypatch.setenv("DIAREVAL_DATA", str(tmp_path / "cache"))
    notebook = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    # the figures were drawn and the DER table shown
    assert sum(1 for o in outputs if "image/png" in o.get("data", {})) >= 3
    assert any("der" in o.get("data", {}).get("text/plain", "") for o in outputs)
    assert (tmp_path / "runs/quickstart/scores/der_dataset.csv").exists()
