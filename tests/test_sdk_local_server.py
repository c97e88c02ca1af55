"""The real ``assemblyai`` SDK (1.8.2) against the local server with the oracle engine.

The SDK silently drops a session whose messages it cannot parse (its reader thread dies on a
malformed Turn), so these tests check that every message arrives through the SDK's own
callbacks as a typed event.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from diareval.datasets import load_folder
from diareval.server import LocalServer
from diareval.server.engines import make_engine_factory
from fixtures import write_synthetic_dataset

sdk = pytest.importorskip("assemblyai.streaming.v3")


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    folder = write_synthetic_dataset(tmp_path_factory.mktemp("syn"), n_recordings=2,
                                     duration=40.0, n_speakers=3, seed=7)
    return load_folder(folder)


def _chunks(audio: np.ndarray, samples: int = 1600):
    for i in range(0, len(audio), samples):
        chunk = audio[i:i + samples]
        if len(chunk) < 800:  # the server rejects chunks under 50 ms: pad the tail
            chunk = np.concatenate([chunk, np.zeros(800 - len(chunk), np.int16)])
        yield chunk.tobytes()


def _stream_with_sdk(server, audio, api_key="test-key", **params):
    events: dict[str, list] = {"begin": [], "turn": [], "termination": [], "error": [],
                               "revision": []}
    done = threading.Event()
    client = sdk.StreamingClient(sdk.StreamingClientOptions(api_key=api_key,
                                                            api_host=server.url))
    client.on(sdk.StreamingEvents.Begin, lambda c, e: events["begin"].append(e))
    client.on(sdk.StreamingEvents.Turn, lambda c, e: events["turn"].append(e))
    client.on(sdk.StreamingEvents.SpeakerRevision, lambda c, e: events["revision"].append(e))

    def on_termination(c, e):
        events["termination"].append(e)
        done.set()

    def on_error(c, e):
        events["error"].append(e)
        done.set()

    client.on(sdk.StreamingEvents.Termination, on_termination)
    client.on(sdk.StreamingEvents.Error, on_error)
    client.connect(sdk.StreamingParameters(**params))
    if not events["error"]:
        client.stream(_chunks(audio))
    client.disconnect(terminate=True)
    return events


def test_sdk_receives_begin_turns_with_speaker_labels_and_termination(recordings):
    recording = recordings[1]
    factory = make_engine_factory("oracle", recordings=recordings, seed=0)
    server = LocalServer(factory, api_keys=("test-key",), lookahead_seconds=300.0)
    with server.running_in_thread():
        events = _stream_with_sdk(server, recording.load_audio(), sample_rate=16000,
                                  speech_model="universal-streaming-english",
                                  speaker_labels=True, max_speakers=2)
    assert events["error"] == []
    assert len(events["begin"]) == 1 and len(events["begin"][0].id) == 36
    assert len(events["termination"]) == 1
    assert events["termination"][0].audio_duration_seconds == round(recording.duration)
    session = server.sessions[0]
    # Every Turn the server sent reached the SDK's callback, parsed (none silently dropped).
    sent_turns = [m for m in session.sent_messages if m["type"] == "Turn"]
    assert len(events["turn"]) == len(sent_turns) > 0
    finals = [t for t in events["turn"] if t.end_of_turn]
    assert len(finals) >= 3
    labels = {t.speaker_label for t in finals}
    assert labels - {"UNKNOWN"} <= {"A", "B"}  # max_speakers=2, letters only
    assert not labels & set(recording.speakers)  # never reference names
    for turn in finals:
        assert turn.words and all(w.word_is_final for w in turn.words)
        assert all(w.speaker == turn.speaker_label for w in turn.words)
        # Universal-Streaming words sit on an 80 ms grid and some are zero-length (issue 13:
        # the spec's "my" 2560-2560; this used to be start < end)
        assert all(isinstance(w.start, int) and w.start <= w.end for w in turn.words)
        assert all(w.start % 80 == 0 and w.end % 80 == 0 for w in turn.words)
    # The SDK sent its parameters as it always does (booleans as True/False) and they parsed.
    assert session.params.speaker_labels is True and session.params.max_speakers == 2
    assert session.params.speech_model == "universal-streaming-english"
    assert session.close_code == 1000


def test_sdk_gets_an_error_for_a_bad_key(recordings):
    factory = make_engine_factory("oracle", recordings=recordings)
    server = LocalServer(factory, api_keys=("test-key",))
    with server.running_in_thread():
        events = _stream_with_sdk(server, recordings[0].load_audio(), api_key="wrong-key",
                                  sample_rate=16000, speaker_labels=True)
    assert events["begin"] == [] and events["turn"] == []
    assert len(events["error"]) == 1
    assert events["error"][0].code == 1008
    assert "Unauthorized" in str(events["error"][0])
    assert server.sessions[0].close_code == 1008


def test_sdk_gets_an_http_401_when_configured(recordings):
    factory = make_engine_factory("oracle", recordings=recordings)
    server = LocalServer(factory, api_keys=("test-key",), auth_rejection="http")
    with server.running_in_thread():
        events = _stream_with_sdk(server, recordings[0].load_audio(), api_key="wrong-key",
                                  sample_rate=16000)
    assert [e.code for e in events["error"]] == [401]
    assert server.sessions[0].http_status == 401


def test_sdk_sees_speaker_revision(recordings):
    factory = make_engine_factory("oracle", recordings=recordings, seed=2,
                                  uniform_p_wrong=0.5, p_revision=1.0, p_unknown_short=0.0)
    server = LocalServer(factory, api_keys=None)
    with server.running_in_thread():
        events = _stream_with_sdk(server, recordings[0].load_audio(), api_key="anything",
                                  sample_rate=16000, speaker_labels=True)
    assert events["error"] == []
    assert len(events["revision"]) == 1
    revised = {r.turn_order: r.speaker_label for r in events["revision"][0].revisions}
    finals = {t.turn_order: t.speaker_label for t in events["turn"] if t.end_of_turn}
    assert revised and all(finals[order] != label for order, label in revised.items())


def test_sdk_parses_u3_pro_messages_and_formatted_turns(recordings):
    factory = make_engine_factory("oracle", recordings=recordings, seed=1)
    server = LocalServer(factory, api_keys=("test-key",), lookahead_seconds=None)
    with server.running_in_thread():
        u3 = _stream_with_sdk(server, recordings[0].load_audio(), sample_rate=16000,
                              speech_model="u3-rt-pro", speaker_labels=True)
        formatted = _stream_with_sdk(server, recordings[0].load_audio(), sample_rate=16000,
                                     speech_model="universal-streaming-english",
                                     speaker_labels=True, format_turns=True,
                                     keyterms_prompt=["alpha", "beta"], min_turn_silence=300)
    assert u3["error"] == [] and formatted["error"] == []
    assert len(u3["termination"]) == len(formatted["termination"]) == 1
    assert u3["turn"] and all(t.turn_is_formatted for t in u3["turn"] if t.end_of_turn)
    sent = server.sessions[0].sent_messages
    assert any(m["type"] == "SpeechStarted" for m in sent)
    formatted_finals = [t for t in formatted["turn"] if t.end_of_turn and t.turn_is_formatted]
    assert formatted_finals and all(t.transcript.endswith(".") for t in formatted_finals)
    params = server.sessions[1].params
    assert params.keyterms_prompt == ("alpha", "beta") and params.min_turn_silence == 300


def test_async_sdk_client_with_force_endpoint_and_set_params(recordings):
    import asyncio

    factory = make_engine_factory("oracle", recordings=recordings, seed=3)
    audio = recordings[1].load_audio()

    async def main(server):
        events = {"turn": [], "termination": [], "error": []}
        client = sdk.AsyncStreamingClient(sdk.StreamingClientOptions(api_key="test-key",
                                                                     api_host=server.url))
        client.on(sdk.StreamingEvents.Turn, lambda c, e: events["turn"].append(e))
        client.on(sdk.StreamingEvents.Termination,
                  lambda c, e: events["termination"].append(e))
        client.on(sdk.StreamingEvents.Error, lambda c, e: events["error"].append(e))
        await client.connect(sdk.StreamingParameters(sample_rate=16000, speaker_labels=True))
        half = len(audio) // 2
        await client.stream(list(_chunks(audio[:half])))
        await client.force_endpoint()
        await client.set_params(sdk.StreamingSessionParameters(max_turn_silence=2000))
        await client.stream(list(_chunks(audio[half:])))
        await client.disconnect(terminate=True)
        return events

    async def run_all():
        async with LocalServer(factory, api_keys=("test-key",), lookahead_seconds=None) as srv:
            return srv, await main(srv)

    server, events = asyncio.run(run_all())
    assert events["error"] == [] and len(events["termination"]) == 1
    finals = [t for t in events["turn"] if t.end_of_turn]
    assert [t.turn_order for t in finals] == list(range(len(finals))) and len(finals) > 3
    received = server.sessions[0].received_messages
    assert {"type": "ForceEndpoint"} in received
    assert {"type": "UpdateConfiguration", "max_turn_silence": 2000} in received


def test_sdk_gets_speaker_revisions_mid_session_with_universal_3_5_pro(recordings):
    """Issue 13's acceptance test: the SDK 1.8.2 ``StreamingParameters`` has
    ``speaker_labels_revision_interval_ms`` (int, ge=0) and sends it in the query; the local
    server sends SpeakerRevision messages during the session, which reach the SDK's
    callback while audio is still being streamed."""
    import time

    assert "speaker_labels_revision_interval_ms" in sdk.StreamingParameters.model_fields
    recording = recordings[0]
    factory = make_engine_factory("oracle", recordings=recordings, seed=4, uniform_p_wrong=0.5,
                                  p_unknown_short=0.0, p_interval_revision=1.0)
    server = LocalServer(factory, api_keys=None)
    progress = {"sent": 0}
    chunks = list(_chunks(recording.load_audio()))

    def paced():  # about 8x real time: 100 ms chunks every 12.5 ms
        for chunk in chunks:
            time.sleep(0.0125)
            progress["sent"] += 1
            yield chunk

    events: dict[str, list] = {"revision": [], "turn": [], "error": [], "termination": []}
    at_revision: list[int] = []

    def on_revision(c, e):
        events["revision"].append(e)
        at_revision.append(progress["sent"])

    with server.running_in_thread():
        client = sdk.StreamingClient(sdk.StreamingClientOptions(api_key="anything",
                                                                api_host=server.url))
        client.on(sdk.StreamingEvents.Turn, lambda c, e: events["turn"].append(e))
        client.on(sdk.StreamingEvents.Error, lambda c, e: events["error"].append(e))
        client.on(sdk.StreamingEvents.Termination,
                  lambda c, e: events["termination"].append(e))
        client.on(sdk.StreamingEvents.SpeakerRevision, on_revision)
        client.connect(sdk.StreamingParameters(
            sample_rate=16000, speech_model="universal-3-5-pro", speaker_labels=True,
            speaker_labels_revision_interval_ms=5000))
        client.stream(paced())
        client.disconnect(terminate=True)
    assert events["error"] == [] and len(events["termination"]) == 1
    session = server.sessions[0]
    assert session.query["speaker_labels_revision_interval_ms"] == "5000"
    assert session.params.revision_interval_ms == 5000
    sent = [m for m in session.sent_messages if m["type"] == "SpeakerRevision"]
    assert len(events["revision"]) == len(sent) >= 2
    # mid-session: while chunks were still to be sent
    assert at_revision[0] < len(chunks)
    finals = {t.turn_order: t for t in events["turn"] if t.end_of_turn}
    assert all(t.turn_is_formatted and t.end_of_turn_confidence == 1.0 for t in finals.values())
    for event in events["revision"]:
        assert event.revisions
        for item in event.revisions:
            assert item.turn_order in finals  # only turns already sent
            assert all(w.speaker == item.speaker_label for w in item.words)
