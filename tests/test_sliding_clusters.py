"""Re-clustering narrow-band sessions on the final turns' sliding windows (``narrow_points``).

Hand-made points: two voices a and b (unit vectors 0.6 apart in cosine distance). The
diarization windows' 2 s embeddings straddle both voices in quick turn-taking, so they sit
between the two (here: 60 % of one, 40 % of the other, and noise as large as the point);
the 1 s sliding windows lie near one voice each. Spectral clustering of the 2 s points
finds one speaker; of the sliding windows, two, whose means are a and b, so those are
taken. Where the 2 s points find two speakers or more, they decide."""

import numpy as np
import pytest
from fixtures import voice_points

from diareval.server.engines.baseline import recluster
from diareval.server.engines.baseline.config import BaselineConfig

DIM = 192


def _voices(rng):
    a = rng.normal(size=DIM)
    a /= np.linalg.norm(a)
    o = rng.normal(size=DIM)
    o -= (o @ a) * a
    o /= np.linalg.norm(o)
    b = 0.4 * a + np.sqrt(1 - 0.4 ** 2) * o  # cosine similarity 0.4 to a
    return a, b


def _near(rng, centre, n, noise):
    x = centre + noise * rng.normal(size=(n, DIM)) / np.sqrt(DIM)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def session():
    rng = np.random.default_rng(7)
    a, b = _voices(rng)
    # 2 s points: 60 % of one voice, 40 % of the other, plus noise; which voice leads
    # alternates (the online clustering's speaker 0 for a-led, 1 for b-led)
    points = recluster.SessionPoints(0.3)
    for i in range(60):
        lead, other = (a, b) if i % 2 == 0 else (b, a)
        mixed = 0.6 * lead + 0.4 * other
        points._append(_near(rng, mixed / np.linalg.norm(mixed), 1, 1.0)[0].astype(np.float32),
                       i % 2, float(i))
    sliding = np.vstack([_near(rng, a, 40, 0.3), _near(rng, b, 40, 0.3)]).astype(np.float32)
    return a, b, points, sliding


def _config(narrow_points):
    return BaselineConfig(narrow_points=narrow_points)


def test_the_2s_points_alone_give_one_cluster(session):
    a, b, points, sliding = session
    centroids, names = recluster.offline_clusters([], _config("windows"), 10, points=points,
                                                  clusterer="narrow", sliding=sliding)
    assert len(names) == 1


def test_the_sliding_windows_give_both_voices_named_after_the_online_speakers(session):
    a, b, points, sliding = session
    centroids, names = recluster.offline_clusters([], _config("sliding"), 10, points=points,
                                                  clusterer="narrow", sliding=sliding)
    assert len(names) == 2
    unit = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)
    # each centroid is one voice's direction (the sliding windows' mean), not the mix
    ia, ib = int(np.argmax(unit @ a)), int(np.argmax(unit @ b))
    assert ia != ib and unit[ia] @ a > 0.95 and unit[ib] @ b > 0.95
    # the a-led points were the online speaker 0: the cluster of a is named 0
    assert names[ia] == 0 and names[ib] == 1


def test_too_few_sliding_windows_fall_back_on_the_points(session):
    a, b, points, sliding = session
    few = sliding[::4][:BaselineConfig().spectral_min_points - 1]
    _, names = recluster.offline_clusters([], _config("sliding"), 10, points=points,
                                          clusterer="narrow", sliding=few)
    assert len(names) == 1


def test_wide_band_sessions_ignore_the_sliding_windows(session):
    a, b, points, sliding = session
    for clusterer in ("tree", "split"):
        with_sliding = recluster.offline_clusters([], _config("sliding"), 10, points=points,
                                                  clusterer=clusterer, sliding=sliding)
        without = recluster.offline_clusters([], _config("windows"), 10, points=points,
                                             clusterer=clusterer)
        assert np.allclose(with_sliding[0], without[0]) and with_sliding[1] == without[1]


def test_where_the_2s_points_find_as_many_speakers_they_decide(session):
    """Clean 2 s points (near one voice each): both views find two speakers, and the
    clusters are the points' own, as without the sliding windows."""
    a, b, _, sliding = session
    rng = np.random.default_rng(3)
    points = recluster.SessionPoints(0.3)
    for i, p in enumerate(np.vstack([_near(rng, a, 30, 0.3), _near(rng, b, 30, 0.3)])):
        points._append(p.astype(np.float32), int(i >= 30), float(i))
    with_sliding = recluster.offline_clusters([], _config("revision"), 10, points=points,
                                              clusterer="narrow", sliding=sliding)
    without = recluster.offline_clusters([], _config("windows"), 10, points=points,
                                         clusterer="narrow")
    assert len(without[1]) == 2
    assert np.allclose(with_sliding[0], without[0]) and with_sliding[1] == without[1]


def test_the_sliding_windows_graph_keeps_fewer_neighbours_than_the_points(session, monkeypatch):
    """1 s windows 0.5 s apart share half their audio (consecutive 2 s points of the
    diarization windows most of theirs), so their graph keeps SLIDING_MIN_NEIGHBOURS (10)
    neighbours per row, not the points' 20: on close voices (133 windows) it finds both
    voices on more sets, each time with one voice per cluster, and offline_clusters builds
    the windows' graph with it."""
    found = {10: 0, 20: 0}
    for seed in range(10):
        # close, as 1 s windows of two voices through the telephone channel are
        windows, voice = voice_points([70, 63], spread=0.12, separation=0.45, seed=seed)
        for neighbours in found:
            labels = recluster.spectral_labels(windows, 10, min_neighbours=neighbours)
            if len(set(labels)) == 2:
                found[neighbours] += 1
                agree = np.mean((labels == labels[0]) == (voice == voice[0]))
                assert agree >= 0.9, (seed, neighbours, agree)
    assert found[10] > found[20] >= 1
    calls = []
    spectral = recluster.spectral_labels

    def recorded(points, cap, *args, **kwargs):
        calls.append((len(points), kwargs.get("min_neighbours", 20)))
        return spectral(points, cap, *args, **kwargs)

    monkeypatch.setattr(recluster, "spectral_labels", recorded)
    a, b, points, sliding = session
    recluster.offline_clusters([], _config("revision"), 10, points=points, clusterer="narrow",
                               sliding=sliding)
    assert calls == [(points.n, 20), (len(sliding), recluster.SLIDING_MIN_NEIGHBOURS)]
