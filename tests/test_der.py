"""DER/JER under explicit conventions: hand-worked examples (arithmetic in the comments),
agreement with pyannote.metrics (collar converted to 2x) and numbers from md-eval-22.pl.

md-eval-22.pl (NIST, as shipped in nryant/dscore ``scorelib/md-eval-22.pl``) was run by
hand on this machine (``perl md-eval-22.pl -af -r REF -s SYS -c C -u UEM [-1]``); it is
not vendored, so its outputs are recorded below as numbers. Checked:

- dscore's public fixture ``scorelib/tests/{ref,sys}.rttm`` (FILE1, UEM = [0, 41.046]):
  md-eval and diareval agree on every component: DER 26.3931% (collar 0), 23.3559%
  (collar 0, -1), 24.0114% (-c 0.25), 21.5329% (-c 0.25 -1). dscore's own test expects
  26.3931.
- pyannote.metrics' public fixture (tests/test_diarization.py, reproduced below): DER
  16/31 = 51.6129% (md-eval, pyannote and diareval), 11/27 = 40.7407% with -c 0.5.
- 120 random multi-file cases (3 files each, up to 15 overlapping segments per file and
  side, same-speaker overlaps, random UEMs, collar 0 or 0.25, -1 or not): 117 agree
  with md-eval on scored, missed, false-alarm and speaker-error time to 1e-9 s (md-eval
  prints 6 decimals); in the other 3 md-eval itself died ("Illegal division by zero").
  The two md-eval behaviours that pyannote.metrics does not share, and that diareval
  follows, are pinned below by hand-worked cases with md-eval's numbers.
"""

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


def test_pyannote_public_fixture():
    # pyannote.metrics tests/test_diarization.py: ref A [0,10] B [12,20] A [24,27] C [30,40];
    # hyp a [2,13] d [13,14] b [14,20] c [22,38] d [38,40]. Expected there: confusion 7,
    # FA 7, miss 2, total 31 -> 16/31. md-eval-22.pl: 51.61%; with -c 0.5: 40.74% = 11/27.
    ref = annotation((0, 10, "A"), (12, 20, "B"), (24, 27, "A"), (30, 40, "C"))
    hyp = annotation((2, 13, "a"), (13, 14, "d"), (14, 20, "b"), (22, 38, "c"), (38, 40, "d"))
    uem = Timeline([Segment(0, 40)])
    result = der(ref, hyp, uem)
    assert (result.confusion, result.false_alarm, result.miss, result.reference_speech) == \
        pytest.approx((7, 7, 2, 31))
    assert result.der == pytest.approx(0.5161290322580645)
    assert der(ref, hyp, uem, Conventions(collar=0.5)).der == pytest.approx(11 / 27)


def test_mapping_on_the_whole_uem_like_md_eval():
    # ref A [0,4], B [4,10]; hyp x [3,4] and [6,6.7]; UEM [0,10]; collar 0.5 s per side.
    # Scored: [0.5,3.5] and [4.5,9.5] (reference speech 3 + 5 = 8).
    # md-eval maps on the whole UEM: x-A 1.0 > x-B 0.7 -> x->A. Scored with x->A:
    # correct 0.5 ([3,3.5]), confusion 0.7 ([6,6.7]), miss 8 - 1.2 = 6.8 -> 7.5/8 = 0.9375.
    # md-eval-22.pl -c 0.5 printed: SCORED 8.0, MISSED 6.8, FALARM 0, SPEAKER ERROR 0.7,
    # 93.75%. pyannote maps on the scored region: x-A 0.5 < x-B 0.7 -> x->B: confusion 0.5
    # -> 7.3/8 = 0.9125 (mapping_on="scored" reproduces pyannote).
    ref = annotation((0, 4, "A"), (4, 10, "B"))
    hyp = annotation((3, 4, "x"), (6, 6.7, "x"))
    uem = Timeline([Segment(0, 10)])
    md_eval = der(ref, hyp, uem, Conventions(collar=0.5))
    assert (md_eval.reference_speech, md_eval.miss, md_eval.confusion) == \
        pytest.approx((8, 6.8, 0.7))
    assert md_eval.der == pytest.approx(0.9375)
    pyannote_like = der(ref, hyp, uem, Conventions(collar=0.5, mapping_on="scored"))
    assert pyannote_like.der == pytest.approx(0.9125)
    assert pyannote_like.der == pytest.approx(DiarizationErrorRate(collar=1.0)(ref, hyp, uem=uem))


