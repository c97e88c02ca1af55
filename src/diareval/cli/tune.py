"""``python -m diareval tune``: search the baseline engine's thresholds on a dataset.

    python -m diareval tune --dataset ../shared/data/ami-excerpts \\
        --grid offline_threshold=0.45,0.5,0.55 --output runs/tune/best.json
    python -m diareval tune --dataset ../shared/data/ami-excerpts --objective live \\
        --grid delta_new=0.55,0.6,0.65 --grid tau_active=0.5,0.6 --output runs/tune/live.json

Each configuration streams every recording through the baseline offline (audio time,
same messages as the local server) and is scored by DER of the word-level hypothesis
(collar per side, default 0; overlap scored unless --skip-overlap), with the end-of-stream
SpeakerRevision applied (column ``der``) and without it (``der_live``: the labels the Turns
carried when sent). ``--objective`` picks which one is minimised: the revised labels come
from re-clustering the whole session (``offline_threshold``), the live ones from the online
clustering (``delta_new``, ``tau_active``, ``rho_update``). Writes the best
options as a JSON object (use it as ``run --engine baseline --engine-options "$(cat best.json)"``)
and every configuration's DER, parts and real-time factor to ``best.csv``.
With optuna installed, ``--range NAME=LOW:HIGH`` searches continuous ranges instead.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from diareval.errors import ConfigError


def _assignment(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUES, got {text!r}")
    name, value = text.split("=", 1)
    return name.strip(), value.strip()


def add_parser(subparsers) -> argparse.ArgumentParser:
    """The ``tune`` subcommand's arguments."""
    parser = subparsers.add_parser(
        "tune", help="tune the baseline engine's thresholds on a dataset (grid or optuna)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="a folder of audio + RTTM, or a registered name")
    parser.add_argument("--uri", action="append", dest="uris", metavar="URI",
                        help="only these recordings (repeatable)")
    parser.add_argument("--grid", action="append", type=_assignment, default=[],
                        metavar="NAME=V1,V2", help="values of one option (repeatable; all combinations)")
    parser.add_argument("--range", action="append", type=_assignment, default=[], dest="ranges",
                        metavar="NAME=LOW:HIGH", help="a range searched by optuna (repeatable)")
    parser.add_argument("--trials", type=int, default=20, help="optuna trials (default 20)")
    parser.add_argument("--set", action="append", type=_assignment, default=[], dest="fixed",
                        metavar="NAME=VALUE", help="an option fixed for every configuration")
    parser.add_argument("--max-speakers", type=int, default=None)
    parser.add_argument("--collar", type=float, default=0.0, help="collar per side, s (default 0)")
    parser.add_argument("--skip-overlap", action="store_true", help="do not score overlap")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--objective", choices=("revised", "live"), default="revised",
                        help="minimise the DER with the end-of-stream SpeakerRevision (revised, "
                             "default) or of the labels as sent (live)")
    parser.add_argument("--output", default="runs/tune/best.json",
                        help="best options (JSON); the full table goes beside it as .csv")
    return parser


def _dataset_name(dataset: str) -> str:
    """What the table records: a folder's absolute path (the table may be read from
    elsewhere), a registered name as given."""
    path = Path(dataset)
    return str(path.resolve()) if path.exists() else str(dataset)


def main(args) -> int:
    from diareval.datasets import load
    from diareval.server.engines.baseline.engine import BaselineConfig
    from diareval.tune import parse_values, tune, write_results

    grid = {name: parse_values(name, values) for name, values in args.grid}
    ranges = {}
    for name, text in args.ranges:
        parse_values(name, "0")  # validates the name
        try:
            low, high = (float(x) for x in text.split(":"))
        except ValueError:
            raise ConfigError(f"--range {name}={text}: expected LOW:HIGH") from None
        ranges[name] = (low, high)
    fixed = BaselineConfig.from_options(dict(args.fixed)).as_dict() if args.fixed else {}
    fixed = {k: fixed[k] for k, _ in args.fixed}
    recordings = load(args.dataset, uris=args.uris) if args.uris else load(args.dataset)
    n = math.prod(len(values) for values in grid.values()) if not ranges else args.trials
    print(f"tuning the baseline on {len(recordings)} recording(s): {n} configuration(s); "
          f"{args.objective} DER, collar {args.collar} s per side, "
          f"overlap {'skipped' if args.skip_overlap else 'scored'}")

    def progress(row):
        options = {k: v for k, v in row.items() if k in grid or k in ranges}
        print(f"  DER {row['der']:.4f} (miss {row['miss']:.3f}, fa {row['false_alarm']:.3f}, "
              f"conf {row['confusion']:.3f}) live {row['der_live']:.4f} RTF {row['rtf']:.3f}  "
              f"{json.dumps(options)}", flush=True)

    results = tune(recordings, grid=grid, ranges=ranges, trials=args.trials, fixed=fixed,
                   max_speakers=args.max_speakers, collar=args.collar,
                   skip_overlap=args.skip_overlap, seed=args.seed, progress=progress,
                   objective=args.objective)
    best_path, table = write_results(results, args.output, fixed=fixed, meta=dict(
        dataset=_dataset_name(args.dataset), collar_per_side=args.collar, skip_overlap=args.skip_overlap,
        max_speakers=args.max_speakers, objective=args.objective))
    column = "der_live" if args.objective == "live" else "der"
    print(f"best {args.objective} DER {results.iloc[0][column]:.4f}: {best_path.read_text().strip()}")
    print(f"wrote {best_path} and {table}")
    return 0
