"""The simulator's pieces: configurations and URLs, chunking, one session against the local server."""

from __future__ import annotations

import asyncio
import math
import time
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest

from diareval.errors import ConfigError
from diareval.server import FaultConfig, LocalServer
from diareval.server.engines import make_engine_factory
from diareval.server.engines.base import Engine
from diareval.sessionlog import AUDIO_CHUNK, read_session_log
from diareval.stream import (ArrayAudio, FileAudio, Outcome, StreamConfig, build_headers, chunks,
                             make_configs, parse_max_speakers, stream_attempt)
from diareval.stream.audio import check_chunk_seconds
from fixtures import make_dataset
from test_stream_support import assert_log_has_everything

KEY = "test-key"


# --- configurations ---------------------------------------------------------------------------

def test_configs_are_models_times_max_speakers_with_readable_names():
    configs = make_configs(["u3-rt-pro", "universal-streaming-english"], "none,2,4")
    assert [c.name for c in configs] == [
        "u3-rt-pro__max-speakers-none", "u3-rt-pro__max-speakers-2", "u3-rt-pro__max-speakers-4",
        "universal-streaming-english__max-speakers-none",
        "universal-streaming-english__max-speakers-2",
        "universal-streaming-english__max-speakers-4"]
    assert parse_max_speakers("none, 2,2") == [None, 2]
    assert parse_max_speakers([None, 3]) == [None, 3]


def test_url_comes_from_the_sdk_parameters():
    config = StreamConfig("u3-rt-pro", 2, (("format_turns", True),))
    url = config.url("ws://127.0.0.1:9")
    parts = urlsplit(url)
    assert parts.scheme == "ws" and parts.netloc == "127.0.0.1:9" and parts.path == "/v3/ws"
    query = dict(parse_qsl(parts.query))
    assert query == {"sample_rate": "16000", "encoding": "pcm_s16le", "speech_model": "u3-rt-pro",
                     "speaker_labels": "True", "max_speakers": "2", "format_turns": "True"}
    assert config.name == "u3-rt-pro__max-speakers-2__format-turns-true"
    # None = not sent; the default host is AssemblyAI's over wss.
    url = StreamConfig("universal-streaming-english").url()
    assert url.startswith("wss://streaming.assemblyai.com/v3/ws?")
    assert "max_speakers" not in url
    # A parameter only the SDK knows works without code here; a list is one JSON string.
    url = StreamConfig("universal-streaming-english",
                       params=(("keyterms_prompt", ["a b", "c"]),)).url()
    assert dict(parse_qsl(urlsplit(url).query))["keyterms_prompt"] == '["a b", "c"]'


def test_every_known_model_has_one_price_from_the_one_table():
    from diareval import constants
    from diareval.server import messages as say
    from diareval.stream.config import MODELS, PRICES_PER_HOUR
    assert PRICES_PER_HOUR is constants.PRICES_PER_HOUR
    assert set(MODELS) == set(say.MODEL_FAMILIES) >= {"universal-3-5-pro", "whisper-rt"}
    assert "2026-03" in constants.PRICES_SOURCE
    for model in MODELS:  # PROTOCOL.md: U3 Pro $0.45/h, Universal-Streaming $0.15/h
        family = say.model_family(model)
        expected = {say.U3_PRO: 0.45, say.UNIVERSAL_STREAMING: 0.15}.get(family)
        assert PRICES_PER_HOUR[model] == expected
        assert StreamConfig(model).price_per_hour == (expected or 0.45)
    assert not StreamConfig("whisper-rt").price_known


def test_headers_carry_the_key_and_the_url_never_does():
    headers = build_headers("secret-123")
    assert headers["Authorization"] == "secret-123"
    assert "AssemblyAI-Version" in headers
    assert "secret" not in StreamConfig("u3-rt-pro").url()


