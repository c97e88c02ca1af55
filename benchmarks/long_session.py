"""Does the baseline engine hold real time over a meeting-length session?

    python benchmarks/long_session.py [--minutes 30] [--block 5] [--options JSON]
                                      [--folder ../shared/data/librispeech-utterances]
                                      [--dataset FOLDER [--uri URI]]

The AMI meetings users stream are 15-50 min long, while ``benchmarks/engine.py`` measures
30 s excerpts and 90 s conversations. Some of the engine's work grows with the session:
at every final Turn the live re-clustering (``live_recluster``) re-builds the
average-linkage tree on the embeddings so far (at most 1000 of them; since issue 16 they
are kept as the windows arrive instead of collected from every window, see
``benchmarks/recluster_cost.py``), and the windows kept for the end-of-stream revision
grow by two a second. This streams one long
conversation (mixed from real LibriSpeech voices by ``diareval.datasets.mixtures``, 4
speakers; or a recording of ``--dataset``, e.g. a folder of AMI meetings) through one engine in 50 ms chunks, back to back, and prints
per block of ``--block`` minutes of audio:

- the real-time factor of that block (process CPU seconds / audio seconds, on one core:
  torch, onnxruntime, CTranslate2 and BLAS on one thread each, as in the server),
- the final Turns in it and the CPU spent in the live re-clustering per final Turn,
- the process's peak resident memory so far, and its resident memory now (VmRSS: the peak is
  reached while a long mixture is built, before streaming),

then the end-of-stream revision's CPU time and the DER with and without it (collar 0,
overlap scored, word-level), also per block (``diareval.score.over_time.der_windows``):
with the block's own optimal mapping and with the whole session's. A block RTF that grows with session time means the engine
would fall behind real time on long meetings; 4 concurrent sessions on 2 cores need it
below 0.5.

Recorded 2026-12-02 (session 5, with overlap_grow and refine_changes) on the shared 2-core
machine, `python benchmarks/long_session.py --minutes 30` (mixture seed 21, 4 speakers):

| audio up to (min) | RTF of the block | final turns | live re-clustering ms / final turn | peak RSS (MB) | windows kept | DER live: block / session mapping | DER revised: block / session mapping |
|---|---|---|---|---|---|---|---|
| 5.0 | 0.181 | 66 | 10 | 879 | 595 | 0.499 / 0.499 | 0.314 / 0.314 |
| 10.0 | 0.191 | 66 | 42 | 911 | 1192 | 0.372 / 0.372 | 0.291 / 0.291 |
| 15.0 | 0.182 | 71 | 50 | 927 | 1791 | 0.346 / 0.346 | 0.341 / 0.341 |
| 20.0 | 0.208 | 74 | 66 | 934 | 2385 | 0.352 / 0.352 | 0.348 / 0.348 |
| 25.0 | 0.211 | 61 | 77 | 949 | 2984 | 0.353 / 0.353 | 0.349 / 0.349 |
| 30.0 | 0.191 | 65 | 72 | 1022 | 3574 | 0.369 / 0.369 | 0.352 / 0.352 |

Whole session: RTF 0.194; end-of-stream revision 0.42 s CPU; DER 0.332 (without revision
0.382). (With overlap_grow alone, the run before: RTF 0.188, DER 0.335 / 0.387.) The block
RTF stays flat (0.18-0.21): the session holds real time at 30 min. The live re-clustering
grows from 10 to 72-77 ms per final turn (it walks every window kept to collect the
embeddings; the tree itself is capped at 1000 points), about 1 s of CPU per minute of
audio at 30 min: it will matter for multi-hour sessions. The labels as sent are poor in the
first minutes (0.50 in the first 5 min) and settle near 0.35; the revision is what brings
the early blocks down.

Session 9 (2026-12-03, 2-core Xeon, quiet but for the two runs), the sliding relabel
(``baseline/sliding.py``, on all audio by default) on and off side by side, one process each:
`python benchmarks/long_session.py --minutes 30 [--options '{"relabel_window": 0}']`
(mixture seed 21). The labeller now computes the clusters first and hands them to
``reclustered_grid``, so this script times both (before this fix the column read 1 ms):

| audio up to (min) | RTF on / off | re-clustering ms / turn on / off | peak RSS MB on / off | DER revised (block) on / off |
|---|---|---|---|---|
| 5 | 0.158 / 0.140 | 6 / 6 | 907 / 896 | 0.325 / 0.333 |
| 10 | 0.168 / 0.151 | 26 / 26 | 942 / 910 | 0.299 / 0.320 |
| 15 | 0.176 / 0.156 | 32 / 31 | 981 / 933 | 0.339 / 0.363 |
| 20 | 0.169 / 0.153 | 31 / 32 | 998 / 935 | 0.362 / 0.366 |
| 25 | 0.178 / 0.161 | 31 / 31 | 1111 / 1054 | 0.350 / 0.370 |
| 30 | 0.163 / 0.146 | 30 / 31 | 1113 / 1054 | 0.372 / 0.400 |

Whole session on / off: RTF 0.169 / 0.151, revision 0.42 / 0.34 s CPU, DER 0.341 / 0.359
(as sent 0.386 / 0.399). The relabel adds RTF +0.015-0.020 in every block (flat: the last
block 3% above the first with it, 4% without); peak RSS is 30-60 MB higher and stops growing
after 25 min (the windows themselves: 2 x 192 floats per second of turn, under 6 MB/h).

Issue 16 (item 4), 2026-12-02: the live re-clustering no longer walks every window kept
(``recluster.SessionPoints`` keeps the embeddings as windows arrive, the recent windows'
grid starts at their first cell instead of cell 0, word snapping reads only the VAD frames
it needs); same messages as before (the clusters are the full walk's, exactly). Its cost
per final turn against session length, model-free (``benchmarks/recluster_cost.py``):
before 41 / 83 / 162 / 401 ms at 5 / 30 / 60 / 120 min, after 33 / 37 / 34 / 33 ms.
`python benchmarks/long_session.py --minutes 120` (mixture seed 21, 4 speakers, with
that code and reuse_embeddings off), 13:57-15:53 on the shared 2-core machine under load
9-16 until 15:30 (8 helpers; the contention inflates CPU time too, so the blocks streamed
then, 5-55 min, read high), 3-5 after:

| audio up to (min) | RTF of the block | final turns | live re-clustering ms / final turn | peak RSS (MB) | windows kept | DER live: block / session mapping | DER revised: block / session mapping |
|---|---|---|---|---|---|---|---|
| 5.0 | 0.203 | 70 | 6 | 2862 | 595 | 0.504 / 0.504 | 0.311 / 0.311 |
| 10.0 | 0.230 | 67 | 29 | 2862 | 1192 | 0.371 / 0.371 | 0.290 / 0.290 |
| 15.0 | 0.228 | 71 | 34 | 2862 | 1791 | 0.350 / 0.350 | 0.334 / 0.334 |
| 20.0 | 0.217 | 77 | 34 | 2862 | 2385 | 0.362 / 0.362 | 0.349 / 0.349 |
| 25.0 | 0.215 | 64 | 35 | 2862 | 2984 | 0.349 / 0.349 | 0.341 / 0.341 |
| 30.0 | 0.240 | 68 | 35 | 2862 | 3576 | 0.370 / 0.370 | 0.352 / 0.352 |
| 35.0 | 0.249 | 65 | 37 | 2862 | 4174 | 0.407 / 0.407 | 0.399 / 0.399 |
| 40.0 | 0.244 | 72 | 37 | 2862 | 4770 | 0.404 / 0.404 | 0.392 / 0.392 |
| 45.0 | 0.214 | 69 | 34 | 2862 | 5363 | 0.299 / 0.299 | 0.294 / 0.294 |
| 50.0 | 0.226 | 70 | 35 | 2862 | 5957 | 0.317 / 0.317 | 0.311 / 0.311 |
| 55.0 | 0.228 | 71 | 34 | 2862 | 6555 | 0.344 / 0.344 | 0.329 / 0.329 |
| 60.0 | 0.191 | 69 | 32 | 2862 | 7153 | 0.352 / 0.352 | 0.332 / 0.332 |
| 65.0 | 0.191 | 74 | 32 | 2862 | 7752 | 0.357 / 0.357 | 0.327 / 0.327 |
| 70.0 | 0.199 | 70 | 32 | 2862 | 8350 | 0.336 / 0.336 | 0.330 / 0.330 |
| 75.0 | 0.187 | 65 | 31 | 2862 | 8944 | 0.321 / 0.321 | 0.311 / 0.311 |
| 80.0 | 0.188 | 65 | 32 | 2862 | 9541 | 0.346 / 0.346 | 0.349 / 0.349 |
| 85.0 | 0.201 | 71 | 34 | 2862 | 10136 | 0.347 / 0.347 | 0.325 / 0.325 |
| 90.0 | 0.209 | 61 | 34 | 2862 | 10735 | 0.309 / 0.309 | 0.290 / 0.290 |
| 95.0 | 0.209 | 68 | 34 | 2862 | 11330 | 0.326 / 0.326 | 0.312 / 0.312 |
| 100.0 | 0.198 | 70 | 33 | 2862 | 11924 | 0.331 / 0.331 | 0.342 / 0.342 |
| 105.0 | 0.196 | 70 | 33 | 2862 | 12520 | 0.342 / 0.342 | 0.337 / 0.337 |
| 110.0 | 0.198 | 63 | 34 | 2862 | 13116 | 0.341 / 0.341 | 0.331 / 0.331 |
| 115.0 | 0.194 | 69 | 32 | 2862 | 13714 | 0.334 / 0.334 | 0.308 / 0.308 |
| 120.0 | 0.199 | 66 | 33 | 2862 | 14313 | 0.353 / 0.353 | 0.354 / 0.354 |

Whole session: RTF 0.211; end-of-stream revision 1.37 s CPU; DER 0.331 (without revision
0.353). The last block's RTF (0.199) is within 2% of the first's (0.203); the live
re-clustering is flat at 31-37 ms per final turn from 15 to 120 min (session 5: 72-77 ms
at 25-30 min, growing). "peak RSS" is the peak of the whole process, reached while the
120-min mixture was built before streaming (2.9 GB); the resident memory while streaming
(VmRSS, sampled): 1.17 GB at 30 min, 1.19 at 40, 1.26 at 80, 1.34 at 110 min. The
committed code (reuse_embeddings 0.75), `--minutes 10` on a quieter machine (load 3-4):
blocks 0.159 / 0.177, re-clustering 6 / 29 ms per final turn (session 5: 10 / 42),
peak RSS 852 / 881 MB, whole session RTF 0.168, DER 0.313 (as sent 0.436).
What the session keeps grows by about 90 MB an hour (measured: 1.17 -> 1.34 GB from 30
to 110 min, 130 MB/h with allocator slack) (windows: about
7.7 KB each, two a second, 55 MB/h; the session grid 16 MB/h; embeddings for the
re-clustering 8 MB/h; VAD probabilities and sent turns a few MB/h), so at the service's
3-hour session cap (``max_session_duration_seconds`` 10800) it is about 1.5 GB resident
(models ~0.9 GB). The block's own re-clustering ms per turn, windows and RSS are printed
with each block now (stderr), so a partial run shows them too.

Session 10 (2026-12-03, 2-core Xeon, the other core running benchmarks throughout), the
code with the sliding relabel (main 35e2a09; 406a8e4 only moved state out of Diarizer),
`python benchmarks/long_session.py --minutes 120` (mixture seed 21, 4 speakers), with the
resident-memory column this script now prints:

| audio up to (min) | RTF of the block | final turns | live re-clustering ms / final turn | peak RSS (MB) | resident now (MB) | windows kept | DER live: block / session mapping | DER revised: block / session mapping |
|---|---|---|---|---|---|---|---|---|
| 5.0 | 0.163 | 95 | 6 | 2844 | 1092 | 595 | 0.500 / 0.500 | 0.353 / 0.353 |
| 10.0 | 0.174 | 94 | 27 | 2844 | 1122 | 1192 | 0.376 / 0.376 | 0.321 / 0.321 |
| 15.0 | 0.181 | 97 | 33 | 2844 | 1161 | 1791 | 0.354 / 0.354 | 0.353 / 0.353 |
| 20.0 | 0.176 | 101 | 33 | 2844 | 1171 | 2385 | 0.365 / 0.365 | 0.381 / 0.381 |
| 25.0 | 0.187 | 87 | 33 | 2844 | 1282 | 2984 | 0.352 / 0.352 | 0.371 / 0.371 |
| 30.0 | 0.172 | 93 | 34 | 2844 | 1284 | 3576 | 0.372 / 0.372 | 0.388 / 0.388 |
| 35.0 | 0.178 | 91 | 33 | 2844 | 1289 | 4174 | 0.423 / 0.423 | 0.411 / 0.411 |
| 40.0 | 0.171 | 93 | 34 | 2844 | 1295 | 4770 | 0.385 / 0.385 | 0.394 / 0.394 |
| 45.0 | 0.175 | 108 | 33 | 2844 | 1312 | 5363 | 0.324 / 0.324 | 0.330 / 0.330 |
| 50.0 | 0.174 | 92 | 33 | 2844 | 1323 | 5957 | 0.349 / 0.349 | 0.345 / 0.345 |
| 55.0 | 0.176 | 97 | 33 | 2844 | 1335 | 6555 | 0.324 / 0.324 | 0.323 / 0.323 |
| 60.0 | 0.178 | 95 | 33 | 2844 | 1346 | 7153 | 0.348 / 0.348 | 0.352 / 0.352 |
| 65.0 | 0.177 | 105 | 33 | 2844 | 1354 | 7752 | 0.379 / 0.379 | 0.381 / 0.381 |
| 70.0 | 0.176 | 95 | 33 | 2844 | 1364 | 8350 | 0.327 / 0.327 | 0.336 / 0.336 |
| 75.0 | 0.171 | 94 | 33 | 2844 | 1365 | 8944 | 0.334 / 0.334 | 0.336 / 0.336 |
| 80.0 | 0.182 | 96 | 34 | 2844 | 1381 | 9541 | 0.381 / 0.381 | 0.378 / 0.378 |
| 85.0 | 0.177 | 93 | 34 | 2844 | 1383 | 10136 | 0.373 / 0.373 | 0.367 / 0.367 |
| 90.0 | 0.179 | 87 | 34 | 2844 | 1425 | 10735 | 0.308 / 0.308 | 0.331 / 0.331 |
| 95.0 | 0.182 | 96 | 34 | 2844 | 1426 | 11330 | 0.335 / 0.335 | 0.335 / 0.335 |
| 100.0 | 0.180 | 92 | 34 | 2844 | 1427 | 11924 | 0.340 / 0.340 | 0.347 / 0.347 |
| 105.0 | 0.172 | 97 | 33 | 2844 | 1438 | 12520 | 0.333 / 0.333 | 0.338 / 0.338 |
| 110.0 | 0.175 | 86 | 33 | 2844 | 1440 | 13116 | 0.317 / 0.317 | 0.326 / 0.326 |
| 115.0 | 0.176 | 93 | 33 | 2844 | 1447 | 13714 | 0.333 / 0.333 | 0.344 / 0.344 |
| 120.0 | 0.187 | 90 | 33 | 2844 | 1474 | 14313 | 0.346 / 0.346 | 0.334 / 0.334 |

Whole session: RTF 0.177; end-of-stream revision 1.53 s CPU; DER 0.353 (without revision
0.357). The last block's RTF (0.187) is 15% above the first's (0.163); a run just before
on the same code (without the resident column) gave 0.167 -> 0.183 (+10%), RTF 0.177,
the same DER. The live re-clustering stays at 33-34 ms per final turn from 15 to 120 min.
Resident memory while streaming: 1.09 GB at 5 min, 1.29 at 40, 1.38 at 80, 1.47 at
120 min, about 190 MB an hour (session 7 without the relabel: 130 MB/h), so about 1.7 GB
at the service's 3-hour cap. The peak (2.84 GB) is the 120-min mixture being built.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import warnings

warnings.filterwarnings("ignore")


def _recording(args):
    from diareval.datasets import load
    if args.dataset:
        recordings = load(args.dataset)
        chosen = [r for r in recordings if args.uri in (None, r.uri)]
        if not chosen:
            raise SystemExit(f"no recording {args.uri!r} in {args.dataset}")
        return chosen[0]
    return load("mixtures", folder=args.folder, n_conversations=1, n_speakers=4,
                minutes=args.minutes, seed=args.seed)[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--block", type=float, default=5.0, help="minutes of audio per row")
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--folder", default="../shared/data/librispeech-utterances",
                        help="utterance folder the conversation is mixed from")
    parser.add_argument("--dataset", help="stream a recording of this dataset instead")
    parser.add_argument("--uri", help="which recording of --dataset (default: the first)")
    parser.add_argument("--options", default="{}", help="baseline options (JSON)")
    parser.add_argument("--save-log", help="also write the session log (JSON lines) here")
    args = parser.parse_args(argv)

    from diareval.score.der import Conventions, der
    from diareval.score.hypothesis import hypothesis_from_log
    from diareval.score.over_time import der_windows
    from diareval.server.engines import make_engine_factory
    from diareval.server.engines.base import SessionParams
    from diareval.server.engines.baseline import recluster as recluster_module
    from diareval.sessionlog import LogLine
    from diareval.stream.offline import CHUNK, OfflineSession

    recording = _recording(args)
    audio = recording.load_audio()
    factory = make_engine_factory("baseline", **json.loads(args.options))
    engine = factory(SessionParams(speaker_labels=True))

    # a final turn's live re-clustering: offline_clusters (the labeller calls it first and
    # hands the clusters on) and reclustered_grid; "calls" counts the grids (one per turn)
    recluster = {"cpu": 0.0, "calls": 0, "depth": 0}
    originals = {name: getattr(recluster_module, name)
                 for name in ("offline_clusters", "reclustered_grid")}

    def timer(name):
        function = originals[name]

        def timed(*args, **kwargs):
            recluster["depth"] += 1
            t0 = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                recluster["depth"] -= 1
                if recluster["depth"] == 0:  # a call inside the other is counted once
                    recluster["cpu"] += time.process_time() - t0
                recluster["calls"] += name == "reclustered_grid"
        return timed

    for name in originals:
        setattr(recluster_module, name, timer(name))
    block = int(args.block * 60 * 16000)
    rows, log = [], []
    cpu = block_cpu = 0.0
    block_turns = 0
    mark = dict(recluster)
    fed = 0
    print(f"{recording.uri}: {len(audio) / 16000 / 60:.1f} min", file=sys.stderr)
    try:
        for i in range(0, len(audio), CHUNK):
            chunk = audio[i:i + CHUNK]
            t0 = time.process_time()
            messages = engine.feed(chunk)
            spent = time.process_time() - t0
            cpu += spent
            block_cpu += spent
            fed += len(chunk)
            block_turns += sum(1 for m in messages if m.get("type") == "Turn" and m.get("end_of_turn")
                               and not m.get("turn_is_formatted"))
            log += [LogLine("recv", cpu, fed / 16000, m) for m in messages]
            if fed % block < CHUNK or fed == len(audio):
                seconds = (fed - (len(rows) * block)) / 16000
                calls = recluster["calls"] - mark["calls"]
                rows.append((fed / 16000 / 60, block_cpu / seconds, block_turns,
                             1000 * (recluster["cpu"] - mark["cpu"]) / max(calls, 1),
                             resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                             len(engine.windows), resident_mb()))
                print(f"  {rows[-1][0]:5.1f} min  RTF {rows[-1][1]:.3f}  {rows[-1][2]} final turns  "
                      f"re-clustering {rows[-1][3]:.0f} ms / turn  peak RSS {rows[-1][4]:.0f} MB  "
                      f"resident {rows[-1][6]:.0f} MB  {rows[-1][5]} windows", file=sys.stderr, flush=True)
                block_cpu, block_turns, mark = 0.0, 0, dict(recluster)
        t0 = time.process_time()
        messages = engine.finish()
        finish_cpu = time.process_time() - t0
        log += [LogLine("recv", cpu + finish_cpu, fed / 16000, m) for m in messages]
    finally:
        for name, function in originals.items():
            setattr(recluster_module, name, function)

    session = OfflineSession(recording.uri, log, cpu + finish_cpu, len(audio) / 16000)
    blocks, whole = {}, {}
    for name, revisions in (("live", False), ("revised", True)):
        hypothesis = hypothesis_from_log(log, level="word", unknown="error", revisions=revisions,
                                         uri=recording.uri)
        conventions = Conventions(level="word", revisions=revisions)
        whole[name] = der(recording.reference, hypothesis, recording.uem, conventions)
        blocks[name] = der_windows(recording.reference, hypothesis, recording.uem, conventions,
                                   window=args.block * 60, step=args.block * 60,
                                   end=len(audio) / 16000)
    revised, live = whole["revised"], whole["live"]
    print(f"\n{recording.uri}, {len(audio) / 16000 / 60:.1f} min, options {args.options}\n")
    print("| audio up to (min) | RTF of the block | final turns | live re-clustering ms / final turn "
          "| peak RSS (MB) | resident now (MB) | windows kept | DER live: block / session mapping "
          "| DER revised: block / session mapping |")
    print("|---|---|---|---|---|---|---|---|---|")
    live_rows, revised_rows = blocks["live"].itertuples(), blocks["revised"].itertuples()
    for (end, rtf, turns, ms, rss, windows, now), a, b in zip(rows, live_rows, revised_rows):
        print(f"| {end:.1f} | {rtf:.3f} | {turns} | {ms:.0f} | {rss:.0f} | {now:.0f} | {windows} "
              f"| {a.der_window:.3f} / {a.der_global:.3f} | {b.der_window:.3f} / {b.der_global:.3f} |")
    if args.save_log:
        from diareval.sessionlog import SessionLogWriter
        with SessionLogWriter(args.save_log) as writer:
            for line in log:
                writer.write(line.dir, line.t_wall, line.t_audio, line.msg)
    print(f"\nwhole session: RTF {session.real_time_factor:.3f}; end-of-stream revision "
          f"{finish_cpu:.2f} s CPU; DER {revised.der:.3f} (without revision {live.der:.3f})")
    return 0


def resident_mb() -> float:
    """The process's resident memory now (VmRSS, MB; NaN where /proc is absent): the peak
    (ru_maxrss) is reached while a long mixture is built, before streaming."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


if __name__ == "__main__":
    sys.exit(main())
