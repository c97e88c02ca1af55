"""``python -m diareval score``: score a run directory, or plain RTTM files.

- ``score RUN_DIR``: = ``diareval.score.score_run``; writes ``RUN_DIR/scores/*.parquet|csv``
  and prints the dataset DER per configuration.
- ``score --ref REF.rttm --hyp HYP.rttm [--uem U] [--collar C] [--skip-overlap]``:
  = ``diareval.score.score_rttm``; prints DER/JER per file and the time-weighted total
  (md-eval conventions: the collar is per side).
- ``score --log PATH [--log PATH ...] --ref REF.rttm [--uem U] [--collar C] [--no-revisions]
  [--out DIR]``: = ``diareval.score.score_logs``; session logs captured anywhere (diareval's
  or raw SDK/websocket messages, docs/bring-your-own-logs.md), printed per file + TOTAL.
- ``--words FILE`` (STM or SegLST): reference words for cpWER, tcpWER, WDER and WER (printed
  as cpWER%, tcpWER%, WDER%, WER% per configuration where words exist).
"""

from __future__ import annotations

import argparse
import sys

from diareval.cli._args import at_least
from diareval.errors import ConfigError


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``score`` subcommand and its options to ``subparsers``."""
    parser = subparsers.add_parser(
        "score", help="score a run directory (or plain RTTM files)",
        description="Score the session logs of RUN_DIR against the dataset's references and "
                    "write tidy tables to RUN_DIR/scores/, or score --hyp RTTM against --ref "
                    "RTTM. Conventions (collar per side, overlap, UEM, unknown policy) are "
                    "printed and written with every table.")
    parser.add_argument("run_dir", nargs="?", help="a run directory (runs/<run>)")
    parser.add_argument("--ref", help="reference RTTM (RTTM form)")
    parser.add_argument("--hyp", help="hypothesis RTTM (RTTM form)")
    parser.add_argument("--uem", help="UEM file (RTTM form; default: the union of the reference "
                                      "and hypothesis extents of each file, said so)")
    parser.add_argument("--collar", type=at_least(float, 0), default=0.0,
                        help="collar in seconds PER SIDE, as md-eval -c (default 0)")
    parser.add_argument("--skip-overlap", action="store_true",
                        help="do not score overlapped reference speech (md-eval -1)")
    parser.add_argument("--mapping-on", choices=("uem", "scored"), default="uem",
                        help="compute the speaker mapping on the whole UEM (md-eval-22.pl, "
                             "default) or on the region left after collars/overlap "
                             "(pyannote.metrics)")
    parser.add_argument("--unknown", choices=("error", "nonspeech", "label"), default="error",
                        help="null/UNKNOWN labels: never mapped and scored as error (default), "
                             "treated as non-speech, or an ordinary label")
    parser.add_argument("--level", choices=("word", "turn"), default="word",
                        help="hypothesis speech from word intervals (default) or whole turns")
    parser.add_argument("--no-revisions", action="store_true",
                        help="ignore SpeakerRevision messages (both settings are in the "
                             "sessions table either way)")
    parser.add_argument("--dataset", help="dataset name or folder (default: run.json's)")
    parser.add_argument("--words", metavar="FILE",
                        help="reference words (NIST STM or SegLST .json, a file or a folder) for "
                             "cpWER/tcpWER/WDER/WER; replaces the dataset's words of the "
                             "recordings it names")
    parser.add_argument("--wer-normalizer", default="lower,rm([^a-z0-9 ])",
                        type=lambda v: None if v.lower() == "none" else v,
                        help="MeetEval text normaliser on both sides (default "
                             "'lower,rm([^a-z0-9 ])'; 'none' = text as sent)")
    parser.add_argument("--wer-text", choices=("final", "unformatted"), default="final",
                        help="hypothesis words from the last end-of-turn message (default; the "
                             "formatted one with format_turns) or from the unformatted one")
    parser.add_argument("--wer-collar", type=at_least(float, 0), default=5.0,
                        help="tcpWER collar in seconds (default 5, MeetEval's README value)")
    parser.add_argument("--step", type=float, default=1.0,
                        help="DER-over-time step in seconds (default 1)")
    parser.add_argument("--window", type=float, default=60.0,
                        help="sliding window length in seconds (default 60)")
    parser.add_argument("--window-step", type=float, default=10.0,
                        help="sliding window step in seconds (default 10)")
    parser.add_argument("--n-boot", type=int, default=1000,
                        help="bootstrap replicates over sessions (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--no-figures", action="store_true",
                        help="do not write RUN_DIR/figures/*.png")
    add_log_options(parser)
    return parser


def main(args: argparse.Namespace) -> int:
    """Score a run directory (``score_run``) or a pair of RTTM files (``score_rttm``)."""
    from diareval.score import Conventions, format_rttm_scores, score_rttm, score_run
    if getattr(args, "log", None):
        return main_logs(args)
    rttm_form = args.ref or args.hyp
    if rttm_form and args.run_dir:
        raise ConfigError("give either RUN_DIR or --ref/--hyp, not both")
    if rttm_form:
        if not (args.ref and args.hyp):
            raise ConfigError("the RTTM form needs both --ref and --hyp")
        if getattr(args, "words", None) and args.hyp:
            raise ConfigError("--words scores the words of session logs: an RTTM hypothesis "
                              "has none (give RUN_DIR, or --log with --ref)")
        conventions = Conventions(collar=args.collar, skip_overlap=args.skip_overlap,
                                  mapping_on=args.mapping_on, unknown="label", hypothesis="rttm",
                                  uem="UEM file" if args.uem else
                                  "union of reference and hypothesis extents")
        table = score_rttm(args.ref, args.hyp, args.uem, conventions)
        print(format_rttm_scores(table))
        return 0
    if not args.run_dir:
        raise ConfigError("give a RUN_DIR, or --ref and --hyp")
    conventions = Conventions(collar=args.collar, skip_overlap=args.skip_overlap,
                              mapping_on=args.mapping_on, unknown=args.unknown, level=args.level,
                              revisions=not args.no_revisions,
                              wer_normalizer=args.wer_normalizer, wer_collar=args.wer_collar,
                              wer_text=args.wer_text)
    scores = score_run(args.run_dir, conventions, dataset=args.dataset, step=args.step,
                       window=args.window, window_step=args.window_step, n_boot=args.n_boot,
                       seed=args.seed, words=args.words)
    report_run_scores(scores, args.run_dir, conventions, figures=not args.no_figures)
    return 0


def report_run_scores(scores, run_dir, conventions, figures: bool = True) -> None:
    """Print what ``score_run`` found (conventions, DER per configuration) and write the figures."""
    run_dir = str(run_dir).rstrip("/")
    sessions = scores.sessions
    skipped = sessions[~sessions["scored"]]
    # score_run fills in where the UEM came from (the dataset's recordings say it)
    print(f"conventions: {sessions.attrs.get('conventions', conventions.describe())}")
    print(f"sessions scored: {int(sessions['scored'].sum())} of {len(sessions)}")
    for row in skipped.itertuples():
        print(f"  {row.config}/{row.uri}: {row.note}", file=sys.stderr)
    report_undefined_sessions(sessions)
    dataset = scores.der_dataset
    from diareval.score.word_tables import cpwer_by_config, format_word_scores
    cpwer = cpwer_by_config(scores.wer_dataset)  # cpWER beside DER where words exist
    if not dataset.empty:
        for row in dataset.itertuples():
            print(dataset_der_line(row, cpwer.get(row.config, "")))
    words = format_word_scores(scores.wer_dataset)
    if words:  # cpWER%, tcpWER%, WDER%, WER% where reference words exist, else the reason
        print(words)
    print(f"tables written to {run_dir}/scores/")
    if figures:
        from diareval.report import write_figures
        from diareval.rundir import RunDir
        written = write_figures(scores, RunDir(run_dir).figures_dir, run_dir=run_dir)
        print(f"{len(written)} figures written to {run_dir}/figures/")


def dataset_der_line(row, suffix: str = "") -> str:
    """One configuration's DER line (``suffix``: e.g. its cpWER); an undefined DER (no
    reference speech) says why, never "nan%"."""
    import math
    if math.isnan(row.der):
        return (f"{row.config}: DER undefined: {row.note or 'no reference speech'} "
                f"over {row.sessions} sessions{suffix}")
    return (f"{row.config}: DER {100 * row.der:.2f}% [{100 * row.der_lo:.2f}, "
            f"{100 * row.der_hi:.2f}] (miss {100 * row.miss_rate:.2f}%, false alarm "
            f"{100 * row.false_alarm_rate:.2f}%, confusion {100 * row.confusion_rate:.2f}%)"
            f" over {row.sessions} sessions{suffix}")


def report_undefined_sessions(sessions) -> None:
    """Name every scored session whose DER is undefined, with the reason (stderr)."""
    if "der" not in sessions:
        return
    for row in sessions[sessions["scored"] & sessions["der"].isna()].itertuples():
        print(f"  {row.config}/{row.uri}: DER undefined: {row.note}", file=sys.stderr)


def add_log_options(parser: argparse.ArgumentParser) -> None:
    """The ``--log`` form's own options (``--ref``, ``--uem`` and the conventions are shared)."""
    parser.add_argument("--log", action="append", metavar="PATH",
                        help="a session log <uri>.jsonl or a folder of them (repeatable): "
                             "diareval log lines or raw messages captured from the SDK or the "
                             "websocket; scored against --ref (see docs/bring-your-own-logs.md)")
    parser.add_argument("--out", metavar="DIR",
                        help="with --log: write the tables (parquet + csv) to DIR")


def main_logs(args: argparse.Namespace) -> int:
    """``score --log``: ``score_logs`` and the per-file + TOTAL table."""
    from diareval.score import Conventions
    from diareval.score.logs import format_log_scores, log_table, reference_uris_without_log
    from diareval.score.logs import score_logs
    if args.run_dir or args.hyp:
        raise ConfigError("--log scores logs against --ref: give no RUN_DIR and no --hyp")
    if not args.ref:
        raise ConfigError("--log needs the reference: --ref REF.rttm")
    conventions = Conventions(collar=args.collar, skip_overlap=args.skip_overlap,
                              mapping_on=args.mapping_on, unknown=args.unknown, level=args.level,
                              revisions=not args.no_revisions)
    scores = score_logs(args.log, args.ref, args.uem, conventions, step=args.step,
                        window=args.window, window_step=args.window_step, n_boot=args.n_boot,
                        seed=args.seed, out=args.out)
    print(format_log_scores(log_table(scores)))
    missing = reference_uris_without_log(scores, args.ref)
    if missing:
        print(f"{len(missing)} reference file(s) without a log, not scored: "
              f"{', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}", file=sys.stderr)
    if args.out:
        print(f"tables written to {args.out}")
    return 0
