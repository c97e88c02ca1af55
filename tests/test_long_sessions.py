"""Long sessions (issue 16, item 4): the live re-clustering's work per final turn does not
grow with the session.

The session's embeddings are kept as windows arrive (``recluster.SessionPoints``) instead
of being collected from every window at every final turn, and the grid of the recent
windows starts at their first cell (``SpeakerGrid.origin``) instead of at cell 0. No
models needed.
"""

from __future__ import annotations

import numpy as np
import pytest

from diareval.server.engines.baseline.config import MAX_GLOBAL, BaselineConfig
from diareval.server.engines.baseline.diarizer import Window, activity_summary
from diareval.server.engines.baseline.grid import SpeakerGrid
from diareval.server.engines.baseline import recluster
from diareval.server.engines.baseline.recluster import SessionPoints, offline_clusters

CONFIG = BaselineConfig()  # rho_update 0.3, tau_active 0.5, offline_threshold 0.5


def _window(first_cell: int, embeddings: list, means: list, mapping: dict, cells: int = 100):
    """A window of ``cells`` cells whose local speaker k has embedding ``embeddings[k]``
    (None: not embedded) and constant frame activity ``means[k]``."""
    k = len(embeddings)
    dim = len(next(e for e in embeddings if e is not None))
    emb = np.zeros((k, dim), np.float32)
    valid = np.zeros(k, bool)
    for i, e in enumerate(embeddings):
        if e is not None:
            emb[i], valid[i] = e, True
    activity = np.tile(np.asarray(means, np.float32), (50, 1))
    local = np.tile(np.asarray(means, np.float32), (cells, 1))
    return Window(first_cell, local, np.ones(cells, np.float32), emb, valid,
                  activity_summary(activity), {}, dict(mapping), np.ones((cells, k), bool))


def _full_walk(windows, config, max_speakers, max_points):
    """The re-clustering as it was before SessionPoints: collect every window's points at
    every call (the reference the incremental store must equal). The tree is cut by the
    engine's own ``cut_tree`` (no split floor), so only the collection of points differs."""
    from scipy.cluster.hierarchy import linkage
    from scipy.optimize import linear_sum_assignment

    from diareval.server.engines.baseline.recluster import cut_tree

    points, owners = [], []
    for index, window in enumerate(windows):
        for k in range(len(window.valid)):
            if window.valid[k] and window.summary[:, k].mean() >= config.rho_update:
                points.append(window.embeddings[k])
                owners.append((index, k))
    points = np.asarray(points, dtype=np.float64)
    if len(points) > max_points:
        keep = np.linspace(0, len(points) - 1, max_points).astype(int)
        points, owners = points[keep], [owners[i] for i in keep]
    labels = cut_tree(linkage(points, method="average", metric="cosine"), points,
                      config.offline_threshold, max_speakers)
    clusters = sorted(set(labels))
    centroids = np.stack([points[labels == c].mean(axis=0) for c in clusters])
    online_ids = sorted({g for w in windows for g in w.mapping.values()})
    overlap = np.zeros((len(clusters), max(online_ids, default=-1) + 1))
    for (index, k), label in zip(owners, labels):
        g = windows[index].mapping.get(k)
        if g is not None:
            overlap[clusters.index(label), g] += 1
    rows, cols = linear_sum_assignment(-overlap)
    names = {clusters[r]: int(c) for r, c in zip(rows, cols) if overlap[r, c] > 0}
    spare = [g for g in range(max_speakers) if g not in names.values()]
    return centroids, [names[c] if c in names else spare.pop(0) for c in clusters]


def test_session_points_keep_what_the_full_walk_collects():
    """Hand-worked: voices a, b (orthogonal) over four windows. Window 1's local speaker 1
    is quiet (mean activity 0.2 < rho_update 0.3) and window 2's speaker 1 has no
    embedding: neither is a point. Points: a (online 0), b (online 1), a' (online 0),
    b (online 2: the online clustering had split b). Synced window by window, the store
    holds exactly those; the clusters are {a, a'} named 0 (2 co-occurrences) and {b, b}
    named 1 (1 each with 1 and 2: the Hungarian takes the first), as the full walk says."""
    a, b = np.eye(2, 4)[0], np.eye(2, 4)[1]
    a2 = a + 0.05 * np.eye(4)[2]
    windows = [
        _window(0, [a, None], [0.9, 0.0], {0: 0}),
        _window(50, [b, a], [0.8, 0.2], {0: 1, 1: 0}),
        _window(100, [a2, None], [0.9, 0.6], {0: 0}),
        _window(150, [b, None], [0.7, 0.0], {0: 2}),
    ]
    store = SessionPoints(CONFIG.rho_update)
    for i in range(1, len(windows) + 1):
        store.sync(windows[:i])
    assert store.windows_seen == 4 and store.windows_touched == 4  # each window read once
    assert np.allclose(store.points, np.stack([a, b, a2, b]))
    assert store.online.tolist() == [0, 1, 0, 2]
    centroids, names = offline_clusters(windows, CONFIG, MAX_GLOBAL, points=store)
    named = dict(zip(names, centroids))
    assert sorted(named) == [0, 1]
    assert np.allclose(named[0], (a + a2) / 2) and np.allclose(named[1], b)
    ref_centroids, ref_names = _full_walk(windows, CONFIG, MAX_GLOBAL, 1000)
    assert names == ref_names and np.array_equal(centroids, ref_centroids)
    # a list shorter than what was taken is another session's: taken afresh
    store.sync(windows[:1])
    assert store.n == 1 and store.windows_seen == 1


