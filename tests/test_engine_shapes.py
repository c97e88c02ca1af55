"""Issue 13, engine side: per-model message shapes and mid-session SpeakerRevisions.

The expected messages are worked out by hand from the documented shapes (PROTOCOL.md
"Update 2026-12": Universal-Streaming word times on an 80 ms grid with zero-length words
such as "my" 2560-2560; the U3 Pro message sequence: at most one partial per silence with
non-final words and ``utterance`` "", one formatted final with ``end_of_turn_confidence``
1.0; SpeakerRevision ``{"revisions": [{"turn_order", "speaker_label", "words"}]}``), not
from the oracle's own output.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
from pyannote.core import Annotation, Segment, Timeline

from diareval.datasets import Recording, ReferenceWord, load_folder
from diareval.server import messages as say
from diareval.server.engines import make_engine_factory
from diareval.server.engines.base import SessionParams
from diareval.server.engines.oracle import (OracleConfig, PlannedTurn, PlannedWord,
                                            shape_words)
from fixtures import write_synthetic_dataset

US, U3 = "universal-streaming-english", "u3-rt-pro"


def stream(engine, audio, chunk=1600):
    """(samples received, message) of every message, then the finish."""
    out = []
    for i in range(0, len(audio), chunk):
        out += [(min(i + chunk, len(audio)), m) for m in engine.feed(audio[i:i + chunk])]
    return out + [(len(audio), m) for m in engine.finish()]


@pytest.fixture(scope="module")
def worded(tmp_path_factory):
    """5 s of noise; speaker a says "one two" (0-0.8 s), a 500 ms pause, "three four"
    (1.3-2.0 s); speaker b says "five six" (3.0-4.0 s)."""
    path = tmp_path_factory.mktemp("worded") / "worded.wav"
    sf.write(path, np.random.default_rng(3).normal(0, 0.1, 5 * 16000), 16000, subtype="PCM_16")
    reference = Annotation(uri="worded")
    reference[Segment(0.0, 2.0)] = "a"
    reference[Segment(3.0, 4.0)] = "b"
    words = [ReferenceWord("a", 0.0, 0.4, "one"), ReferenceWord("a", 0.4, 0.8, "two"),
             ReferenceWord("a", 1.3, 1.7, "three"), ReferenceWord("a", 1.7, 2.0, "four"),
             ReferenceWord("b", 3.0, 3.5, "five"), ReferenceWord("b", 3.5, 4.0, "six")]
    return Recording(uri="worded", audio_path=path, reference=reference,
                     uem=Timeline([Segment(0, 5)]), words=words)


# --- the 80 ms grid and zero-length words -----------------------------------------------------

def test_family_grids():
    us = say.model_family(US)
    assert us.word_grid_ms == 80 and us.zero_length_words
    assert [us.on_grid(ms) for ms in (0, 39, 40, 130, 250, 1000, 2560)] == \
        [0, 0, 80, 160, 240, 1040, 2560]
    u3 = say.model_family("universal-3-5-pro")
    assert u3.word_grid_ms == 1 and not u3.zero_length_words and u3.on_grid(1234) == 1234


def test_shape_words_by_hand():
    turn = PlannedTurn("a", (PlannedWord(0, 130, "x"), PlannedWord(130, 250, "y"),
                             PlannedWord(400, 1000, "z")), 0.0)
    us, u3 = say.model_family(US), say.model_family(U3)

    def times(turns):
        return [(w.start, w.end) for w in turns[0].words]

    # on the grid: 130 -> 160, 250 -> 240, 1000 -> 1040
    assert times(shape_words([turn], us, OracleConfig(p_zero_length=0.0), "u")) == \
        [(0, 160), (160, 240), (400, 1040)]
    # every word that touches the next becomes zero-length; the next starts where it stood
    # ("y" ends at 240 and "z" starts at 400: it keeps its length)
    assert times(shape_words([turn], us, OracleConfig(p_zero_length=1.0), "u")) == \
        [(0, 0), (0, 240), (400, 1040)]
    assert shape_words([turn], u3, OracleConfig(p_zero_length=1.0), "u") == [turn]
    assert shape_words([turn], us, OracleConfig(exact_words=True), "u") == [turn]


def test_universal_streaming_words_on_the_grid_with_zero_length_words(worded):
    factory = make_engine_factory("oracle", recordings=[worded], uniform_p_wrong=0.0,
                                  p_unknown_short=0.0, p_zero_length=1.0)
    messages = [m for _, m in stream(factory(SessionParams(speaker_labels=True,
                                                           speech_model=US)),
                                     worded.load_audio())]
    finals = [m for m in messages if m["type"] == "Turn" and m["end_of_turn"]]
    # grid: 1300 -> 1280, 1700 -> 1680, 3000 -> 3040, 3500 -> 3520; then zero-length words
    assert [[(w["text"], w["start"], w["end"]) for w in m["words"]] for m in finals] == [
        [("one", 0, 0), ("two", 0, 800), ("three", 1280, 1280), ("four", 1280, 2000)],
        [("five", 3040, 3040), ("six", 3040, 4000)]]
    assert [m["speaker_label"] for m in finals] == ["A", "B"]
    assert all(w["speaker"] == m["speaker_label"] for m in finals for w in m["words"])
    sdk = pytest.importorskip("assemblyai.streaming.v3.models")
    for m in messages:  # the SDK parses zero-length words
        if m["type"] == "Turn":
            sdk.TurnEvent(**m)


def test_default_oracle_sends_some_zero_length_words_on_the_grid(tmp_path):
    recording = load_folder(write_synthetic_dataset(tmp_path, n_recordings=1, duration=60,
                                                    n_speakers=3, seed=5))[0]
    engine = make_engine_factory("oracle", recordings=[recording])(
        SessionParams(speaker_labels=True, speech_model=US))
    words = [w for _, m in stream(engine, recording.load_audio()) if m["type"] == "Turn"
             for w in m["words"]]
    assert all(w["start"] % 80 == 0 and w["end"] % 80 == 0 for w in words)
    zero = sum(w["start"] == w["end"] for w in words)
    assert 0 < zero < len(words) / 2


# --- the U3 Pro message sequence --------------------------------------------------------------

def test_u3_pro_sequence_by_hand(worded):
    factory = make_engine_factory("oracle", recordings=[worded], uniform_p_wrong=0.0,
                                  p_unknown_short=0.0)
    params = SessionParams(speaker_labels=True, speech_model="universal-3-5-pro")
    messages = [m for _, m in stream(factory(params), worded.load_audio())]
    assert [m["type"] for m in messages] == ["SpeechStarted", "Turn", "Turn",
                                             "SpeechStarted", "Turn"]
    started0, partial, final0, started1, final1 = messages
    assert started0["timestamp"] == 0 and started1["timestamp"] == 3000
    # the one partial of turn 0: after "two", where the 500 ms pause begins; words non-final,
    # no per-word speaker (final words only), utterance ""
    assert partial["turn_order"] == 0 and partial["end_of_turn"] is False
    assert partial["turn_is_formatted"] is False and partial["utterance"] == ""
    assert [(w["text"], w["start"], w["end"], w["word_is_final"]) for w in partial["words"]] == \
        [("one", 0, 400, False), ("two", 400, 800, False)]
    assert all("speaker" not in w for w in partial["words"])
    # one formatted final per turn, end_of_turn_confidence 1.0, words to the ms
    for final, order, texts in ((final0, 0, ["one", "two", "three", "four"]),
                                (final1, 1, ["five", "six"])):
        assert final["turn_order"] == order and final["end_of_turn"] is True
        assert final["turn_is_formatted"] is True and final["end_of_turn_confidence"] == 1.0
        assert [w["text"] for w in final["words"]] == texts
        assert all(w["word_is_final"] for w in final["words"])
        assert final["utterance"] == final["transcript"]
    assert [(w["start"], w["end"]) for w in final0["words"]] == \
        [(0, 400), (400, 800), (1300, 1700), (1700, 2000)]
    assert final0["transcript"] == "One two three four."
    assert set(partial) == say.turn_keys(params, False)
    assert set(final0) == say.turn_keys(params, True)


def test_language_detection_on_finals_only(worded):
    factory = make_engine_factory("oracle", recordings=[worded])
    params = SessionParams(speaker_labels=True, language_detection=True)
    turns = [m for _, m in stream(factory(params), worded.load_audio()) if m["type"] == "Turn"]
    assert any(not m["end_of_turn"] for m in turns)
    for m in turns:
        assert ("language_code" in m) == m["end_of_turn"]
        if m["end_of_turn"]:
            assert m["language_code"] == "en" and m["language_confidence"] == 1.0


# --- mid-session SpeakerRevisions --------------------------------------------------------------

@pytest.fixture(scope="module")
def conversations(tmp_path_factory):
    folder = write_synthetic_dataset(tmp_path_factory.mktemp("rev"), n_recordings=4,
                                     duration=60.0, n_speakers=4, seed=13)
    return load_folder(folder)


def _own_letters(engine) -> dict[str, str]:
    """Reference speaker -> the letter of its own label identity (the correct label)."""
    own = {}
    for d in engine.decisions:
        if d.home_identity is not None and engine.label_of(d.home_identity) is not None:
            own.setdefault(d.reference_speaker, engine.label_of(d.home_identity))
    return own


def _replay(engine, audio, interval_ms, chunk=1600):
    """Stream ``audio`` and check the mid-session revisions from the messages alone (and
    each turn's reference speaker). ``interval_ms`` * 16 is a multiple of ``chunk``, so each
    multiple of the interval is the end of a chunk, and that chunk's revision (if any) its
    last message. At each one: the eligible turns (final sent, label wrong, the speaker's
    own letter already shown) and the ones revised. Returns (eligible pairs, revised pairs)."""
    assert interval_ms * 16 % chunk == 0
    finals = iter(())
    speaker_of, current, shown = {}, {}, set()
    eligible = revised = 0
    for i in range(0, len(audio), chunk):
        messages = engine.feed(audio[i:i + chunk])
        received = min(i + chunk, len(audio))
        boundary = received % (interval_ms * 16) == 0 and engine.recording is not None
        revision = messages.pop() if messages and messages[-1]["type"] == "SpeakerRevision" \
            else None
        assert revision is None or boundary
        assert all(m["type"] != "SpeakerRevision" for m in messages)
        for m in messages:
            if m["type"] == "Turn" and m["end_of_turn"] and not m["turn_is_formatted"]:
                order = m["turn_order"]
                index = next(o_i for o, o_i, _ in engine._emitted if o == order)
                speaker_of[order] = engine._turn_decision[index].reference_speaker
                current[order] = m["speaker_label"]
            if m["type"] == "Turn":
                shown.add(m.get("speaker_label"))
        if not boundary:
            continue
        own = _own_letters(engine)
        candidates = {o for o, label in current.items()
                      if own.get(speaker_of[o]) in shown
                      and label not in (own.get(speaker_of[o]), "UNKNOWN", None)}
        entries = {r["turn_order"]: r for r in (revision["revisions"] if revision else [])}
        assert set(entries) <= candidates
        for order, entry in entries.items():
            # corrected to the speaker's own letter, on the turn and on every word
            assert entry["speaker_label"] == own[speaker_of[order]]
            assert all(w["speaker"] == entry["speaker_label"] for w in entry["words"])
            current[order] = entry["speaker_label"]
        eligible += len(candidates)
        revised += len(entries)
    engine.finish()
    return eligible, revised


def test_interval_revisions_arrive_mid_session_at_the_exposed_rate(conversations):
    interval, q = 5000, 0.5
    params = SessionParams(speaker_labels=True, speaker_labels_revision_interval_ms=interval)
    eligible = revised = 0
    for recording in conversations:
        factory = make_engine_factory("oracle", recordings=[recording], seed=4,
                                      uniform_p_wrong=0.5, p_unknown_short=0.0,
                                      p_interval_revision=q)
        engine = factory(params)
        e, r = _replay(engine, recording.load_audio(), interval)
        eligible, revised = eligible + e, revised + r
        records = [x for x in engine.revisions if x.kind == "interval"]
        assert len(records) == r and all(x.at_ms % interval == 0 for x in records)
    assert eligible > 40 and revised > 0
    assert abs(revised / eligible - q) < 3 * math.sqrt(q * (1 - q) / eligible) + 1e-9


def test_interval_revisions_q_one_corrects_at_once_and_q_zero_never(conversations):
    recording = conversations[0]
    params = SessionParams(speaker_labels=True, speaker_labels_revision_interval_ms=5000)
    audio = recording.load_audio()
    for q in (0.0, 1.0):
        engine = make_engine_factory("oracle", recordings=[recording], seed=4,
                                     uniform_p_wrong=0.5, p_unknown_short=0.0,
                                     p_interval_revision=q)(params)
        eligible, revised = _replay(engine, audio, 5000)
        assert eligible > 0 and revised == (eligible if q else 0)
    # 0 (and absent) = off: only what finish sends
    off = make_engine_factory("oracle", recordings=[recording], seed=4, uniform_p_wrong=0.5,
                              p_interval_revision=1.0)(
        SessionParams(speaker_labels=True, speaker_labels_revision_interval_ms=0))
    assert not any(m["type"] == "SpeakerRevision" for _, m in stream(off, audio))


def test_final_revision_only_lists_turns_still_wrong(conversations):
    recording = conversations[1]
    engine = make_engine_factory("oracle", recordings=[recording], seed=4, uniform_p_wrong=0.5,
                                 p_unknown_short=0.0, p_interval_revision=0.5,
                                 p_revision=1.0)(
        SessionParams(speaker_labels=True, speaker_labels_revision_interval_ms=10000))
    events = stream(engine, recording.load_audio())
    labels = {}
    for _, m in events:
        if m["type"] == "Turn" and m["end_of_turn"]:
            labels[m["turn_order"]] = m["speaker_label"]
        elif m["type"] == "SpeakerRevision":
            for entry in m["revisions"]:
                assert labels[entry["turn_order"]] != entry["speaker_label"]  # only changes
                labels[entry["turn_order"]] = entry["speaker_label"]
    kinds = {x.kind for x in engine.revisions}
    assert kinds == {"interval", "final"}
    # with every revision applied in arrival order, every turn has its speaker's own label
    own = _own_letters(engine)
    for order, index, _ in engine._emitted:
        speaker = engine._turn_decision[index].reference_speaker
        assert labels[order] == own[speaker]


# --- the vocabulary's per-family rules ----------------------------------------------------------

def test_vocabulary_u3_final_is_formatted_with_confidence_one_and_partials_say_utterance():
    params = SessionParams(speaker_labels=True, speech_model="universal-3-5-pro")
    word = say.word_message("hi", 0, 80, 0.9, False, "A")
    assert "speaker" not in word  # per-word speaker: final words only
    partial = say.turn_message(params, turn_order=0, words=[word], end_of_turn=False,
                               speaker_label="A")
    assert partial["utterance"] == "" and partial["transcript"] == ""
    final = say.turn_message(params, turn_order=0, words=[say.word_message("hi", 0, 80, 0.9,
                                                                           True, "A")],
                             end_of_turn=True, formatted=False, end_of_turn_confidence=0.6)
    assert final["turn_is_formatted"] is True and final["end_of_turn_confidence"] == 1.0
    us = SessionParams(speaker_labels=True, language_detection=True)
    final = say.turn_message(us, turn_order=0, words=[], end_of_turn=True,
                             end_of_turn_confidence=0.6)
    assert final["turn_is_formatted"] is False and final["end_of_turn_confidence"] == 0.6
    assert (final["language_code"], final["language_confidence"]) == ("en", 1.0)
    assert "utterance" not in say.turn_message(us, turn_order=0, words=[], end_of_turn=False)
    begin = say.begin_message(5, "x", say.session_configuration(params))
    assert begin == {"type": "Begin", "id": "x", "expires_at": 5,
                     "configuration": {"model": "universal-3-5-pro"}}
