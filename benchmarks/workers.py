"""Benchmark of the local server's engine worker processes (``serve --workers N``).

    python benchmarks/workers.py [--dataset ../shared/data/ami-excerpts] [--seconds 30]
                                 [--steps 1,2,3,4,6,8] [--repeats 3]

1. Sessions held at real time, 1 and 2 workers side by side: two LocalServers with the
   baseline engine (``WorkerPool("baseline", workers=1)`` and ``workers=2``) run in this
   process; for each number of sessions N, N websocket clients (in this process, 50 ms
   chunks, paced at real time, starts spread over 1 s, ``speaker_labels=true``) stream the
   excerpts' first ``--seconds`` through the 1-worker server, then N through the 2-worker
   one. Lag of a session = the worst, over its chunks, of (time the engine's reply reached
   the front end) - (the chunk's real-time due time, from the first chunk)
   (``SessionStats.max_lag``). "Held" = the largest N whose worst session lag is < 0.5 s.
   RTF per session = the workers' CPU seconds (all their threads, from the workers' own
   ``time.process_time``) / the audio seconds streamed. Front end = this process's CPU
   seconds (websocket server, worker pipes, *and* the test clients) per audio second:
   an upper bound of what the front end needs per session.
2. Share of engine time spent holding the GIL, g: the same 2 sessions (two excerpts, fed
   back to back, no pacing, no websockets) run (a) in 2 threads of one process
   (the in-process path, ``workers=0``) and (b) in 2 worker processes, alternately
   ``--repeats`` times; the shortest wall time of each for both to finish (other jobs on
   the machine only add time; the ratio of the medians is printed too). Amdahl with the GIL
   as the serial part: two threads take T_threads = T_processes * (1 + g) on two free
   cores, so g = T_threads / T_processes - 1. (c) one session alone in one worker gives
   T_1; 2 * T_1 / T_processes is the parallelism the machine actually gave (2 = two free
   cores; near 1 = the machine is too loaded to tell threads from processes, and g is
   then underestimated).
3. Projection to a 16-core machine: threads of one process speed up at most
   1 / (g + (1 - g) / 16) times over one core (Amdahl) and never beyond 1 / g; worker
   processes scale with the cores, up to what one front-end core carries
   (1 / front-end CPU per session). Printed from the measured numbers.

The machine is shared (2 cores, other jobs): the load average is printed before and after.

Re-run 2026-12-03 10:37-10:45 UTC on the same quiet machine with the final code of session 9
(main 13c16a6: the sliding relabel now runs on every final turn, wide-band audio included),
same command:



held at real time: 1 worker 8, 2 workers 8 (the most tried); GIL: 2 threads 4.06 s,
2 processes 4.48 s, 1 alone 4.19 s (1.87 cores given), g = 0.00; the front end carries about
57 sessions per core at the worst measured (0.0176 CPU s per audio s). The relabel's batch
at each final turn shows in the worst lag (0.20 s against 0.09 s for one session), still far
under 0.5 s at 8 sessions (0.35 / 0.32 s). Projection as below: engines scale with the cores
(g = 0), the one front-end process is the limit, about 57 sessions.

Recorded 2026-12-03 09:32-09:45 UTC (session 9) on a quiet 2-core Intel Xeon (AVX-512; load
average 0.67 before, 1.74 after; nothing else of ours running), main at c712a38, the first
30 s of the 11 AMI excerpts, `python benchmarks/workers.py --dataset ../shared/data/ami-excerpts`:



sessions held at real time (worst lag < 0.5 s): 1 worker 8, 2 workers 8 -- both hold the
largest number tried (``--steps`` up to 8), so each holds at least 8; at 8 the worst lag is
0.31 s with 1 worker, 0.27 s with 2. (The RTF per session falls with more sessions because
sessions take the excerpts in turn and trn01 / trn02 are mostly silence in their first 30 s.)
GIL experiment (2 sessions of 30 s, unpaced, 3 repeats, shortest): 2 threads 4.06 s, 2
processes 4.38 s, 1 process alone 4.31 s: the machine gave 2 x 4.31 / 4.38 = 1.96 cores of
2, so this time the number is firm: g = 0.00 (two threads finish no later than two
processes; 0.00 from the medians too): the engine's work (onnxruntime, CTranslate2, numpy)
runs with the GIL released. Projection to 16 cores from g = 0: threads of one process scale
with the cores like worker processes do (Amdahl: 16x one core), about 16 x 4 = 64 sessions
like these at the 4 per core held here (the script prints 128: it counts the 8 one worker
held as one core's, but with g = 0 that worker's threads used both cores),
and either way the front end is the limit: 0.0088-0.021 CPU s per audio s (with the test
clients) is about 46 sessions per front-end core at the worst measured, so a 16-core machine
holds about 46 sessions with the front end on one core, not 64-128. Worker processes still
isolate a crashing engine and keep the front end's core free of engine work; on this
evidence they do not raise the count.

Recorded 2026-12-02 14:37-14:46 UTC on the shared 2-core machine, the first 30 s of the 11
AMI excerpts (../shared/data/ami-excerpts), `python benchmarks/workers.py`. The load average
was 6.2 at the start (the lowest seen in an hour of waiting; 9-17 most of the time) and
13.8 at the end: other jobs had about five runnable processes per core, so this process and
its workers got well under the two cores the comparison needs:

| workers | sessions | worst lag (s) | median lag (s) | RTF per session | front-end CPU s per audio s |
|---|---|---|---|---|---|
| 1 | 1 | 0.38 | 0.38 | 0.175 | 0.0176 |
| 1 | 2 | 1.78 | 1.64 | 0.169 | 0.0163 |
| 1 | 3 | 2.10 | 1.71 | 0.123 | 0.0151 |
| 2 | 1 | 0.41 | 0.41 | 0.179 | 0.0178 |
| 2 | 2 | 2.91 | 2.90 | 0.171 | 0.0158 |
| 2 | 3 | 2.19 | 1.30 | 0.126 | 0.0155 |

sessions held at real time (worst lag < 0.5 s): 1 worker 1, 2 workers 1 (2 workers hold as
many as 1, not more: with ~14 runnable processes on 2 cores a second worker process gets no
second core). GIL experiment (2 sessions of 30 s, unpaced, 3 repeats, shortest): 2 threads
26.2 s, 2 processes 24.1 s, 1 process alone 14.6 s, so the machine gave 2 x 14.6 / 24.1 =
1.21 cores of 2 (too loaded for a firm number); g = 26.2 / 24.1 - 1 = 0.09 (0.03 from
the medians). Projection to 16 cores from g = 0.09: threads of one process at most
1 / (0.09 + 0.91 / 16) = 6.9x one core (never beyond 1 / g = 11x), i.e. about 7 sessions
at the 1-session-per-core rate held here; 16 workers about 16 sessions, far below what the
front end carries (0.0176 CPU s per audio s including the test clients: about 56 sessions
per front-end core). On an idle machine each core holds more sessions (the baseline's RTF
0.12-0.18 per session; `benchmarks/engine.py`: 4 real-time sessions on 2 cores with a worst
lag of 0.17 s), and the projection scales by that per-core count: 16 workers hold 16 x what
one worker holds, threads of one process at most 6.9x. g here is rough: with under two
cores given, contention is hidden (g too low); a GIL holder the OS preempts makes the other
thread wait (g too high). Re-run on a quiet machine for a firm number.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

CHUNK = 800  # samples = 50 ms at 16 kHz
QUERY = "sample_rate=16000&speech_model=universal-streaming-english&speaker_labels=true"
KEY = "bench"
LAG_LIMIT = 0.5


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def _client(url: str, audio: np.ndarray, delay: float) -> int:
    import websockets
    await asyncio.sleep(delay)
    async with websockets.connect(f"{url}/v3/ws?{QUERY}",
                                  additional_headers={"Authorization": KEY}) as ws:
        async def reader():
            async for _ in ws:
                pass
        reading = asyncio.create_task(reader())
        start = time.monotonic()
        for k, i in enumerate(range(0, len(audio) - CHUNK + 1, CHUNK)):
            due = start + k * CHUNK / 16000
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await ws.send(audio[i:i + CHUNK].tobytes())
        await ws.send(json.dumps({"type": "Terminate"}))
        await asyncio.wait_for(reading, 120)
        return ws.close_code


async def held_step(server, pool, audios: list[np.ndarray], n: int) -> dict:
    """n paced sessions through ``server``: worst lag, RTF per session, front-end CPU."""
    first = len(pool.stats)
    cpu0 = sum(w.cpu for w in pool.workers)
    front0 = time.process_time()
    codes = await asyncio.gather(*(_client(server.url, audios[i % len(audios)], i / max(n, 1))
                                   for i in range(n)))
    await asyncio.sleep(0.2)
    stats = list(pool.stats)[first:]
    audio = sum(s.audio_seconds for s in stats)
    lags = [s.max_lag for s in stats]
    return dict(n=n, codes=codes, worst_lag=max(lags), median_lag=statistics.median(lags),
                rtf=(sum(w.cpu for w in pool.workers) - cpu0) / audio,
                front_cpu_per_audio_s=(time.process_time() - front0) / audio)


async def held_table(audios, steps: list[int]) -> dict:
    from diareval.server import LocalServer
    from diareval.server.workers import WorkerPool

    servers = {}
    for w in (1, 2):
        pool = WorkerPool("baseline", {}, workers=w)
        servers[w] = (LocalServer(pool, api_keys=(KEY,), lookahead_seconds=5.0), pool)
    t0 = time.monotonic()
    for server, _ in servers.values():
        await server.start()
    print(f"baseline workers started (3 processes) in {time.monotonic() - t0:.1f} s", flush=True)
    # warm-up: one short session on every worker (first calls compile / allocate)
    for server, pool in servers.values():
        await asyncio.gather(*(_client(server.url, audios[0][:16000 * 4], 0.0)
                               for _ in range(pool.size)))
    rows: dict[int, list[dict]] = {1: [], 2: []}
    failed = {1: 0, 2: 0}
    try:
        for n in steps:
            for w, (server, pool) in servers.items():
                if failed[w] >= 2:
                    continue
                row = await held_step(server, pool, audios, n)
                rows[w].append(row)
                ok = row["worst_lag"] < LAG_LIMIT and all(c == 1000 for c in row["codes"])
                failed[w] = 0 if ok else failed[w] + 1
                print(f"  workers {w}  sessions {n:2d}  worst lag {row['worst_lag']:6.2f} s  "
                      f"median lag {row['median_lag']:5.2f} s  RTF/session {row['rtf']:.3f}  "
                      f"front end CPU/audio s {row['front_cpu_per_audio_s']:.4f}  "
                      f"load {_load()}", flush=True)
            if all(f >= 2 for f in failed.values()):
                break
    finally:
        for server, _ in servers.values():
            await server.stop()
    return rows


def _feed_all(engine, audio) -> None:
    for i in range(0, len(audio) - CHUNK + 1, CHUNK):
        engine.feed(audio[i:i + CHUNK])
    engine.finish()


def run_threads(factory, params, audios) -> float:
    """Wall seconds for the sessions in threads of this process (unpaced)."""
    engines = [factory(params) for _ in audios]
    threads = [threading.Thread(target=_feed_all, args=(e, a)) for e, a in zip(engines, audios)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - start


async def run_processes(pool, params, audios) -> float:
    """Wall seconds for the sessions on the pool's workers, one each (unpaced)."""
    engines = [await pool.open_session(params) for _ in audios]

    async def one(engine, audio):
        for i in range(0, len(audio) - CHUNK + 1, CHUNK):
            await engine.feed(audio[i:i + CHUNK])
        await engine.finish()
        engine.close()
    start = time.monotonic()
    await asyncio.gather(*(one(e, a) for e, a in zip(engines, audios)))
    return time.monotonic() - start


