"""SpeakerRevision and word shapes as documented, hand-worked (issue 13, items 1 and 3).

Messages come from the installed SDK's models (``assemblyai.streaming.v3.models``): the
nested ``SpeakerRevisionEvent``/``SpeakerRevisionItem`` (``words`` defaults to ``[]``), the
earlier flat per-turn form, and Universal-Streaming words on the 80 ms grid with zero-length
words (the API spec's own example has "my" 2560-2560 and "is" 2720-2720).
"""

from __future__ import annotations

import pytest
from assemblyai.streaming.v3.models import (SpeakerRevisionEvent, SpeakerRevisionItem, TurnEvent,
                                            Word)
from pyannote.core import Annotation, Segment, Timeline

from diareval.datasets.recording import Recording
from diareval.score import score_session
from diareval.score.der import der
from diareval.score.hypothesis import hypothesis_from_log, session_turns
from diareval.sessionlog import LogLine


def turn(order, label, words, final=True):
    """``words`` = (text, start ms, end ms, speaker or None)."""
    return TurnEvent(type="Turn", turn_order=order, turn_is_formatted=final, end_of_turn=final,
                     transcript=" ".join(w[0] for w in words), end_of_turn_confidence=1.0,
                     words=[Word(text=t, start=s, end=e, confidence=0.9, word_is_final=final,
                                 speaker=sp) for t, s, e, sp in words],
                     speaker_label=label).model_dump(mode="json")


def log_of(messages):
    return [LogLine("recv", t, t, m) for t, m in messages]


@pytest.fixture
def meeting():
    """spk1 talks 0-3 s, spk2 3-4 s; the service labels both turns A, per word too."""
    reference = Annotation(uri="m")
    reference[Segment(0, 3)] = "spk1"
    reference[Segment(3, 4)] = "spk2"
    uem = Timeline([Segment(0, 4)], uri="m")
    messages = [
        (3.2, turn(0, "A", [("so", 0, 1500, "A"), ("yes", 1500, 3000, "A")])),
        (4.2, turn(1, "A", [("and", 3000, 3500, "A"), ("then", 3500, 4000, "A")])),
    ]
    return reference, uem, messages


def der_of(messages, reference, uem, revisions=True):
    return der(reference, hypothesis_from_log(log_of(messages), revisions=revisions), uem).der


def test_an_empty_words_revision_relabels_the_turn_and_its_words(meeting):
    reference, uem, messages = meeting
    # unrevised: A -> spk1, turn 1 (1 s of spk2) confused: DER 1/4
    assert der_of(messages, reference, uem) == pytest.approx(0.25)
    item = SpeakerRevisionItem(turn_order=1, speaker_label="B")
    assert item.words == []  # the SDK's default, as its own unit test sends it
    message = SpeakerRevisionEvent(revisions=[item]).model_dump(mode="json")
    revised = messages + [(4.6, message)]
    # the per-word speaker "A" must not outlive the revision: B -> spk2, DER 0
    assert der_of(revised, reference, uem) == pytest.approx(0.0)
    assert der_of(revised, reference, uem, revisions=False) == pytest.approx(0.25)
    turn1 = session_turns(log_of(revised)).turns[1]
    assert turn1.label == "B" and {w.speaker for w in turn1.words} == {"B"}
    assert turn1.original_label == "A" and turn1.revised_at == 4.6


def test_a_flat_revision_is_read_too(meeting):
    reference, uem, messages = meeting
    flat = {"type": "SpeakerRevision", "turn_order": 1, "speaker_label": "B", "words": []}
    assert der_of(messages + [(4.6, flat)], reference, uem) == pytest.approx(0.0)


def test_a_revision_with_words_replaces_the_words(meeting):
    reference, uem, messages = meeting
    reference = Annotation(uri="m")
    reference[Segment(0, 3.5)] = "spk1"
    reference[Segment(3.5, 4)] = "spk2"
    # turn 1's second word changes speaker: the words carry it, the turn label stays A
    words = [Word(text="and", start=3000, end=3500, confidence=0.9, word_is_final=True,
                  speaker="A"),
             Word(text="then", start=3500, end=4000, confidence=0.9, word_is_final=True,
                  speaker="B")]
    message = SpeakerRevisionEvent(revisions=[SpeakerRevisionItem(
        turn_order=1, speaker_label="A", words=words)]).model_dump(mode="json")
    assert der_of(messages, reference, uem) == pytest.approx(0.5 / 4)
    assert der_of(messages + [(4.6, message)], reference, uem) == pytest.approx(0.0)


