"""Stability, latency and bootstrap measures on hand-worked inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pyannote.core import Annotation, Segment, Timeline

from diareval.score.bootstrap import bootstrap_ratio, paired_bootstrap
from diareval.score.hypothesis import session_turns
from diareval.score.latency import turn_latency
from diareval.score.over_time import der_over_time
from diareval.score.stability import label_flips, mapping_stability, partial_changes
from diareval.sessionlog import SessionLogWriter, read_session_log


def annotation(*tracks):
    result = Annotation(uri="s")
    for i, (start, end, label) in enumerate(tracks):
        result[Segment(start, end), i] = label
    return result


def test_mapping_stability_counts_reassignments_and_stable_time():
    # ref A [0,10], B [10,20]; hyp X [0,4], Y [4,10], X [10,20]; steps of 3 s.
    # t=3: X-A 3 -> X->A; t=6: X-A 4 > Y-A 2 -> X->A; t=9: Y-A 5 > X-A 4 -> Y->A
    # (A re-pointed: a reassignment); t=12: X-B 2 joins -> {X->B, Y->A} (new pair only);
    # final = {X->B, Y->A}; every mapping from t=9 on is part of it -> stable from 9.
    ref = annotation((0, 10, "A"), (10, 20, "B"))
    hyp = annotation((0, 4, "X"), (4, 10, "Y"), (10, 20, "X"))
    curve = der_over_time(ref, hyp, Timeline([Segment(0, 20)]), step=3.0)
    stats = mapping_stability(curve)
    assert stats["mapping_changes"] == 2
    assert stats["mapping_reassignments"] == 1
    assert stats["stable_from"] == 9.0


def test_label_flips_per_minute():
    # A alone talks [0,10] labelled X, Y, X: 2 flips in 10 s -> 12 per minute.
    # B's [20,30] overlaps C's [25,30]: only [20,25] is single-speaker, one label: 0 flips.
    ref = annotation((0, 10, "A"), (20, 30, "B"), (25, 30, "C"))
    hyp = annotation((0, 3, "X"), (3, 6, "Y"), (6, 10, "X"), (20, 27, "Z"), (27, 30, "W"))
    stats = label_flips(ref, hyp, Timeline([Segment(0, 30)]))
    assert stats["label_flips"] == 2
    assert stats["single_speaker_minutes"] == pytest.approx(15 / 60)
    assert stats["flips_per_minute"] == pytest.approx(2 / 0.25)


def _log(tmp_path, messages):
    path = tmp_path / "s.jsonl"
    with SessionLogWriter(path) as writer:
        for t_audio, message in messages:
            writer.write("recv", t_audio + 0.05, t_audio, message)
    return read_session_log(path)


def _turn(order, label, words, end_of_turn=True):
    return {"type": "Turn", "turn_order": order, "end_of_turn": end_of_turn,
            "turn_is_formatted": False, "transcript": "", "speaker_label": label,
            "words": [{"text": "w", "start": s, "end": e, "word_is_final": True}
                      for s, e in words]}


def test_partials_revisions_and_latency(tmp_path):
    log = _log(tmp_path, [
        (0.5, _turn(0, None, [(0, 300)], end_of_turn=False)),
        (1.0, _turn(0, "B", [(0, 300), (300, 900)], end_of_turn=False)),
        (1.5, _turn(0, "A", [(0, 300), (300, 900)], end_of_turn=False)),
        (1.6, _turn(0, "A", [(0, 300), (300, 900)])),
        (3.0, _turn(1, "B", [(2000, 2500)])),
        (9.0, {"type": "SpeakerRevision", "revisions": [{"turn_order": 1, "speaker_label": "A"}]}),
    ])
    session = session_turns(log, revisions=True)
    stats = partial_changes(session)
    # turn 0 showed B before its final A: one changed turn, one change (B -> A)
    assert stats["turns_partial_label_changed"] == 1 and stats["partial_label_changes"] == 1
    assert stats["revision_messages"] == 1 and stats["revised_label_changed"] == 1
    latency = turn_latency(session).set_index("turn_order")
    # turn 0 ends at 0.9 s, its final arrives at t_audio 1.6: finalisation 0.7 s; the label
    # shown from t_audio 1.5 on is the final A: label latency 1.5 - 0.9 = 0.6 s
    assert latency.loc[0, "finalisation_latency"] == pytest.approx(0.7)
    assert latency.loc[0, "label_latency"] == pytest.approx(0.6)
    # turn 1 ends at 2.5; its label was revised B -> A at t_audio 9.0: 6.5 s
    assert latency.loc[1, "finalisation_latency"] == pytest.approx(0.5)
    assert latency.loc[1, "label_latency"] == pytest.approx(6.5)
    unrevised = turn_latency(session_turns(log, revisions=False)).set_index("turn_order")
    assert unrevised.loc[1, "label_latency"] == pytest.approx(0.5)


def test_bootstrap_interval_covers_the_true_rate():
    # 200 simulated studies of 20 sessions x 30 turns, accuracy 0.8 with session effects
    # (each session's own rate ~ Beta around 0.8): the 95% interval should cover 0.8 in
    # about 95% of studies; accept 88%..100%.
    rng = np.random.default_rng(1)
    covered = 0
    for study in range(200):
        rates = rng.beta(16, 4, size=20)
        correct = rng.binomial(30, rates)
        counts = pd.DataFrame({"uri": [f"s{i}" for i in range(20)], "n_correct": correct,
                               "n_scored": 30})
        ci = bootstrap_ratio(counts, "n_correct", "n_scored", n_boot=400, seed=study)
        covered += ci["lo"].iloc[0] <= 0.8 <= ci["hi"].iloc[0]
    assert 0.88 <= covered / 200 <= 1.0


def test_bootstrap_is_seeded_and_degenerate_cases_are_clear():
    counts = pd.DataFrame({"uri": ["a", "b", "c"], "bucket": ["x", "x", "y"],
                           "num": [1, 2, 0], "den": [2, 2, 0]})
    one = bootstrap_ratio(counts, "num", "den", by="bucket", n_boot=200, seed=3)
    two = bootstrap_ratio(counts, "num", "den", by="bucket", n_boot=200, seed=3)
    pd.testing.assert_frame_equal(one, two)
    rows = one.set_index("bucket")
    assert rows.loc["x", "estimate"] == pytest.approx(0.75)
    assert np.isnan(rows.loc["y", "estimate"]) and rows.loc["y", "note"]


def test_paired_bootstrap_difference():
    # b makes 5 more errors than a on every one of 10 sessions of 100 s: +5 points, and
    # every replicate agrees, so the interval is [0.05, 0.05]
    a = pd.DataFrame({"uri": [f"s{i}" for i in range(10)], "errors": np.arange(10.0),
                      "reference_speech": 100.0})
    b = a.assign(errors=a["errors"] + 5)
    result = paired_bootstrap(a, b, "errors", "reference_speech", n_boot=300, seed=0)
    assert result["difference"].iloc[0] == pytest.approx(0.05)
    assert result["lo"].iloc[0] == pytest.approx(0.05) and result["hi"].iloc[0] == \
        pytest.approx(0.05)
    assert result["p_b_lower"].iloc[0] == 0.0


def test_all_correct_bucket_keeps_an_honest_interval():
    # 56 of 56 correct across 8 sessions: every bootstrap replicate is 1.0, so the
    # percentile interval alone is [1, 1]. Wilson (z = 1.96): centre (1 + z^2/2n)/(1 + z^2/n)
    # = 1.0343/1.0686 = 0.9679, half-width z*sqrt(z^2/4n^2)/(1 + z^2/n) = 0.0321 -> 0.9358.
    from diareval.score.bootstrap import wilson_interval
    counts = pd.DataFrame({"uri": [f"s{i}" for i in range(8)], "n_correct": 7, "n_scored": 7})
    plain = bootstrap_ratio(counts, "n_correct", "n_scored", n_boot=200)
    assert plain["lo"].iloc[0] == 1.0
    guarded = bootstrap_ratio(counts, "n_correct", "n_scored", n_boot=200, wilson=True)
    assert guarded["lo"].iloc[0] == pytest.approx(0.9358, abs=1e-3)
    assert guarded["hi"].iloc[0] == pytest.approx(1.0)
    lo, hi = wilson_interval(np.array([5]), np.array([10]))
    # 5/10: centre 0.5, half 1.96*sqrt(0.025 + 0.0096)/1.384 = 0.2634
    assert (lo[0], hi[0]) == pytest.approx((0.5 - 0.2634, 0.5 + 0.2634), abs=1e-3)