def test_bad_configuration_names_the_valid_choices():
    # issue 13: an unknown model is passed through to the service with a warning naming the
    # known ones (it used to be refused here)
    with pytest.warns(UserWarning, match="u3-rt-pro, universal-streaming-english, "
                                         "universal-streaming-multilingual"):
        configs = make_configs(["whisper-large"])
    query = dict(parse_qsl(urlsplit(configs[0].url()).query))
    assert query["speech_model"] == "whisper-large" and query["speaker_labels"] == "True"
    with pytest.raises(ConfigError, match="not a model name"):
        make_configs(["bad model"])
    with pytest.raises(ConfigError, match="1..10"):
        make_configs(["u3-rt-pro"], "0")
    with pytest.raises(ConfigError, match="not 'none' or an integer"):
        parse_max_speakers("two")
    with pytest.raises(ConfigError, match="unknown streaming parameter 'speaker_label'"):
        make_configs(["u3-rt-pro"], params={"speaker_label": True})


# --- chunking ---------------------------------------------------------------------------------

def test_chunks_are_fixed_size_and_the_last_is_padded_to_50_ms():
    audio = ArrayAudio(np.arange(16000 + 300, dtype=np.int16))
    parts = list(chunks(audio, 0.05))
    assert [len(p) for p in parts] == [800] * 20 + [800]
    assert np.array_equal(parts[-1][:300], np.arange(16000, 16300, dtype=np.int16))
    assert not parts[-1][300:].any()
    assert [len(p) for p in chunks(audio, 0.1)] == [1600] * 10 + [800]
    with pytest.raises(ConfigError, match="50..1000 ms"):
        check_chunk_seconds(0.02)
    with pytest.raises(ConfigError, match="50..1000 ms"):
        check_chunk_seconds(1.5)


def test_file_audio_equals_load_audio(tmp_path):
    recording = make_dataset(tmp_path / "d", n=1, seconds=1.23)[0]
    streamed = np.concatenate(list(FileAudio(recording.audio_path).blocks(800)))
    assert np.array_equal(streamed, recording.load_audio())


# --- one session ------------------------------------------------------------------------------

def _oracle(recordings):
    return make_engine_factory("oracle", recordings=recordings)


def test_session_logs_every_message_and_summarises_audio(tmp_path):
    recordings = make_dataset(tmp_path / "d", n=1, seconds=4.0)

    async def go():
        async with LocalServer(_oracle(recordings), api_keys=(KEY,),
                               lookahead_seconds=None) as server:
            url = StreamConfig("universal-streaming-english", 2).url(server.url)
            result = await stream_attempt(url, build_headers(KEY),
                                          FileAudio(recordings[0].audio_path), tmp_path / "s.jsonl",
                                          speed=math.inf)
            return server.sessions, result

    sessions, result = asyncio.run(go())
    assert result.outcome is Outcome.COMPLETE and result.error is None
    assert len(sessions) == 1 and sessions[0].close_code == 1000
    assert_log_has_everything(sessions[0], tmp_path / "s.jsonl")
    lines = read_session_log(tmp_path / "s.jsonl")
    kinds = [(line.dir, line.type) for line in lines]
    assert kinds[:2] == [("event", "Connecting"), ("event", "Connected")]
    assert kinds[-2:] == [("recv", "Termination"), ("event", "Closed")]
    sends = [kind for kind in kinds if kind[0] == "send"]
    assert sends[-1] == ("send", "Terminate") and sends.count(("send", "Terminate")) == 1
    assert ("recv", "Begin") in kinds and ("recv", "Turn") in kinds
    audio = [line for line in lines if line.type == AUDIO_CHUNK]
    assert len(audio) == 80 and all(line.msg["bytes"] == 1600 for line in audio)
    assert audio[-1].t_audio == pytest.approx(4.0)
    assert result.session_id == sessions[0].session_id
    # The server got the parameters of the configuration.
    assert sessions[0].params.max_speakers == 2 and sessions[0].params.speaker_labels


