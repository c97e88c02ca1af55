"""The runner: resume, interruption, concurrency, start limits, cost estimate, the key, bad input."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from diareval.cli import main as cli_main
from diareval.errors import ConfigError, DatasetError
from diareval.server import LocalServer
from diareval.server.engines import make_engine_factory
from diareval.stream import API_KEY_ENV, StartLimiter, run, run_async
from diareval.stream.plan import resolve_backend
from fixtures import make_dataset
from test_stream_support import files_under, read_status, received

KEY = "test-key"
QUIET = dict(progress=False, announce=lambda _: None)
C_NONE = "universal-streaming-english__max-speakers-none"


def _server(recordings, **options):
    factory = make_engine_factory("oracle", recordings=recordings)
    options.setdefault("lookahead_seconds", None)
    options.setdefault("api_keys", (KEY,))
    return LocalServer(factory, **options).running_in_thread()


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in files_under(root)}


def test_resume_streams_only_what_is_not_complete(tmp_path):
    recordings = make_dataset(tmp_path / "data", n=2, seconds=2.0)
    run_dir = tmp_path / "run"
    with _server(recordings) as server:
        options = dict(backend="local", host=server.url, api_key=KEY, speed=math.inf,
                       max_speakers="none,2", run_dir=run_dir, **QUIET)
        first = run(recordings, **options)
        assert first.ok and first.streamed == 4 and len(server.sessions) == 4
        layout = sorted(str(p.relative_to(run_dir)) for p in files_under(run_dir))
        assert layout == ["run.json"] + sorted(
            f"sessions/{config}/{uri}.{ext}"
            for config in (C_NONE, "universal-streaming-english__max-speakers-2")
            for uri in ("rec0", "rec1") for ext in ("json", "jsonl"))
        before = _snapshot(run_dir / "sessions")
        # the same run again without --resume: refused, nothing touched
        with pytest.raises(ConfigError, match="already holds a run: pass --resume"):
            run(recordings, **options)
        again = run(recordings, resume=True, **options)
        assert again.ok and again.streamed == 0 and again.skipped == 4
        assert len(server.sessions) == 4  # nothing streamed
        assert _snapshot(run_dir / "sessions") == before
        # a session that is not complete is streamed again on resume, and only that one
        status_path = run_dir / "sessions" / C_NONE / "rec1.json"
        status = read_status(status_path)
        status["status"] = "failed"
        status_path.write_text(json.dumps(status))
        third = run(recordings, resume=True, **options)
        assert third.ok and third.streamed == 1 and len(server.sessions) == 5
    status = read_status(status_path)
    assert [a["log"] for a in status["attempts"]] == ["rec1.attempt1.jsonl", "rec1.jsonl"]
    assert (run_dir / "sessions" / C_NONE / "rec1.attempt1.jsonl").read_bytes() == \
        before[f"{C_NONE}/rec1.jsonl"]
    assert len(read_status(run_dir / "run.json")["invocations"]) == 3


def _interrupted_checks(server, run_dir, n_open):
    statuses = {p.stem: read_status(p) for p in (run_dir / "sessions" / C_NONE).glob("*.json")}
    assert sorted(s["status"] for s in statuses.values()) == ["interrupted"] * n_open
    accepted = [s for s in server.sessions if s.accepted]
    assert len(accepted) == n_open
    for session in accepted:
        # every open session was told to Terminate, answered, and was closed normally
        assert {"type": "Terminate"} in session.received_messages
        assert session.sent_messages[-1]["type"] == "Termination"
        assert session.close_code == 1000
        assert 0 < session.audio_seconds < 3.0
    for uri in statuses:
        messages = received(run_dir / "sessions" / C_NONE / f"{uri}.jsonl")
        assert messages[-1]["type"] == "Termination"


def test_cancelling_a_run_terminates_every_open_session_and_resume_finishes(tmp_path):
    recordings = make_dataset(tmp_path / "data", n=3, seconds=3.0)
    run_dir = tmp_path / "run"
    with _server(recordings, lookahead_seconds=300.0) as server:
        options = dict(backend="local", host=server.url, api_key=KEY, run_dir=run_dir,
                       concurrency=2, **QUIET)

        async def go():
            task = asyncio.create_task(run_async(recordings, **options))
            while sum(s.audio_seconds > 0.5 for s in server.sessions) < 2:
                await asyncio.sleep(0.02)
            task.cancel()
            t = time.monotonic()
            with pytest.raises(asyncio.CancelledError):
                await task
            return time.monotonic() - t

        assert asyncio.run(go()) < 2.0
        _interrupted_checks(server, run_dir, 2)
        assert not (run_dir / "sessions" / C_NONE / "rec2.json").exists()  # never started
        result = run(recordings, resume=True, **{**options, "speed": math.inf})
        assert result.ok and result.streamed == 3 and result.skipped == 0
    for uri in ("rec0", "rec1"):
        status = read_status(run_dir / "sessions" / C_NONE / f"{uri}.json")
        assert [a["outcome"] for a in status["attempts"]] == ["interrupted", "complete"]
        assert [a["log"] for a in status["attempts"]] == [f"{uri}.attempt1.jsonl", f"{uri}.jsonl"]


SIGINT_SCRIPT = """
import json, os, sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from fixtures import make_dataset
from diareval.server import LocalServer
from diareval.server.engines import make_engine_factory
from diareval.cli import main
recordings = make_dataset(Path({data!r}), n=3, seconds=4.0)
factory = make_engine_factory("oracle", recordings=recordings)
with LocalServer(factory, api_keys=("sk-sigint",)).running_in_thread() as server:
    os.environ["ASSEMBLYAI_API_KEY"] = "sk-sigint"
    code = main(["run", "--dataset", {data!r}, "--backend", "assemblyai", "--host", server.url,
                 "--yes", "--concurrency", "2", "--run-dir", {run_dir!r}, "--no-progress"])
    report = [dict(accepted=s.accepted, terminate={{"type": "Terminate"}} in s.received_messages,
                   last=s.sent_messages[-1] if s.sent else None, close=s.close_code)
              for s in server.sessions]
