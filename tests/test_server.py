"""The local v3 server at the raw websocket level: validation, close codes, pacing, faults."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from diareval.cli import build_parser
from diareval.cli.serve import build_server
from diareval.errors import ConfigError
from diareval.server import FaultConfig, LocalServer, start_server_process
from diareval.server import protocol as proto
from diareval.server.app import MALFORMED_FRAME
from diareval.server.engines.base import Engine

KEY = "test-key"
QUERY = "sample_rate=16000&speech_model=universal-streaming-english"


class TickEngine(Engine):
    """One partial Turn per chunk (turn_order 0), a final one on finish."""

    def __init__(self, params):
        super().__init__(params)
        self.chunks = 0
        self.forced = 0
        self.updates = []

    def _turn(self, final: bool) -> dict:
        return {"type": "Turn", "turn_order": 0, "turn_is_formatted": False,
                "end_of_turn": final, "transcript": "", "end_of_turn_confidence": 0.5,
                "words": [], "speaker_label": "A"}

    def feed(self, pcm):
        assert pcm.dtype == np.int16
        self.chunks += 1
        return [self._turn(False)]

    def force_endpoint(self):
        self.forced += 1
        return [self._turn(True)]

    def update_configuration(self, changes):
        self.updates.append(changes)
        return []

    def finish(self):
        return [self._turn(True)]


def chunk(ms: int = 100, rate: int = 16000) -> bytes:
    return np.zeros(rate * ms // 1000, dtype=np.int16).tobytes()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def connect(server, query=QUERY, key=KEY, path="/v3/ws"):
    headers = {"Authorization": key} if key is not None else {}
    return await websockets.connect(f"{server.url}{path}?{query}", additional_headers=headers)


async def read_until_closed(ws, timeout=5.0) -> tuple[list, int | None, str | None]:
    """All messages until the server closes; (messages, close code, reason)."""
    messages = []
    try:
        while True:
            frame = await asyncio.wait_for(ws.recv(), timeout)
            try:
                messages.append(json.loads(frame))
            except json.JSONDecodeError:
                messages.append(frame)
    except ConnectionClosed as exc:
        received = exc.rcvd
        return messages, (received.code if received else None), \
            (received.reason if received else None)


def server(**options) -> LocalServer:
    options.setdefault("api_keys", (KEY,))
    return LocalServer(TickEngine, **options)


# --- query parameters -------------------------------------------------------------------------

def test_parse_query_accepts_sdk_and_docs_spellings():
    params = proto.parse_query("sample_rate=8000&encoding=pcm_mulaw&speaker_labels=True"
                               "&max_speakers=3&format_turns=false&keyterms_prompt=%5B%22a%22%5D"
                               "&min_end_of_turn_silence_when_confident=300&vad_threshold=0.5"
                               "&token=secret")
    assert params.sample_rate == 8000 and params.encoding == "pcm_mulaw"
    assert params.speaker_labels is True and params.max_speakers == 3
    assert params.format_turns is False and params.keyterms_prompt == ("a",)
    assert params.min_turn_silence == 300
    assert params.extra == {"vad_threshold": "0.5"}  # unknown: kept as sent; token: never


@pytest.mark.parametrize("query, needle", [
    ("speaker_labels=yes", "speaker_labels must be true or false"),
    ("speaker_labels=true&max_speakers=0", "max_speakers must be in 1..10"),
    ("speaker_labels=true&max_speakers=11", "max_speakers must be in 1..10"),
    ("speech_model=nano", "u3-rt-pro, universal-streaming-english"),
    ("encoding=opus", "pcm_s16le, pcm_mulaw"),
    ("encoding=opus", "accepted by AssemblyAI but not supported by the local server"),
    ("encoding=ogg_opus", "not supported by the local server"),
    ("encoding=aac", "not supported by the local server"),
    ("encoding=flac", "opus, ogg_opus, aac"),
    ("speaker_labels=true&speaker_labels_revision_interval_ms=-1",
     "speaker_labels_revision_interval_ms must be in >= 0"),
    ("speaker_labels=true&speaker_labels_revision_interval_ms=1.5",
     "speaker_labels_revision_interval_ms must be an integer"),
    ("sample_rate=-1", "sample_rate"),
    ("keyterms_prompt=a,b", "JSON list"),
    ("inactivity_timeout=2", "inactivity_timeout must be in 5..3600"),
])
def test_parse_query_rejects_with_a_clear_message(query, needle):
    with pytest.raises(proto.ParamError, match=needle.replace(".", r"\.")):
        proto.parse_query(query)


def test_max_speakers_and_revision_interval_without_speaker_labels_are_ignored():
    # issue 13: the docs say max_speakers applies "only with speaker_labels"; none says the
    # service refuses it (this used to be a 3006 here)
    params = proto.parse_query("max_speakers=2&speaker_labels_revision_interval_ms=5000")
    assert params.max_speakers is None and params.speaker_labels_revision_interval_ms is None
    assert params.revision_interval_ms == 0 and params.extra == {}
    with pytest.raises(proto.ParamError, match="max_speakers must be in 1..10"):
        proto.parse_query("max_speakers=20")  # still validated


def test_revision_interval_is_an_integer_at_least_zero_and_zero_is_off():
    on = proto.parse_query("speaker_labels=true&speaker_labels_revision_interval_ms=5000")
    assert on.speaker_labels_revision_interval_ms == 5000 and on.revision_interval_ms == 5000
    off = proto.parse_query("speaker_labels=true&speaker_labels_revision_interval_ms=0")
    assert off.speaker_labels_revision_interval_ms == 0 and off.revision_interval_ms == 0
    assert proto.parse_query("speaker_labels=true").revision_interval_ms == 0


def test_begin_carries_the_session_configuration():
    async def main():
        async with server() as srv:
            ws = await connect(srv, "sample_rate=16000&speech_model=universal-3-5-pro"
                                    "&mode=balanced")
            begin = json.loads(await ws.recv())
            await ws.close()
            return begin
    begin = run(main())
    assert begin["type"] == "Begin"
    assert begin["configuration"] == {"model": "universal-3-5-pro", "mode": "balanced"}
    sdk = pytest.importorskip("assemblyai.streaming.v3.models")
    assert sdk.BeginEvent(**begin).configuration.model == "universal-3-5-pro"


def test_invalid_parameter_is_error_3006_after_upgrade():
    async def main():
        async with server() as srv:
            ws = await connect(srv, "sample_rate=16000&speech_model=nano")
            messages, code, _ = await read_until_closed(ws)
            return srv, messages, code
    srv, messages, code = run(main())
    assert code == 3006
    assert messages[0]["type"] == "Error" and messages[0]["error_code"] == 3006
    assert "universal-streaming-english" in messages[0]["error"]  # names the choices
    assert len(messages) == 1  # no Begin
    assert srv.sessions[0].params is None and srv.sessions[0].close_code == 3006


def test_invalid_parameter_http_400_option():
    async def main():
        async with server(param_rejection="http") as srv:
            with pytest.raises(InvalidStatus) as info:
                await connect(srv, "speaker_labels=maybe")
            return srv, info.value.response.status_code
    srv, status = run(main())
    assert status == 400 and srv.sessions[0].http_status == 400


# --- auth and path -----------------------------------------------------------------------------

@pytest.mark.parametrize("key, reason", [("wrong", "Invalid API key"),
                                         (None, "Missing Authorization header")])
def test_bad_or_missing_key_is_1008(key, reason):
    async def main():
        async with server() as srv:
            ws = await connect(srv, key=key)
            return srv, await read_until_closed(ws)
    srv, (messages, code, close_reason) = run(main())
    assert code == 1008 and reason in close_reason
    assert messages == [{"type": "Error", "error_code": 1008,
                         "error": f"Unauthorized Connection: {reason}"}]
    assert "wrong" not in repr(srv.sessions[0].__dict__)  # the key is not recorded


def test_token_query_parameter_and_open_server():
    async def main():
        async with server() as srv:
            ws = await connect(srv, QUERY + "&token=" + KEY, key=None)
            begin = json.loads(await ws.recv())
            await ws.close()
        async with server(api_keys=None) as open_srv:
            ws = await connect(open_srv, key="anything")
            begin2 = json.loads(await ws.recv())
            await ws.close()
        return srv, begin, begin2
    srv, begin, begin2 = run(main())
    assert begin["type"] == begin2["type"] == "Begin"
    assert isinstance(begin["expires_at"], int) and len(begin["id"]) == 36
    assert "token" not in srv.sessions[0].query


def test_other_paths_are_404():
    async def main():
        async with server() as srv:
            with pytest.raises(InvalidStatus) as info:
                await connect(srv, path="/v2/realtime/ws")
            return info.value.response.status_code
    assert run(main()) == 404


# --- a normal session ---------------------------------------------------------------------------

def test_session_flow_begin_turns_termination_and_records():
    async def main():
        async with server() as srv:
            ws = await connect(srv, QUERY + "&speaker_labels=true")
            assert json.loads(await ws.recv())["type"] == "Begin"
            for _ in range(3):
                await ws.send(chunk(100))
            await ws.send(json.dumps({"type": "KeepAlive"}))
            await ws.send(json.dumps({"type": "ForceEndpoint"}))
            await ws.send(json.dumps({"type": "UpdateConfiguration", "max_turn_silence": 900}))
            await ws.send(json.dumps({"type": "Terminate"}))
            return srv, await read_until_closed(ws)
    srv, (messages, code, _) = run(main())
    assert code == 1000
    types = [m["type"] for m in messages]
    assert types == ["Turn"] * 5 + ["Termination"]
    assert messages[3]["end_of_turn"] is True  # the ForceEndpoint answer
    termination = messages[-1]
    assert isinstance(termination["audio_duration_seconds"], int)
    assert isinstance(termination["session_duration_seconds"], int)
    session = srv.sessions[0]
    assert session.params.speaker_labels is True
    assert session.audio_seconds == pytest.approx(0.3)
    assert [round(a[1], 3) for a in session.chunk_arrivals] == [0.0, 0.1, 0.2]
    assert all(a[2] == pytest.approx(0.1) for a in session.chunk_arrivals)
    assert len(session.sent) == 7 and json.loads(session.sent[0])["type"] == "Begin"
    assert len(session.sent_at) == 7 and session.sent_at == sorted(session.sent_at)
    assert session.close_code == 1000 and session.closed_by == "server"


def test_mulaw_audio_is_decoded_for_the_engine():
    samples = (np.sin(np.linspace(0, 60, 1600)) * 20000).astype(np.int16)
    decoded = proto.decode_audio(proto.encode_mulaw(samples), "pcm_mulaw")
    assert decoded.dtype == np.int16
    assert np.max(np.abs(decoded.astype(int) - samples)) <= 0.04 * 20000
    assert proto.check_chunk(800, proto.parse_query("encoding=pcm_mulaw")) == pytest.approx(0.05)


# --- chunk and rate rules ---------------------------------------------------------------------

@pytest.mark.parametrize("ms", [40, 1100])
def test_chunk_outside_50_to_1000_ms_is_3007(ms):
    async def main():
        async with server() as srv:
            ws = await connect(srv)
            await ws.recv()
            await ws.send(chunk(50))  # exactly 50 ms is fine
            await ws.send(chunk(ms))
            return await read_until_closed(ws)
    messages, code, _ = run(main())
    assert code == 3007
    assert messages[-1]["error_code"] == 3007
    assert f"Input duration violation: {ms} ms" in messages[-1]["error"]
    assert messages[0]["type"] == "Turn"  # the 50 ms chunk was accepted


def test_streaming_too_fast_is_3007_rate_exceeded():
    async def main():
        async with server(lookahead_seconds=1.0) as srv:
            ws = await connect(srv)
            await ws.recv()
            try:
                for _ in range(30):  # 3 s of audio at once
                    await ws.send(chunk(100))
            except ConnectionClosed:
                pass
            return srv, await read_until_closed(ws)
    srv, (messages, code, _) = run(main())
    assert code == 3007
    assert messages[-1]["error"].startswith("Audio Transmission Rate Exceeded: Received 1.")
    assert 1.0 < srv.sessions[0].audio_seconds < 1.5


def test_no_lookahead_accepts_any_speed():
    async def main():
        async with server(lookahead_seconds=None) as srv:
            ws = await connect(srv)
            await ws.recv()
            for _ in range(50):
                await ws.send(chunk(1000))
            await ws.send(json.dumps({"type": "Terminate"}))
            return await read_until_closed(ws)
    messages, code, _ = run(main())
    assert code == 1000 and messages[-1]["audio_duration_seconds"] == 50


# --- invalid messages, expiry, inactivity ---------------------------------------------------------

@pytest.mark.parametrize("frame, needle", [("{not json", "Invalid JSON"),
                                           ('{"type": "Dance"}', "Invalid Message Type: Dance"),
                                           ("[]", "Invalid Message")])
def test_bad_client_message_is_3006(frame, needle):
    async def main():
        async with server() as srv:
            ws = await connect(srv)
            await ws.recv()
            await ws.send(frame)
            return await read_until_closed(ws)
    messages, code, _ = run(main())
    assert code == 3006 and messages[-1]["error_code"] == 3006
    assert messages[-1]["error"].startswith(needle)


def test_session_longer_than_max_is_3008():
    async def main():
        async with server(max_session_seconds=0.3) as srv:
            ws = await connect(srv)
            await ws.recv()
            started = time.monotonic()
            messages, code, _ = await read_until_closed(ws)
            return messages, code, time.monotonic() - started
    messages, code, waited = run(main())
    assert code == 3008 and messages[-1]["error_code"] == 3008
    # the messages page: the server sends Termination when the session ends (issue 13)
    assert [m["type"] for m in messages[-2:]] == ["Termination", "Error"]
    assert "Maximum session duration exceeded" in messages[-1]["error"]
    assert 0.2 < waited < 2.0


def test_inactivity_timeout_ends_the_session_gracefully():
    async def main():
        async with server() as srv:
            ws = await connect(srv, QUERY + "&inactivity_timeout=5")
            await ws.recv()
            await ws.send(chunk(100))
            started = time.monotonic()
            messages, code, _ = await read_until_closed(ws, timeout=10)
            return messages, code, time.monotonic() - started
    messages, code, waited = run(main())
    assert code == 1000 and messages[-1]["type"] == "Termination"
    assert 4.5 < waited < 7


# --- fault modes ---------------------------------------------------------------------------------

def _stream_two_seconds(faults: FaultConfig, terminate: bool = True):
    async def main():
        async with server(faults=faults) as srv:
            ws = await connect(srv)
            try:
                for _ in range(20):
                    await ws.send(chunk(100))
                if terminate:
                    await ws.send(json.dumps({"type": "Terminate"}))
            except ConnectionClosed:
                pass
            result = await read_until_closed(ws)
            return srv, result
    return run(main())


def test_fault_drop_aborts_without_close_frame():
    srv, (messages, code, _) = _stream_two_seconds(FaultConfig(drop_after_seconds=0.5))
    assert code is None  # no close frame received
    assert not any(isinstance(m, dict) and m.get("type") in ("Error", "Termination")
                   for m in messages)
    assert srv.sessions[0].closed_by == "abort"
    assert srv.sessions[0].audio_seconds == pytest.approx(0.5)


def test_fault_error_3005():
    srv, (messages, code, _) = _stream_two_seconds(FaultConfig(error_after_seconds=0.5))
    assert code == 3005 and messages[-1]["error_code"] == 3005
    assert sum(1 for m in messages if m["type"] == "Turn") == 4  # chunks before the error


def test_fault_malformed_frame_then_session_continues():
    srv, (messages, code, _) = _stream_two_seconds(FaultConfig(malformed_after_seconds=1.0))
    broken = [m for m in messages if isinstance(m, str)]
    assert broken == [MALFORMED_FRAME]
    assert code == 1000 and messages[-1]["type"] == "Termination"
    assert broken[0] in srv.sessions[0].sent


def test_fault_never_terminate_keeps_socket_open():
    async def main():
        async with server(faults=FaultConfig(never_terminate=True)) as srv:
            ws = await connect(srv)
            await ws.recv()
            await ws.send(chunk(100))
            await ws.recv()
            await ws.send(json.dumps({"type": "Terminate"}))
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.5)
            state = ws.state
            await ws.close()
            return srv, state
    srv, state = run(main())
    assert state == websockets.State.OPEN
    assert not any('"Termination"' in text for text in srv.sessions[0].sent)


def test_fault_message_delay():
    async def main():
        async with server(faults=FaultConfig(message_delay_seconds=0.4)) as srv:
            ws = await connect(srv)
            started = time.monotonic()
            await ws.recv()  # Begin
            begin_after = time.monotonic() - started
            sent = time.monotonic()
            await ws.send(chunk(100))
            await ws.recv()
            turn_after = time.monotonic() - sent
            await ws.close()
            return begin_after, turn_after
    begin_after, turn_after = run(main())
    assert begin_after >= 0.38 and turn_after >= 0.38
    assert turn_after < 1.5  # delayed by D, not accumulated


@pytest.mark.parametrize("reject_code", [3009, 1008])
def test_fault_reject_after_n_sessions(reject_code):
    async def main():
        faults = FaultConfig(reject_after_sessions=1, reject_code=reject_code)
        async with server(faults=faults) as srv:
            first = await connect(srv)
            assert json.loads(await first.recv())["type"] == "Begin"
            second = await connect(srv)
            result = await read_until_closed(second)
            await first.close()
            return srv, result
    srv, (messages, code, _) = run(main())
    assert code == reject_code
    assert messages == [{"type": "Error", "error_code": reject_code,
                         "error": "Unauthorized Connection: Too many concurrent sessions"}]
    assert [s.accepted for s in srv.sessions] == [True, False]


def test_fault_config_validates():
    with pytest.raises(ConfigError, match="3009 or 1008"):
        FaultConfig(reject_code=4000)
    assert not FaultConfig().active and FaultConfig(never_terminate=True).active


# --- engines that block, process and CLI -------------------------------------------------------

class SlowEngine(TickEngine):
    blocking = True

    def feed(self, pcm):
        time.sleep(0.5)
        return super().feed(pcm)


def test_blocking_engine_runs_off_the_event_loop():
    async def main():
        async with LocalServer(SlowEngine, api_keys=None) as srv:
            slow = await connect(srv)
            await slow.recv()
            await slow.send(chunk(100))
            await asyncio.sleep(0.05)  # the slow feed is now running
            started = time.monotonic()
            other = await connect(srv)
            await other.recv()
            begin_wait = time.monotonic() - started
            await slow.recv()
            await slow.close()
            await other.close()
            return begin_wait
    assert run(main()) < 0.3


def test_running_in_thread_serves_sync_clients():
    from websockets.sync.client import connect as sync_connect
    srv = server()
    with srv.running_in_thread():
        with sync_connect(f"{srv.url}/v3/ws?{QUERY}",
                          additional_headers={"Authorization": KEY}) as ws:
            assert json.loads(ws.recv(timeout=5))["type"] == "Begin"
    assert len(srv.sessions) == 1


def test_serve_cli_arguments_build_the_server(tmp_path):
    from fixtures import write_synthetic_dataset
    folder = write_synthetic_dataset(tmp_path, n_recordings=1, duration=5)
    args = build_parser().parse_args([
        "serve", "--engine", "oracle", "--dataset", str(folder), "--port", "0",
        "--api-key", "k1", "--no-lookahead", "--engine-options", '{"seed": 4}',
        "--fault-reject-after-sessions", "3", "--fault-reject-code", "1008",
        "--fault-never-terminate"])
    srv = build_server(args)
    assert srv.lookahead_seconds is None and srv.port == 0
    assert srv.faults == FaultConfig(reject_after_sessions=3, reject_code=1008,
                                     never_terminate=True)
    assert srv.engine_factory.config.seed == 4
    assert srv._api_keys == frozenset({"k1"}) and "k1" not in repr(srv)


def test_start_server_process(tmp_path):
    from diareval.datasets import load_folder
    from fixtures import write_synthetic_dataset
    folder = write_synthetic_dataset(tmp_path, n_recordings=1, duration=4)
    audio = load_folder(folder)[0].load_audio()

    async def stream(url):
        async with websockets.connect(f"{url}/v3/ws?{QUERY}&speaker_labels=true",
                                      additional_headers={"Authorization": "k"}) as ws:
            for i in range(0, len(audio) - 800, 1600):
                await ws.send(audio[i:i + 1600].tobytes())
            await ws.send(json.dumps({"type": "Terminate"}))
            return await read_until_closed(ws)

    with start_server_process(engine="oracle", dataset=folder, engine_options={"seed": 1},
                              api_keys=("k",), lookahead_seconds=None) as proc:
        assert proc.url.startswith("ws://127.0.0.1:")
        messages, code, _ = run(stream(proc.url))
    assert proc.popen.returncode == 0
    assert code == 1000 and messages[0]["type"] == "Begin"
    assert any(m["type"] == "Turn" and m["end_of_turn"] for m in messages)


def test_numpy_values_from_engines_are_sent_as_plain_json():
    text = proto.dumps({"type": "Turn", "turn_order": np.int64(3), "end_of_turn": np.bool_(True),
                        "end_of_turn_confidence": np.float32(0.5), "words": np.array([1, 2])})
    assert json.loads(text) == {"type": "Turn", "turn_order": 3, "end_of_turn": True,
                                "end_of_turn_confidence": 0.5, "words": [1, 2]}
    assert '"turn_order":3,' in text  # an int, not 3.0


def test_plain_http_request_to_the_endpoint_is_recorded_as_rejected():
    import urllib.error
    import urllib.request

    async def main():
        async with server() as srv:
            def fetch():
                request = urllib.request.Request(f"http://127.0.0.1:{srv.port}/v3/ws?{QUERY}",
                                                 headers={"Authorization": KEY})
                try:
                    urllib.request.urlopen(request, timeout=5)
                except urllib.error.HTTPError as exc:
                    return exc.code
            status = await asyncio.to_thread(fetch)
            return srv, status
    srv, status = run(main())
    assert status == 426  # Upgrade Required
    assert srv.sessions[0].http_status == 426 and not srv.sessions[0].accepted
    assert srv._pending == {}


@pytest.mark.parametrize("compression, expected", [(None, None), ("deflate", "permessage-deflate")])
def test_permessage_deflate_is_declined_unless_asked_for(compression, expected):
    async def main():
        async with server(compression=compression) as srv:
            ws = await connect(srv)  # the client offers permessage-deflate by default
            await ws.recv()
            header = ws.response.headers.get("Sec-WebSocket-Extensions")
            await ws.close()
            return header
    header = run(main())
    assert (header.split(";")[0] if header else None) == expected


def test_new_sessions_per_minute_limit():
    async def main():
        async with server(faults=FaultConfig(max_new_sessions_per_minute=2)) as srv:
            first, second = await connect(srv), await connect(srv)
            for ws in (first, second):
                assert json.loads(await ws.recv())["type"] == "Begin"
            await first.close()  # closing does not free a slot: the limit is on *new* sessions
            third = await connect(srv)
            result = await read_until_closed(third)
            await second.close()
            return srv, result
    srv, (messages, code, _) = run(main())
    assert code == 3009 and "more than 2 new per minute" in messages[0]["error"]
    assert [s.accepted for s in srv.sessions] == [True, True, False]


def test_fault_flags_round_trip_through_the_serve_command():
    from diareval.server.process import fault_args
    faults = FaultConfig(drop_after_seconds=1.5, message_delay_seconds=0.2, reject_code=1008,
                         reject_after_sessions=4, never_terminate=True,
                         max_new_sessions_per_minute=7, malformed_after_seconds=2.0,
                         error_after_seconds=3.0)
    from diareval.cli.serve import faults_from_args
    args = build_parser().parse_args(["serve"] + fault_args(faults))
    assert faults_from_args(args) == faults
    assert faults_from_args(build_parser().parse_args(["serve"])) == FaultConfig()


def test_slow_engine_does_not_delay_arrival_records_or_reorder_messages():
    async def main():
        async with LocalServer(SlowEngine, api_keys=None) as srv:
            ws = await connect(srv)
            await ws.recv()
            for _ in range(3):
                await ws.send(chunk(100))
            await ws.send(json.dumps({"type": "Terminate"}))
            return srv, await read_until_closed(ws)
    srv, (messages, code, _) = run(main())
    arrivals = [a[0] for a in srv.sessions[0].chunk_arrivals]
    assert arrivals[-1] - arrivals[0] < 0.2  # recorded on arrival, not after 0.5 s feeds
    assert code == 1000
    assert [m["end_of_turn"] for m in messages[:-1]] == [False, False, False, True]
    assert messages[-1]["type"] == "Termination"


def test_stopping_the_server_closes_open_sessions_with_1001():
    async def main():
        srv = await server().start()
        ws = await connect(srv)
        await ws.recv()
        await srv.stop()
        return srv, await read_until_closed(ws)
    srv, (messages, code, _) = run(main())
    assert code == 1001 and messages == []
    assert srv.sessions[0].close_code == 1001 and srv.sessions[0].closed_by == "server"


class SlowStartEngine(TickEngine):
    """TickEngine that takes a while to build (as a model-loading engine does)."""

    def __init__(self, params):
        time.sleep(0.3)
        super().__init__(params)


@pytest.mark.parametrize("faults", [FaultConfig(reject_after_sessions=1),
                                    FaultConfig(max_new_sessions_per_minute=1)])
def test_session_limits_hold_for_sessions_that_arrive_together(faults):
    """Sessions whose engines are still being built count against the limit: three that
    arrive at once with a slow engine factory get one Begin and two rejections."""
    async def main():
        async with LocalServer(SlowStartEngine, api_keys=(KEY,), faults=faults) as srv:
            sockets = await asyncio.gather(*(connect(srv) for _ in range(3)))
            firsts = [json.loads(await ws.recv())["type"] for ws in sockets]
            for ws in sockets:
                await ws.close()
            return srv, firsts
    srv, firsts = run(main())
    assert sorted(firsts) == ["Begin", "Error", "Error"]
    assert sum(s.accepted for s in srv.sessions) == 1


def test_a_failed_engine_start_frees_its_session_slot():
    """An engine that refuses to start (EngineError) does not use up reject_after_sessions."""
    from diareval.server.engines.base import EngineError

    calls = []

    def factory(params):
        calls.append(params)
        if len(calls) == 1:
            raise EngineError("Invalid parameter: no such recording", code=3006)
        return TickEngine(params)

    async def main():
        async with LocalServer(factory, api_keys=(KEY,),
                               faults=FaultConfig(reject_after_sessions=1)) as srv:
            first = await connect(srv)
            refused = await read_until_closed(first)
            second = await connect(srv)
            begin = json.loads(await second.recv())
            await second.close()
            return srv, refused, begin
    srv, (messages, code, _), begin = run(main())
    assert code == 3006 and messages[0]["error_code"] == 3006
    assert begin["type"] == "Begin"
    assert [s.accepted for s in srv.sessions] == [False, True]
