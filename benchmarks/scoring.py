"""Scoring speed on the 16 AMI test meetings (9 h): every metric, DER over time at 1 s steps.

For each meeting of the AMI setup (``shared/data/ami-setup`` beside the repository or its
worktree folder, or ``--ami``; only_words references, test UEMs) a perturbed copy of the
reference plays the hypothesis: boundaries shifted (Gaussian, sd 0.15 s), 10% of segments
given another speaker's label, 5% dropped, labels renamed to letters; 3% of the short turns
come out "UNKNOWN". It is written as a v3 session log (one partial and one final Turn per
segment, pseudo-words of ~0.35 s) and scored with ``diareval.score.score_session``:
hypothesis extraction, DER and JER, DER over time at 1 s steps (prefix and final mapping),
60 s windows, DER by region, per-turn and reference-segment tables, stability, latency,
speaker counts, and (new in this tree) ``der_seen``, the on-screen DER at 1 s steps.

Before/after in one run: the same logs are scored by an older tree (``--old-rev``, default
5fdab26 = main before issue 13's scoring work, extracted with ``git archive``; or
``--old-src DIR``) in a subprocess, and every table and summary value both trees produce is
compared (max |difference| printed; strings must be equal). Times are CPU seconds
(``time.process_time``, threads pinned to 1) of ``score_session`` per meeting, after a
warm-up call; wall seconds are printed too (the machine is shared).

``--prefix-check`` also times pyannote.metrics' DER on every ``--stride``-th prefix and
compares it with the curve (the naive cost of the curve: sampled time x stride).

    nice -n 10 python benchmarks/scoring.py [--prefix-check]

Prints one row per meeting and the totals.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import pickle  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from io import BytesIO  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from pyannote.core import Annotation, Segment  # noqa: E402
from pyannote.metrics.diarization import DiarizationErrorRate  # noqa: E402

from diareval.datasets.recording import Recording  # noqa: E402
from diareval.datasets.rttm import load_rttm, load_uem  # noqa: E402
from diareval.score import Conventions, der_over_time, score_session  # noqa: E402
from diareval.sessionlog import SessionLogWriter, read_session_log  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OLD_REV = "5fdab26"


def find_ami(given: str | None) -> Path:
    """The AMI setup: ``--ami``, else ``shared/data/ami-setup`` in a parent folder."""
    if given:
        return Path(given)
    for parent in REPO.parents:
        candidate = parent / "shared" / "data" / "ami-setup"
        if candidate.is_dir():
            return candidate
    return REPO.parent / "shared" / "data" / "ami-setup"


def perturb(reference: Annotation, rng: np.random.Generator) -> list[tuple[float, float, str]]:
    """Perturbed copy of ``reference``: shifted boundaries, label swaps, dropped segments."""
    speakers = sorted(reference.labels())
    letters = {s: chr(ord("A") + i) for i, s in enumerate(speakers)}
    out = []
    for segment, _, label in reference.itertracks(yield_label=True):
        if rng.random() < 0.05:
            continue
        start = max(0.0, segment.start + rng.normal(0, 0.15))
        end = segment.end + rng.normal(0, 0.15)
        if end - start < 0.05:
            continue
        if rng.random() < 0.10:
            label = speakers[rng.integers(len(speakers))]
        out.append((start, end, letters[label]))
    return sorted(out)


def write_log(segments, path: Path, rng: np.random.Generator) -> None:
    """The hypothesis as a session log: per segment one partial and one final Turn."""
    with SessionLogWriter(path) as writer:
        writer.write("recv", 0.0, 0.0, {"type": "Begin", "id": "bench", "expires_at": 0})
        for order, (start, end, label) in enumerate(segments):
            n = max(1, int(round((end - start) / 0.35)))
            edges = np.linspace(start, end, n + 1)
            words = [{"text": f"w{i}", "start": int(round(edges[i] * 1000)),
                      "end": int(round(edges[i + 1] * 1000)), "confidence": 0.9,
                      "word_is_final": True} for i in range(n)]
            if end - start < 1.0 and rng.random() < 0.03:
                label = "UNKNOWN"
            t = end + 0.5
            partial = {"type": "Turn", "turn_order": order, "end_of_turn": False,
                       "turn_is_formatted": False, "transcript": "", "speaker_label": label,
                       "words": words[: max(1, n // 2)]}
            final = dict(partial, end_of_turn=True, words=words)
            writer.write("recv", t - 0.3, t - 0.3, partial)
            writer.write("recv", t, t, final)


def sessions(ami: Path, meetings: list[str], seed: int, tmp: Path):
    """(uri, log, recording) per meeting, the same for every tree (seeded)."""
    rng = np.random.default_rng(seed)
    out = []
    for uri in meetings:
        reference = load_rttm(ami / "only_words" / "rttms" / "test" / f"{uri}.rttm")[uri]
        uem = load_uem(ami / "uems" / "test" / f"{uri}.uem")[uri]
        recording = Recording(uri=uri, audio_path=tmp / f"{uri}.wav", reference=reference,
                              uem=uem, meta={"uem": "UEM file"})
        log_path = tmp / f"{uri}.jsonl"
        write_log(perturb(reference, rng), log_path, rng)
        out.append((uri, read_session_log(log_path), recording))
    return out


def score_all(items, step: float = 1.0) -> dict:
    """score_session on every meeting: {uri: (cpu s, wall s, summary, tables)}."""
    conventions = Conventions(uem="UEM file (AMI test)")
    uri, log, recording = items[0]
    score_session(log[: len(log) // 20], recording, conventions, step=step)  # warm-up
    out = {}
    for uri, log, recording in items:
        started, cpu = time.perf_counter(), time.process_time()
        scores = score_session(log, recording, conventions, step=step)
        out[uri] = (time.process_time() - cpu, time.perf_counter() - started, scores.summary,
                    {name: table.copy() for name, table in scores.tables.items()})
    return out


def worker(args) -> int:
    """Run inside the old tree: score the same logs, pickle the results to --out."""
    with tempfile.TemporaryDirectory() as tmp:
        meetings = (args.ami_path / "lists" / "test.meetings.txt").read_text().split()
        items = sessions(args.ami_path, meetings[: args.meetings], args.seed, Path(tmp))
        results = score_all(items)
    with open(args.out, "wb") as file:
        pickle.dump(results, file)
    return 0


def old_tree(args, tmp: Path) -> Path:
    """The old src/ folder: --old-src, or --old-rev extracted with git archive."""
    if args.old_src:
        return Path(args.old_src)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", args.old_rev, "src"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(tmp / "old", filter="data")
    return tmp / "old" / "src"


def max_difference(old: dict, new: dict) -> tuple[float, list[str]]:
    """Largest |difference| over every numeric value both results have; mismatching strings."""
    worst, problems = 0.0, []
    for key in sorted(set(old[2]) & set(new[2])):
        a, b = old[2][key], new[2][key]
        if isinstance(a, (int, float, np.number)) and isinstance(b, (int, float, np.number)):
            if not (np.isnan(a) and np.isnan(b)):
                worst = max(worst, abs(float(a) - float(b)))
        elif a != b:
            problems.append(f"summary {key}: {a!r} != {b!r}")
    for name in sorted(set(old[3]) & set(new[3])):
        a, b = old[3][name], new[3][name]
        if len(a) != len(b):
            problems.append(f"{name}: {len(a)} rows vs {len(b)}")
            continue
        for column in sorted(set(a.columns) & set(b.columns)):
            x, y = a[column].reset_index(drop=True), b[column].reset_index(drop=True)
            if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y) and \
                    not pd.api.types.is_bool_dtype(x):
                both = x.isna() & y.isna()
                diff = (x.astype(float) - y.astype(float)).abs()[~both]
                if diff.isna().any():
                    problems.append(f"{name}.{column}: NaN in one tree only")
                elif len(diff):
                    worst = max(worst, float(diff.max()))
            elif not x.astype(str).equals(y.astype(str)):
                problems.append(f"{name}.{column}: values differ")
    return worst, problems


def prefix_check(items, stride: int):
    """pyannote's DER on every stride-th prefix vs the curve: (estimated s, max |diff|)."""
    from diareval.score.hypothesis import hypothesis_from_log
    seconds, worst = 0.0, 0.0
    for uri, log, recording in items:
        reference, uem = recording.reference, recording.uem
        hypothesis = hypothesis_from_log(log, uri=uri)
        # pyannote would map unknown turns: compare on the known labels only
        known = hypothesis.subset([h for h in hypothesis.labels()
                                   if not h.startswith("UNKNOWN#")])
        metric = DiarizationErrorRate()
        ours = der_over_time(reference, known, uem, Conventions(), step=1.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            started = time.perf_counter()
            for row in ours.iloc[stride - 1::stride].itertuples():
                detail = metric(reference, known, uem=uem.crop(Segment(0, row.t)),
                                detailed=True)
                worst = max(worst, abs(detail["confusion"] - row.confusion_prefix),
                            abs(detail["missed detection"] - row.miss),
                            abs(detail["false alarm"] - row.false_alarm),
                            abs(detail["total"] - row.reference_speech))
            seconds += (time.perf_counter() - started) * stride
    return seconds, worst


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meetings", type=int, default=16, help="how many test meetings")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ami", help="the AMI setup folder (default: shared/data/ami-setup)")
    parser.add_argument("--old-rev", default=OLD_REV,
                        help=f"git revision of the tree to compare with (default {OLD_REV})")
    parser.add_argument("--old-src", help="a src/ folder to compare with instead of --old-rev")
    parser.add_argument("--prefix-check", action="store_true",
                        help="also time pyannote on every --stride-th prefix of the curve")
    parser.add_argument("--stride", type=int, default=60)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.ami_path = find_ami(args.ami)
    if args.worker:
        return worker(args)
    meetings = (args.ami_path / "lists" / "test.meetings.txt").read_text().split()[
        : args.meetings] if (args.ami_path / "lists").is_dir() else []
    if not meetings:
        print(f"no AMI setup at {args.ami_path}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old_src = old_tree(args, tmp)
        out = tmp / "old.pickle"
        env = dict(os.environ, PYTHONPATH=str(old_src))
        command = [sys.executable, __file__, "--worker", "--out", str(out), "--meetings",
                   str(args.meetings), "--seed", str(args.seed), "--ami", str(args.ami_path)]
        subprocess.run(command, env=env, check=True)
        with open(out, "rb") as file:
            old = pickle.load(file)
        (tmp / "new").mkdir()
        items = sessions(args.ami_path, meetings, args.seed, tmp / "new")
        new = score_all(items)
        seen_cpu = 0.0
        from diareval.score.seen import der_seen
        for uri, log, recording in items:
            cpu = time.process_time()
            der_seen(log, recording.reference, recording.uem,
                     Conventions(uem="UEM file (AMI test)"))
            seen_cpu += time.process_time() - cpu
        prefix = prefix_check(items, args.stride) if args.prefix_check else None
    header = (f"{'meeting':<9} {'dur s':>6} {'DER%':>6} {'old cpu s':>9} {'new cpu s':>9} "
              f"{'old wall':>8} {'new wall':>8} {'speedup':>7} {'max|diff|':>9}")
    print(f"old tree: {args.old_src or args.old_rev}; new tree: {REPO}")
    print(header)
    print("-" * len(header))
    totals = dict(duration=0.0, old=0.0, new=0.0, old_wall=0.0, new_wall=0.0)
    worst, problems = 0.0, []
    for uri, log, recording in items:
        a, b = old[uri], new[uri]
        diff, issues = max_difference(a, b)
        worst = max(worst, diff)
        problems += [f"{uri}: {p}" for p in issues]
        duration = recording.uem.extent().end
        print(f"{uri:<9} {duration:6.0f} {100 * b[2]['der']:6.2f} {a[0]:9.3f} {b[0]:9.3f} "
              f"{a[1]:8.3f} {b[1]:8.3f} {a[0] / b[0]:6.2f}x {diff:9.2e}", flush=True)
        totals["duration"] += duration
        for key, value in (("old", a[0]), ("new", b[0]), ("old_wall", a[1]),
                           ("new_wall", b[1])):
            totals[key] += value
    print("-" * len(header))
    print(f"{'total':<9} {totals['duration']:6.0f} {'':>6} {totals['old']:9.3f} "
          f"{totals['new']:9.3f} {totals['old_wall']:8.3f} {totals['new_wall']:8.3f} "
          f"{totals['old'] / totals['new']:6.2f}x {worst:9.2e}")
    new_tables = sorted(set(next(iter(new.values()))[3]) - set(next(iter(old.values()))[3]))
    print(f"\nall metrics (score_session) for {len(items)} meetings "
          f"({totals['duration'] / 3600:.1f} h): old {totals['old']:.2f} s CPU, new "
          f"{totals['new']:.2f} s CPU (target <= 5 s), of which der_seen ~{seen_cpu:.2f} s "
          f"(new tables: {', '.join(new_tables) or 'none'}); every shared value within "
          f"{worst:.1e}")
    if problems:
        print("differences:\n  " + "\n  ".join(problems[:20]))
    if prefix is not None:
        print(f"curve vs pyannote on every {args.stride}th prefix: ~{prefix[0]:.0f} s estimated "
              f"for all prefixes, max |difference| {prefix[1]:.1e} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
