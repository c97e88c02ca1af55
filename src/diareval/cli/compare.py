"""``python -m diareval compare RUN [RUN ...]``: configurations side by side (= ``diareval.report.compare_runs``)."""

from __future__ import annotations

import argparse

from diareval.cli._args import at_least


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``compare`` subcommand and its options to ``subparsers``."""
    parser = subparsers.add_parser(
        "compare", help="compare the configurations of scored runs (paired bootstrap)",
        description="Print every configuration of the scored RUNs as a row (DER and its parts "
                    "with 95%% bootstrap intervals, turn accuracy) and the paired differences "
                    "against --baseline (paired bootstrap over the common recordings, "
                    "significance stated); write the tables and figures to --out. Runs of "
                    "other backends or engines on the same recordings compare too; runs "
                    "scored under different conventions or on different recordings are "
                    "refused.")
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="scored run directories (or a folder of runs, e.g. an older "
                             "run --snr's)")
    parser.add_argument("--baseline", metavar="CONFIG",
                        help="the configuration the others are compared with (its id as "
                             "printed, or its config name when unique; default: the first)")
    parser.add_argument("--common-recordings", action="store_true",
                        help="compare on the recordings every run scored, instead of refusing "
                             "runs on different recordings")
    parser.add_argument("--out", metavar="DIR",
                        help="write configurations.csv, differences.csv and figures/*.png here")
    parser.add_argument("--n-boot", type=at_least(int, 1), default=1000,
                        help="bootstrap replicates (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    return parser


def main(args: argparse.Namespace) -> int:
    """Print :func:`diareval.report.compare_runs`'s comparison; write it with ``--out``."""
    from diareval.report.comparison import compare_runs
    comparison = compare_runs(args.runs, baseline=args.baseline,
                              common_recordings=args.common_recordings, n_boot=args.n_boot,
                              seed=args.seed)
    print(comparison.format())
    if args.out:
        written = comparison.write(args.out)
        print(f"\n{len(written)} files written to {args.out}/")
    return 0