print("REPORT" + json.dumps(report))
sys.exit(code)
"""


def _wait_until_streaming(run_dir: Path, sessions: int, timeout: float) -> None:
    """Wait until ``sessions`` session logs have audio in them, then half a second more."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = list((run_dir / "sessions" / C_NONE).glob("*.jsonl"))
        if len(logs) == sessions and all(b'"AudioChunk"' in p.read_bytes() for p in logs):
            break
        time.sleep(0.05)
    time.sleep(0.5)


def test_ctrl_c_terminates_every_open_session(tmp_path):
    run_dir = tmp_path / "run"
    script = SIGINT_SCRIPT.format(tests=str(Path(__file__).parent), data=str(tmp_path / "data"),
                                  run_dir=str(run_dir))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _wait_until_streaming(run_dir, 2, timeout=60)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    assert "terminating the open sessions" in err and "interrupted" in err
    report = json.loads(out.split("REPORT", 1)[1])
    assert len(report) == 2  # the third session never started
    assert all(r["accepted"] and r["terminate"] and r["last"]["type"] == "Termination"
               and r["close"] == 1000 for r in report)
    statuses = [read_status(p) for p in (run_dir / "sessions" / C_NONE).glob("*.json")]
    assert sorted(s["status"] for s in statuses) == ["interrupted", "interrupted"]
    assert "sk-sigint" not in "".join(p.read_text() for p in files_under(run_dir))