@pytest.mark.realtime
def test_session_paces_at_real_time(tmp_path):
    """3 s streamed at real time: wall time ~3 s and chunk arrivals on the ideal schedule."""
    recordings = make_dataset(tmp_path / "d", n=1, seconds=3.0)

    async def go():
        # lookahead 1 s: the server closes with 3007 if the client runs ahead of real time.
        async with LocalServer(_oracle(recordings), api_keys=(KEY,), lookahead_seconds=1.0,
                               faults=FaultConfig()) as server:
            url = StreamConfig("universal-streaming-english").url(server.url)
            t = time.monotonic()
            result = await stream_attempt(url, build_headers(KEY),
                                          FileAudio(recordings[0].audio_path), tmp_path / "s.jsonl")
            return time.monotonic() - t, server.sessions[0], result

    wall, session, result = asyncio.run(go())
    assert result.outcome is Outcome.COMPLETE
    assert result.chunks_sent == 60
    assert 2.95 <= wall <= 3.5, wall
    first = session.chunk_arrivals[0][0]
    errors = np.array([(arrival - first - before) * 1000
                       for arrival, before, _ in session.chunk_arrivals])
    assert len(errors) == 60
    assert np.median(np.abs(errors)) < 5, errors
    assert np.percentile(np.abs(errors), 99) < 20, errors
    assert abs(np.median(errors[-10:]) - np.median(errors[:10])) < 10  # no drift


class _SilentEngine(Engine):
    """Says nothing until Terminate (the test is about the client's side)."""

    def feed(self, pcm):
        return []

    def finish(self):
        return []


@pytest.mark.parametrize("rate, frames, meta_duration", [
    (44100, 44101, None),   # resampled to 16000 samples: 22.7 us less than the header says
    (16000, 15000, 1.0),    # the dataset's duration (AMI: the UEM end) is 62.5 ms longer
])
def test_a_session_that_sent_its_whole_file_is_complete(tmp_path, rate, frames, meta_duration):
    """Complete = every chunk of the file sent and Termination received, whatever the
    duration the header or the dataset claims (a rounding of the resampler, or an AMI file a
    little shorter than its whole-file UEM, must not turn into retries and a failure)."""
    import soundfile as sf

    from diareval.datasets import Recording
    from diareval.stream.audio import recording_audio

    path = tmp_path / "a.wav"
    sf.write(path, np.full(frames, 0.01, dtype=np.float32), rate, subtype="PCM_16")
    meta = {} if meta_duration is None else {"duration": meta_duration}
    recording = Recording(uri="a", audio_path=path, reference=None, uem=None, meta=meta)

    async def go():
        async with LocalServer(_SilentEngine, api_keys=(KEY,), lookahead_seconds=None) as server:
            url = StreamConfig("universal-streaming-english").url(server.url)
            return await stream_attempt(url, build_headers(KEY), recording_audio(recording),
                                        tmp_path / "s.jsonl", speed=math.inf)

    result = asyncio.run(go())
    assert result.outcome is Outcome.COMPLETE, result.error
    assert result.error is None and result.termination is not None


class _BrokenAudio:
    """A source whose read fails after 0.2 s of audio (a corrupt or vanished file)."""

    duration = 2.0

    def blocks(self, samples):
        for _ in range(4):
            yield np.zeros(samples, dtype=np.int16)
        raise OSError("read error")


def test_an_exception_mid_stream_still_terminates_and_closes_the_session(tmp_path):
    """A bug or an I/O error on the client side must not leave the connection open (an
    unclosed AssemblyAI session is billed for 3 h): Terminate, close, then the error."""
    async def go():
        async with LocalServer(_SilentEngine, api_keys=(KEY,), lookahead_seconds=None) as server:
            url = StreamConfig("universal-streaming-english").url(server.url)
            with pytest.raises(OSError, match="read error"):
                await stream_attempt(url, build_headers(KEY), _BrokenAudio(),
                                     tmp_path / "s.jsonl", speed=math.inf)
            for _ in range(100):  # the server notes the close a moment later
                if server.sessions[0].close_code is not None:
                    break
                await asyncio.sleep(0.01)
            return server.sessions[0]

    session = asyncio.run(go())
    assert {"type": "Terminate"} in session.received_messages
    assert session.close_code == 1000 and session.sent_messages[-1]["type"] == "Termination"
    lines = read_session_log(tmp_path / "s.jsonl")
    assert [line.type for line in lines][-1] == "Closed"


