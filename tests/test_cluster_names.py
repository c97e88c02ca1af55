"""Naming the re-clustering's clusters (issue 16, labels as sent): clusters are named after
the speakers their points were shown as (the final words their audio lies under,
``SessionPoints.show``), falling back on the online speakers the points co-occur with.
Hand-worked examples."""

from __future__ import annotations

import numpy as np

from diareval.server.engines.baseline.config import BaselineConfig
from diareval.server.engines.baseline.recluster import (SessionPoints, name_clusters,
                                                        offline_clusters)


def test_name_clusters_takes_the_most_shared_name_one_to_one():
    # cluster row 0 holds points named 2, 2, 0; row 1 holds 0, 0, 1:
    # row 0 -> 2 (2 points), row 1 -> 0 (2 points), one-to-one
    rows = np.array([0, 0, 0, 1, 1, 1])
    names = np.array([2, 2, 0, 0, 0, 1])
    assert name_clusters(rows, names, 2, cap=10) == {0: 2, 1: 0}
    # both rows share most with name 0 (3 and 4 points): the one with more gets it, the
    # other its next best (row 0 -> 2)
    rows = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1])
    names = np.array([0, 0, 0, 2, 2, 0, 0, 0, 0])
    assert name_clusters(rows, names, 2, cap=10) == {1: 0, 0: 2}


def test_name_clusters_leaves_taken_rows_and_names_and_unshared_ones_out():
    rows = np.array([0, 0, 1, 1, 2])
    names = np.array([1, 1, 1, 0, 3])
    # row 0 is taken (named 1): row 1 can only get 0; row 2 shares only name 3
    assert name_clusters(rows, names, 3, cap=10, taken={0: 1}) == {1: 0, 2: 3}
    # a name at or over the cap is never given; a row that shares no name gets none
    assert name_clusters(rows, names, 3, cap=2) == {0: 1, 1: 0}
    assert name_clusters(np.array([], dtype=int), np.array([], dtype=int), 2, cap=10) == {}


def _session(online_of_group: tuple[int, int]) -> SessionPoints:
    """Two well-separated groups of 30 unit vectors; each point's window mapped it to the
    online speaker of its group."""
    rng = np.random.default_rng(3)
    store = SessionPoints(0.3)
    centres = np.eye(16)[:2]
    for group in (0, 1):
        x = centres[group] + 0.05 * rng.standard_normal((30, 16))
        for point in x / np.linalg.norm(x, axis=1, keepdims=True):
            store._append(point.astype(np.float32), online_of_group[group])
    return store


def _name_of_group(clusters, group: int) -> int:
    centroids, names = clusters
    return names[int(np.argmax(centroids @ np.eye(16)[group]))]


def test_offline_clusters_keep_the_names_shown():
    """Without names shown the clusters take the online speakers' names (group 0 -> 0);
    once the points were shown as the other way round (group 0 as speaker 1, group 1 as
    0), a re-clustering keeps those names although the online speakers say otherwise."""
    config = BaselineConfig()
    store = _session((0, 1))
    plain = offline_clusters([], config, 10, points=store)
    assert [_name_of_group(plain, g) for g in (0, 1)] == [0, 1]
    assert (store.shown == -1).all()  # re-clustering reads what was shown, never writes it
    store.shown[:30], store.shown[30:] = 1, 0
    kept = offline_clusters([], config, 10, points=store)
    assert [_name_of_group(kept, g) for g in (0, 1)] == [1, 0]


def test_show_takes_the_speaker_of_the_word_each_point_lies_under():
    """Points centred at 0.5, 1.2, 2.6, 4.0, 9.0 s; a turn of words [0.4, 1.0] (speaker 2),
    [1.1, 2.0] (3), [2.5, 3.0] ("UNKNOWN", not a speaker): the first two points are shown
    as 2 and 3, the one under the unknown word and those outside the turn stay unshown;
    a second turn does not overwrite what was shown."""
    from diareval.server.engines.baseline.words import Word

    store = SessionPoints(0.3)
    for t in (0.5, 1.2, 2.6, 4.0, 9.0):
        store._append(np.ones(4, dtype=np.float32), 0, t)
    words = [Word("a", 0.4, 1.0, 1.0), Word("b", 1.1, 2.0, 1.0), Word("c", 2.5, 3.0, 1.0)]
    store.show(words, [2, 3, "UNKNOWN"], reach=5.0)
    assert store.shown.tolist() == [2, 3, -1, -1, -1]
    # a point between two words takes the nearer one's speaker (4.0: 0.5 s from 4.5, 1 s
    # from 3.0)
    store.show([Word("d", 0.0, 3.0, 1.0), Word("e", 4.5, 9.5, 1.0)], [7, 8], reach=5.0)
    assert store.shown.tolist() == [2, 3, 7, 8, 8]


def test_offline_clusters_name_a_new_cluster_after_the_online_speakers():
    """Every point was shown as one speaker (4, both voices merged): the cluster sharing
    most of them keeps 4 (here a tie, 30 points each), the other is named after its online
    speaker, not a spare."""
    config = BaselineConfig()
    store = _session((7, 8))
    store.shown[:] = 4
    found = offline_clusters([], config, 10, points=store)
    names = sorted(_name_of_group(found, g) for g in (0, 1))
    assert 4 in names and names != [4, 4]
    assert [n for n in names if n != 4][0] in (7, 8)
