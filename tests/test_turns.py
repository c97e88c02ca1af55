"""Per-turn and reference-segment tables and their breakdowns, on hand-worked sessions."""

from __future__ import annotations

import pandas as pd
import pytest
from pyannote.core import Annotation, Segment, Timeline

from diareval.score.der import Conventions, optimal_mapping
from diareval.score.hypothesis import Turn, Word, hypothesis_from_turns
from diareval.score.turns import (breakdown, overlap_bin, reference_segment_table, turn_table,
                                  word_count_bin)


def annotation(*tracks):
    result = Annotation(uri="s")
    for i, (start, end, label) in enumerate(tracks):
        result[Segment(start, end), i] = label
    return result


def make_turn(order, label, spans, t_audio=None):
    words = tuple(Word(text=f"w{i}", start=s, end=e) for i, (s, e) in enumerate(spans))
    return Turn(turn_order=order, label=label, words=words, transcript="", t_audio=t_audio or
                spans[-1][1] + 1.0, t_wall=spans[-1][1] + 1.1)


# reference: A [0,5], B [4,8] (overlap [4,5]), A [10,10.5], B [12,15]; UEM [0,16]
REFERENCE = annotation((0, 5, "A"), (4, 8, "B"), (10, 10.5, "A"), (12, 15, "B"))
UEM = Timeline([Segment(0, 16)])
TURNS = [
    make_turn(0, "S1", [(0, 1), (1, 2), (2.5, 3.5)]),  # A, 3 words, no overlap
    make_turn(1, "S2", [(4.5, 5.5), (5.5, 7.5)]),      # B; [4.5,5] overlapped: 0.5/3
    make_turn(2, "S2", [(10, 10.5)]),                  # A's speech labelled S2 (=B): wrong
    make_turn(3, None, [(12, 13)]),                    # unknown over B
    make_turn(4, "S1", [(20, 21)]),                    # outside the UEM
    make_turn(5, "S1", [(9, 9.5)]),                    # inside the UEM, nobody talks: phantom
]


@pytest.fixture
def table():
    hypothesis = hypothesis_from_turns(TURNS)
    # co-occurrence: S1-A 3 ([0,2], [2.5,3.5]); S2-A 1 ([4.5,5], [10,10.5]), S2-B 3
    # ([4.5,7.5]) -> S1->A, S2->B
    mapping = optimal_mapping(REFERENCE, hypothesis, UEM)
    assert mapping == {"S1": "A", "S2": "B"}
    return turn_table(TURNS, REFERENCE, UEM, mapping).set_index("turn_order")


def test_turn_rows(table):
    assert table.loc[0, ["word_count", "duration", "word_time"]].tolist() == [3, 3.5, 3.0]
    assert table.loc[0, "true_speaker"] == "A" and bool(table.loc[0, "correct"])
    # turn 1: A 0.5 s and B 3 s under its words -> B; overlap 0.5 of 3 s
    assert table.loc[1, "true_speaker"] == "B"
    assert table.loc[1, "overlap_ratio"] == pytest.approx(0.5 / 3)
    assert bool(table.loc[1, "correct"])
    assert table.loc[2, "true_speaker"] == "A" and table.loc[2, "mapped_label"] == "B"
    assert not bool(table.loc[2, "correct"])
    # unknown under the default policy: wrong, never mapped
    assert bool(table.loc[3, "unknown"]) and table.loc[3, "correct"] is not pd.NA
    assert not bool(table.loc[3, "correct"])
    # outside the UEM and phantom: correct undefined
    assert table.loc[4, "word_time"] == 0 and pd.isna(table.loc[4, "correct"])
    assert bool(table.loc[5, "phantom"]) and pd.isna(table.loc[5, "correct"])
    assert list(table["turn_index"]) == [1, 2, 3, 4, 5, 6]
    assert table.attrs["conventions"].startswith("collar 0 s per side")


