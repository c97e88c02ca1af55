"""The package's layers: ``datasets -> stream -> score -> report``, the server beside them.

Every ``import`` in a layer's source (module level or inside a function) is read with
``ast``; a layer may not import the layers it feeds. In particular ``server/`` imports
nothing from ``score/``: engines say what happened, scoring lives downstream."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "diareval"

# layer -> the diareval subpackages/modules it must never import
FORBIDDEN = {
    "datasets": {"stream", "score", "report", "server", "cli", "tune"},
    "stream": {"score", "report", "cli", "tune"},
    "server": {"score", "report", "cli", "tune"},
    "score": {"report", "cli", "tune"},
}


def imported_diareval_parts(path: Path) -> set[tuple[int, str]]:
    """(line, first component after ``diareval.``) of every diareval import in ``path``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names
                                     if node.module == "diareval"]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "diareval" and len(parts) > 1:
                found.add((node.lineno, parts[1]))
    return found


def test_the_checker_sees_lazy_and_from_imports(tmp_path):
    sample = tmp_path / "m.py"
    sample.write_text("import os\nfrom diareval.score.der import der\n"
                      "def f():\n    import diareval.report.figures\n    from diareval import tune\n")
    assert imported_diareval_parts(sample) == {(2, "score"), (4, "report"), (5, "tune")}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_layer_imports_what_it_feeds(layer):
    files = sorted((SRC / layer).rglob("*.py"))
    assert files, f"no sources under {SRC / layer}"
    bad = [f"{path.relative_to(SRC.parent)}:{line}: imports diareval.{part}"
           for path in files for line, part in sorted(imported_diareval_parts(path))
           if part in FORBIDDEN[layer]]
    assert not bad, "\n".join(bad)
