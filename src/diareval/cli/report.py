"""``python -m diareval report RUN [RUN ...]``: one self-contained report.html (= ``diareval.report.write_report``)."""

from __future__ import annotations

import argparse

from diareval.cli._args import at_least


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``report`` subcommand and its options to ``subparsers``."""
    parser = subparsers.add_parser(
        "report", help="write report.html: tables and every figure of scored runs, one page",
        description="Write one self-contained HTML page (figures embedded, no network, no "
                    "JavaScript) with the datasets, configurations, versions, conventions, "
                    "summary table, paired differences, every figure and the per-session "
                    "table of the scored RUNs. Default: RUN/report.html of the first RUN.")
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="scored run directories (or a folder of runs)")
    parser.add_argument("--out", metavar="PATH",
                        help="a folder (report.html inside) or a .html path")
    parser.add_argument("--baseline", metavar="CONFIG",
                        help="configuration of the paired differences (default: the first)")
    parser.add_argument("--common-recordings", action="store_true",
                        help="report on the recordings every run scored (instead of refusing "
                             "runs on different recordings)")
    parser.add_argument("--n-boot", type=at_least(int, 1), default=1000,
                        help="bootstrap replicates (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    return parser


def main(args: argparse.Namespace) -> int:
    """Write the page with :func:`diareval.report.write_report` and print its path."""
    from diareval.report.html import write_report
    path = write_report(args.runs, out=args.out, baseline=args.baseline,
                        common_recordings=args.common_recordings, n_boot=args.n_boot,
                        seed=args.seed)
    print(f"report written to {path}")
    return 0
