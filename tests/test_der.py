"""DER/JER under explicit conventions: hand-worked examples (arithmetic in the comments)
and agreement with pyannote.metrics' own DiarizationErrorRate (collar converted to 2x)."""

from __future__ import annotations

import math

import pytest
from pyannote.core import Annotation, Segment, Timeline
from pyannote.metrics.diarization import DiarizationErrorRate, JaccardErrorRate

from diareval.errors import ConfigError
from diareval.score.der import Conventions, DERResult, der, jer


def annotation(*tracks) -> Annotation:
    result = Annotation(uri="x")
    for i, (start, end, label) in enumerate(tracks):
        result[Segment(start, end), i] = label
    return result


UEM22 = Timeline([Segment(0, 22)])
REF = annotation((0, 10, "A"), (10, 20, "B"))
HYP = annotation((0, 12, "1"), (12, 20, "2"), (20, 22, "3"))


def test_example1_no_collar():
    # ref A [0,10] B [10,20]; hyp 1 [0,12] 2 [12,20] 3 [20,22]; UEM [0,22].
    # co-occurrence 1-A 10, 1-B 2, 2-B 8 -> mapping 1->A, 2->B (18 s), 3 unmapped.
    # [0,10] A/1 correct 10; [10,12] B/1 confusion 2; [12,20] B/2 correct 8; [20,22] -/3 FA 2.
    # reference speech 20; DER = (0 miss + 2 FA + 2 conf) / 20 = 0.2
    result = der(REF, HYP, UEM22)
    assert (result.reference_speech, result.miss, result.false_alarm, result.confusion) == \
        pytest.approx((20, 0, 2, 2))
    assert result.der == pytest.approx(0.2)


def test_example2_collar_per_side():
    # collar 0.5 s per side (md-eval -c 0.5 = pyannote collar=1.0): remove [-0.5,0.5],
    # [9.5,10.5], [19.5,20.5] around the reference boundaries 0, 10, 20.
    # scored: [0.5,9.5] (A/1 correct 9), [10.5,12] (B/1 confusion 1.5),
    # [12,19.5] (B/2 correct 7.5), [20.5,22] (-/3 FA 1.5).
    # reference speech 9 + 1.5 + 7.5 = 18; DER = (1.5 + 1.5) / 18 = 1/6
    result = der(REF, HYP, UEM22, Conventions(collar=0.5))
    assert result.reference_speech == pytest.approx(18)
    assert result.confusion == pytest.approx(1.5)
    assert result.false_alarm == pytest.approx(1.5)
    assert result.der == pytest.approx(1 / 6)
    # the same number from pyannote.metrics itself, given the total width
    assert result.der == pytest.approx(
        DiarizationErrorRate(collar=1.0)(REF, HYP, uem=UEM22))
    # passing the per-side collar straight to pyannote would be wrong (a 0.25 s collar):
    assert result.der != pytest.approx(DiarizationErrorRate(collar=0.5)(REF, HYP, uem=UEM22))


def test_example3_overlap_scored_and_skipped():
    # ref A [0,10], B [5,12] (overlap [5,10]); hyp 1 [0,15]; UEM [0,15].
    # co-occurrence 1-A 10, 1-B 7 -> 1->A.
    # [0,5] A/1 correct 5; [5,10] A+B/1: NR=2 NH=1 -> correct 5 (A), miss 5;
    # [10,12] B/1(=A) confusion 2; [12,15] -/1 FA 3.
    # reference speech 5 + 2*5 + 2 = 17; errors 5 + 2 + 3 = 10 -> DER 10/17
    ref = annotation((0, 10, "A"), (5, 12, "B"))
    hyp = annotation((0, 15, "1"))
    uem = Timeline([Segment(0, 15)])
    scored = der(ref, hyp, uem)
    assert (scored.reference_speech, scored.miss, scored.false_alarm, scored.confusion) == \
        pytest.approx((17, 5, 3, 2))
    assert scored.der == pytest.approx(10 / 17)
    # overlap skipped (md-eval -1): [5,10] leaves the scored region: reference speech
    # 5 + 2 = 7, errors conf 2 + FA 3 = 5 -> 5/7
    skipped = der(ref, hyp, uem, Conventions(skip_overlap=True))
    assert skipped.der == pytest.approx(5 / 7)
    assert skipped.der == pytest.approx(
        DiarizationErrorRate(skip_overlap=True)(ref, hyp, uem=uem))


