"""Sessions on engine worker processes (server/workers.py): same messages as the in-process
path, a killed worker ends its sessions with 3005, no process outlives the server, the real
SDK works, and ``serve`` / ``run`` pass ``--workers`` through."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from diareval.cli import build_parser
from diareval.cli.serve import build_server
from diareval.datasets import load_folder
from diareval.errors import DiarevalError
from diareval.server import LocalServer, start_server_process
from diareval.server.engines import make_engine_factory
from fixtures import write_synthetic_dataset
from diareval.server.workers import WorkerPool, default_workers, usable_cpus

KEY = "test-key"
QUERY = "sample_rate=16000&speech_model=universal-streaming-english&speaker_labels=true"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp("syn"), n_recordings=2,
                                   duration=12.0, n_speakers=3, seed=11)


@pytest.fixture(scope="module")
def recordings(folder):
    return load_folder(folder)


def run(coro, timeout=120):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def read_until_closed(ws, timeout=10.0):
    """All messages until the server closes: (messages, close code)."""
    messages = []
    try:
        while True:
            messages.append(json.loads(await asyncio.wait_for(ws.recv(), timeout)))
    except ConnectionClosed as exc:
        return messages, (exc.rcvd.code if exc.rcvd else None)


async def stream(url, audio, force_at=None, update_at=None, query=QUERY):
    """Stream ``audio`` in 100 ms chunks (as fast as the server takes it), a ForceEndpoint
    and an UpdateConfiguration at the given chunk indices, then Terminate."""
    async with websockets.connect(f"{url}/v3/ws?{query}",
                                  additional_headers={"Authorization": KEY}) as ws:
        for k, i in enumerate(range(0, len(audio) - 800, 1600)):
            await ws.send(audio[i:i + 1600].tobytes())
            if k == force_at:
                await ws.send(json.dumps({"type": "ForceEndpoint"}))
            if k == update_at:
                await ws.send(json.dumps({"type": "UpdateConfiguration",
                                          "max_turn_silence": 900}))
        await ws.send(json.dumps({"type": "Terminate"}))
        return await read_until_closed(ws)


def _engine_messages(session) -> list:
    """What the engine said: every message but Begin (random id) and Termination (wall time)."""
    return [m for m in session.sent_messages if m["type"] not in ("Begin", "Termination")]


def _children() -> set[int]:
    """Live (not zombie) child processes of this process, from /proc; multiprocessing's
    resource tracker (one per parent process, started with the first spawned process, exits
    with its parent) is not counted."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and \
                b"resource_tracker" not in command:
            found.add(int(stat.parent.name))
    return found


def _gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (absent, or a zombie waiting for a reaper)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(),
                                reason="process checks read /proc (Linux)")


def test_sessions_through_two_workers_give_the_in_process_messages(recordings):
    audios = [r.load_audio() for r in recordings]
    plan = [(0, 20, 40), (1, None, 10), (0, 60, None)]  # (recording, force_at, update_at)

    async def serve_all(factory):
        async with LocalServer(factory, api_keys=(KEY,), lookahead_seconds=None) as server:
            results = await asyncio.gather(*(stream(server.url, audios[r], force, update)
                                             for r, force, update in plan))
            pids = list(getattr(factory, "pids", []))
        return server, results, pids

    in_process, results_a, _ = run(serve_all(
        make_engine_factory("oracle", recordings=recordings, seed=3)))
    pool = WorkerPool("oracle", {"recordings": recordings, "seed": 3}, workers=2)
    workers, results_b, pids = run(serve_all(pool))
    assert len(pids) == 2 and os.getpid() not in pids
    assert [code for _, code in results_a] == [code for _, code in results_b] == [1000] * 3
    # Sessions run concurrently: match them by what each client sent (audio length, the
    # ForceEndpoint / UpdateConfiguration it sent).
    def key(session):
        return round(session.audio_seconds, 3), json.dumps(session.received_messages)
    sessions_a = sorted(in_process.sessions, key=key)
    sessions_b = sorted(workers.sessions, key=key)
    assert [key(s) for s in sessions_a] == [key(s) for s in sessions_b]
    for a, b in zip(sessions_a, sessions_b):
        assert _engine_messages(a) == _engine_messages(b)
        assert any(m["type"] == "Turn" and m["end_of_turn"] for m in _engine_messages(b))
        assert [m["type"] for m in b.sent_messages][0::len(b.sent) - 1] == \
            ["Begin", "Termination"]
    # least-loaded: three sessions at once over two workers use both
    assert sorted({s.worker for s in pool.stats}) == [0, 1]
    assert all(s.audio_seconds > 10 for s in pool.stats)