@pytest.mark.skipif(os.name != "posix", reason="process groups and SIGINT to a group are POSIX")
def test_terminal_ctrl_c_reaches_the_run_not_its_local_server(tmp_path):
    # A terminal's Ctrl-C sends SIGINT to the whole foreground process group. The local
    # server child must keep serving so the run can terminate its open sessions and log
    # the Termination (before, the child stopped at once and sessions ended with 1001).
    make_dataset(tmp_path / "data", n=3, seconds=6.0)
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "diareval", "run", "--backend", "local", "--dataset",
         str(tmp_path / "data"), "--run-dir", str(run_dir), "--concurrency", "2", "--no-progress",
         "--no-score"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)  # its own process group, as a shell job has
    _wait_until_streaming(run_dir, 2, timeout=90)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    logs = sorted((run_dir / "sessions" / C_NONE).glob("*.jsonl"))
    assert len(logs) == 2
    for log in logs:
        assert received(log)[-1]["type"] == "Termination", (log, received(log)[-3:])


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_local_server_child_stops_when_its_parent_dies(tmp_path):
    make_dataset(tmp_path / "data", n=1, seconds=2.0)
    script = textwrap.dedent(f"""
        import time
        from diareval.server import start_server_process
        proc = start_server_process(engine="oracle", dataset={str(tmp_path / "data")!r})
        print(proc.pid, flush=True)
        time.sleep(120)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.kill()  # SIGKILL: no clean-up runs in the parent
    parent.wait()
    deadline = time.monotonic() + 15
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (PID 1 of a container may never reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_concurrency_limits_open_sessions(tmp_path):
    recordings = make_dataset(tmp_path / "data", n=5, seconds=2.0)
    with _server(recordings) as server:
        result = run(recordings, backend="local", host=server.url, api_key=KEY, speed=10.0,
                     concurrency=2, run_dir=tmp_path / "run", **QUIET)
    assert result.ok
    events = sorted([(s.started, 1) for s in server.sessions] +
                    [(s.ended, -1) for s in server.sessions])
    open_now, most = 0, 0
    for _, delta in events:
        open_now += delta
        most = max(most, open_now)
    assert most == 2


def test_start_limiter_caps_starts_in_any_window():
    async def go():
        limiter = StartLimiter(3, window=0.3)
        stop = asyncio.Event()
        times = []
        for _ in range(7):
            assert await limiter.acquire(stop)
            times.append(time.monotonic())
        stop.set()
        assert not await limiter.acquire(stop)
        return times

    async def held():
        limiter = StartLimiter(None)
        limiter.hold(0.25)  # after a "too many sessions" rejection: no start for a while
        t = time.monotonic()
        assert await limiter.acquire(asyncio.Event())
        return time.monotonic() - t

    assert 0.24 <= asyncio.run(held()) < 0.5
    times = asyncio.run(go())
    for i, t in enumerate(times):
        assert sum(1 for u in times if t <= u < t + 0.3 - 1e-3) <= 3, (i, times)
    assert times[-1] - times[0] >= 0.6 - 0.01


def test_default_backend_and_start_limit(monkeypatch, tmp_path):
    said = []
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    assert resolve_backend(None, said.append) == "local"
    assert "ASSEMBLYAI_API_KEY is not set: using the local server" in said[-1]
    monkeypatch.setenv(API_KEY_ENV, "sk-x")
    assert resolve_backend(None, said.append) == "assemblyai"
    with pytest.raises(ConfigError, match="--speed is for the local backend only"):
        run(make_dataset(tmp_path / "d", n=1), backend="assemblyai", speed=2.0, **QUIET)
    monkeypatch.delenv(API_KEY_ENV)
    with pytest.raises(ConfigError, match="needs the API key in ASSEMBLYAI_API_KEY"):
        run(make_dataset(tmp_path / "d", n=1), backend="assemblyai", **QUIET)


def test_cost_estimate_is_shown_and_a_no_streams_nothing(tmp_path, monkeypatch):
    recordings = make_dataset(tmp_path / "data", n=2, seconds=3.0)
    monkeypatch.setenv(API_KEY_ENV, KEY)
    said, asked = [], []
    with _server(recordings) as server:
        with pytest.raises(ConfigError, match="cancelled: nothing was streamed"):
            run(recordings, backend="assemblyai", host=server.url,
                models=["u3-rt-pro", "universal-streaming-english"], run_dir=tmp_path / "run",
                confirm=lambda q: asked.append(q) or False, progress=False,
                announce=said.append)
        # no terminal and no --yes: refused, not streamed
        with pytest.raises(ConfigError, match="pass --yes"):
            run(recordings, backend="assemblyai", host=server.url, run_dir=tmp_path / "run",
                progress=False, announce=said.append)
        assert server.sessions == []
    assert not (tmp_path / "run").exists()
    text = said[0]
    assert "2 sessions, 0.002 h x $0.45/h" in text and "$0.15/h" in text
    assert "Estimated cost: $0.00" in text and "4 sessions" in text and asked


def test_the_api_key_is_in_no_file_the_run_wrote(tmp_path, monkeypatch):
    secret = "sk-live-" + "7f3a9c2e5b1d" * 3
    monkeypatch.setenv(API_KEY_ENV, secret)
    recordings = make_dataset(tmp_path / "data", n=2, seconds=1.0)
    run_dir = tmp_path / "run"
    with _server(recordings, api_keys=(secret,), lookahead_seconds=300.0) as server:
        result = run(recordings, backend="assemblyai", host=server.url, yes=True,
                     run_dir=run_dir, max_speakers="none,3", **QUIET)
    assert result.ok and len(server.sessions) == 4
    written = files_under(run_dir)
    assert len(written) == 1 + 4 * 2
    for path in written:
        data = path.read_bytes()
        assert secret.encode() not in data and b"7f3a9c2e5b1d" not in data, path
    run_json = json.loads((run_dir / "run.json").read_text())
    assert run_json["backend"] == "assemblyai" and run_json["max_starts_per_minute"] == 5
    assert not {"api_key", "key", "token", "authorization"} & {k.lower() for k in run_json}
    assert "authorization" not in json.dumps(run_json).lower()


def test_bad_input_is_one_clear_error_and_nothing_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    data = tmp_path / "data"
    make_dataset(data, n=1)
    run_dir = tmp_path / "run"
    with pytest.raises(DatasetError, match="unknown dataset 'no-such-set'"):
        run("no-such-set", backend="local", run_dir=run_dir, **QUIET)
    with pytest.raises(ConfigError, match="choose one of: u3-rt-pro, universal-streaming-english,"
                                          " universal-streaming-multilingual"):
        run(data, models=["nano"], backend="local", run_dir=run_dir, **QUIET)
    cases = [
        (["--dataset", "no-such-set"], "unknown dataset 'no-such-set': not a folder, and not one of"),
        (["--dataset", str(data), "--model", "nano"],
         "unknown model 'nano'; choose one of: u3-rt-pro, universal-streaming-english, "
         "universal-streaming-multilingual"),
        (["--dataset", str(data), "--max-speakers", "none,11"], "out of range 1..10"),
        (["--dataset", str(data), "--engine", "magic"], "unknown engine 'magic'; choose one of"),
        (["--dataset", str(data), "--chunk-ms", "20"], "outside the 50..1000 ms"),
        (["--dataset", str(data), "--terminate-timeout", "-5"],
         "terminate_timeout must be a number > 0 (seconds), got -5"),
        (["--dataset", str(data), "--terminate-timeout", "0"],
         "terminate_timeout must be a number > 0 (seconds), got 0"),
    ]
    # the API checks what the CLI does not expose
    for options, message in [
            (dict(interrupt_timeout=-1), "interrupt_timeout must be a number > 0"),
            (dict(max_rejections=-1), "max_rejections must be an integer >= 0"),
            (dict(retry_backoff=(5.0, 1.0)), "retry_backoff must be (base, cap) with "
                                             "0 <= base <= cap"),
            (dict(reject_backoff=(-1.0, 1.0)), "reject_backoff must be (base, cap)")]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            run(data, backend="local", run_dir=run_dir, **options, **QUIET)
    for args, message in cases:
        capsys.readouterr()
        code = cli_main(["run", "--backend", "local", "--run-dir", str(run_dir), *args])
        err = capsys.readouterr().err
        assert code == 2, args
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("diareval: error: ") and message in err, err
        assert not run_dir.exists()


def test_cli_and_api_write_the_same_run(tmp_path, monkeypatch):
    monkeypatch.setenv(API_KEY_ENV, KEY)
    recordings = make_dataset(tmp_path / "data", n=2, seconds=1.0)
    with _server(recordings, lookahead_seconds=300.0) as server:
        code = cli_main(["run", "--dataset", str(tmp_path / "data"), "--backend", "assemblyai",
                         "--host", server.url, "--model", "u3-rt-pro", "--model",
                         "universal-streaming-multilingual", "--max-speakers", "none,2",
                         "--param", "format_turns=true", "--yes", "--no-progress", "--no-score",
                         "--max-starts-per-minute", "600",
                         "--run-dir", str(tmp_path / "cli")])
        assert code == 0
        result = run(str(tmp_path / "data"), backend="assemblyai", host=server.url,
                     models=["u3-rt-pro", "universal-streaming-multilingual"],
                     max_speakers=[None, 2], params={"format_turns": True}, yes=True,
                     max_starts_per_minute=600,
                     run_dir=tmp_path / "api", **QUIET)
        assert result.ok
        queries = [s.query for s in server.sessions]
    cli_run = json.loads((tmp_path / "cli/run.json").read_text())
    api_run = json.loads((tmp_path / "api/run.json").read_text())
    for key in ("dataset", "uris", "configurations", "backend", "host", "speed", "chunk_seconds",
                "concurrency", "max_starts_per_minute", "seed"):
        assert cli_run[key] == api_run[key], key
    names = [c["name"] for c in cli_run["configurations"]]
    assert names == ["u3-rt-pro__max-speakers-none__format-turns-true",
                     "u3-rt-pro__max-speakers-2__format-turns-true",
                     "universal-streaming-multilingual__max-speakers-none__format-turns-true",
                     "universal-streaming-multilingual__max-speakers-2__format-turns-true"]
    assert [p.relative_to(tmp_path / "cli") for p in files_under(tmp_path / "cli")] == \
        [p.relative_to(tmp_path / "api") for p in files_under(tmp_path / "api")]
    assert len(queries) == 16 and all(q["format_turns"] == "True" for q in queries)
    assert sorted(str(q.get("max_speakers")) for q in queries[:8]) == ["2"] * 4 + ["None"] * 4


def test_progress_bar_shows_sessions_and_audio_hours(tmp_path, capsys):
    recordings = make_dataset(tmp_path / "data", n=2, seconds=2.0)
    with _server(recordings) as server:
        result = run(recordings, backend="local", host=server.url, api_key=KEY, speed=4.0,
                     run_dir=tmp_path / "run", progress=True, announce=lambda _: None)
    assert result.ok
    err = capsys.readouterr().err
    assert "0.0011/0.0011 h" in err  # 4 s of audio = 0.0011 h, all sent
    assert "sessions" in err and "/2 done" in err


def test_resume_with_other_dataset_options_is_refused(tmp_path):
    """Same dataset name, other options (synthetic: another spec; a folder: other uris):
    resuming would skip "complete" sessions of different recordings and score them
    against the new references. Refused, nothing written; the same options resume."""
    data = tmp_path / "data"
    recordings = make_dataset(data, n=2, seconds=1.0)
    run_dir = tmp_path / "run"
    with _server(recordings) as server:
        options = dict(backend="local", host=server.url, api_key=KEY, speed=math.inf,
                       run_dir=run_dir, **QUIET)
        first = run(str(data), dataset_options={"uris": ["rec0"]}, **options)
        assert first.ok and first.streamed == 1
        before = _snapshot(run_dir)
        with pytest.raises(ConfigError, match="dataset options"):
            run(str(data), dataset_options={"uris": ["rec1"]}, resume=True, **options)
        assert _snapshot(run_dir) == before
        again = run(str(data), dataset_options={"uris": ["rec0"]}, resume=True, **options)
        assert again.ok and again.skipped == 1


def test_default_concurrency_follows_the_engine(tmp_path):
    """A computing local engine gets 2 sessions per core (more overload the machine that runs
    both client and server); the oracle and remote services get 64."""
    from diareval.stream.plan import plan_run
    recordings = make_dataset(tmp_path / "data", n=1, seconds=1.0)
    quiet = dict(announce=lambda _: None)
    baseline = plan_run(recordings, backend="local", engine="baseline", **quiet)
    oracle = plan_run(recordings, backend="local", **quiet)
    explicit = plan_run(recordings, backend="local", engine="baseline", concurrency=7, **quiet)
    assert baseline.concurrency == 2 * os.cpu_count()
    assert oracle.concurrency == 64 and explicit.concurrency == 7


@pytest.mark.parametrize("breakage, message", [
    ("audio", "rec0.wav: cannot read audio"),
    ("rttm", "line has 7 fields, at least 8 needed (missing: name)"),
])
def test_broken_dataset_file_is_one_clear_error_naming_it_and_nothing_is_written(
        tmp_path, capsys, monkeypatch, breakage, message):
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    data = tmp_path / "data"
    make_dataset(data, n=2)
    if breakage == "audio":
        (data / "rec0.wav").write_bytes(b"RIFF? no, not audio")
    else:
        rttm = next(data.glob("*.rttm"))
        rttm.write_text(rttm.read_text() + "SPEAKER rec0 1 0.5 1.0 <NA> <NA>\n")
    code = cli_main(["run", "--dataset", str(data), "--run-dir", str(tmp_path / "run"),
                     "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("diareval: error:") == 1 and message in err
    if breakage == "rttm":
        assert re.search(r"\.rttm:\d+: SPEAKER line", err)  # file and line are named
    assert not (tmp_path / "run").exists()


def test_yes_reaches_the_loader_but_is_not_recorded(tmp_path, monkeypatch):
    """--yes confirms a download in the runner's own load; run.json (which the local server
    and the scorer load from) keeps only the options that choose the recordings."""
    from diareval import datasets
    from diareval.stream.plan import plan_run
    recordings = make_dataset(tmp_path / "data", n=1, seconds=1.0)
    calls = []

    def loader(**options):
        calls.append(options)
        return recordings
    monkeypatch.setitem(datasets.REGISTRY, "fake-corpus", loader)
    plan = plan_run("fake-corpus", backend="local", dataset_options={"subset": "dev", "yes": True},
                    announce=lambda _: None)
    assert calls == [{"subset": "dev", "yes": True}]
    assert plan.dataset_options == {"subset": "dev"}


def _wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _two_runs(tmp_path, server, recordings, call):
    """Start run "a", then (once its sessions stream) run "b", each in its own thread via
    ``call(name)``; returns the threads, results and errors (filled in as they end)."""
    import threading
    results, errors = {}, {}

    def go(name):
        try:
            results[name] = call(name)
        except BaseException as exc:  # noqa: BLE001 - checked by the test
            errors[name] = exc

    threads = {name: threading.Thread(target=go, args=(name,), daemon=True) for name in "ab"}
    for n, name in enumerate("ab", start=1):
        threads[name].start()
        _wait_until(lambda: sum(s.audio_seconds > 0.2 for s in server.sessions) >= 2 * n)
    return threads, results, errors


def _check_a_stopped_and_b_complete(tmp_path, threads, results, errors):
    for thread in threads.values():
        thread.join(60)
    assert isinstance(errors.get("a"), KeyboardInterrupt), errors
    assert "b" not in errors and results["b"].ok and results["b"].streamed == 2
    for name, expected in (("a", "interrupted"), ("b", "complete")):
        statuses = [read_status(p)["status"] for p in (tmp_path / name / "sessions" / C_NONE)
                    .glob("*.json")]
        assert statuses == [expected] * 2, name


def test_two_runs_in_two_threads_a_stop_stops_only_its_own(tmp_path):
    """Each run has its own handle: stopping one (from a third thread) leaves the other."""
    from diareval.stream import RunHandle
    recordings = make_dataset(tmp_path / "data", n=2, seconds=3.0)
    handles = {"a": RunHandle(), "b": RunHandle()}
    with _server(recordings, lookahead_seconds=300.0) as server:
        threads, results, errors = _two_runs(tmp_path, server, recordings, lambda name: run(
            recordings, backend="local", host=server.url, api_key=KEY, run_dir=tmp_path / name,
            handle=handles[name], **QUIET))
        handles["a"].stop()
        _check_a_stopped_and_b_complete(tmp_path, threads, results, errors)
    # a stop asked before a run starts stops it as it starts; the handle then serves again
    handles["a"].stop()
    with _server(recordings) as server:
        with pytest.raises(KeyboardInterrupt):
            run(recordings, backend="local", host=server.url, api_key=KEY, speed=math.inf,
                run_dir=tmp_path / "c", handle=handles["a"], **QUIET)
        assert run(recordings, backend="local", host=server.url, api_key=KEY, speed=math.inf,
                   run_dir=tmp_path / "d", handle=handles["a"], **QUIET).ok


def test_two_runs_in_jupyter_threads_ctrl_c_stops_only_its_own(tmp_path):
    """Two callers with a running loop each (Jupyter kernels' threads) call run(); a Ctrl-C
    (KeyboardInterrupt) in the first caller's thread stops the first run only, though the
    second started later, and both threads return."""
    import ctypes
    recordings = make_dataset(tmp_path / "data", n=2, seconds=3.0)

    def in_a_loop(name):
        async def cell():  # run() called from code running inside an event loop
            return run(recordings, backend="local", host=server.url, api_key=KEY,
                       run_dir=tmp_path / name, **QUIET)
        return asyncio.run(cell())

    with _server(recordings, lookahead_seconds=300.0) as server:
        threads, results, errors = _two_runs(tmp_path, server, recordings, in_a_loop)
        assert ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(threads["a"].ident), ctypes.py_object(KeyboardInterrupt)) == 1
        _check_a_stopped_and_b_complete(tmp_path, threads, results, errors)


def test_decide_maps_each_outcome_to_its_action():
    """The retry rule, without a server: final outcomes end the session (the run stops for a
    rejected key or 3007), "too many sessions" backs off and holds every start for half the
    wait, transient failures retry until max_attempts; jitter is drawn only for a retry."""
    import random
    from types import SimpleNamespace

    from diareval.stream import Outcome
    from diareval.stream.retry import backoff, decide
    plan = SimpleNamespace(max_attempts=3, max_rejections=2, retry_backoff=(1.0, 3.0),
                           reject_backoff=(5.0, 60.0))
    rng = random.Random(0)
    for outcome, status, stop in [(Outcome.COMPLETE, "complete", False),
                                  (Outcome.INTERRUPTED, "interrupted", False),
                                  (Outcome.FAILED, "failed", False),
                                  (Outcome.AUTH, "failed", True), (Outcome.PACING, "failed", True)]:
        decision = decide(outcome, 1, 1, plan, rng)
        assert (decision.status, decision.stop_run, decision.delay) == (status, stop, 0.0)
        assert (decision.failures, decision.rejections) == (1, 1)
    assert rng.random() == random.Random(0).random()  # no jitter drawn above
    twin = random.Random(7)
    rng = random.Random(7)
    failures, delays = 0, []
    while True:
        decision = decide(Outcome.RETRY, failures, 0, plan, rng)
        failures = decision.failures
        if decision.status != "retrying":
            break
        delays.append(decision.delay)
        assert decision.hold == 0.0
    assert decision.status == "failed" and failures == 3 and len(delays) == 2
    assert delays == [min(3.0, 1.0 * 2 ** k) * (0.5 + twin.random()) for k in range(2)]
    rejections, holds = 0, []
    while True:
        decision = decide(Outcome.REJECTED, 0, rejections, plan, rng)
        rejections = decision.rejections
        if decision.status != "retrying":
            break
        wait = 5.0 * 2 ** (rejections - 1)
        assert wait * 0.5 <= decision.delay < wait * 1.5
        holds.append(decision.hold / decision.delay)
    assert decision.status == "failed" and rejections == 3 and holds == [0.5, 0.5]
    assert backoff(random.Random(1), 10, (1.0, 30.0)) < 45.0  # capped before the jitter
