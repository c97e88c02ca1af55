"""Scoring speed on the 16 AMI test meetings (9 h): every metric, DER over time at 1 s steps.

For each meeting of ../shared/data/ami-setup (only_words references, test UEMs) a
perturbed copy of the reference plays the hypothesis: boundaries shifted (Gaussian,
sd 0.15 s), 10% of segments given another speaker's label, 5% dropped, labels renamed
to letters; 3% of the short turns come out "UNKNOWN". It is written as a v3 session log
(one partial and one final Turn per segment, pseudo-words of ~0.35 s) and scored with
``diareval.score.score_session``: hypothesis extraction, DER and JER (pyannote.metrics),
DER over time at 1 s steps (prefix and final mapping), 60 s windows, DER by region,
per-turn and reference-segment tables, stability, latency, speaker counts.

The baseline is what the curve costs done naively: pyannote.metrics' DER on every prefix
[0, t]. Running all ~32 000 prefixes would take hours, so every ``--stride``-th prefix is
timed and the total is estimated as (time of the sampled prefixes) x stride; the sampled
prefixes are also compared with diareval's curve (max |difference| printed).

    nice -n 10 python benchmarks/scoring.py            # one core: threads pinned to 1

Prints one row per meeting and the totals.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from pyannote.core import Annotation, Segment  # noqa: E402
from pyannote.metrics.diarization import DiarizationErrorRate  # noqa: E402

from diareval.datasets.recording import Recording  # noqa: E402
from diareval.datasets.rttm import load_rttm, load_uem  # noqa: E402
from diareval.score import Conventions, der_over_time, score_session  # noqa: E402
from diareval.sessionlog import SessionLogWriter, read_session_log  # noqa: E402

AMI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ami-setup"


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meetings", type=int, default=16, help="how many test meetings")
    parser.add_argument("--stride", type=int, default=60,
                        help="time every N-th pyannote prefix and extrapolate (default 60)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    meetings = (AMI / "lists" / "test.meetings.txt").read_text().split()[: args.meetings]
    if not meetings:
        print(f"no AMI setup at {AMI}", file=sys.stderr)
        return 1
    rng = np.random.default_rng(args.seed)
    conventions = Conventions(uem="UEM file (AMI test)")
    header = (f"{'meeting':<9} {'dur s':>7} {'steps':>6} {'DER%':>6} {'curve s':>8} "
              f"{'all s':>7} {'all cpu s':>9} {'pyannote DER s':>14} {'per-prefix est s':>16} "
              f"{'speedup':>8} {'max|diff|':>10}")
    print(header)
    print("-" * len(header))
    totals = dict(duration=0.0, steps=0, curve=0.0, all=0.0, all_cpu=0.0, single=0.0,
                  prefix=0.0)
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for uri in meetings:
            reference = load_rttm(AMI / "only_words" / "rttms" / "test" / f"{uri}.rttm")[uri]
            uem = load_uem(AMI / "uems" / "test" / f"{uri}.uem")[uri]
            recording = Recording(uri=uri, audio_path=Path(tmp) / f"{uri}.wav",
                                  reference=reference, uem=uem, meta={"uem": "UEM file"})
            log_path = Path(tmp) / f"{uri}.jsonl"
            write_log(perturb(reference, rng), log_path, rng)
            log = read_session_log(log_path)

            started, cpu = time.perf_counter(), time.process_time()
            scores = score_session(log, recording, conventions, step=1.0)
            all_seconds = time.perf_counter() - started
            all_cpu = time.process_time() - cpu

            from diareval.score.hypothesis import hypothesis_from_log
            hypothesis = hypothesis_from_log(log, uri=uri)
            started = time.perf_counter()
            curve = der_over_time(reference, hypothesis, uem, conventions, step=1.0)
            curve_seconds = time.perf_counter() - started

            # pyannote: one whole-session DER, then every stride-th prefix. The hypothesis
            # has unknown turns; pyannote would map them, so the baseline scores the known
            # labels only and is compared on sessions' known speech (same work per call).
            known = hypothesis.subset([h for h in hypothesis.labels()
                                       if not h.startswith("UNKNOWN#")])
            metric = DiarizationErrorRate()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                started = time.perf_counter()
                metric(reference, known, uem=uem)
                single_seconds = time.perf_counter() - started
                ours_known = der_over_time(reference, known, uem, Conventions(), step=1.0)
                sampled = ours_known.iloc[args.stride - 1::args.stride]
                meeting_worst = 0.0
                started = time.perf_counter()
                for row in sampled.itertuples():
                    detail = metric(reference, known, uem=uem.crop(Segment(0, row.t)),
                                    detailed=True)
                    meeting_worst = max(meeting_worst,
                                        abs(detail["confusion"] - row.confusion_prefix),
                                        abs(detail["missed detection"] - row.miss),
                                        abs(detail["false alarm"] - row.false_alarm),
                                        abs(detail["total"] - row.reference_speech))
                prefix_seconds = (time.perf_counter() - started) * args.stride
            worst = max(worst, meeting_worst)
            duration = uem.extent().end
            steps = len(curve)
            der = scores.summary["der"]
            print(f"{uri:<9} {duration:7.0f} {steps:6d} {100 * der:6.2f} {curve_seconds:8.3f} "
                  f"{all_seconds:7.3f} {all_cpu:9.3f} {single_seconds:14.3f} "
                  f"{prefix_seconds:16.1f} "
                  f"{prefix_seconds / curve_seconds:7.0f}x {meeting_worst:10.2e}", flush=True)
            totals["duration"] += duration
            totals["steps"] += steps
            totals["curve"] += curve_seconds
            totals["all"] += all_seconds
            totals["all_cpu"] += all_cpu
            totals["single"] += single_seconds
            totals["prefix"] += prefix_seconds
    print("-" * len(header))
    print(f"{'total':<9} {totals['duration']:7.0f} {totals['steps']:6d} {'':>6} "
          f"{totals['curve']:8.3f} {totals['all']:7.3f} {totals['all_cpu']:9.3f} "
          f"{totals['single']:14.3f} "
          f"{totals['prefix']:16.1f} {totals['prefix'] / totals['curve']:7.0f}x {worst:10.2e}")
    print(f"\nall metrics (score_session, incl. DER over time at 1 s steps) for "
          f"{len(meetings)} meetings ({totals['duration'] / 3600:.1f} h): {totals['all']:.1f} s "
          f"wall, {totals['all_cpu']:.1f} s CPU (target <= 15 s); curve {totals['curve']:.1f} s "
          f"vs per-prefix pyannote "
          f"~{totals['prefix']:.0f} s (estimated from every {args.stride}th prefix): "
          f"{totals['prefix'] / totals['curve']:.0f}x (target >= 50x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