def test_an_engine_error_in_a_worker_reaches_the_client_with_its_code(recordings):
    """The oracle refuses 8 kHz audio (EngineError 3006): the same Error and close code as
    in process."""
    async def main():
        pool = WorkerPool("oracle", {"recordings": recordings}, workers=1)
        async with LocalServer(pool, api_keys=(KEY,)) as server:
            async with websockets.connect(f"{server.url}/v3/ws?sample_rate=8000",
                                          additional_headers={"Authorization": KEY}) as ws:
                return await read_until_closed(ws)
    messages, code = run(main())
    assert code == 3006 and messages[0]["type"] == "Error"
    assert "sample_rate=16000" in messages[0]["error"]


def test_a_killed_worker_ends_its_sessions_with_3005_and_is_replaced(recordings):
    audio = recordings[0].load_audio()

    async def main():
        pool = WorkerPool("oracle", {"recordings": recordings}, workers=2)
        async with LocalServer(pool, api_keys=(KEY,), lookahead_seconds=None) as server:
            ws = await websockets.connect(f"{server.url}/v3/ws?{QUERY}",
                                          additional_headers={"Authorization": KEY})
            assert json.loads(await ws.recv())["type"] == "Begin"
            for i in range(0, 16000 * 3, 1600):
                await ws.send(audio[i:i + 1600].tobytes())
            while pool.stats[-1].calls < 30:  # every chunk handled: no call outstanding
                await asyncio.sleep(0.01)
            victim = next(w for w in pool.workers if w.index == pool.stats[-1].worker)
            os.kill(victim.process.pid, signal.SIGKILL)
            started = time.monotonic()
            # the client sends nothing more: the server ends the session by itself
            messages, code = await read_until_closed(ws, timeout=20)
            ended_after = time.monotonic() - started
            # a new session still works: on the other worker, or the replacement
            again, again_code = await stream(server.url, audio)
            return pool, messages, code, ended_after, again_code, victim.process.pid
    pool, messages, code, ended_after, again_code, victim_pid = run(main())
    errors = [m for m in messages if m["type"] == "Error"]
    assert code == 3005 and len(errors) == 1 and messages[-1] == errors[0]
    assert "engine worker" in errors[0]["error"] and "exited" in errors[0]["error"]
    assert ended_after < 10
    assert again_code == 1000
    assert pool.deaths == 1 and _gone(victim_pid)


def test_no_worker_outlives_the_server(recordings):
    before = _children()

    async def main():
        pool = WorkerPool("oracle", {"recordings": recordings}, workers=2)
        async with LocalServer(pool, api_keys=(KEY,), lookahead_seconds=None) as server:
            pids = pool.pids
            assert set(pids) <= _children() - before
            await stream(server.url, recordings[1].load_audio())
        return pids
    pids = run(main())
    assert all(_gone(pid) for pid in pids)
    assert _children() - before == set()


def test_serve_workers_and_the_server_process_leaves_no_orphan(folder):
    """``serve --workers 2``: both workers run sessions; after a normal stop and after the
    server is killed (SIGKILL: it cannot clean up), no worker is left running."""
    for how in ("stop", "kill"):
        with start_server_process(engine="oracle", dataset=folder, api_keys=(KEY,),
                                  lookahead_seconds=None, workers=2) as proc:
            deadline = time.monotonic() + 30
            while "engine worker processes" not in proc.output and time.monotonic() < deadline:
                time.sleep(0.05)
            line = next(x for x in proc.output.splitlines() if "engine worker processes" in x)
            pids = [int(p) for p in line.split("pids ")[1].rstrip(")").split()]
            assert len(pids) == 2
            audio = load_folder(folder)[0].load_audio()
            _, code = run(stream(proc.url, audio))
            assert code == 1000
            if how == "kill":
                os.kill(proc.pid, signal.SIGKILL)
                proc.popen.wait()
            else:
                assert proc.stop() == 0
        deadline = time.monotonic() + 20  # workers see their pipe close and exit
        while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(_gone(pid) for pid in pids), how


