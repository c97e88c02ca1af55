"""DER over session time equals pyannote.metrics recomputed on every prefix / window."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyannote.core import Annotation, Segment, Timeline
from pyannote.metrics.diarization import DiarizationErrorRate
from pyannote.metrics.identification import IdentificationErrorRate

from diareval.score.der import Conventions, der
from diareval.score.over_time import der_by_region, der_over_time, der_windows


def _annotation(tracks, uri="r"):
    result = Annotation(uri=uri)
    for i, (start, end, label) in enumerate(tracks):
        result[Segment(start, end), i] = label
    return result


@st.composite
def tracks(draw, labels, max_tracks=12, horizon=300):
    """Random segments on a 0.1 s grid (shared boundaries and ties happen often)."""
    n = draw(st.integers(0, max_tracks))
    out = []
    for _ in range(n):
        start = draw(st.integers(0, horizon - 1))
        length = draw(st.integers(1, 60))
        out.append((start / 10, min(start + length, horizon + 20) / 10,
                    draw(st.sampled_from(labels))))
    return out


def _supported(annotation):
    # the hypothesis diareval builds never overlaps itself within one label
    return annotation.support()


def _parse(mapping: str) -> dict:
    return dict(item.split("->") for item in mapping.split(",")) if mapping else {}


def _pyannote(ref, hyp, uem, conventions, ours: str | None = None):
    """pyannote.metrics on one region. mapping_on="scored" is pyannote's own DER. For
    "uem" (md-eval) the mapping is optimal on the whole region; when several mappings tie
    there, the DER on the scored region can depend on which one is taken (md-eval and
    pyannote break ties arbitrarily), so the check is: diareval's mapping (``ours``)
    reaches pyannote's optimal co-occurrence, and pyannote's identification error rate
    under the same collar / skip_overlap with that mapping gives diareval's numbers."""
    if not uem:
        return dict(total=0.0, miss=0.0, fa=0.0, conf=0.0)
    collar, skip = 2 * conventions.collar, conventions.skip_overlap
    if conventions.mapping_on == "scored":
        d = DiarizationErrorRate(collar=collar, skip_overlap=skip)(ref, hyp, uem=uem,
                                                                     detailed=True)
    else:
        metric = DiarizationErrorRate()
        best = metric.optimal_mapping(ref, hyp, uem=uem)
        mapping = best
        if ours is not None:
            r, h = metric.uemify(ref, hyp, uem=uem)
            cooc = h * r
            hi = {label: i for i, label in enumerate(h.labels())}
            ri = {label: i for i, label in enumerate(r.labels())}
            value = lambda m: sum(cooc[hi[a], ri[b]] for a, b in m.items()  # noqa: E731
                                  if a in hi and b in ri)
            mapping = _parse(ours)
            assert abs(value(mapping) - value(best)) <= 1e-9, (ours, best)
        mapped = hyp.rename_labels(mapping={h: mapping.get(h, f"none-{h}") for h in hyp.labels()})
        d = IdentificationErrorRate(collar=collar, skip_overlap=skip)(ref, mapped, uem=uem,
                                                                        detailed=True)
    return dict(total=d["total"], miss=d["missed detection"], fa=d["false alarm"],
                conf=d["confusion"])


def _close(ours, theirs):
    for key in ("total", "miss", "fa", "conf"):
        assert abs(ours[key] - theirs[key]) <= 1e-6, (key, ours, theirs)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ref_tracks=tracks(["a", "b", "c"]), hyp_tracks=tracks(["1", "2", "3", "4"]),
       uem_bounds=st.tuples(st.integers(0, 50), st.integers(100, 320)),
       collar=st.sampled_from([0.0, 0.1, 0.25]), skip=st.booleans(),
       step=st.sampled_from([0.7, 1.0, 2.5]), mapping_on=st.sampled_from(["uem", "scored"]))
def test_prefix_curve_equals_pyannote_on_every_prefix(ref_tracks, hyp_tracks, uem_bounds, collar,
                                                      skip, step, mapping_on):
    # one segment per run of a speaker (md-eval counts a speaker once; see test_der.py)
    ref = _supported(_annotation(ref_tracks))
    hyp = _supported(_annotation(hyp_tracks, "h"))
    uem = Timeline([Segment(uem_bounds[0] / 10, uem_bounds[1] / 10)])
    conventions = Conventions(collar=collar, skip_overlap=skip, mapping_on=mapping_on)
    curve = der_over_time(ref, hyp, uem, conventions, step=step)
    for row in curve.itertuples():
        prefix = uem.crop(Segment(0, row.t))
        theirs = _pyannote(ref, hyp, prefix, conventions, row.mapping)
        ours = dict(total=row.reference_speech, miss=row.miss, fa=row.false_alarm,
                    conf=row.confusion_prefix)
        _close(ours, theirs)
        if theirs["total"] > 0:
            value = (theirs["miss"] + theirs["fa"] + theirs["conf"]) / theirs["total"]
            assert abs(row.der_prefix - value) <= 1e-6
        else:
            assert math.isnan(row.der_prefix) and row.note
    # the last step is the whole session: the final mapping there is the prefix mapping
    last = curve.iloc[-1]
    assert abs(last.confusion_final - last.confusion_prefix) <= 1e-6