def test_a_key_echoed_by_the_service_is_not_written_to_the_session_log(tmp_path):
    """DESIGN: the API key is never written anywhere. A service that echoes it (in an HTTP
    rejection body, or an Error message) must not put it into the session log."""
    from websockets.asyncio.server import serve

    secret = "sk-echo-4711"

    def reject(connection, request):
        return connection.respond(401, f"invalid key {request.headers['Authorization']}\n")

    async def go():
        async with serve(lambda ws: None, "127.0.0.1", 0, process_request=reject) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            url = StreamConfig("universal-streaming-english").url(f"ws://127.0.0.1:{port}")
            return await stream_attempt(url, build_headers(secret), ArrayAudio(np.zeros(800)),
                                        tmp_path / "s.jsonl")

    result = asyncio.run(go())
    assert result.outcome is Outcome.AUTH and result.http_status == 401
    text = (tmp_path / "s.jsonl").read_text()
    assert "HandshakeRejected" in text and "invalid key ***" in text
    assert secret not in text


def test_session_log_redaction_leaves_short_placeholders_alone(tmp_path):
    from diareval.sessionlog import SessionLogWriter
    with SessionLogWriter(tmp_path / "s.jsonl", secrets=("local", 'sk"quoted\\key')) as log:
        log.write("event", 0.0, 0.0, {"url": "ws://localhost:1/v3/ws",
                                      "echo": 'bad key sk"quoted\\key'})
    [line] = read_session_log(tmp_path / "s.jsonl")
    assert line.msg == {"url": "ws://localhost:1/v3/ws", "echo": "bad key ***"}


def test_a_stop_while_waiting_for_begin_terminates_at_once(tmp_path):
    """Begin is slow (every server message 1.5 s late); the run stops 0.2 s after the
    connection opened: Terminate goes out then, not once Begin arrives."""
    async def go():
        async with LocalServer(_SilentEngine, api_keys=(KEY,), lookahead_seconds=None,
                               faults=FaultConfig(message_delay_seconds=1.5)) as server:
            url = StreamConfig("universal-streaming-english").url(server.url)
            stop = asyncio.Event()
            asyncio.get_running_loop().call_later(0.2, stop.set)
            return await stream_attempt(url, build_headers(KEY), ArrayAudio(np.zeros(16000)),
                                        tmp_path / "s.jsonl", stop=stop, interrupt_timeout=0.5)

    result = asyncio.run(go())
    assert result.outcome is Outcome.INTERRUPTED and result.chunks_sent == 0
    assert result.t_terminate_sent is not None and result.t_terminate_sent < 1.0


@pytest.mark.parametrize("text, outcome", [
    ("Unauthorized Connection: Invalid API key. Generate a new one in your dashboard",
     Outcome.AUTH),
    ("Unauthorized Connection: Account balance is not accurate, contact support", Outcome.AUTH),
    ("Unauthorized Connection: Too many concurrent sessions", Outcome.REJECTED),
    ("Session rate limit exceeded", Outcome.REJECTED),
    ("Concurrency limit reached", Outcome.REJECTED),
])
def test_close_1008_is_a_rejected_key_unless_it_speaks_of_limits(text, outcome):
    """1008 means a bad key, or (some docs) too many sessions: only whole words about
    limits make it a back-off ("generate" or "accurate" contain "rate" but are no limit)."""
    from diareval.stream.session import AttemptResult, _classify
    result = AttemptResult(error_code=1008, error=f"Error 1008: {text}", close_code=1008,
                           close_reason=text)
    _classify(result, stopped=False)
    assert result.outcome is outcome
