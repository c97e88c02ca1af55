"""``python -m diareval run``: stream a dataset through every configuration (= ``diareval.stream.run``)."""

from __future__ import annotations

import argparse
import json
import sys

from diareval.cli._args import at_least, json_object
from diareval.datasets import DEFAULT_DATASET
from diareval.stream.config import DEFAULT_MODEL, MODELS


def _param(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--param needs NAME=VALUE, got {text!r}")
    name, value = text.split("=", 1)
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return name.strip(), parsed


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``run`` subcommand and its options to ``subparsers``."""
    parser = subparsers.add_parser(
        "run", help="stream a dataset through the service (or the local server) and log it",
        description="Stream every recording of a dataset through every configuration "
                    "(models x max_speakers x --param values x --snr levels) in real time and log every message. Writes RUN_DIR/run.json "
                    "and RUN_DIR/sessions/<config>/<uri>.jsonl|.json.")
    parser.add_argument("--dataset", default=DEFAULT_DATASET,
                        help="a folder of audio + RTTM, or a registered dataset name (ami, "
                             f"synthetic, noisy, mixtures); default {DEFAULT_DATASET!r}: "
                             "generated conversations")
    parser.add_argument("--dataset-options", default=None, metavar="JSON",
                        help="keyword arguments of diareval.datasets.load as a JSON object, "
                             'e.g. \'{"subset": "dev"}\' for ami')
    parser.add_argument("--model", action="append", dest="models", metavar="MODEL",
                        help=f"speech model (repeat for several): {', '.join(MODELS)}; "
                             f"default {DEFAULT_MODEL}")
    parser.add_argument("--max-speakers", default="none", metavar="LIST",
                        help="comma-separated max_speakers settings, 'none' = not sent "
                             "(default: none), e.g. none,2,4")
    parser.add_argument("--param", action="append", type=_param, default=[], metavar="NAME=VALUE",
                        help="another v3 streaming parameter for every configuration (value "
                             "parsed as JSON if it can be), e.g. --param format_turns=true; "
                             "repeat a NAME with other values for a grid (one configuration "
                             "per value)")
    parser.add_argument("--snr", default=None, metavar="LIST",
                        help="comma-separated SNR levels in dB, e.g. 0,10,20: one more "
                             "configuration axis (<config>__snr-<level>), each streaming the "
                             "recordings mixed with --noise at that level (SNR over the "
                             "reference speech); the noise figure of report/compare draws them")
    parser.add_argument("--noise", default="pink",
                        help="noise of --snr: white, pink, babble or a folder (default pink)")
    parser.add_argument("--backend", choices=("assemblyai", "local"),
                        help="default: assemblyai if ASSEMBLYAI_API_KEY is set, else local")
    parser.add_argument("--engine", default="oracle", help="local server engine (default oracle)")
    parser.add_argument("--engine-options", default=None, metavar="JSON",
                        help="local engine options as a JSON object")
    parser.add_argument("--workers", type=at_least(int, 0), default=None, metavar="N",
                        help="local server only: engine worker processes (0 = threads of the "
                             "server process; default one per core for the baseline, 0 for "
                             "the oracle)")
    parser.add_argument("--host", default=None,
                        help="service host (default streaming.assemblyai.com; e.g. "
                             "streaming.eu.assemblyai.com)")
    parser.add_argument("--concurrency", type=at_least(int, 1), default=None,
                        help="sessions open at once (default 64; with the local server and a "
                             "computing engine such as baseline: 2 per CPU core)")
    parser.add_argument("--max-starts-per-minute", type=float, default=None,
                        help="limit on new sessions per minute (default: none for local, 5 for "
                             "AssemblyAI = the Free tier cap)")
    parser.add_argument("--run-dir", default=None, help="default runs/<dataset>-<UTC time>")
    parser.add_argument("--resume", action="store_true",
                        help="continue RUN_DIR: complete sessions are skipped")
    parser.add_argument("--yes", action="store_true",
                        help="do not ask for confirmation of the AssemblyAI cost estimate (nor "
                             "of the AMI audio download)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="local backend only: stream X times faster than real time")
    parser.add_argument("--chunk-ms", type=float, default=50.0,
                        help="audio per message in ms, 50..1000 (default 50)")
    parser.add_argument("--max-attempts", type=at_least(int, 1), default=3,
                        help="attempts per session on transient failures (default 3)")
    parser.add_argument("--terminate-timeout", type=float, default=15.0,
                        help="seconds to wait for Termination after Terminate (default 15)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the retry jitter")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-score", action="store_true",
                        help="only stream; score later with `python -m diareval score RUN_DIR`")
    return parser


def _params(pairs: list[tuple[str, object]]) -> dict:
    """``--param`` pairs -> params; a NAME given with several values is a ParamGrid."""
    from diareval.stream.config import ParamGrid
    values: dict[str, list] = {}
    for name, value in pairs:
        if value not in values.setdefault(name, []):
            values[name].append(value)
    return {name: v[0] if len(v) == 1 else ParamGrid(v) for name, v in values.items()}


def main(args: argparse.Namespace) -> int:
    """Run ``diareval.stream.run`` with the parsed options, print the summary, score the run
    (unless ``--no-score``); exit code 1 when a session is not complete. With ``--snr``:
    the SNR levels are one more configuration axis of the same run (``__snr-<level>``)."""
    dataset_options = json_object(args.dataset_options, "--dataset-options")
    dataset, noise, snr = args.dataset, None, None
    if args.snr is not None:
        from diareval.stream.config import parse_snr
        snr, noise = parse_snr(args.snr), args.noise  # a bad level: a ConfigError now
        if dataset == "noisy":  # the noisy dataset's own options name the clean one
            dataset = dataset_options.pop("dataset", "synthetic")
            noise = dataset_options.pop("noise", noise)
            dataset_options.pop("snr", None)
    return _run_one(args, dataset, dataset_options, args.run_dir, snr=snr, noise=noise)


def _run_one(args: argparse.Namespace, dataset, dataset_options: dict, run_dir,
             snr: list | None = None, noise: str | None = None) -> int:
    from diareval.stream import run

    engine_options = json_object(args.engine_options, "--engine-options") \
        if args.engine_options else None
    if args.yes and (dataset == "ami" or dataset_options.get("dataset") == "ami"):
        dataset_options.setdefault("yes", True)  # --yes also confirms the AMI audio download
    options = dict(params=_params(args.param), host=args.host, engine=args.engine,
                   max_starts_per_minute=args.max_starts_per_minute,
                   chunk_seconds=args.chunk_ms / 1000.0, max_attempts=args.max_attempts,
                   terminate_timeout=args.terminate_timeout, seed=args.seed,
                   progress=not args.no_progress, dataset_options=dataset_options)
    if snr is not None:
        options.update(snr=snr, noise=noise)
    if engine_options is not None:
        options["engine_options"] = engine_options
    if args.workers is not None:
        options["workers"] = args.workers
    try:
        result = run(dataset, models=args.models or [DEFAULT_MODEL],
                     max_speakers=args.max_speakers, backend=args.backend,
                     run_dir=run_dir, concurrency=args.concurrency, resume=args.resume,
                     yes=args.yes, speed=args.speed, **options)
    except KeyboardInterrupt as exc:
        if exc.args:
            print(f"diareval: {exc.args[0]}", file=sys.stderr)
        raise
    print(result.summary())
    if not args.no_score and result.count("complete"):
        from diareval.cli.score import report_run_scores
        from diareval.score import Conventions, score_run
        print("scoring ...")
        conventions = Conventions()
        report_run_scores(score_run(result.run_dir, conventions), result.run_dir, conventions)
    if not result.ok:
        print(f"resume with: python -m diareval run ... --run-dir {result.run_dir} --resume",
              file=sys.stderr)
        return 1
    return 0
