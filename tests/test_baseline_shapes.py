"""Issue 13, the baseline engine: per-model message shapes and mid-session SpeakerRevisions.

Expectations from the documented shapes (PROTOCOL.md "Update 2026-12"): Universal-Streaming
word times on an 80 ms grid (zero-length words allowed); per-word ``speaker`` only on final
words; U3 Pro: partials with non-final words and ``utterance`` "", one formatted final per
turn with ``end_of_turn_confidence`` 1.0; SpeakerRevision entries listing only turns whose
speaker (or words) changed, for turns already sent.
"""

from __future__ import annotations

import numpy as np
import pytest

from diareval.server import messages as say
from diareval.server.engines.base import SessionParams

CHUNK = 800  # 50 ms


def _run(engine, audio: np.ndarray) -> tuple[list[dict], list[dict]]:
    """(messages from feed, messages from finish)."""
    fed = []
    for i in range(0, len(audio), CHUNK):
        fed += engine.feed(audio[i:i + CHUNK])
    return fed, engine.finish()


@pytest.fixture(scope="module")
def factory():
    pytest.importorskip("torch")
    pytest.importorskip("faster_whisper")
    from diareval.server.engines import make_engine_factory

    return make_engine_factory("baseline")


@pytest.fixture(scope="module")
def trn08():
    from conftest import shared_data
    from diareval.datasets import load_folder

    return load_folder(shared_data("ami-excerpts"), uris=["trn08"])[0]


def _check_words(turns):
    for m in turns:
        for w in m["words"]:
            assert w["start"] <= w["end"]
            assert ("speaker" in w) <= w["word_is_final"]  # per-word speaker: final words only


@pytest.mark.baseline
def test_universal_streaming_words_on_the_80_ms_grid(factory, trn08):
    params = SessionParams(speaker_labels=True, speech_model="universal-streaming-english")
    fed, last = _run(factory(params), trn08.load_audio()[:16000 * 15])
    turns = [m for m in fed + last if m["type"] == "Turn"]
    assert any(m["end_of_turn"] for m in turns)
    assert all(w["start"] % 80 == 0 and w["end"] % 80 == 0 for m in turns for w in m["words"])
    _check_words(turns)
    revisions = [m for m in fed + last if m["type"] == "SpeakerRevision"]
    assert all(w["start"] % 80 == 0 and w["end"] % 80 == 0
               for m in revisions for r in m["revisions"] for w in r["words"])


@pytest.mark.baseline
def test_u3_pro_sequence(factory, trn08):
    params = SessionParams(speaker_labels=True, speech_model="universal-3-5-pro",
                           format_turns=True)  # format_turns does not apply to U3 Pro
    engine = factory(params)
    # at most one partial per silence: the pause partials only, none as a turn grows
    assert engine.turns.config.partials is False
    fed, last = _run(engine, trn08.load_audio()[:16000 * 15])
    turns = [m for m in fed + last if m["type"] == "Turn"]
    finals = [m for m in turns if m["end_of_turn"]]
    partials = [m for m in turns if not m["end_of_turn"]]
    orders = [m["turn_order"] for m in finals]
    assert finals and orders == sorted(set(orders))  # one final per turn
    for m in finals:
        assert m["turn_is_formatted"] is True and m["end_of_turn_confidence"] == 1.0
        assert m["utterance"] == m["transcript"] and all(w["word_is_final"] for w in m["words"])
    for m in partials:
        assert m["utterance"] == "" and m["turn_is_formatted"] is False
        assert not any(w["word_is_final"] for w in m["words"]) and m["transcript"] == ""
    for m in turns:
        assert set(m) == say.turn_keys(params, m["end_of_turn"])
    _check_words(turns)
    assert partials  # trn08 has pauses inside turns


@pytest.mark.baseline
def test_mid_session_revisions_leave_live_labels_alone(factory, trn08):
    audio = trn08.load_audio()
    plain_fed, plain_last = _run(factory(SessionParams(speaker_labels=True)), audio)
    params = SessionParams(speaker_labels=True, speaker_labels_revision_interval_ms=5000)
    engine = factory(params)
    fed, last = [], []
    due = []  # samples received when each mid-session revision went out
    for i in range(0, len(audio), CHUNK):
        out = engine.feed(audio[i:i + CHUNK])
        due += [min(i + CHUNK, len(audio)) for m in out if m["type"] == "SpeakerRevision"]
        fed += out
    last = engine.finish()
    # live labelling is not disturbed: every Turn is the one sent without the interval
    assert [m for m in fed if m["type"] == "Turn"] == \
        [m for m in plain_fed if m["type"] == "Turn"]
    assert [m for m in last if m["type"] == "Turn"] == \
        [m for m in plain_last if m["type"] == "Turn"]
    mid = [m for m in fed if m["type"] == "SpeakerRevision"]
    assert mid, "no mid-session revision on trn08 at a 5 s interval"
    # each right after the audio passed a multiple of 5 s
    assert all((d - CHUNK) // 80000 < d // 80000 for d in due)
    # entries: turns already sent, and only changes from what the client has at that time
    shown: dict[int, dict] = {}
    for m in fed + last:
        if m["type"] == "Turn" and m["end_of_turn"]:
            shown[m["turn_order"]] = m
        elif m["type"] == "SpeakerRevision":
            assert m["revisions"]
            for entry in m["revisions"]:
                old = shown[entry["turn_order"]]
                assert entry["speaker_label"] != old["speaker_label"] or any(
                    (a.get("speaker"), a["start"], a["end"]) != (b.get("speaker"), b["start"],
                                                                 b["end"])
                    for a, b in zip(entry["words"], old["words"]))
                shown[entry["turn_order"]] = {**old, "speaker_label": entry["speaker_label"],
                                              "words": entry["words"]}
    # the end state equals the one without mid-session revisions: the last revision
    # re-clusters the whole session either way
    plain: dict[int, dict] = {}
    for m in plain_fed + plain_last:
        if m["type"] == "Turn" and m["end_of_turn"]:
            plain[m["turn_order"]] = m
        elif m["type"] == "SpeakerRevision":
            for entry in m["revisions"]:
                plain[entry["turn_order"]] = {**plain[entry["turn_order"]],
                                              "speaker_label": entry["speaker_label"],
                                              "words": entry["words"]}
    assert {k: (v["speaker_label"], v["words"]) for k, v in shown.items()} == \
        {k: (v["speaker_label"], v["words"]) for k, v in plain.items()}
