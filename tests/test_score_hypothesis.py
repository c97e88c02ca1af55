"""Hypothesis from a session log: final turns, partials, revisions, the three unknown policies."""

from __future__ import annotations

import warnings

import pytest

from diareval.errors import ConfigError
from diareval.sessionlog import SessionLogWriter, read_session_log
from diareval.score.hypothesis import final_turns, hypothesis_from_log, session_turns


def turn(order, label, words, end_of_turn=True, formatted=False, **extra):
    message = {"type": "Turn", "turn_order": order, "end_of_turn": end_of_turn,
               "turn_is_formatted": formatted, "transcript": " ".join(w[0] for w in words),
               "end_of_turn_confidence": 0.9,
               "words": [dict(text=t, start=s, end=e, confidence=0.9, word_is_final=True,
                              **({"speaker": sp} if sp else {}))
                         for t, s, e, sp in (w if len(w) == 4 else (*w, None) for w in words)],
               "speaker_label": label}
    message.update(extra)
    return message


def write_log(path, messages):
    with SessionLogWriter(path) as writer:
        writer.write("recv", 0.0, 0.0, {"type": "Begin", "id": "x", "expires_at": 0})
        for t_audio, message in messages:
            writer.write("recv", t_audio + 0.1, t_audio, message)
    return read_session_log(path)


def segments(annotation):
    return sorted((round(s.start, 3), round(s.end, 3), label)
                  for s, _, label in annotation.itertracks(yield_label=True))


@pytest.fixture
def log(tmp_path):
    return write_log(tmp_path / "s.jsonl", [
        (0.5, turn(0, None, [("hel", 0, 300)], end_of_turn=False)),
        (1.0, turn(0, "A", [("hello", 0, 400), ("there", 400, 900)], end_of_turn=False)),
        (1.5, turn(0, "A", [("hello", 0, 400), ("there", 400, 900)])),
        (1.6, turn(0, "A", [("Hello", 0, 400), ("there.", 400, 900)], formatted=True)),
        (3.0, turn(1, "UNKNOWN", [("yes", 2000, 2300)])),
        (5.0, turn(2, "B", [("ok", 3000, 3500), ("so", 3600, 4000, "A")])),
        (6.0, turn(3, None, [("mm", 5000, 5200)])),
        (7.0, turn(4, "B", [("and", 6000, 6200)], end_of_turn=False)),
        (8.0, {"type": "SpeakerRevision",
               "revisions": [{"turn_order": 1, "speaker_label": "B"}]}),
    ])


def test_final_turns_last_end_of_turn_wins_and_partials_kept(log):
    session = final_turns(log)
    assert [t.turn_order for t in session.turns] == [0, 1, 2, 3]
    first = session.turns[0]
    assert first.transcript == "Hello there." and first.t_audio == 1.6
    # the two partials and the unformatted end-of-turn message are history
    assert [label for _, label in first.partial_labels] == [None, "A", "A"]
    assert session.unfinished == (4,)
    assert len(session.revisions) == 1


def test_word_level_default_unknown_is_error(log):
    hyp = hypothesis_from_log(log, revisions=False)
    # turn 0: touching words merge; turn 1 unknown -> its own label; turn 2: word 'so'
    # carries speaker A; turn 3 null -> unknown
    assert segments(hyp) == [(0.0, 0.9, "A"), (2.0, 2.3, "UNKNOWN#1"), (3.0, 3.5, "B"),
                             (3.6, 4.0, "A"), (5.0, 5.2, "UNKNOWN#3")]


def test_revision_applied(log):
    hyp = hypothesis_from_log(log, revisions=True)
    assert (2.0, 2.3, "B") in segments(hyp)
    revised = session_turns(log, revisions=True).turns[1]
    assert revised.revised and revised.revised_label == "B" and revised.revised_at == 8.0


def test_other_policies_and_turn_level(log):
    assert segments(hypothesis_from_log(log, unknown="nonspeech", revisions=False)) == [
        (0.0, 0.9, "A"), (3.0, 3.5, "B"), (3.6, 4.0, "A")]
    assert segments(hypothesis_from_log(log, unknown="label", revisions=False)) == [
        (0.0, 0.9, "A"), (2.0, 2.3, "UNKNOWN"), (3.0, 3.5, "B"), (3.6, 4.0, "A"),
        (5.0, 5.2, "UNKNOWN")]
    # turn level: turn 2 is one interval [3.0, 4.0] with the turn's label B
    assert (3.0, 4.0, "B") in segments(hypothesis_from_log(log, level="turn", revisions=False))
    with pytest.raises(ConfigError):
        hypothesis_from_log(log, unknown="??")


def test_log_without_turns_and_truncated_last_line(tmp_path):
    path = tmp_path / "empty.jsonl"
    log = write_log(path, [])
    assert len(hypothesis_from_log(log)) == 0
    with open(path, "a") as file:
        file.write('{"dir": "recv", "t_wall": 1.0, "t_aud')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log = read_session_log(path)
    assert any("truncated" in str(w.message) for w in caught)
    assert final_turns(log).turns == ()
