"""Re-clustering the session's windows at once: the live labels (``live_recluster``) and the
end-of-stream revision both name speakers from it.

Every local speaker embedding of the session so far is clustered together (average
linkage on cosine distance, cut at ``offline_threshold``, at most ``max_speakers``
clusters; on narrow-band audio or with max_speakers given, merges down to
``split_floor`` are undone too where both sides are large: :func:`cut_tree`; on
narrow-band audio with ``spectral_min_points`` embeddings or more, spectral clustering
with the eigengap's number of speakers instead: :func:`spectral_labels`; at the revisions
the final turns' 1 s sliding windows' clusters where the embeddings give one speaker
and the windows more, ``narrow_points``); clusters are
named after the speakers their points were shown as (the speaker of the final word
their audio lies under, as sent: :meth:`SessionPoints.show`, :func:`name_clusters`), else
after the online speakers they co-occur with most, so letters already shown stay where
they were right; each window's local speakers then map to their closest cluster. Named
after the online speakers alone, the labels as sent swapped when the online mapping
drifted (issue 16: calls seed 71 recording 03 had 0.80 of its speech between 30 and 45 s
under the other voice's label; benchmarks/engine.py, session 11).

The cost per final turn does not grow with the session (issue 16): the embeddings are kept
as the windows arrive (:class:`SessionPoints`, so no turn walks every window kept), the
tree is built on at most ``MAX_LIVE_POINTS`` of them (an evenly spaced sample, as before),
only the recent windows are mapped again, and their grid starts at the first of them
(``SpeakerGrid.origin``), not at cell 0. The clusters are those of the full walk, exactly
(tests/test_long_sessions.py).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from diareval.server.engines.baseline.config import (MAX_GLOBAL, MAX_OFFLINE_POINTS,
                                                     BaselineConfig)

# The spectral graph of the final turns' 1 s sliding windows keeps at least this many
# neighbours per row (the 2 s points keep 20): windows 0.5 s apart share half their audio,
# where consecutive 2 s embeddings of a 5 s diarization window every 0.5 s share most of
# theirs, so a window has fewer near-copies of itself to be connected by (10: chosen on
# calls seed 67 recording 02, whose voices the windows' graph finds with it and not with 20).
SLIDING_MIN_NEIGHBOURS = 10
# how offline_clusters clusters (Diarizer.clusterer says which a session uses)
CLUSTERERS = ("tree", "split", "narrow")
from diareval.server.engines.baseline.diarizer import Window
from diareval.server.engines.baseline.grid import GRID, SpeakerGrid


def cut_tree(tree: np.ndarray, points: np.ndarray, threshold: float, cap: int,
             floor: float | None = None, min_points: int = 1) -> np.ndarray:
    """Cluster labels (1..k) of ``points`` from their scipy ``linkage`` ``tree``, cut top-down,
    highest merges first, into at most ``cap`` clusters: a merge higher than ``threshold`` is
    undone (``fcluster(tree, threshold, "distance")``, then ``"maxclust"`` over the cap); one
    in [``floor``, ``threshold``] too when both its sides hold ``min_points`` points or more.
    Where only one side does, the smaller side is set aside (its points join the closest
    final cluster by cosine similarity to its mean) and the larger one is cut further;
    ``floor`` None: no such splits."""
    import heapq

    n = len(points)
    if n < 2:
        return np.ones(n, dtype=int)

    def size(node: int) -> int:
        return 1 if node < n else int(tree[node - n, 3])

    def height(node: int) -> float:
        return float(tree[node - n, 2]) if node >= n else 0.0

    def leaves(node: int) -> list[int]:
        stack, out = [node], []
        while stack:
            x = stack.pop()
            if x < n:
                out.append(x)
            else:
                stack += [int(tree[x - n, 0]), int(tree[x - n, 1])]
        return out

    heap, clusters, aside = [(-height(2 * n - 2), 2 * n - 2)], [], []
    while heap:
        _, node = heapq.heappop(heap)
        left, right = int(tree[node - n, 0]), int(tree[node - n, 1])
        room = len(clusters) + len(heap) + 2 <= cap
        h, small = height(node), [c for c in (left, right) if size(c) < min_points]
        if h > threshold and room:
            parts = [left, right]
        elif floor is not None and h >= floor and len(small) < 2:
            if small:  # an outlier: set it aside, cut the rest further
                aside.append(small[0])
                parts = [right if small[0] == left else left]
            elif room:
                parts = [left, right]
            else:
                parts = None
        else:
            parts = None
        if parts is None:
            clusters.append(node)
            continue
        for child in parts:
            if child >= n:
                heapq.heappush(heap, (-height(child), child))
            else:
                clusters.append(child)
    labels = np.zeros(n, dtype=int)
    for label, node in enumerate(clusters, start=1):
        labels[leaves(node)] = label
    if aside:
        rest = [i for node in aside for i in leaves(node)]
        unit = points / (np.linalg.norm(points, axis=1, keepdims=True) + 1e-12)
        means = np.stack([unit[labels == k].mean(axis=0) for k in range(1, len(clusters) + 1)])
        labels[rest] = 1 + np.argmax(unit[rest] @ means.T, axis=1)
    return labels


def spectral_labels(points: np.ndarray, cap: int, max_points: int = 300,
                    p_values: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5),
                    min_points: int = 10, min_neighbours: int = 20) -> np.ndarray:
    """Cluster labels (1..k) of ``points`` by spectral clustering with the number of
    speakers from the normalised maximum eigengap (NME-SC, Park et al., "Auto-tuning
    spectral clustering for speaker diarization using normalized maximum eigengap", IEEE
    SPL 2019): for each pruning share p, the cosine-similarity graph keeps each row's
    p * n most similar points (binarised, symmetrised); k is the largest gap among the
    unnormalised Laplacian's smallest eigenvalues (at most ``cap``), and the p whose gap,
    over the largest eigenvalue, is widest for the share of neighbours its graph keeps is
    taken (the kept share, not p: under ``min_neighbours`` / p points several p keep the
    same graph, and weighing it by the smallest p made that p win and split one voice
    into several; benchmarks/engine.py, session 13). The rows of the k smallest
    eigenvectors then go through k-means (k-means++ with a fixed seed: deterministic).
    Early in a session the points are few, and a window's embeddings are each other's
    nearest neighbours (the windows overlap): each row keeps at least ``min_neighbours``
    neighbours (a sparser graph falls apart into as many pieces as it has, and k with
    it; the final turns' 1 s sliding windows keep ``SLIDING_MIN_NEIGHBOURS``), k is at
    most one per ``min_points`` points, and a cluster k-means leaves under ``min_points``
    joins the closest other one.

    No threshold on distances: what sets k is how the points group, so it does not move
    when a narrow-band channel shrinks every CAM++ distance (issue 16: a two-speaker call
    whose voices sit 0.37 apart on average, under the 0.38 floor of :func:`cut_tree`).
    At most ``max_points`` (evenly spaced) build the graph; the rest join the closest
    cluster mean (cosine). Written here because the one maintained implementation (NVIDIA
    NeMo's) comes with NeMo; scipy's eigh and scikit-learn's KMeans do the numerics."""
    from scipy.linalg import eigh
    from sklearn.cluster import KMeans

    n = len(points)
    unit = points / (np.linalg.norm(points, axis=1, keepdims=True) + 1e-12)
    if n < 3 or cap <= 1:
        return np.ones(n, dtype=int)
    keep = np.linspace(0, n - 1, max_points).astype(int) if n > max_points else np.arange(n)
    sample = unit[keep]
    m = len(sample)
    similarity = sample @ sample.T
    order = np.argsort(-similarity, axis=1)
    top = min(cap, m // max(min_points, 1), m - 1)
    if top < 2:
        return np.ones(n, dtype=int)
    best, tried = None, set()
    for p in p_values:
        neighbours = min(m - 1, max(min_neighbours, int(round(p * m))))
        if neighbours in tried:  # the same graph as a smaller p's: the same ratio
            continue
        tried.add(neighbours)
        affinity = np.zeros((m, m))
        affinity[np.arange(m)[:, None], order[:, :neighbours]] = 1.0
        affinity = 0.5 * (affinity + affinity.T)
        np.fill_diagonal(affinity, 0.0)
        laplacian = np.diag(affinity.sum(axis=1)) - affinity
        # every eigenpair at once, by divide and conquer: LAPACK's subset driver (evr) fails
        # with "Internal Error" on a graph of disconnected parts on some CPUs (repeated zero
        # eigenvalues; seen on an AVX-512 Xeon), and one full evd is faster than its two calls
        values, vectors = eigh(laplacian, driver="evd")
        largest = values[-1]
        values, vectors = values[:top + 1], vectors[:, :top + 1]
        gaps = np.diff(values)
        k = int(np.argmax(gaps)) + 1
        # the share of neighbours the graph keeps, not p: below min_neighbours / p points
        # every p keeps min_neighbours, and the nominal p would favour the smallest
        ratio = (neighbours / m) / (gaps[k - 1] / max(largest, 1e-10) + 1e-10)
        if best is None or ratio < best[0]:
            best = (ratio, k, vectors)
    _, k, vectors = best
    if k == 1:
        return np.ones(n, dtype=int)
    sampled = KMeans(k, n_init=10, random_state=0).fit_predict(vectors[:, :k])
    sizes = np.bincount(sampled, minlength=k)
    kept = [c for c in range(k) if sizes[c] >= min_points] or [int(np.argmax(sizes))]
    # a cluster under min_points (k-means' leftovers) joins the closest one kept
    means = np.stack([sample[sampled == c].mean(axis=0) for c in kept])
    return 1 + np.argmax(unit @ means.T, axis=1)


class SessionPoints:
    """The embeddings the re-clustering uses, kept as the windows arrive (running statistics
    of the session, so a final turn does not walk every window kept).

    A point is a local speaker's embedding in a window where it is valid and its mean frame
    activity is at least ``rho_update`` (the online clustering's own rule); with it, the
    online global speaker that window mapped it to (-1: none). :meth:`sync` takes the
    windows appended since the last call, so the work per call is the new windows only.
    """

    def __init__(self, rho_update: float):
        self.rho_update = rho_update
        self._points = np.zeros((0, 0), dtype=np.float32)  # sized at the first point
        self._online = np.zeros(0, dtype=np.int64)
        self._shown = np.zeros(0, dtype=np.int64)
        # centre (s) of each point's embedding audio, and its running maximum (the
        # points are in window order: a point's centre lies within a window of the maximum)
        self._source = np.zeros(0, dtype=np.float64)
        self._latest = np.zeros(0, dtype=np.float64)
        self.n = 0  # points so far
        self.windows_seen = 0  # windows taken so far
        self.windows_touched = 0  # windows read by sync, ever (tests count the work)

    @property
    def points(self) -> np.ndarray:
        """(n, embedding dimension) float32 embeddings, in window order."""
        return self._points[:self.n]

    @property
    def online(self) -> np.ndarray:
        """(n,) the online speaker each point's window mapped it to, -1 for none."""
        return self._online[:self.n]

    @property
    def shown(self) -> np.ndarray:
        """(n,) the global speaker each point was shown as (:meth:`show`), -1 for none
        yet; a view (tests write it)."""
        return self._shown[:self.n]

    def show(self, words, speakers, reach: float) -> None:
        """A final turn was sent with ``words`` and their ``speakers``: each point not shown
        yet whose embedding audio is centred within the words' span is shown as the
        speaker of the word it lies under (else the nearest word), if that is a global
        speaker. ``reach``: how far before the running maximum a centre can lie (the
        diarization window, s); with it only the points near the turn are read."""
        if not words or self.n == 0:
            return
        start, end = words[0].start, words[-1].end
        latest = self._latest[:self.n]
        lo = int(np.searchsorted(latest, start, side="left"))
        hi = int(np.searchsorted(latest, end + reach, side="right"))
        starts = np.array([w.start for w in words])
        ends = np.array([w.end for w in words])
        for i in range(lo, hi):
            t = self._source[i]
            if self._shown[i] >= 0 or not start <= t <= end:
                continue
            gap = np.maximum(starts - t, 0.0) + np.maximum(t - ends, 0.0)
            speaker = speakers[int(np.argmin(gap))]
            if isinstance(speaker, (int, np.integer)):
                self._shown[i] = int(speaker)

    def sync(self, windows: Sequence[Window]) -> "SessionPoints":
        """Take the windows of ``windows`` after those already taken (all of them again if
        the list is shorter than what was taken: a different session's)."""
        if len(windows) < self.windows_seen:
            self.__init__(self.rho_update)
        for index in range(self.windows_seen, len(windows)):
            window = windows[index]
            self.windows_touched += 1
            activity = window.summary
            for k in range(len(window.valid)):
                if window.valid[k] and activity[:, k].mean() >= self.rho_update:
                    cells = np.flatnonzero(window.sourced[:, k]) if window.sourced.size else []
                    centre = (window.first_cell + (float(np.mean(cells)) if len(cells) else
                                                   len(window.local) / 2) + 0.5) * GRID
                    self._append(window.embeddings[k], window.mapping.get(k, -1), centre)
        self.windows_seen = len(windows)
        return self

    def _append(self, embedding: np.ndarray, online: int, source: float = 0.0) -> None:
        if self.n == len(self._points):  # amortised O(1): double the capacity
            grow = max(64, self.n)
            dim = self._points.shape[1] if self.n else len(embedding)
            self._points = np.vstack([self._points.reshape(-1, dim),
                                      np.zeros((grow, dim), dtype=np.float32)])
            self._online = np.concatenate([self._online, np.full(grow, -1, dtype=np.int64)])
            self._shown = np.concatenate([self._shown, np.full(grow, -1, dtype=np.int64)])
            self._source = np.concatenate([self._source, np.zeros(grow)])
            self._latest = np.concatenate([self._latest, np.zeros(grow)])
        self._points[self.n] = embedding
        self._online[self.n] = online
        self._source[self.n] = source
        self._latest[self.n] = max(source, self._latest[self.n - 1] if self.n else source)
        self.n += 1


def offline_clusters(windows: Sequence[Window], config: BaselineConfig, max_speakers: int,
                     max_points: int = MAX_OFFLINE_POINTS,
                     points: SessionPoints | None = None,
                     clusterer: str = "tree",
                     sliding: np.ndarray | None = None) -> tuple[np.ndarray, list[int]] | None:
    """Re-cluster every local speaker embedding of ``windows`` at once. Returns the cluster
    centroids and the global speaker each is named after; None with fewer than two
    embeddings. Clusters are named (:func:`name_clusters`) after the speakers their points
    were shown as (``SessionPoints.shown``) where they were, else after the online
    speakers they co-occur with most. At most ``max_points`` embeddings (evenly spaced)
    build the tree, so its cost is capped. ``clusterer`` (:attr:`Diarizer.clusterer`):
    "tree" cuts the average-linkage tree at ``config.offline_threshold``; "split"
    (max_speakers given) also undoes merges down to ``config.split_floor`` where both sides
    are large (:func:`cut_tree`); "narrow" (narrow-band audio) is "split" with
    ``config.narrow_split_floor`` and ``config.narrow_split_min_points`` until
    ``config.spectral_min_points`` embeddings, then :func:`spectral_labels` (with
    ``config.narrow_clusterer`` "spectral").
    ``points``: the session's :class:`SessionPoints`, brought up to date here (only the
    windows added since it last was are read); None: collected afresh. ``sliding``: the
    final turns' sliding-window embeddings (``SlidingEmbeddings.matrix``); with "narrow",
    ``config.narrow_points`` other than "windows" and ``spectral_min_points`` of them, the
    spectral clustering runs on them too where the embeddings of ``points`` gave one
    cluster, and if it finds more, its clusters are taken: their centroids are the
    windows' means, and each embedding of ``points`` joins the closest (for the naming
    below). The caller passes them where ``narrow_points`` says (the revisions, or live
    too)."""
    from scipy.cluster.hierarchy import linkage

    from diareval.server.engines.baseline.clustering import cosine_distances

    store = (points if points is not None else SessionPoints(config.rho_update)).sync(windows)
    n = store.n
    if n < 2:
        return None
    keep = np.linspace(0, n - 1, max_points).astype(int) if n > max_points else slice(None)
    # long sessions: an evenly spaced sample
    points_ = store.points[keep].astype(np.float64)
    online = store.online[keep]
    if clusterer not in CLUSTERERS:
        raise ValueError(f"clusterer must be one of {CLUSTERERS}, not {clusterer!r}")
    cap = max_speakers
    if clusterer == "narrow" and config.narrow_clusterer == "spectral" and n >= config.spectral_min_points:
        labels = spectral_labels(points_, cap, config.spectral_max_points,
                                 min_points=config.split_min_points)
    else:
        tree = linkage(points_, method="average", metric="cosine")
        if clusterer == "narrow" and config.narrow_split_floor > 0:
            # narrow-band audio before the spectral clustering takes over: the session's
            # first seconds, where two voices on one line were one cluster for 15 s
            floor, min_points = config.narrow_split_floor, config.narrow_split_min_points
        else:
            floor = config.split_floor if clusterer != "tree" and config.split_floor > 0 else None
            min_points = config.split_min_points
        labels = cut_tree(tree, points_, config.offline_threshold, cap, floor, min_points)
    means = None
    if (clusterer == "narrow" and config.narrow_clusterer == "spectral"
            and config.narrow_points != "windows" and sliding is not None
            and len(sliding) >= config.spectral_min_points and len(set(labels)) == 1):
        # one speaker on the 2 s points: the 1 s windows' clusters if they find more
        vectors = sliding.astype(np.float64)
        found = spectral_labels(vectors, cap, config.spectral_max_points,
                                min_points=config.split_min_points,
                                min_neighbours=SLIDING_MIN_NEIGHBOURS)
        if len(set(found)) > 1:
            means = np.stack([vectors[found == c].mean(axis=0) for c in sorted(set(found))])
            means /= np.linalg.norm(means, axis=1, keepdims=True) + 1e-12
            unit = points_ / (np.linalg.norm(points_, axis=1, keepdims=True) + 1e-12)
            labels = 1 + np.argmax(unit @ means.T, axis=1)
    clusters = sorted(set(labels))
    if means is not None:  # the sliding windows' clusters: their means
        centroids = np.stack([means[c - 1] for c in clusters])
    else:
        centroids = np.stack([points_[labels == c].mean(axis=0) for c in clusters])
    row = {c: i for i, c in enumerate(clusters)}
    rows_of_points = np.array([row[label] for label in labels])
    names = {}
    shown = store.shown[keep]
    seen = shown >= 0
    if seen.any():
        names = name_clusters(rows_of_points[seen], shown[seen], len(clusters), cap)
    # the rest after online speakers: Hungarian on how often they co-occur
    known = online >= 0
    by_online = name_clusters(rows_of_points[known], online[known], len(clusters), cap,
                              taken=names)
    names = {clusters[r]: g for r, g in {**by_online, **names}.items()}
    spare = [g for g in range(cap) if g not in names.values()]
    for i, c in enumerate(clusters):
        if c in names:
            continue
        if spare:
            names[c] = spare.pop(0)
        else:  # no label left under the cap: join the closest named cluster
            named = [j for j, other in enumerate(clusters) if other in names]
            dist = cosine_distances(centroids[i:i + 1], centroids[named])[0]
            names[c] = names[clusters[named[int(np.argmin(dist))]]]
    return centroids, [names[c] for c in clusters]


def name_clusters(rows: np.ndarray, names: np.ndarray, n_clusters: int, cap: int,
                  taken: dict | None = None) -> dict[int, int]:
    """{cluster row: name} from points' cluster rows and the names they had: one-to-one,
    most shared points first (Hungarian), only where a cluster shares points with a name;
    rows and names in ``taken`` ({row: name}) are left out."""
    taken = taken or {}
    rows, names = np.asarray(rows, dtype=int), np.asarray(names, dtype=int)
    free_rows = [r for r in range(n_clusters) if r not in taken]
    top = min(int(names.max()) + 1 if len(names) else 0, cap)
    free_names = [g for g in range(top) if g not in taken.values()]
    if not free_rows or not free_names:
        return {}
    counts = np.zeros((n_clusters, max(top, 1)))
    inside = names < top
    np.add.at(counts, (rows[inside], names[inside]), 1.0)
    overlap = counts[np.ix_(free_rows, free_names)]
    return {free_rows[i]: free_names[j] for i, j in zip(*linear_sum_assignment(-overlap))
            if overlap[i, j] > 0}


def map_windows(centroids: np.ndarray, names: list[int], windows: Sequence[Window],
                config: BaselineConfig) -> list[dict]:
    """{local speaker: global speaker} per window: every local speaker with an
    embedding goes to its closest cluster (one-to-one within a window when possible)."""
    from diareval.server.engines.baseline.clustering import cosine_distances

    mappings = []
    for window in windows:
        embeddings, valid, activity = window.embeddings, window.valid, window.summary
        mapping: dict = {}
        active = [k for k in range(len(valid)) if valid[k]
                  and activity[:, k].max() >= config.tau_active]
        if active:
            dist = cosine_distances(embeddings[active], centroids)
            rows, cols = linear_sum_assignment(dist)
            for r, c in zip(rows, cols):
                mapping[active[r]] = names[c]
            for r, k in enumerate(active):
                if k not in mapping:
                    mapping[k] = names[int(np.argmin(dist[r]))]
        mappings.append(mapping)
    return mappings


def recent_windows(windows: Sequence[Window], first_cell: int) -> Sequence[Window]:
    """The windows that reach ``first_cell`` or later (a suffix: windows are in time order);
    walks back from the newest, so the cost is that of the windows returned."""
    index = len(windows)
    while index > 0 and windows[index - 1].first_cell + len(windows[index - 1].local) >= first_cell:
        index -= 1
    return windows[index:]


def reclustered_grid(windows: Sequence[Window], start: float, config: BaselineConfig,
                     max_speakers: int, evidence_floor: float | None, max_points: int,
                     points: SessionPoints | None = None,
                     clusterer: str = "tree",
                     clusters: tuple[np.ndarray, list[int]] | None = None) -> SpeakerGrid | None:
    """A grid of the windows from ``start`` - window on, mapped to the clusters of every
    window's embeddings (re-clustered as the revision does, on at most ``max_points``:
    about 45 ms per final turn at 1000); None when there is nothing to re-cluster.
    With the session's ``points`` the work does not grow with the session: the points are
    kept as windows arrive, the tree is capped, and the grid starts at the first recent
    window's cell (``SpeakerGrid.origin``). ``clusterer`` as in :func:`offline_clusters`;
    ``clusters``: :func:`offline_clusters`' result when the caller already has it."""
    if clusters is None:
        clusters = offline_clusters(windows, config, max_speakers, max_points, points, clusterer)
    if clusters is None:
        return None
    recent = recent_windows(windows, int((start - config.window) / GRID))
    origin = min((w.first_cell for w in recent if len(w.local)), default=0)
    grid = SpeakerGrid(MAX_GLOBAL, evidence_floor, origin=origin)
    for window, mapping in zip(recent, map_windows(*clusters, recent, config)):
        if len(window.local):
            grid.add(window.first_cell, window.local, window.weights, mapping, window.sourced)
    return grid
