"""Time the conversation generator: ``python benchmarks/synthetic.py [--minutes 10] [--speakers 4]``.

Prints wall time, real-time factor and the measured statistics (from the RTTM and words)
next to the requested ones. No caching: every run generates from scratch.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from diareval.datasets.synthetic import ConversationSpec, generate_conversation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--speakers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    spec = ConversationSpec(n_speakers=args.speakers, minutes=args.minutes, seed=args.seed)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        conversation = generate_conversation(spec, 0)
        times.append(time.perf_counter() - start)
    seconds = len(conversation.audio) / 16000
    print(f"{args.minutes:g} min, {args.speakers} speakers: best {min(times):.2f} s, "
          f"median {np.median(times):.2f} s over {args.repeats} runs "
          f"(RTF {min(times) / seconds:.4f})")
    segments = sorted((s.start, s.end, label)
                      for s, _, label in conversation.reference.itertracks(yield_label=True))
    counts = np.array([sum(1 for w in conversation.words if w.speaker == label
                           and a - 1e-3 <= (w.start + w.end) / 2 <= b)
                       for a, b, label in segments])
    overlaps, last = [], segments[0][1]
    for a, b, _ in segments[1:]:
        if a < last:
            overlaps.append(min(last, b) - a)
        last = max(last, b)
    print(f"segments {len(segments)}, words {len(conversation.words)}")
    print(f"back-channel share {np.mean(counts <= 2):.3f} (requested {spec.backchannel_rate}), "
          f"mean words of other turns {counts[counts > 2].mean():.2f} "
          f"(requested {spec.mean_words})")
    print(f"overlap rate {len(overlaps) / (len(segments) - 1):.3f} "
          f"(requested {spec.overlap_rate}), mean overlap {np.mean(overlaps):.3f} s "
          f"(requested {spec.overlap_mean})")


if __name__ == "__main__":
    main()
