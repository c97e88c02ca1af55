"""Make the README's figures with the package: a small run on the embedded default.

    python docs/make_figures.py [--out docs/figures] [--run-dir DIR] [--speed 20]

Streams the embedded default dataset (three generated 1-minute conversations with 2, 3
and 4 speakers) through the local server's oracle engine under ``max_speakers`` none and
2, with partial-label changes and end-of-stream SpeakerRevisions switched on, at
``--speed`` times real time; scores it (``python -m diareval run`` does both) and draws
the figures below with ``diareval.report``, writing ``<out>/<name>.png``. Every figure
here is one call into the package: nothing is drawn by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from diareval import report  # noqa: E402
from diareval.cli import main as diareval  # noqa: E402
from diareval.score import RunScores  # noqa: E402

#: the README's figures (names of diareval.report.FIGURES), plus one session timeline
FIGURES = ("der_over_time", "accuracy_by_word_count", "stability", "speaker_counts",
           "comparisons")
ENGINE_OPTIONS = {"p_partial_label_change": 0.2, "p_revision": 0.5}
TIMELINE = dict(uri="synthetic-s0-01", config="universal-streaming-english__max-speakers-2",
                xlim=(0, 40))
MAX_BYTES = 150_000


def make(out: Path, run_dir: Path, speed: float) -> list[Path]:
    """Run, score and draw; return the written PNG paths."""
    if not (run_dir / "scores").is_dir():
        code = diareval(["run", "--backend", "local", "--max-speakers", "none,2",
                         "--engine-options", json.dumps(ENGINE_OPTIONS), "--speed", str(speed),
                         "--run-dir", str(run_dir), "--no-progress"])
        if code != 0:
            raise SystemExit(f"python -m diareval run failed ({code})")
    scores = RunScores.read(run_dir / "scores")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in FIGURES:
        figure = report.figure(scores, name)
        if figure is None:
            raise SystemExit(f"figure {name}: the run has no data for it")
        written.append(_save(figure, out / f"{name}.png"))
    figure = report.timeline_from_run(run_dir, TIMELINE["uri"], config=TIMELINE["config"],
                                      scores=scores, xlim=TIMELINE["xlim"])
    written.append(_save(figure, out / "timeline.png"))
    return written


def _save(figure, path: Path, dpi: int = 100) -> Path:
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise SystemExit(f"{path}: {size} bytes, over {MAX_BYTES}: lower the dpi")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "figures")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="keep the run here (default: a temporary folder); an already "
                             "scored run directory is drawn without streaming again")
    parser.add_argument("--speed", type=float, default=20.0)
    args = parser.parse_args(argv)
    os.environ.pop("ASSEMBLYAI_API_KEY", None)  # always the local server
    if args.run_dir is not None:
        paths = make(args.out, args.run_dir, args.speed)
    else:
        with tempfile.TemporaryDirectory() as folder:
            paths = make(args.out, Path(folder) / "run", args.speed)
    for path in paths:
        print(f"{path} ({path.stat().st_size // 1000} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