def test_example4_unknown_is_never_mapped():
    # ref A [0,10], B [10,20]; hyp 1 [0,10], unknown turn 5 over [10,22]; UEM [0,22].
    # A unique label alone would let the solver pair UNKNOWN#5 with B (DER 2/20).
    # Excluded from the mapping: 1->A only; [10,20] B/unknown confusion 10;
    # [20,22] -/unknown FA 2 -> DER 12/20 = 0.6.
    ref = REF
    hyp = annotation((0, 10, "1"), (10, 22, "UNKNOWN#5"))
    result = der(ref, hyp, UEM22)
    assert (result.confusion, result.false_alarm, result.unknown_speech) == \
        pytest.approx((10, 2, 12))
    assert result.der == pytest.approx(0.6)
    # what pyannote does with the unique label as an ordinary one (maps it to B):
    assert DiarizationErrorRate()(ref, hyp, uem=UEM22) == pytest.approx(0.1)
    # JER never penalises unpaired hypothesis speech: unknown speech counts for nothing,
    # B is unpaired -> JER(B) = 1, JER(A) = 0 -> mean 0.5
    assert jer(ref, hyp, UEM22).jer == pytest.approx(0.5)


def test_matches_pyannote_without_unknowns_many_cases():
    ref = annotation((0, 3, "a"), (2, 6, "b"), (5.5, 9, "c"), (9.5, 14, "a"), (12, 13, "b"))
    hyp = annotation((0.2, 2.5, "x"), (2.5, 5.8, "y"), (5.8, 10, "x"), (10, 14.5, "z"),
                     (11.5, 12.5, "y"))
    uem = Timeline([Segment(0.5, 13.7)])
    for collar in (0.0, 0.1, 0.25):
        for skip in (False, True):
            ours = der(ref, hyp, uem, Conventions(collar=collar, skip_overlap=skip))
            theirs = DiarizationErrorRate(collar=2 * collar, skip_overlap=skip)(
                ref, hyp, uem=uem, detailed=True)
            assert ours.reference_speech == pytest.approx(theirs["total"])
            assert ours.miss == pytest.approx(theirs["missed detection"])
            assert ours.false_alarm == pytest.approx(theirs["false alarm"])
            assert ours.confusion == pytest.approx(theirs["confusion"])
            assert jer(ref, hyp, uem, Conventions(collar=collar, skip_overlap=skip)).jer == \
                pytest.approx(JaccardErrorRate(collar=2 * collar, skip_overlap=skip)(
                    ref, hyp, uem=uem))


def test_results_add_time_weighted():
    a = DERResult(reference_speech=10, correct=8, miss=1, false_alarm=0, confusion=1, sessions=1)
    b = DERResult(reference_speech=30, correct=30, miss=0, false_alarm=3, confusion=0, sessions=1)
    total = sum([a, b])
    # (1 + 1 + 3) / 40, not the mean of 0.2 and 0.1
    assert total.der == pytest.approx(5 / 40)
    assert total.sessions == 2


def test_empty_reference_is_a_clear_result():
    result = der(Annotation(uri="x"), annotation((1, 3, "1")), Timeline([Segment(0, 5)]))
    assert result.reference_speech == 0 and result.false_alarm == pytest.approx(2)
    assert math.isnan(result.der) and "no reference speech" in result.note


def test_bad_conventions_are_errors():
    with pytest.raises(ConfigError):
        Conventions(collar=-1)
    with pytest.raises(ConfigError):
        Conventions(unknown="maybe")
    with pytest.raises(ConfigError):
        der(REF, HYP, None)
