"""Pacing benchmark: how close to the ideal real-time schedule do chunks arrive at the server?

    python benchmarks/pacing.py                      # N = 1, 64, 256 for 30 s each
    python benchmarks/pacing.py --duration 600       # the 10-minute target
    python benchmarks/pacing.py --sessions 1024 --duration 60

The server (``diareval.server.LocalServer`` with an engine that emits nothing, so only
the protocol work remains) runs in a child process pinned to one core; the client (the
real ``diareval.stream.stream_attempt``: pacer, reader, session log on disk) runs in
this process pinned to the other core. N sessions start at once and stream
``--duration`` s of audio in 50 ms chunks.

Measured at the server from ``ServerSession.chunk_arrivals``. The ideal schedule of a
session is ``t0 + audio received before the chunk``; the server cannot know the client's
``t0``, so it is taken as the earliest ``arrival - audio before`` of the session (the
client never sends before a deadline, so that is the chunk with the least delay). The
error of a chunk = its arrival minus its ideal arrival: lateness beyond the session's best
case, >= 0. (Anchoring on the first chunk instead makes the numbers depend on how late
the first chunk was in the start-up burst; ``--anchor first`` shows that view.)
Reported over all chunks of all sessions: median, p99 and max error; drift = per session,
the median error over the last 10 s minus the median over the first 10 s, the largest
|drift| over sessions (drift does not depend on the anchor).
Targets (spine issue): p99 <= 20 ms and drift <= 10 ms over 10 min at N = 256 on one core.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

KEY = "bench-key"


def _pin(core: int | None) -> str:
    if core is None or not hasattr(os, "sched_setaffinity"):
        return "unpinned"
    cores = sorted(os.sched_getaffinity(0))
    chosen = cores[core % len(cores)]
    os.sched_setaffinity(0, {chosen})
    return f"core {chosen}"


def _realtime_priority(enabled: bool) -> str:
    """SCHED_RR priority 1 (needs CAP_SYS_NICE): keeps other load on a shared machine from
    delaying the measurement (the kernel still caps real-time tasks at 95% of a core)."""
    if not enabled:
        return "normal priority"
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(1))
        return "SCHED_RR"
    except (AttributeError, OSError) as exc:
        return f"normal priority (SCHED_RR refused: {exc})"


# --- the server process -----------------------------------------------------------------------

def _server_main(conn, core: int | None, anchor_first: bool = False, rt: bool = False) -> None:
    """Child: a LocalServer whose engine says nothing; on request, the arrival errors."""
    _pin(core)
    _realtime_priority(rt)
    from diareval.server import LocalServer
    from diareval.server.engines.base import Engine

    class Silent(Engine):
        def feed(self, pcm):
            return []

        def finish(self):
            return []

    async def main():
        async with LocalServer(Silent, api_keys=(KEY,), lookahead_seconds=300.0) as server:
            conn.send(server.url)
            loop = asyncio.get_running_loop()
            while True:
                command = await loop.run_in_executor(None, conn.recv)
                if command == "stop":
                    return
                # "report": per session, the arrival error of every chunk (ms) and the
                # audio time of the chunk (s), then forget the sessions.
                report = []
                for session in server.sessions:
                    if not session.chunk_arrivals:
                        continue
                    arrivals = np.array(session.chunk_arrivals, dtype=np.float64)
                    offsets = arrivals[:, 0] - arrivals[:, 1]
                    anchor = offsets[0] if anchor_first else offsets.min()
                    errors = (offsets - anchor) * 1000
                    report.append((errors.astype(np.float32), arrivals[:, 1].astype(np.float32),
                                   session.close_code))
                server.sessions.clear()
                conn.send(report)

    asyncio.run(main())


# --- the client -------------------------------------------------------------------------------

async def _stream_all(url: str, n: int, duration: float, log_dir: Path, spread: bool):
    from diareval.stream import SilenceAudio, StreamConfig, build_headers, stream_attempt

    config_url = StreamConfig("universal-streaming-english").url(url)
    headers = build_headers(KEY)
    tasks = [stream_attempt(config_url, headers, SilenceAudio(duration, seed=i),
                            log_dir / f"s{i}.jsonl", terminate_timeout=30.0, open_timeout=60.0,
                            phase=((i * 0.6180339887498949) % 1.0) * 0.05 if spread else 0.0)
             for i in range(n)]
    return await asyncio.gather(*tasks)


def _measure(conn, url: str, n: int, duration: float, spread: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="diareval-pacing-") as tmp:
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.monotonic()
        results = asyncio.run(_stream_all(url, n, duration, Path(tmp), spread))
        wall = time.monotonic() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    conn.send("report")
    report = conn.recv()
    errors = np.concatenate([e for e, _, _ in report]) if report else np.zeros(0)
    drifts = []
    for e, audio, _ in report:
        end = audio[-1]
        first, last = e[audio < 10.0], e[audio >= end - 10.0]
        if len(first) and len(last):
            drifts.append(float(np.median(last) - np.median(first)))
    ok = sum(r.outcome.value == "complete" for r in results)
    client_p99 = [r.lateness_ms.get("p99", float("nan")) for r in results if r.lateness_ms]
    client_max = [r.lateness_ms.get("max", float("nan")) for r in results if r.lateness_ms]
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {
        "sessions": n, "complete": ok, "chunks": int(errors.size),
        "median": float(np.median(errors)) if errors.size else float("nan"),
        "p99": float(np.percentile(errors, 99)) if errors.size else float("nan"),
        "max": float(errors.max()) if errors.size else float("nan"),
        "drift": max((abs(d) for d in drifts), default=float("nan")),
        "client_cpu": cpu / wall,
        # the client's own view: send time minus deadline (median over sessions of each
        # session's p99; the largest max)
        "client_p99": float(np.median(client_p99)) if client_p99 else float("nan"),
        "client_max": max(client_max, default=float("nan")),
        "errors": sorted({r.error for r in results if r.error})[:3],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 64, 256],
                        help="concurrent session counts to measure (default 1 64 256)")
    parser.add_argument("--duration", type=float, default=30.0,
                        help="seconds of audio per session (default 30; 600 = the target)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to cores")
    parser.add_argument("--rt", action="store_true",
                        help="run server and client at real-time priority (SCHED_RR): measures "
                             "the code, not the other load on a shared machine")
    parser.add_argument("--no-spread", action="store_true",
                        help="all sessions send on the same 50 ms phase (default: the phases "
                             "are spread over the chunk period, as the runner does)")
    parser.add_argument("--anchor", choices=("best", "first"), default="best",
                        help="ideal schedule anchored at the least-delayed chunk (default) or "
                             "at the first chunk of each session")
    args = parser.parse_args(argv)

    server_core, client_core = (None, None) if args.no_pin else (0, 1)
    parent, child = mp.get_context("spawn").Pipe()
    server = mp.get_context("spawn").Process(target=_server_main, args=(child, server_core, args.anchor == "first", args.rt),
                                             daemon=True)
    server.start()
    url = parent.recv()
    where = _pin(client_core)
    priority = _realtime_priority(args.rt)
    print(f"server pid {server.pid} ({'unpinned' if server_core is None else 'core 0'}), "
          f"client {where}; {priority}; {args.duration:g} s of audio per session, 50 ms chunks; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    try:
        for n in args.sessions:
            rows.append(_measure(parent, url, n, args.duration, not args.no_spread))
            row = rows[-1]
            print(f"  N={n}: done ({row['complete']}/{n} complete, load average "
                  f"{os.getloadavg()[0]:.2f})"
                  + (f" errors: {row['errors']}" if row["errors"] else ""), flush=True)
    finally:
        parent.send("stop")
        server.join(10)
        if server.is_alive():
            server.kill()
    print()
    print("| sessions | duration | chunks | median error | p99 | max | drift (max) | client CPU "
          "| client-side lateness p99 / max |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['sessions']} | {args.duration:g} s | {row['chunks']} | "
              f"{row['median']:.2f} ms | {row['p99']:.2f} ms | {row['max']:.1f} ms | "
              f"{row['drift']:.2f} ms | {row['client_cpu'] * 100:.0f}% of a core | "
              f"{row['client_p99']:.2f} / {row['client_max']:.1f} ms |")
    failed = [row for row in rows if row["complete"] != row["sessions"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