def test_same_speaker_overlap_counted_once_but_collared_like_md_eval():
    # ref A [0,3] and A [2,4] (one speaker, overlapping segments); hyp x [0,6]; UEM [0,6].
    # md-eval merges the speaker's time: scored 4 (not 5), FA [4,6] = 2 (md-eval-22.pl:
    # SCORED 4.0, FALARM 2.0, with "speaker A speaking more than once" warnings).
    ref = annotation((0, 3, "A"), (2, 4, "A"))
    hyp = annotation((0, 6, "x"))
    uem = Timeline([Segment(0, 6)])
    plain = der(ref, hyp, uem)
    assert (plain.reference_speech, plain.false_alarm, plain.errors) == pytest.approx((4, 2, 2))
    # ... but collars go around every segment boundary as given: 0, 2, 3, 4 (+-0.25):
    # speech scored 4 - 0.25 - 0.5 - 0.5 - 0.25 = 2.5; FA on [4.25, 6] = 1.75
    # (md-eval-22.pl -c 0.25: SCORED 2.5, FALARM 1.75)
    collared = der(ref, hyp, uem, Conventions(collar=0.25))
    assert (collared.reference_speech, collared.false_alarm) == pytest.approx((2.5, 1.75))
    # adjacent same-speaker segments also get a collar at their shared boundary:
    # ref A [0,2] A [2,4] B [4,6], hyp x [0,6], -c 0.25: collars at 0, 2, 4, 6 -> scored
    # 6 - 0.25 - 0.5 - 0.5 - 0.25 = 4.5; x->A, B's [4.25,5.75] is confusion 1.5
    # (md-eval-22.pl: SCORED 4.5, SPEAKER ERROR 1.5)
    ref = annotation((0, 2, "A"), (2, 4, "A"), (4, 6, "B"))
    adjacent = der(ref, hyp, uem, Conventions(collar=0.25))
    assert (adjacent.reference_speech, adjacent.confusion) == pytest.approx((4.5, 1.5))


def test_matches_pyannote_without_unknowns_many_cases():
    ref = annotation((0, 3, "a"), (2, 6, "b"), (5.5, 9, "c"), (9.5, 14, "a"), (12, 13, "b"))
    hyp = annotation((0.2, 2.5, "x"), (2.5, 5.8, "y"), (5.8, 10, "x"), (10, 14.5, "z"),
                     (11.5, 12.5, "y"))
    uem = Timeline([Segment(0.5, 13.7)])
    for collar in (0.0, 0.1, 0.25):
        for skip in (False, True):
            # pyannote maps on the scored region: compare under that convention
            ours = der(ref, hyp, uem, Conventions(collar=collar, skip_overlap=skip,
                                                  mapping_on="scored"))
            theirs = DiarizationErrorRate(collar=2 * collar, skip_overlap=skip)(
                ref, hyp, uem=uem, detailed=True)
            assert ours.reference_speech == pytest.approx(theirs["total"])
            assert ours.miss == pytest.approx(theirs["missed detection"])
            assert ours.false_alarm == pytest.approx(theirs["false alarm"])
            assert ours.confusion == pytest.approx(theirs["confusion"])
            default = der(ref, hyp, uem, Conventions(collar=collar, skip_overlap=skip))
            # the md-eval mapping can only do worse on the scored region than the mapping
            # optimised for it; everything but confusion is mapping-free
            assert default.confusion >= ours.confusion - 1e-9
            assert (default.miss, default.false_alarm) == pytest.approx((ours.miss,
                                                                          ours.false_alarm))
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
    with pytest.raises(ConfigError):
        Conventions(mapping_on="everywhere")


def test_rttm_total_jer_is_pooled_over_speakers_like_the_run_tables():
    # file f1: one speaker, perfectly found (JER 0); file f2: three speakers, the hypothesis
    # says nothing (each speaker's JER 1). Pooled over the 4 reference speakers: 3/4 (what
    # JERResult adds up to, and the run's der_dataset jer); the mean of the files' JERs
    # (0 and 1) would be 1/2.
    from diareval.score.rttm import score_annotations
    references = {"f1": annotation((0, 4, "a")),
                  "f2": annotation((0, 2, "b"), (2, 4, "c"), (4, 6, "d"))}
    hypotheses = {"f1": annotation((0, 4, "x"))}
    uems = {"f1": Timeline([Segment(0, 4)]), "f2": Timeline([Segment(0, 6)])}
    table = score_annotations(references, hypotheses, uems, Conventions(unknown="label"))
    rows = table.set_index("uri")
    assert rows.loc["f1", "jer"] == pytest.approx(0.0)
    assert rows.loc["f2", "jer"] == pytest.approx(1.0)
    assert rows.loc["TOTAL", "jer"] == pytest.approx(3 / 4)
