"""The labelling floor: the hypothesis words with oracle speaker labels (hand-worked)."""

from __future__ import annotations

import pytest
from pyannote.core import Annotation, Segment, Timeline

from diareval.score import Conventions, der, oracle_labelled
from diareval.score.hypothesis import Turn, Word
from diareval.score.labelling_floor import NOBODY


def _reference():
    ref = Annotation(uri="r")
    ref[Segment(0, 2)] = "A"
    ref[Segment(2, 4)] = "B"
    return ref


def _turns():
    # w1 inside A; w2 overlaps A by 0.2 s and B by 0.6 s; w3 where nobody speaks.
    # The service labelled them all "X", and the second turn UNKNOWN.
    first = Turn(0, "X", (Word("w1", 0.5, 1.5, "X"), Word("w2", 1.8, 2.6, "X")), "w1 w2", 3.0, 3.0)
    second = Turn(1, "UNKNOWN", (Word("w3", 5.0, 6.0),), "w3", 6.5, 6.5)
    return [first, second]


def test_each_word_takes_the_reference_speaker_it_overlaps_most():
    hyp = oracle_labelled(_turns(), _reference(), uri="r")
    got = sorted((s.start, s.end, label) for s, _, label in hyp.itertracks(yield_label=True))
    assert got == [(0.5, 1.5, "A"), (1.8, 2.6, "B"), (5.0, 6.0, NOBODY)]


def test_floor_der_worked_by_hand():
    """UEM [0, 6], reference speech 4 s. Correct: A 0.5-1.5 (1.0) + B 2.0-2.6 (0.6).
    Confusion: "B" over A's 1.8-2.0 (0.2). Miss: 0-0.5, 1.5-1.8, 2.6-4 (2.2).
    False alarm: 5-6 (1.0). DER = (2.2 + 1.0 + 0.2) / 4 = 0.85."""
    result = der(_reference(), oracle_labelled(_turns(), _reference(), uri="r"),
                 Timeline([Segment(0, 6)], uri="r"), Conventions())
    assert result.reference_speech == pytest.approx(4.0)
    assert result.miss == pytest.approx(2.2)
    assert result.false_alarm == pytest.approx(1.0)
    assert result.confusion == pytest.approx(0.2)
    assert result.der == pytest.approx(0.85)


def test_turn_level_labels_the_whole_turn():
    hyp = oracle_labelled(_turns()[:1], _reference(), level="turn", uri="r")
    got = [(s.start, s.end, label) for s, _, label in hyp.itertracks(yield_label=True)]
    assert got == [(0.5, 2.6, "A")]  # A 1.5 s, B 0.6 s over [0.5, 2.6]
