"""One test per server fault mode: the documented outcome, and every message the server sent
is in the session log of the attempt that received it.

Documented outcomes (PROTOCOL.md close codes; diareval.stream.session.Outcome):
dropped connection, 3005, no Termination -> retry from the start with backoff (the failed
attempt's log kept as <uri>.attemptK.jsonl); 3009 or 1008 "too many sessions" -> back off and
retry; a rejected key (1008 / HTTP 401) -> the whole run stops at once (AuthenticationError);
3007 -> the run fails loudly (PacingError); delayed or malformed messages -> logged as they
come, the session completes.
"""

from __future__ import annotations

import math
import time

import pytest

from diareval.server import FaultConfig, LocalServer
from diareval.server.engines import make_engine_factory
from diareval.stream import AuthenticationError, PacingError, run
from fixtures import make_dataset
from test_stream_support import (assert_log_has_everything, attempt_logs, heal_after,
                                 read_status, received)

KEY = "test-key"
CONFIG = "universal-streaming-english__max-speakers-none"
FAST = dict(backend="local", api_key=KEY, speed=math.inf, progress=False, announce=lambda _: None,
            retry_backoff=(0.05, 0.2), reject_backoff=(0.05, 0.2))


def _server(recordings, faults, **options):
    factory = make_engine_factory("oracle", recordings=recordings)
    options.setdefault("lookahead_seconds", None)
    return LocalServer(factory, api_keys=(KEY,), faults=faults, **options).running_in_thread()


def _status(run_dir, uri="rec0"):
    return read_status(run_dir / "sessions" / CONFIG / f"{uri}.json")


def _check_attempt_logs(server, run_dir, uri="rec0", full_audio=()):
    """Attempt k's log holds exactly what server session k sent (one recording, concurrency 1),
    the aborted attempts of the drop fault included (the server records a frame only once
    it is handed to the transport, and nothing after the abort)."""
    status = _status(run_dir, uri)
    logs = attempt_logs(status, run_dir / "sessions" / CONFIG)
    assert len(logs) == len(server.sessions) == len(status["attempts"])
    for k, (log, session) in enumerate(zip(logs, server.sessions)):
        assert log.exists()
        if k in full_audio:
            assert_log_has_everything(session, log)
        else:
            if session.closed_by == "abort":
                assert session.sent_messages and session.sent_messages[0]["type"] == "Begin"
            assert received(log) == session.sent_messages
    # the last attempt's log is <uri>.jsonl, earlier ones <uri>.attemptK.jsonl
    assert [log.name for log in logs] == [f"{uri}.attempt{k}.jsonl" for k in
                                          range(1, len(logs))] + [f"{uri}.jsonl"]
    return status


@pytest.mark.parametrize("faults, code", [
    (FaultConfig(drop_after_seconds=1.0), 1006),
    (FaultConfig(error_after_seconds=1.0), 3005),
])
def test_dropped_connection_and_3005_are_retried_from_the_start(tmp_path, faults, code):
    recordings = make_dataset(tmp_path / "data", n=1, seconds=2.0)
    with _server(recordings, faults) as server:
        heal_after(server, 1)
        result = run(recordings, host=server.url, run_dir=tmp_path / "run", concurrency=1, **FAST)
    assert result.ok
    status = _check_attempt_logs(server, tmp_path / "run", full_audio=(1,))
    first, second = status["attempts"]
    assert first["outcome"] == "retry" and first["close_code"] == code
    assert first["audio_sent"] >= 1.0 and first["retry_after"] > 0
    assert second["outcome"] == "complete" and status["status"] == "complete"
    assert server.sessions[1].audio_seconds == pytest.approx(2.0)  # retried from the start
    if code == 3005:
        assert {"type": "Error", "error_code": 3005} .items() <= \
            [m for m in received(tmp_path / "run/sessions" / CONFIG / "rec0.attempt1.jsonl")
             if isinstance(m, dict) and m.get("type") == "Error"][0].items()


def test_a_fault_that_persists_fails_the_session_after_max_attempts(tmp_path):
    recordings = make_dataset(tmp_path / "data", n=1, seconds=2.0)
    with _server(recordings, FaultConfig(drop_after_seconds=0.5)) as server:
        result = run(recordings, host=server.url, run_dir=tmp_path / "run", concurrency=1, max_attempts=3, **FAST)
    assert not result.ok and result.count("failed") == 1
    status = _check_attempt_logs(server, tmp_path / "run")
    assert status["status"] == "failed" and "connection dropped" in status["error"]
    assert [a["close_code"] for a in status["attempts"]] == [1006] * 3


def test_no_termination_times_out_and_is_retried(tmp_path):
    recordings = make_dataset(tmp_path / "data", n=1, seconds=1.0)
    with _server(recordings, FaultConfig(never_terminate=True)) as server:
        t = time.monotonic()
        result = run(recordings, host=server.url, run_dir=tmp_path / "run", concurrency=1, max_attempts=2,
                     terminate_timeout=0.3, **FAST)
        wall = time.monotonic() - t
    assert result.count("failed") == 1
    status = _check_attempt_logs(server, tmp_path / "run", full_audio=(0, 1))
    assert all(a["error"] == "no Termination after Terminate (timed out)"
               for a in status["attempts"])
    assert wall < 5
    # the client still closed every session itself
    assert all(s.closed_by == "client" for s in server.sessions)


