"""``diareval.stream.offline.stream_offline``: any engine in this process, messages as a
session log; and the tuner's DER of such a log equals ``diareval.score.score_session``'s."""

from __future__ import annotations

import math

import pytest

from diareval.datasets import load_folder
from diareval.score import Conventions, score_session
from diareval.server.engines import make_engine_factory
from diareval.server.engines.base import SessionParams
from diareval.stream.offline import CHUNK, stream_offline
from diareval.tune import _der
from fixtures import write_synthetic_dataset

LABELS = SessionParams(speaker_labels=True)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    folder = write_synthetic_dataset(tmp_path_factory.mktemp("syn"), n_recordings=1,
                                     duration=30.0, n_speakers=3, seed=4)
    return load_folder(folder)[0]


def _by_hand(engine, audio, chunk):
    """(samples received, message) of a session fed ``chunk`` samples at a time."""
    out = []
    for i in range(0, len(audio), chunk):
        out += [(min(i + chunk, len(audio)), m) for m in engine.feed(audio[i:i + chunk])]
    return out + [(len(audio), m) for m in engine.finish()]


@pytest.mark.parametrize("chunk", [CHUNK, 1600, 333])
def test_log_holds_every_message_at_the_audio_time_it_came(recording, chunk):
    options = dict(recordings=[recording], uniform_p_wrong=0.3, seed=3)
    session = stream_offline(make_engine_factory("oracle", **options), recording, LABELS,
                             chunk=chunk)
    audio = recording.load_audio()
    expected = _by_hand(make_engine_factory("oracle", **options)(LABELS), audio, chunk)
    assert [line.msg for line in session.log] == [m for _, m in expected]
    assert [line.t_audio for line in session.log] == [n / 16000 for n, _ in expected]
    assert {line.dir for line in session.log} == {"recv"}
    assert session.uri == recording.uri
    assert session.audio_seconds == pytest.approx(30.0)
    t_walls = [line.t_wall for line in session.log]
    assert t_walls == sorted(t_walls) and t_walls[-1] <= session.cpu_seconds
    assert session.real_time_factor == pytest.approx(session.cpu_seconds / 30.0)


def test_an_error_free_oracle_scores_zero(recording):
    # exact_words: reference word times to the ms (Universal-Streaming's 80 ms word grid,
    # issue 13, moves word edges by up to 40 ms)
    factory = make_engine_factory("oracle", recordings=[recording], uniform_p_wrong=0.0,
                                  p_unknown_short=0.0, exact_words=True)
    session = stream_offline(factory, recording, LABELS)
    assert score_session(session.log, recording).der.der < 0.001


@pytest.mark.parametrize("conventions", [Conventions(), Conventions(revisions=False),
                                         Conventions(collar=0.25, skip_overlap=True)])
def test_the_tuners_der_is_score_sessions(recording, conventions):
    factory = make_engine_factory("oracle", recordings=[recording], uniform_p_wrong=0.4,
                                  seed=9, p_revision=0.5)
    session = stream_offline(factory, recording, LABELS)
    full = score_session(session.log, recording, conventions).der
    mine = _der(session.log, recording, conventions)
    assert full.der > 0.05 and not math.isnan(mine.der)
    assert mine == full
