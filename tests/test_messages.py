"""The shared message vocabulary (``diareval.server.messages``) and the oracle speaking through it.

The baseline's Turn keys are checked in test_baseline.py (it needs the models).
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import websockets

from diareval.constants import SAMPLE_RATE, UNKNOWN, WORD_COUNT_BINS, word_count_bin_index
from diareval.errors import ConfigError
from diareval.server import LocalServer
from diareval.server import messages as say
from diareval.server import protocol as proto
from diareval.server.engines import make_engine_factory
from diareval.server.engines.base import Engine, SessionParams

U3 = "u3-rt-pro"
US = "universal-streaming-english"


def test_labels_run_a_to_z_then_two_letters():
    assert [say.label(i) for i in (0, 1, 25, 26, 27, 51, 52, 701, 702)] == \
        ["A", "B", "Z", "AA", "AB", "AZ", "BA", "ZZ", "AAA"]
    assert len({say.label(i) for i in range(2000)}) == 2000
    with pytest.raises(ValueError):
        say.label(-1)


def test_speaker_letters_are_given_in_order_of_first_use():
    letters = say.SpeakerLetters()
    assert [letters(g) for g in (7, 3, 7, 0)] == ["A", "B", "A", "C"]
    assert letters.get(3) == "B" and letters.get(99) is None and len(letters) == 3
    many = say.SpeakerLetters()
    assert [many(i) for i in range(28)][-3:] == ["Z", "AA", "AB"]


def test_every_sdk_model_has_a_family_decided_by_the_table():
    sdk = pytest.importorskip("assemblyai.streaming.v3.models")
    assert {m.value for m in sdk.SpeechModel} <= set(say.MODEL_FAMILIES)
    assert proto.SPEECH_MODELS == say.SPEECH_MODELS == tuple(say.MODEL_FAMILIES)
    u3 = [m for m, f in say.MODEL_FAMILIES.items() if f is say.U3_PRO]
    assert set(u3) == {"u3-rt-pro", "u3-rt-pro-beta-1", "u3-pro", "universal-3-5-pro",
                       "universal-3-6", "universal-3-6-pro"}
    for model in say.SPEECH_MODELS:
        params = SessionParams(speech_model=model)
        assert params.family is say.model_family(model)
        assert params.is_u3_pro == (model in u3)
        assert params.effective_min_turn_silence == (100 if model in u3 else 400)
        assert params.effective_max_turn_silence == (1000 if model in u3 else 1280)
    with pytest.raises(ConfigError, match="'nano' is not known"):
        say.model_family("nano")


def test_shared_constants():
    assert SAMPLE_RATE == 16000 and UNKNOWN == "UNKNOWN"
    assert [b[2] for b in WORD_COUNT_BINS] == ["1", "2", "3-5", "6-10", "11-20", "21+"]
    assert [word_count_bin_index(n) for n in (0, 1, 2, 3, 5, 6, 10, 11, 20, 21, 500)] == \
        [None, 0, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    from diareval.datasets.audio import SAMPLE_RATE as audio_rate
    from diareval.score.turns import WORD_COUNT_BINS as score_bins
    assert audio_rate is SAMPLE_RATE and score_bins is WORD_COUNT_BINS


@pytest.mark.parametrize("model", [U3, US])
@pytest.mark.parametrize("labels", [True, False])
def test_turn_message_has_the_keys_of_its_family(model, labels):
    params = SessionParams(speech_model=model, speaker_labels=labels)
    words = [say.word_message("hi", 0, 80, 0.912345, True, "A"),
             say.word_message("there", 80, 80, 0.5, False)]
    partial = say.turn_message(params, turn_order=3, words=words, end_of_turn=False,
                               speaker_label="A")
    assert set(partial) == say.turn_keys(params, False)
    assert partial["transcript"] == "hi" and partial["turn_order"] == 3
    assert words[0] == {"text": "hi", "start": 0, "end": 80, "confidence": 0.9123,
                        "word_is_final": True, "speaker": "A"}
    assert "speaker" not in words[1]
    final = say.turn_message(params, turn_order=3, words=words[:1], end_of_turn=True,
                             formatted=True, end_of_turn_confidence=1, transcript="Hi.")
    assert set(final) == say.turn_keys(params, True)
    assert final["utterance"] == "Hi." and final["turn_is_formatted"] is True
    assert isinstance(final["end_of_turn_confidence"], float)
    assert ("speaker_label" in final) == labels and final.get("speaker_label") is None
    assert "utterance" in say.turn_keys(params, True)
    assert ("speaker_label" in say.turn_keys(params, False)) == labels


def test_speaker_revision_and_speech_started():
    word = say.word_message("hi", 0, 80, 0.9, True, "B")
    message = say.speaker_revision([say.revision_entry(2, "B", [word])])
    assert message == {"type": "SpeakerRevision",
                       "revisions": [{"turn_order": 2, "speaker_label": "B", "words": [word]}]}
    assert say.speech_started(np.int64(1230), np.float32(0.87654)) == \
        {"type": "SpeechStarted", "timestamp": 1230, "confidence": 0.877}
    assert proto.dumps(say.speech_started(np.int64(5), 0.5))  # plain JSON types


def test_apply_update_reads_both_names_and_ignores_other_keys():
    params = SessionParams()
    assert say.apply_update(params, {"vad_threshold": 0.3, "max_turn_silence": None}) is params
    updated = say.apply_update(params, {"min_end_of_turn_silence_when_confident": 300,
                                        "max_turn_silence": 2000, "format_turns": True,
                                        "end_of_turn_confidence_threshold": 0.7,
                                        "keyterms_prompt": ["diareval"]})
    assert (updated.min_turn_silence, updated.max_turn_silence) == (300, 2000)
    assert updated.format_turns is True and updated.end_of_turn_confidence_threshold == 0.7
    assert updated.keyterms_prompt == ("diareval",)
    both = say.apply_update(params, {"min_end_of_turn_silence_when_confident": 300,
                                     "min_turn_silence": 500})
    assert both.min_turn_silence == 500  # the current name wins


@pytest.mark.parametrize("changes, needle", [
    ({"min_turn_silence": "500"}, "min_turn_silence must be an integer >= 0"),
    ({"max_turn_silence": -1}, "max_turn_silence must be an integer >= 0"),
    ({"max_turn_silence": True}, "max_turn_silence must be an integer >= 0"),
    ({"end_of_turn_confidence_threshold": 1.5}, "end_of_turn_confidence_threshold must be"),
    ({"format_turns": "yes"}, "format_turns must be true or false"),
    ({"keyterms_prompt": "a"}, "keyterms_prompt must be a list"),
])
def test_check_update_rejects_bad_values(changes, needle):
    with pytest.raises(proto.ProtocolError, match=needle) as info:
        proto.check_update({"type": "UpdateConfiguration", **changes})
    assert info.value.code == proto.INVALID_MESSAGE
    assert proto.check_update({"type": "UpdateConfiguration", "max_turn_silence": 900,
                               "vad_threshold": 0.4}) == {"max_turn_silence": 900,
                                                           "vad_threshold": 0.4}


class _UpdateEngine(Engine):
    def __init__(self, params):
        super().__init__(params)
        self.updates = []

    def feed(self, pcm):
        return []

    def update_configuration(self, changes):
        self.updates.append(changes)
        return []

    def finish(self):
        return []


def test_server_answers_a_bad_update_with_error_3006():
    engines = []

    def factory(params):
        engines.append(_UpdateEngine(params))
        return engines[-1]

    async def main():
        async with LocalServer(factory, api_keys=("k",)) as srv:
            ws = await websockets.connect(f"{srv.url}/v3/ws?sample_rate=16000",
                                          additional_headers={"Authorization": "k"})
            await ws.recv()  # Begin
            await ws.send(json.dumps({"type": "UpdateConfiguration", "max_turn_silence": 900}))
            await ws.send(json.dumps({"type": "UpdateConfiguration", "max_turn_silence": "x"}))
            frames = []
            try:
                while True:
                    frames.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
            except websockets.ConnectionClosed as exc:
                return frames, exc.rcvd.code

    frames, code = asyncio.run(asyncio.wait_for(main(), 30))
    assert code == 3006 and frames[-1]["type"] == "Error" and frames[-1]["error_code"] == 3006
    assert "max_turn_silence must be an integer" in frames[-1]["error"]
    assert engines[0].updates == [{"max_turn_silence": 900}]


# --- the oracle speaks through the vocabulary ----------------------------------------------------

@pytest.fixture(scope="module")
def oracle_recordings(tmp_path_factory):
    """One 20 s recording of noise: speakers s1, s2, s3 take turns (s2 and s3 overlap once);
    s2's last turn has a 0.2 s pause (under the oracle's merge gap), where the U3 Pro family
    sends its partial."""
    import soundfile as sf
    from pyannote.core import Annotation, Segment, Timeline

    from diareval.datasets import Recording

    path = tmp_path_factory.mktemp("oracle-vocab") / "conv.wav"
    rng = np.random.default_rng(5)
    sf.write(str(path), (rng.normal(0, 2000, 20 * SAMPLE_RATE)).astype(np.int16), SAMPLE_RATE)
    reference = Annotation(uri="conv")
    for start, end, speaker in ((0.5, 3.0, "s1"), (3.5, 4.5, "s1"), (5.5, 9.0, "s2"),
                                (8.5, 12.0, "s3"), (13.0, 13.6, "s1"), (14.0, 16.0, "s2"),
                                (16.2, 19.0, "s2")):
        reference[Segment(start, end)] = speaker
    return [Recording("conv", path, reference, Timeline([Segment(0, 20)]))]


def _stream(engine, audio, chunk=800):
    messages = []
    for i in range(0, len(audio), chunk):
        messages += engine.feed(audio[i:i + chunk])
    return messages + engine.finish()


@pytest.mark.parametrize("model", [U3, US])
def test_oracle_turns_have_exactly_the_keys_of_their_family(oracle_recordings, model):
    recording = oracle_recordings[0]
    factory = make_engine_factory("oracle", recordings=oracle_recordings, p_revision=1.0,
                                  uniform_p_wrong=0.5)
    for labels in (True, False):
        params = SessionParams(speech_model=model, speaker_labels=labels, format_turns=True)
        messages = _stream(factory(params), recording.load_audio())
        turns = [m for m in messages if m["type"] == "Turn"]
        assert any(m["end_of_turn"] for m in turns) and any(not m["end_of_turn"] for m in turns)
        for m in turns:
            assert set(m) == say.turn_keys(params, m["end_of_turn"]), m
            for w in m["words"]:
                expected = {"text", "start", "end", "confidence", "word_is_final"}
                if labels and w["word_is_final"]:
                    expected.add("speaker")
                assert set(w) == expected
        assert any(m["type"] == "SpeechStarted" for m in messages) == (model == U3)
        if labels:
            revisions = [m for m in messages if m["type"] == "SpeakerRevision"]
            assert revisions and set(revisions[0]) == {"type", "revisions"}
            assert all(set(r) == {"turn_order", "speaker_label", "words"}
                       for r in revisions[0]["revisions"])