def test_breakdown_by_word_count(table):
    result = breakdown(table.reset_index(), "word_count_bin").set_index("word_count_bin")
    # "1": turns 2 (wrong), 3 (unknown -> wrong), 4 and 5 (unscored) -> 0/2, unknown 1/4
    assert result.loc["1", ["n_turns", "n_scored", "n_correct", "n_unknown"]].tolist() == \
        [4, 2, 0, 1]
    assert result.loc["1", "accuracy"] == 0.0
    assert result.loc["1", "unknown_rate"] == 0.25
    assert result.loc["1", "phantom_rate"] == 0.5  # turns 4 and 5 have no true speaker
    assert result.loc["2", "accuracy"] == 1.0 and result.loc["3-5", "accuracy"] == 1.0
    assert list(result.index) == ["1", "2", "3-5"]  # empty buckets absent, in bucket order


def test_unknown_policies_change_correctness():
    hypothesis = hypothesis_from_turns(TURNS, unknown="nonspeech")
    mapping = optimal_mapping(REFERENCE, hypothesis, UEM)
    table = turn_table(TURNS, REFERENCE, UEM, mapping, Conventions(unknown="nonspeech"))
    assert pd.isna(table.set_index("turn_order").loc[3, "correct"])
    # as an ordinary label, UNKNOWN can be mapped (here to nobody else's speaker: B is S2's)
    hypothesis = hypothesis_from_turns(TURNS, unknown="label")
    mapping = optimal_mapping(REFERENCE, hypothesis, UEM, Conventions(unknown="label"))
    table = turn_table(TURNS, REFERENCE, UEM, mapping, Conventions(unknown="label"))
    assert not bool(table.set_index("turn_order").loc[3, "correct"])


def test_backchannel_tie_goes_to_its_own_speaker():
    # A talks over [0,10]; B's backchannel [4,4.5] is fully covered by both A and B.
    # Within 2 s around the turn A has 4.5 - 0.5 = 4 s more speech, B none -> B.
    reference = annotation((0, 10, "A"), (4, 4.5, "B"))
    turn = make_turn(0, "X", [(4, 4.5)])
    table = turn_table([turn], reference, Timeline([Segment(0, 10)]), {"X": "B"})
    assert table.loc[0, "true_speaker"] == "B" and bool(table.loc[0, "correct"])
    assert table.loc[0, "overlap_ratio"] == pytest.approx(1.0)


def test_reference_segments(table):
    hypothesis = hypothesis_from_turns(TURNS)
    segments = reference_segment_table(REFERENCE, hypothesis, UEM, {"S1": "A", "S2": "B"})
    rows = segments.set_index(["speaker", "start"])
    # A [0,5]: S1 covers [0,2] and [2.5,3.5] -> 3/5; B [4,8]: S2 covers [4.5,7.5] -> 3/4
    assert rows.loc[("A", 0.0), "correct_share"] == pytest.approx(0.6)
    assert rows.loc[("B", 4.0), "correct_share"] == pytest.approx(0.75)
    assert rows.loc[("A", 10.0), "correct_share"] == 0.0  # labelled S2
    assert rows.loc[("B", 12.0), "correct_share"] == 0.0  # unknown
    assert rows.loc[("B", 4.0), "overlap_ratio"] == pytest.approx(0.25)


def test_turn_label_follows_word_speakers():
    # words carry their own speakers: the turn's label is the one with most word time
    from diareval.score.turns import turn_label
    words = (Word("a", 0, 1, "B"), Word("b", 1, 1.5, "A"), Word("c", 1.5, 1.8, None))
    turn = Turn(turn_order=0, label="A", words=words, transcript="", t_audio=2, t_wall=2)
    # B 1.0 s; A 0.5 + 0.3 (the unlabelled word takes the turn's label) = 0.8 s -> B
    assert turn_label(turn) == "B"
    assert turn_label(Turn(0, "A", words[1:], "", 2, 2)) == "A"


def test_bins():
    assert [word_count_bin(n) for n in (1, 2, 3, 5, 6, 10, 11, 20, 21, 99)] == \
        ["1", "2", "3-5", "3-5", "6-10", "6-10", "11-20", "11-20", "21+", "21+"]
    assert [overlap_bin(r) for r in (0, 0.05, 0.1, 0.2, 0.3, 0.31, 1)] == \
        ["0", "<=10%", "<=10%", "10-30%", "10-30%", ">30%", ">30%"]