@pytest.mark.parametrize("code", [3009, 1008])
def test_too_many_sessions_backs_off_then_streams(tmp_path, code):
    recordings = make_dataset(tmp_path / "data", n=1, seconds=1.0)
    faults = FaultConfig(reject_after_sessions=0, reject_code=code)
    with _server(recordings, faults) as server:
        heal_after(server, 2)
        result = run(recordings, host=server.url, run_dir=tmp_path / "run", concurrency=1, max_attempts=1,
                     **FAST)
    assert result.ok  # rejections do not use up max_attempts
    status = _check_attempt_logs(server, tmp_path / "run", full_audio=(2,))
    assert [a["outcome"] for a in status["attempts"]] == ["rejected", "rejected", "complete"]
    assert [a["close_code"] for a in status["attempts"][:2]] == [code, code]
    assert status["attempts"][1]["retry_after"] > status["attempts"][0]["retry_after"] * 0.5


@pytest.mark.parametrize("rejection", ["close", "http"])
def test_a_rejected_key_stops_the_whole_run_at_once(tmp_path, rejection):
    recordings = make_dataset(tmp_path / "data", n=4, seconds=3.0)
    factory = make_engine_factory("oracle", recordings=recordings)
    wrong = "wrong-key-4711"
    with LocalServer(factory, api_keys=(KEY,), auth_rejection=rejection).running_in_thread() \
            as server:
        t = time.monotonic()
        with pytest.raises(AuthenticationError) as info:
            run(recordings, host=server.url, run_dir=tmp_path / "run", concurrency=2,
                **{**FAST, "api_key": wrong, "speed": 1.0})
        wall = time.monotonic() - t
    message = str(info.value)
    assert "rejected the API key" in message and wrong not in message
    assert wall < 2.0  # no session streamed its 3 s, no retry, no backoff
    assert len(server.sessions) == 2  # the two first sessions; nothing started after
    statuses = [read_status(p) for p in (tmp_path / "run/sessions" / CONFIG).glob("*.json")]
    assert len(statuses) == 2 and all(s["status"] == "failed" for s in statuses)
    assert all(len(s["attempts"]) == 1 for s in statuses)
    expected = 401 if rejection == "http" else 1008
    got = [s["attempts"][0]["http_status"] or s["attempts"][0]["close_code"] for s in statuses]
    assert got == [expected, expected]
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert wrong not in path.read_text()


def test_3007_fails_the_run_loudly(tmp_path):
    recordings = make_dataset(tmp_path / "data", n=1, seconds=3.0)
    with _server(recordings, FaultConfig(), lookahead_seconds=0.5) as server:
        with pytest.raises(PacingError, match="pacing is wrong"):
            run(recordings, host=server.url, run_dir=tmp_path / "run", concurrency=1, **FAST)
    status = _check_attempt_logs(server, tmp_path / "run")
    assert status["status"] == "failed" and len(status["attempts"]) == 1
    assert status["attempts"][0]["close_code"] == 3007
    assert "Audio Transmission Rate Exceeded" in status["error"]


def test_delayed_messages_are_all_logged(tmp_path):
    recordings = make_dataset(tmp_path / "data", n=1, seconds=2.0)
    with _server(recordings, FaultConfig(message_delay_seconds=0.3)) as server:
        result = run(recordings, host=server.url, run_dir=tmp_path / "run", concurrency=1, **FAST)
    assert result.ok
    _check_attempt_logs(server, tmp_path / "run", full_audio=(0,))


def test_a_malformed_message_is_logged_raw_and_the_session_completes(tmp_path):
    recordings = make_dataset(tmp_path / "data", n=1, seconds=2.0)
    with _server(recordings, FaultConfig(malformed_after_seconds=1.0)) as server:
        result = run(recordings, host=server.url, run_dir=tmp_path / "run", concurrency=1, **FAST)
    assert result.ok
    _check_attempt_logs(server, tmp_path / "run", full_audio=(0,))
    raw = [m for m in received(tmp_path / "run/sessions" / CONFIG / "rec0.jsonl")
           if isinstance(m, str)]
    assert raw == ['{"type":"Turn","turn_order":']


def test_a_stop_while_a_retry_waits_for_a_start_marks_the_session_interrupted(tmp_path):
    """The run stops while a rejected session waits for a free start (the per-minute limit):
    its status ends "interrupted" (resume streams it), never a lingering "retrying"."""
    import asyncio

    from diareval.stream import run_async

    recordings = make_dataset(tmp_path / "data", n=1, seconds=1.0)
    run_dir = tmp_path / "run"
    with _server(recordings, FaultConfig(reject_after_sessions=0)) as server:
        async def go():
            task = asyncio.create_task(run_async(
                recordings, host=server.url, run_dir=run_dir, concurrency=1,
                max_starts_per_minute=1, **FAST))
            path = run_dir / "sessions" / CONFIG / "rec0.json"
            while not (path.exists() and read_status(path)["status"] == "retrying"):
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.5)  # the backoff is over: waiting for the next start
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(go())
    assert len(server.sessions) == 1
    status = _status(run_dir)
    assert status["status"] == "interrupted"
    assert [a["outcome"] for a in status["attempts"]] == ["rejected"]