def test_revisions_apply_in_arrival_order_and_unknown_turns_are_counted(meeting):
    reference, uem, messages = meeting
    to_b = SpeakerRevisionEvent(revisions=[SpeakerRevisionItem(turn_order=1, speaker_label="B")])
    to_a = SpeakerRevisionEvent(revisions=[SpeakerRevisionItem(turn_order=1, speaker_label="A"),
                                           SpeakerRevisionItem(turn_order=9, speaker_label="C")])
    # mid-session B (right), then A (wrong), then the final one B again
    log = messages + [(60.0, to_b.model_dump(mode="json")), (120.0, to_a.model_dump(mode="json")),
                      (180.0, to_b.model_dump(mode="json"))]
    assert der_of(log, reference, uem) == pytest.approx(0.0)
    # the later revision overrides the earlier one
    assert der_of(log[:-1], reference, uem) == pytest.approx(0.25)
    session = session_turns(log_of(log))
    assert session.turns[1].revised_at == 180.0
    assert session.revision_unmatched == (9,)
    assert any("never finalised" in w and "9" in w for w in session.warnings)
    recording = Recording(uri="m", audio_path="m.wav", reference=reference, uem=uem)
    summary = score_session(log_of(log), recording).summary
    assert summary["revision_entries_unmatched"] == 1 and summary["revised_turns"] == 1
    assert "never finalised" in summary["note"]


def test_a_revision_that_arrives_before_its_turns_final_is_superseded(meeting):
    reference, uem, messages = meeting
    early = SpeakerRevisionEvent(revisions=[SpeakerRevisionItem(turn_order=1, speaker_label="B")])
    log = [messages[0], (4.0, early.model_dump(mode="json")), messages[1]]
    session = session_turns(log_of(log))
    assert session.revision_superseded == 1 and session.turns[1].label == "A"
    assert der_of(log, reference, uem) == pytest.approx(0.25)


def test_zero_length_and_grid_words_count_as_words_and_add_no_time():
    # spk1 talks 0-2.4 s, spk2 2.4-4.0 s; words on the 80 ms grid, "my" and "is" zero-length
    # (the spec's example), and a one-word turn "mm" with zero length inside spk2's speech
    reference = Annotation(uri="z")
    reference[Segment(0, 2.4)] = "spk1"
    reference[Segment(2.4, 4.0)] = "spk2"
    uem = Timeline([Segment(0, 4.0)], uri="z")
    log = log_of([
        (2.6, turn(0, "A", [("hello", 0, 800, None), ("there", 800, 2400, None)])),
        (4.1, turn(1, "B", [("my", 2560, 2560, None), ("is", 2720, 2720, None),
                            ("Sam", 2720, 4000, None)])),
        (4.3, turn(2, "A", [("mm", 3200, 3200, None)])),
    ])
    hypothesis = hypothesis_from_log(log)
    assert all(segment.duration > 0 for segment in hypothesis.itersegments())
    # hypothesis speech: A 0-2.4, B 2.72-4.0; only 2.4-2.72 missed: DER 0.32 / 4
    recording = Recording(uri="z", audio_path="z.wav", reference=reference, uem=uem)
    scores = score_session(log, recording)
    assert scores.summary["der"] == pytest.approx(0.32 / 4)
    turns = scores.tables["turns"].set_index("turn_order")
    assert list(turns["word_count"]) == [2, 3, 1]
    # the zero-length-only turn is judged at its instant (spk2 talks at 3.2 s): A is wrong
    assert turns.loc[2, "word_time"] == 0.0 and not turns.loc[2, "phantom"]
    assert turns.loc[2, "true_speaker"] == "spk2" and turns.loc[2, "correct"] == False  # noqa
    assert bool(turns.loc[1, "correct"]) and bool(turns.loc[0, "correct"])