def test_incremental_clusters_equal_the_full_walk_past_the_cap():
    """Random voices over 300 windows, the tree capped at 40 points: at every tenth
    window the store synced incrementally gives the same centroids and names as the
    full walk over every window (the same evenly spaced sample)."""
    rng = np.random.default_rng(7)
    voices = rng.normal(size=(4, 16))
    store = SessionPoints(CONFIG.rho_update)
    windows = []
    for i in range(300):
        who = rng.integers(0, 4, size=2)
        embeddings = [voices[w] + 0.3 * rng.normal(size=16) for w in who]
        windows.append(_window(25 * i, embeddings, list(rng.uniform(0.1, 1.0, size=2)),
                               {0: int(who[0]), 1: int(who[1]) % 3}))
        if i % 10 == 9:
            got = offline_clusters(windows, CONFIG, MAX_GLOBAL, max_points=40, points=store)
            want = _full_walk(windows, CONFIG, MAX_GLOBAL, 40)
            assert got[1] == want[1]
            assert np.array_equal(got[0], want[0])
    assert store.windows_touched == 300


def test_per_turn_work_does_not_grow_with_the_windows_kept(monkeypatch):
    """A final turn's re-clustering after 60 windows and after 600: it reads only the
    windows added since the last turn, builds the tree on at most max_points points,
    maps only the recent windows and holds a grid of the same number of cells."""
    rng = np.random.default_rng(3)
    voices = rng.normal(size=(3, 16))
    sizes = []
    real_linkage = __import__("scipy.cluster.hierarchy", fromlist=["linkage"]).linkage

    def counting_linkage(points, *args, **kwargs):
        sizes.append(len(points))
        return real_linkage(points, *args, **kwargs)

    monkeypatch.setattr("scipy.cluster.hierarchy.linkage", counting_linkage)
    mapped = []
    real_map = recluster.map_windows

    def counting_map(centroids, names, windows, config):
        mapped.append(len(windows))
        return real_map(centroids, names, windows, config)

    monkeypatch.setattr(recluster, "map_windows", counting_map)
    store = SessionPoints(CONFIG.rho_update)
    windows, work = [], {}
    for i in range(600):  # windows every 0.5 s (25 cells), 250 cells long, as the engine's
        who = int(rng.integers(0, 3))
        windows.append(_window(25 * i, [voices[who] + 0.2 * rng.normal(size=16)], [0.9],
                               {0: who}, cells=250))
        if i % 6 == 5:  # a final turn every 3 s, starting 2 s before the newest window ends
            touched = store.windows_touched
            start = (25 * i + 250) * 0.02 - 2.0
            grid = recluster.reclustered_grid(windows, start, CONFIG, MAX_GLOBAL,
                                              CONFIG.evidence_floor, 50, store)
            work[i + 1] = (store.windows_touched - touched, sizes[-1], mapped[-1], len(grid.weight))
    assert work[60] == work[600]
    new_windows, tree_points, recent, cells = work[600]
    assert new_windows == 6 and tree_points == 50 and recent <= 20 and cells <= 1000


def test_a_grid_with_an_origin_reads_as_the_grid_from_cell_0():
    """The same two windows on a grid from cell 0 and on one whose origin is the first
    window's cell: every read agrees (cells before the origin read as uncovered), and a
    window before the origin is refused."""
    rng = np.random.default_rng(0)
    grids = [SpeakerGrid(3, 0.25), SpeakerGrid(3, 0.25, origin=1000)]
    for first in (1000, 1040):
        local = rng.uniform(0, 1, size=(100, 2)).astype(np.float32)
        weights = rng.uniform(0.01, 1, size=100).astype(np.float32)
        sourced = rng.uniform(size=(100, 2)) > 0.5
        for grid in grids:
            grid.add(first, local, weights, {0: 2, 1: 0}, sourced)
    full, recent = grids
    assert len(recent.weight) < len(full.weight)  # the recent grid holds no cells before 1000
    for c0, c1 in ((990, 1010), (1000, 1140), (1100, 1150), (900, 950)):
        assert np.array_equal(full.covered(c0, c1), recent.covered(c0, c1))
        assert np.array_equal(full.speech_cells(c0, c1, 0.5), recent.speech_cells(c0, c1, 0.5))
        for a, b in zip(full.mean_activity(c0, c1), recent.mean_activity(c0, c1)):
            assert np.array_equal(a, b)
    for start, end in ((20.0, 20.3), (19.9, 20.1), (21.5, 22.0), (22.7, 22.9), (10.0, 10.5)):
        assert full.speaker_at(start, end) == recent.speaker_at(start, end)
    for t, direction in ((20.5, -1), (20.5, 1), (22.5, 1)):
        assert full.active_until(0, t, direction, 2.0, 0.3) == \
            recent.active_until(0, t, direction, 2.0, 0.3)
    with pytest.raises(ValueError, match="origin"):
        recent.add(999, np.zeros((10, 2), np.float32), np.ones(10, np.float32), {0: 0},
                   np.zeros((10, 2), bool))
