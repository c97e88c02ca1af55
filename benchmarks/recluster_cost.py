"""CPU per final turn of the live re-clustering against the session's length, without models.

    python benchmarks/recluster_cost.py [--minutes 5,30,60,120]

``benchmarks/long_session.py`` streams real audio through the whole engine (about 25 min of
CPU for a 2-hour session); this builds the windows the engine would keep over the same
length of session (one every 0.5 s: 250 grid cells x 3 local speakers, one or two of them
embedded, 192-d embeddings of 4 voices) and times ``recluster.reclustered_grid`` as a final
Turn calls it (the mean of 5 calls, process CPU), with the session's ``SessionPoints`` kept
up to date between turns as the engine keeps it.

Recorded 2026-12-02 on the shared 2-core machine (load 9-16), before (the re-clustering of
session 5, which walked every window and built its grid from cell 0) and after (issue 16):

| session (min) | windows kept | before: ms per final turn | after: ms per final turn |
|---|---|---|---|
| 5 | 600 | 40.9 | 33.1 |
| 30 | 3600 | 82.9 | 36.9 |
| 60 | 7200 | 161.5 | 34.1 |
| 120 | 14400 | 400.8 | 32.7 |

At about 13 final turns a minute, 400 ms per turn is 0.09 of real time at 2 hours on top of
the rest of the engine; after, the cost is flat (the tree on at most 1000 embeddings).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", default="5,30,60,120", help="session lengths to time, comma-separated")
    args = parser.parse_args(argv)
    from diareval.server.engines.baseline import recluster
    from diareval.server.engines.baseline.config import MAX_GLOBAL, MAX_LIVE_POINTS, BaselineConfig
    from diareval.server.engines.baseline.diarizer import Window, activity_summary

    config = BaselineConfig()
    rng = np.random.default_rng(0)
    voices = rng.normal(size=(4, 192))
    points = recluster.SessionPoints(config.rho_update)
    marks = sorted(int(m) for m in args.minutes.split(","))
    windows: list = []
    print("| session (min) | windows kept | ms per final turn |\n|---|---|---|")
    for minute in range(1, marks[-1] + 1):
        for i in range(120):
            k = 1 + int(rng.integers(0, 2))
            embeddings, valid = np.zeros((3, 192), np.float32), np.zeros(3, bool)
            for j in range(k):
                v = voices[int(rng.integers(0, 4))] + 0.5 * rng.normal(size=192)
                embeddings[j], valid[j] = v / np.linalg.norm(v), True
            activity = np.zeros((296, 3), np.float32)
            activity[:, :k] = rng.uniform(0.3, 1.0, size=k)
            local = np.repeat(activity[:1], 250, axis=0)
            windows.append(Window(25 * len(windows), local, np.ones(250, np.float32), embeddings,
                                  valid, activity_summary(activity), {}, {j: j for j in range(k)},
                                  np.ones((250, 3), bool)))
            if i % 6 == 0:
                points.sync(windows)  # as the final turns in between would
        if minute in marks:
            start = 25 * len(windows) * 0.02 - 3.0
            t0 = time.process_time()
            for _ in range(5):
                recluster.reclustered_grid(windows, start, config, MAX_GLOBAL, config.evidence_floor,
                                           MAX_LIVE_POINTS, points)
            print(f"| {minute} | {len(windows)} | {1000 * (time.process_time() - t0) / 5:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
