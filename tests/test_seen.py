"""DER of what is on screen at time t (score/seen.py): hand-worked cases and a brute force check.

Messages are built with the installed SDK's own models (``TurnEvent``, ``Word``,
``SpeakerRevisionEvent``, ``SpeakerRevisionItem``) and dumped as JSON, so the shapes are the
documented ones, not the local engines' output.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from assemblyai.streaming.v3.models import (SpeakerRevisionEvent, SpeakerRevisionItem, TurnEvent,
                                            Word)
from pyannote.core import Annotation, Segment, Timeline

from diareval.score.der import Conventions, der
from diareval.score.seen import der_seen
from diareval.sessionlog import LogLine


def turn(order, label, words, final=True):
    """A Turn as the SDK models it; ``words`` = (start ms, end ms, speaker or None)."""
    return TurnEvent(type="Turn", turn_order=order, turn_is_formatted=final, end_of_turn=final,
                     transcript="", end_of_turn_confidence=1.0 if final else 0.2,
                     words=[Word(start=s, end=e, confidence=0.9, text="w", word_is_final=final,
                                 speaker=sp) for s, e, sp in words],
                     speaker_label=label).model_dump(mode="json", exclude_none=True)


def revision(*items):
    """A SpeakerRevision as the SDK models it; ``items`` = (turn_order, label, words)."""
    return SpeakerRevisionEvent(revisions=[
        SpeakerRevisionItem(turn_order=o, speaker_label=label,
                            words=[Word(start=s, end=e, confidence=0.9, text="w",
                                        word_is_final=True, speaker=sp) for s, e, sp in words])
        for o, label, words in items]).model_dump(mode="json")


def log_of(messages):
    return [LogLine("recv", t, t, m) for t, m in messages]


def two_speakers():
    reference = Annotation(uri="x")
    reference[Segment(0, 3)] = "spk1"
    reference[Segment(3, 4)] = "spk2"
    return reference, Timeline([Segment(0, 4)], uri="x")


def test_mid_session_revision_then_the_final_one_undoes_it():
    # spk1 talks 0-3 s, spk2 3-4 s. Turn 1 (3-4 s) first comes labelled B (right), a revision
    # at 5 s relabels it A (wrong: A is spk1), the final revision at 9.5 s puts B back.
    reference, uem = two_speakers()
    log = log_of([
        (1.0, turn(0, "A", [(0, 1000, None)], final=False)),
        (3.2, turn(0, "A", [(0, 1500, "A"), (1500, 3000, "A")])),
        (4.2, turn(1, "B", [(3000, 3500, "B"), (3500, 4000, "B")])),
        (5.0, revision((1, "A", []))),
        (9.5, revision((1, "B", []))),
    ])
    curve = der_seen(log, reference, uem, step=1.0).set_index("t")
    # t=1: only [0, 1] of the partial on screen, prefix [0, 1] all spk1: DER 0
    assert curve.loc[1.0, "der"] == pytest.approx(0.0)
    # t=2: the partial still shows [0, 1]: 1 s missed of 2 s
    assert curve.loc[2.0, "der"] == pytest.approx(0.5)
    # t=3: the final of turn 0 arrives only at 3.2 s: 2 s missed of 3 s
    assert curve.loc[3.0, "der"] == pytest.approx(2 / 3)
    # t=4: turn 0 final (A -> spk1) but turn 1 not yet in: 1 s missed of 4 s
    assert curve.loc[4.0, "der"] == pytest.approx(0.25)
    # t=5..9: turn 1 is A after the revision: 1 s confused of 4 s
    for t in (5.0, 6.0, 9.0):
        assert curve.loc[t, "der"] == pytest.approx(0.25)
        assert curve.loc[t, "confusion"] == pytest.approx(1.0)
    # the last row is the last arrival, 9.5 s (the grid ends there): B again, DER 0
    assert curve.index[-1] == 9.5 and curve.loc[9.5, "der"] == pytest.approx(0.0)
    # without revisions turn 1 stays B from 4.2 s on
    plain = der_seen(log, reference, uem, Conventions(revisions=False)).set_index("t")
    assert plain.loc[6.0, "der"] == pytest.approx(0.0)


def test_a_revision_for_a_turn_not_on_screen_changes_nothing_and_a_later_turn_message_wins():
    reference, uem = two_speakers()
    log = log_of([
        (1.0, revision((7, "B", []))),  # never seen
        (3.5, turn(0, "A", [(0, 3000, None)])),
        (4.0, revision((1, "A", []))),  # turn 1 not on screen yet
        (4.5, turn(1, "B", [(3000, 4000, None)])),
    ])
    curve = der_seen(log, reference, uem).set_index("t")
    assert curve.index[-1] == 4.5 and curve.loc[4.5, "der"] == pytest.approx(0.0)


# ---- brute force: replay by hand, score every prefix with pyannote (diareval.score.der) ----

def brute_screen(messages, t, revisions=True):
    """The screen at t: latest message per turn (no partial after a final), revisions applied."""
    shown, final = {}, set()
    for arrival, message in messages:
        if arrival > t:
            break
        if message["type"] == "Turn":
            order = message["turn_order"]
            if order in final and not message["end_of_turn"]:
                continue
            if message["end_of_turn"]:
                final.add(order)
            shown[order] = (message.get("speaker_label"),
                            [(w["start"] / 1000, w["end"] / 1000, w.get("speaker"))
                             for w in message["words"]])
        elif revisions:
            for item in message["revisions"]:
                if item["turn_order"] in shown:
                    label = item["speaker_label"]
                    words = [(w["start"] / 1000, w["end"] / 1000, w.get("speaker"))
                             for w in item["words"]] or \
                        [(s, e, label) for s, e, _ in shown[item["turn_order"]][1]]
                    shown[item["turn_order"]] = (label, words)
    hypothesis = Annotation(uri="x")
    for order, (label, words) in shown.items():
        for s, e, speaker in words:
            name = speaker if speaker is not None else label
            if name in (None, "UNKNOWN"):
                name = f"UNKNOWN#{order}"
            if e > s:
                hypothesis[Segment(s, e), len(hypothesis)] = name
    return hypothesis


def random_session(rng):
    reference = Annotation(uri="x")
    t = 0.0
    for _ in range(rng.integers(4, 9)):
        start = t + rng.uniform(0, 1.5)
        end = start + rng.uniform(0.3, 3)
        reference[Segment(round(start, 2), round(end, 2))] = f"s{rng.integers(3)}"
        t = end - rng.uniform(0, 0.8)
    messages, clock, order = [], 0.0, 0
    position = 0.0
    for order in range(rng.integers(3, 8)):
        position += rng.uniform(0, 1.5)
        spans = []
        for _ in range(rng.integers(1, 5)):
            length = rng.choice([0.0, 0.08, 0.24, rng.uniform(0.1, 1.2)])
            spans.append((int(position * 1000), int((position + length) * 1000)))
            position += length + rng.choice([0.0, 0.08, 0.3])
        labels = ["A", "B", "C", "UNKNOWN", None]
        for k in range(1, len(spans) + 1):
            final = k == len(spans)
            label = labels[rng.integers(len(labels))]
            words = [(s, e, labels[rng.integers(3)] if final and rng.random() < 0.3 else None)
                     for s, e in spans[:k]]
            clock = max(clock, spans[k - 1][1] / 1000) + rng.uniform(0.05, 0.8)
            messages.append((round(clock, 3), turn(order, label, words, final=final)))
        if rng.random() < 0.4:
            target = int(rng.integers(order + 2))  # sometimes a turn not seen yet
            clock += rng.uniform(0, 2)
            items = [(target, labels[rng.integers(len(labels))], [])]
            messages.append((round(clock, 3), revision(*items)))
    if rng.random() < 0.5:
        clock += 0.4
        messages.append((round(clock, 3), revision((0, "B", []), (1, "A", []))))
    uem_end = max(position, reference.get_timeline().extent().end) + rng.uniform(0, 1)
    return reference, Timeline([Segment(0, round(uem_end, 2))], uri="x"), messages


@pytest.mark.parametrize("seed", range(12))
def test_every_step_equals_pyannote_on_the_replayed_screen(seed):
    rng = np.random.default_rng(seed)
    reference, uem, messages = random_session(rng)
    conventions = [Conventions(), Conventions(collar=0.1, skip_overlap=True),
                   Conventions(revisions=False)][seed % 3]
    curve = der_seen(log_of(messages), reference, uem, conventions, step=0.5)
    assert curve["t"].iloc[-1] >= max(t for t, _ in messages)
    for row in curve.itertuples():
        screen = brute_screen(messages, row.t, conventions.revisions)
        prefix = uem.crop(Segment(0, row.t))
        expected = der(reference, screen, prefix, conventions)
        for name in ("reference_speech", "miss", "false_alarm", "confusion", "unknown_speech"):
            assert getattr(row, name) == pytest.approx(getattr(expected, name), abs=1e-9), \
                (seed, row.t, name)
        if expected.reference_speech > 0:
            assert row.der == pytest.approx(expected.der, abs=1e-9)
        else:
            assert math.isnan(row.der) and "undefined" in row.note


def test_a_stream_paced_faster_than_real_time_is_put_on_the_audio_scale():
    # 4 s of audio sent in 1 s of wall time (--speed 4): a message received at wall 0.8 s
    # was on screen once audio up to 3.2 s had been sent
    reference, uem = two_speakers()
    chunk = {"type": "AudioChunk", "bytes": 3200, "duration": 0.1}
    log = [LogLine("send", 0.025 * k, 0.1 * k, chunk) for k in range(1, 41)]
    log.append(LogLine("recv", 0.8, 3.2, turn(0, "A", [(0, 3000, None)])))
    log.append(LogLine("recv", 1.05, 4.0, turn(1, "B", [(3000, 4000, None)])))
    curve = der_seen(sorted(log, key=lambda line: line.t_wall), reference, uem).set_index("t")
    assert curve.loc[3.0, "der"] == pytest.approx(1.0)  # nothing on screen before 3.2
    assert curve.loc[4.0, "der"] == pytest.approx(0.25)  # turn 1 arrives at 4.2 (1.05 x 4)
    assert curve["der"].iloc[-1] == pytest.approx(0.0)
    audio = der_seen(log, reference, uem, clock="audio").set_index("t")
    assert audio.loc[4.0, "der"] == pytest.approx(0.0)