def test_sdk_against_a_server_with_workers(recordings):
    sdk = pytest.importorskip("assemblyai.streaming.v3")
    recording = recordings[1]
    audio = recording.load_audio()
    events: dict[str, list] = {"begin": [], "turn": [], "termination": [], "error": []}
    done = threading.Event()

    def chunks():
        for i in range(0, len(audio), 1600):
            chunk = audio[i:i + 1600]
            if len(chunk) < 800:
                chunk = np.concatenate([chunk, np.zeros(800 - len(chunk), np.int16)])
            yield chunk.tobytes()

    pool = WorkerPool("oracle", {"recordings": recordings, "seed": 0}, workers=2)
    server = LocalServer(pool, api_keys=(KEY,), lookahead_seconds=300.0)
    with server.running_in_thread():
        client = sdk.StreamingClient(sdk.StreamingClientOptions(api_key=KEY,
                                                                api_host=server.url))
        client.on(sdk.StreamingEvents.Begin, lambda c, e: events["begin"].append(e))
        client.on(sdk.StreamingEvents.Turn, lambda c, e: events["turn"].append(e))
        client.on(sdk.StreamingEvents.Termination,
                  lambda c, e: (events["termination"].append(e), done.set()))
        client.on(sdk.StreamingEvents.Error, lambda c, e: (events["error"].append(e), done.set()))
        client.connect(sdk.StreamingParameters(sample_rate=16000, speaker_labels=True,
                                               speech_model="universal-streaming-english"))
        client.stream(chunks())
        client.disconnect(terminate=True)
        done.wait(10)
        pids = pool.pids
    assert events["error"] == [] and len(events["begin"]) == 1
    assert len(events["termination"]) == 1
    sent_turns = [m for m in server.sessions[0].sent_messages if m["type"] == "Turn"]
    assert len(events["turn"]) == len(sent_turns) > 0
    assert any(t.end_of_turn and t.speaker_label for t in events["turn"])
    assert len(pids) == 2 and all(_gone(pid) for pid in pids)


def test_serve_cli_workers_option(folder):
    parse = build_parser().parse_args
    common = ["serve", "--dataset", str(folder), "--port", "0"]
    pooled = build_server(parse(common + ["--workers", "3"]))
    assert isinstance(pooled.engine_factory, WorkerPool) and pooled.engine_factory.size == 3
    assert pooled.engine_factory.engine == "oracle"
    assert len(pooled.engine_factory.options["recordings"]) == 2
    in_process = build_server(parse(common + ["--workers", "0"]))
    assert not isinstance(in_process.engine_factory, WorkerPool)
    assert not isinstance(build_server(parse(common)).engine_factory, WorkerPool)  # oracle
    assert default_workers("oracle") == 0
    assert default_workers("baseline") == usable_cpus() >= 1
    assert usable_cpus() <= len(os.sched_getaffinity(0))
    with pytest.raises(SystemExit):
        parse(common + ["--workers", "-1"])
    with pytest.raises(DiarevalError, match="workers must be"):
        WorkerPool("oracle", {}, workers=0)
    with pytest.raises(DiarevalError, match="unknown engine"):
        WorkerPool("nope", {}, workers=1)


def test_a_worker_that_cannot_build_its_engine_fails_the_start_clearly():
    before = _children()

    async def main():
        async with LocalServer(WorkerPool("oracle", {"recordings": []}, workers=1)):
            pass
    with pytest.raises(DiarevalError, match="failed to start in a worker.*at least one"):
        run(main())
    assert _children() - before == set()


def test_run_passes_workers_to_the_local_server(tmp_path, monkeypatch, folder):
    import diareval.server as server_module
    from diareval.cli import main as cli_main
    seen = []
    real = server_module.start_server_process

    def recording_start(**kwargs):
        seen.append(kwargs.get("workers"))
        return real(**kwargs)

    monkeypatch.setattr(server_module, "start_server_process", recording_start)
    code = cli_main(["run", "--dataset", str(folder), "--backend", "local", "--workers", "2",
                     "--speed", "8", "--no-progress", "--no-score",
                     "--run-dir", str(tmp_path / "run")])
    assert code == 0 and seen == [2]
    status = json.loads((tmp_path / "run" / "run.json").read_text())
    assert status["dataset"]


@pytest.mark.baseline
def test_the_baseline_through_a_worker_gives_the_in_process_messages(ami_excerpts):
    """The heavy engine in a spawned worker (models loaded there): the same messages as in
    this process for the first 12 s of an excerpt (unpaced, so wall time plays no part)."""
    pytest.importorskip("faster_whisper")
    from diareval.datasets import load
    audio = next(r for r in load(ami_excerpts) if r.uri == "trn08").load_audio()[:16000 * 12]

    async def once(factory):
        async with LocalServer(factory, api_keys=(KEY,), lookahead_seconds=None) as server:
            _, code = await stream(server.url, audio)
            return code, _engine_messages(server.sessions[0])
    code_a, in_process = run(once(make_engine_factory("baseline")), timeout=300)
    code_b, worker = run(once(WorkerPool("baseline", {}, workers=1)), timeout=300)
    assert code_a == code_b == 1000
    assert any(m["type"] == "Turn" and m["words"] for m in in_process)
    assert worker == in_process