@settings(max_examples=40, deadline=None)
@given(ref_tracks=tracks(["a", "b", "c"]),
       hyp_tracks=tracks(["1", "2", "UNKNOWN#7", "UNKNOWN#9"]),
       collar=st.sampled_from([0.0, 0.25]), skip=st.booleans())
def test_prefix_curve_with_unknown_speech_matches_der(ref_tracks, hyp_tracks, collar, skip):
    # der() scores unknown speech with pyannote after excluding it from the mapping
    ref = _supported(_annotation(ref_tracks))
    hyp = _supported(_annotation(hyp_tracks, "h"))
    uem = Timeline([Segment(0, 32)])
    conventions = Conventions(collar=collar, skip_overlap=skip)
    curve = der_over_time(ref, hyp, uem, conventions, step=4.0)
    for row in curve.itertuples():
        prefix = uem.crop(Segment(0, row.t))
        result = der(ref, hyp, prefix, conventions)
        _close(dict(total=row.reference_speech, miss=row.miss, fa=row.false_alarm,
                    conf=row.confusion_prefix),
               dict(total=result.reference_speech, miss=result.miss, fa=result.false_alarm,
                    conf=result.confusion))
        assert abs(row.unknown_speech - _unknown_in(hyp, prefix, ref, conventions)) <= 1e-6


def _unknown_in(hyp, uem, ref, conventions):
    # pyannote's own extrusion of collars and overlap from the region
    from pyannote.metrics.utils import UEMSupportMixin
    region = UEMSupportMixin().extrude(uem, ref, collar=2 * conventions.collar,
                                       skip_overlap=conventions.skip_overlap) if uem else Timeline()
    unknown = hyp.subset([l for l in hyp.labels() if l.startswith("UNKNOWN#")])
    if not region:
        return 0.0
    # speaker-time: two overlapping unknown turns count twice
    return sum(s.duration for s, _ in unknown.crop(region, mode="intersection").itertracks())


@settings(max_examples=40, deadline=None)
@given(ref_tracks=tracks(["a", "b", "c"]), hyp_tracks=tracks(["1", "2", "3"]),
       collar=st.sampled_from([0.0, 0.25]), skip=st.booleans(),
       mapping_on=st.sampled_from(["uem", "scored"]))
def test_windows_match_pyannote_per_window_and_with_global_mapping(ref_tracks, hyp_tracks, collar,
                                                                   skip, mapping_on):
    ref = _supported(_annotation(ref_tracks))
    hyp = _supported(_annotation(hyp_tracks, "h"))
    uem = Timeline([Segment(0, 30)])
    conventions = Conventions(collar=collar, skip_overlap=skip, mapping_on=mapping_on)
    windows = der_windows(ref, hyp, uem, conventions, window=6.0, step=2.0)
    # the session's mapping as pyannote computes it: on the whole UEM (md-eval) or on
    # the UEM after pyannote's own collar/overlap extrusion
    metric = DiarizationErrorRate(collar=2 * collar, skip_overlap=skip)
    region = uem if mapping_on == "uem" else metric.uemify(
        ref, hyp, uem=uem, collar=2 * collar, skip_overlap=skip, returns_uem=True)[2]
    final = DiarizationErrorRate().optimal_mapping(ref, hyp, uem=region)
    # a tie between optimal session mappings: take ours once it is shown to be optimal
    r, h = DiarizationErrorRate().uemify(ref, hyp, uem=region)
    cooc, hi, ri = h * r, {x: i for i, x in enumerate(h.labels())}, \
        {x: i for i, x in enumerate(r.labels())}
    ours = _parse(windows.attrs["final_mapping"])
    value = lambda m: sum(cooc[hi[a], ri[b]] for a, b in m.items()  # noqa: E731
                          if a in hi and b in ri)
    assert abs(value(ours) - value(final)) <= 1e-9
    final = ours
    mapped = hyp.rename_labels(mapping={h: final.get(h, f"none-{h}") for h in hyp.labels()})
    for row in windows.itertuples():
        window = uem.crop(Segment(row.window_start, row.window_end))
        theirs = _pyannote(ref, hyp, window, conventions, row.mapping)
        _close(dict(total=row.reference_speech, miss=row.miss, fa=row.false_alarm,
                    conf=row.confusion_window), theirs)
        if window:
            detail = IdentificationErrorRate(collar=2 * collar, skip_overlap=skip)(
                ref, mapped, uem=window, detailed=True)
            assert abs(row.confusion_global - detail["confusion"]) <= 1e-6


