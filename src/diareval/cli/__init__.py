"""``python -m diareval <command>``: thin; each command is one call into the packages.

Every module in this package that defines ``add_parser(subparsers)`` and
``main(args) -> int`` is a subcommand (the module name is the command name).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from diareval.errors import DiarevalError


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every subcommand found in this package."""
    parser = argparse.ArgumentParser(
        prog="python -m diareval",
        description="Measure streaming speaker diarization while the audio arrives.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "add_parser") and hasattr(module, "main"):
            sub = module.add_parser(subparsers)
            sub.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse ``argv`` and run the command; a DiarevalError prints one line, exit 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args._main(args) or 0)
    except DiarevalError as exc:
        print(f"diareval: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("diareval: interrupted", file=sys.stderr)
        return 130