async def gil_share(audios, repeats: int) -> dict:
    from diareval.server.engines import make_engine_factory
    from diareval.server.engines.base import SessionParams
    from diareval.server.workers import WorkerPool

    params = SessionParams(speaker_labels=True)
    factory = make_engine_factory("baseline")
    pair = audios[:2]
    pool = await WorkerPool("baseline", {}, workers=2).start()
    try:
        run_threads(factory, params, pair[:1])  # warm-up
        await run_processes(pool, params, pair)
        threads, processes, single = [], [], []
        for r in range(repeats):
            threads.append(await asyncio.to_thread(run_threads, factory, params, pair))
            processes.append(await run_processes(pool, params, pair))
            single.append(await run_processes(pool, params, pair[:1]))
            print(f"  repeat {r}: 2 threads {threads[-1]:.2f} s, 2 processes "
                  f"{processes[-1]:.2f} s, 1 process alone {single[-1]:.2f} s, "
                  f"load {_load()}", flush=True)
    finally:
        await pool.close()
    # the least disturbed repeat of each (other jobs on the machine only ever add time)
    t_thr, t_proc, t_1 = (min(x) for x in (threads, processes, single))
    return dict(t_threads=t_thr, t_processes=t_proc, t_single=t_1,
                g=max(0.0, t_thr / t_proc - 1.0), parallelism=2 * t_1 / t_proc,
                g_median=max(0.0, statistics.median(threads) / statistics.median(processes) - 1))