def test_hand_worked_prefix_own_and_final_mapping():
    # ref A [0,10], B [10,20]; hyp X [0,10] and [10,20]? no: hyp X [0,4] ∪ Y [4,10] ∪ X [10,20]
    # Whole session: X-A 4, X-B 10, Y-A 6 -> mapping X->B, Y->A (16 s correct),
    # confusion on [0,4] (4 s): DER 4/20.
    # Prefix [0,10]: X-A 4, Y-A 6 -> own mapping Y->A: confusion 4 -> DER 0.4;
    # with the final mapping (X->B, Y->A): also confusion 4 -> 0.4.
    # Prefix [0,4]: own mapping X->A -> DER 0; final mapping X->B -> confusion 4, DER 1.
    ref = _annotation([(0, 10, "A"), (10, 20, "B")])
    hyp = _annotation([(0, 4, "X"), (4, 10, "Y"), (10, 20, "X")], "h")
    curve = der_over_time(ref, hyp, Timeline([Segment(0, 20)]), step=2.0).set_index("t")
    assert curve.loc[4.0, "der_prefix"] == pytest.approx(0.0)
    assert curve.loc[4.0, "der_final"] == pytest.approx(1.0)
    assert curve.loc[10.0, "der_prefix"] == pytest.approx(0.4)
    assert curve.loc[10.0, "der_final"] == pytest.approx(0.4)
    assert curve.loc[20.0, "der_prefix"] == pytest.approx(0.2)
    # the prefix mapping changed when Y took over A (t=6: Y-A 2 < X-A 4? no: at t=6 X-A 4,
    # Y-A 2 -> X->A; at t=8 Y-A 4 ties X-A 4; at t=10 Y->A) and again when X->B appears.
    assert curve["mapping_changed"].sum() >= 2
    assert curve.attrs["conventions"].startswith("collar 0 s per side, overlap scored")


def test_by_region_adds_up_to_session_der():
    ref = _annotation([(0, 10, "A"), (5, 12, "B")])
    hyp = _annotation([(0, 15, "1")], "h")
    uem = Timeline([Segment(0, 15)])
    regions = der_by_region(ref, hyp, uem).set_index("region")
    # hand-worked in test_der example 3: overlap [5,10] holds the miss 5 of 10 reference s;
    # single holds confusion 2 and false alarm 3 of 7 reference s
    assert regions.loc["overlap", "reference_speech"] == pytest.approx(10)
    assert regions.loc["overlap", "miss"] == pytest.approx(5)
    assert regions.loc["single", "confusion"] == pytest.approx(2)
    assert regions.loc["single", "false_alarm"] == pytest.approx(3)
    total = der(ref, hyp, uem)
    assert regions["miss"].sum() + regions["false_alarm"].sum() + regions["confusion"].sum() == \
        pytest.approx(total.errors)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ref_tracks=tracks(["a", "b", "c"]),
       hyp_tracks=tracks(["1", "2", "3", "UNKNOWN#7", "UNKNOWN#9"]),
       uem_bounds=st.tuples(st.integers(0, 50), st.integers(100, 320)),
       collar=st.sampled_from([0.0, 0.1, 0.25]), skip=st.booleans(),
       mapping_on=st.sampled_from(["uem", "scored"]))
def test_session_der_and_jer_from_the_intervals_equal_pyannote(ref_tracks, hyp_tracks, uem_bounds,
                                                               collar, skip, mapping_on):
    # score_session takes DER, its mapping and JER from one ElementaryIntervals; they must be
    # what der_and_mapping() and jer() (pyannote.metrics) give
    from diareval.score.der import der_and_mapping, jer
    from diareval.score.over_time import ElementaryIntervals
    ref = _supported(_annotation(ref_tracks))
    hyp = _supported(_annotation(hyp_tracks, "h"))
    uem = Timeline([Segment(uem_bounds[0] / 10, uem_bounds[1] / 10)])
    conventions = Conventions(collar=collar, skip_overlap=skip, mapping_on=mapping_on)
    ei = ElementaryIntervals(ref, hyp, uem, conventions, grid=[1.0, 2.0])
    ours, mapping = ei.der_result()
    theirs, their_mapping = der_and_mapping(ref, hyp, uem, conventions)
    for name in ("reference_speech", "miss", "false_alarm", "unknown_speech"):
        assert abs(getattr(ours, name) - getattr(theirs, name)) <= 1e-9, name
    # a tie between optimal mappings may pick another mapping: then it must score the same
    # co-occurrence; without a tie the confusion is the same
    if mapping.as_dict() == their_mapping:
        assert abs(ours.confusion - theirs.confusion) <= 1e-9
        assert abs(ours.correct - theirs.correct) <= 1e-9
    ours_jer, theirs_jer = ei.jer_result(), jer(ref, hyp, uem, conventions)
    assert ours_jer.speaker_count == theirs_jer.speaker_count
    if theirs_jer.speaker_count:
        assert abs(ours_jer.speaker_error - theirs_jer.speaker_error) <= 1e-9