def held(rows: list[dict]) -> int:
    """The largest N whose sessions all kept the worst lag under the limit."""
    good = [r["n"] for r in rows if r["worst_lag"] < LAG_LIMIT
            and all(c == 1000 for c in r["codes"])]
    return max(good, default=0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=str(HERE.parent.parent / "shared" / "data" /
                                                 "ami-excerpts"))
    parser.add_argument("--seconds", type=float, default=30.0, help="audio per session")
    parser.add_argument("--steps", default="1,2,3,4,6,8", help="numbers of sessions to try")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the GIL experiment")
    parser.add_argument("--cores", type=int, default=16, help="projection target")
    args = parser.parse_args(argv)
    from diareval.datasets import load
    recordings = load(args.dataset)
    audios = [r.load_audio()[:int(args.seconds * 16000)] for r in recordings]
    print(f"load average before: {_load()}  ({os.cpu_count()} CPUs)", flush=True)
    print("1. sessions held at real time", flush=True)
    rows = asyncio.run(held_table(audios, [int(x) for x in args.steps.split(",")]))
    print("2. GIL share (2 sessions unpaced: threads vs processes)", flush=True)
    gil = asyncio.run(gil_share(audios, args.repeats))
    print(f"load average after: {_load()}", flush=True)

    print("\n| workers | sessions | worst lag (s) | median lag (s) | RTF per session | "
          "front-end CPU s per audio s |")
    print("|---|---|---|---|---|---|")
    for w in (1, 2):
        for r in rows[w]:
            print(f"| {w} | {r['n']} | {r['worst_lag']:.2f} | {r['median_lag']:.2f} | "
                  f"{r['rtf']:.3f} | {r['front_cpu_per_audio_s']:.4f} |")
    h1, h2 = held(rows[1]), held(rows[2])
    print(f"\nsessions held at real time (worst lag < {LAG_LIMIT} s): 1 worker {h1}, "
          f"2 workers {h2}")
    g, cores = gil["g"], args.cores
    print(f"GIL: 2 threads {gil['t_threads']:.2f} s, 2 processes {gil['t_processes']:.2f} s, "
          f"1 alone {gil['t_single']:.2f} s (parallelism given {gil['parallelism']:.2f} of 2): "
          f"share of engine time holding the GIL g = {g:.2f} (from the medians "
          f"{gil['g_median']:.2f})")
    if gil["parallelism"] < 1.6:
        print("  (the machine gave less than 1.6 cores to two processes: too loaded to tell "
              "threads from processes; g is not reliable)")
    amdahl = 1.0 / (g + (1.0 - g) / cores)
    front = max(r["front_cpu_per_audio_s"] for w in (1, 2) for r in rows[w])
    per_worker = max(h1, h2 / 2)
    print(f"projection to {cores} cores: threads of one process {amdahl:.1f}x one core "
          f"(cap {1 / g if g > 0 else math.inf:.1f}x) = about {h1 * amdahl:.0f} sessions; "
          f"{cores} workers about {per_worker * cores:.0f} sessions (front end carries "
          f"about {1 / front:.0f} sessions per core, so "
          f"{min(per_worker * cores, 1 / front):.0f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
