"""Re-clustering the session's windows at once: the live labels (``live_recluster``) and the
end-of-stream revision both name speakers from it.

Every local speaker embedding of the session so far is clustered together (average
linkage on cosine distance, cut at ``offline_threshold``, at most ``max_speakers``
clusters; on narrow-band audio or with max_speakers given, merges down to
``split_floor`` are undone too where both sides are large: :func:`cut_tree`); clusters are named after the online speakers they co-occur with most, so
letters already shown stay where they were right; each window's local speakers then map
to their closest cluster.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from diareval.server.engines.baseline.config import (MAX_GLOBAL, MAX_OFFLINE_POINTS,
                                                     BaselineConfig)
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


def offline_clusters(windows: Sequence[Window], config: BaselineConfig, max_speakers: int,
                     max_points: int = MAX_OFFLINE_POINTS,
                     split: bool = False) -> tuple[np.ndarray, list[int]] | None:
    """Re-cluster every local speaker embedding of ``windows`` at once. Returns the cluster
    centroids and the global speaker each is named after; None with fewer than two
    embeddings. At most ``max_points`` embeddings (evenly spaced) build the tree. With
    ``split`` (narrow-band audio, or max_speakers given), merges down to
    ``config.split_floor`` are undone too where both sides are large (:func:`cut_tree`)."""
    from scipy.cluster.hierarchy import linkage

    from diareval.server.engines.baseline.clustering import cosine_distances

    points, owners = [], []
    for index, window in enumerate(windows):
        embeddings, valid, activity = window.embeddings, window.valid, window.summary
        for k in range(len(valid)):
            if valid[k] and activity[:, k].mean() >= config.rho_update:
                points.append(embeddings[k])
                owners.append((index, k))
    if len(points) < 2:
        return None
    points = np.asarray(points, dtype=np.float64)
    if len(points) > max_points:  # long sessions: an evenly spaced sample
        keep = np.linspace(0, len(points) - 1, max_points).astype(int)
        points, owners = points[keep], [owners[i] for i in keep]
    tree = linkage(points, method="average", metric="cosine")
    cap = max_speakers
    floor = config.split_floor if split and config.split_floor > 0 else None
    labels = cut_tree(tree, points, config.offline_threshold, cap, floor, config.split_min_points)
    clusters = sorted(set(labels))
    centroids = np.stack([points[labels == c].mean(axis=0) for c in clusters])
    # name clusters after online speakers: Hungarian on how often they co-occur
    online_ids = sorted({g for w in windows for g in w.mapping.values()})
    overlap = np.zeros((len(clusters), max(online_ids, default=-1) + 1))
    for (index, k), label in zip(owners, labels):
        g = windows[index].mapping.get(k)
        if g is not None:
            overlap[clusters.index(label), g] += 1
    names = {}
    if overlap.size:
        rows, cols = linear_sum_assignment(-overlap)
        names = {clusters[r]: int(c) for r, c in zip(rows, cols) if overlap[r, c] > 0}
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


def offline_mappings(windows: Sequence[Window], config: BaselineConfig,
                     max_speakers: int, split: bool = False) -> list[dict] | None:
    """Every window's mapping from re-clustering the whole session (the revision)."""
    clusters = offline_clusters(windows, config, max_speakers, split=split)
    return None if clusters is None else map_windows(*clusters, windows, config)


def reclustered_grid(windows: Sequence[Window], start: float, config: BaselineConfig,
                     max_speakers: int, evidence_floor: float | None,
                     max_points: int, split: bool = False) -> SpeakerGrid | None:
    """A grid of the windows from ``start`` - window on, mapped to the clusters of every
    window's embeddings (re-clustered as the revision does, on at most ``max_points``:
    about 45 ms per final turn at 1000); None when there is nothing to re-cluster."""
    clusters = offline_clusters(windows, config, max_speakers, max_points, split)
    if clusters is None:
        return None
    first = int((start - config.window) / GRID)
    index = len(windows)
    while index > 0 and windows[index - 1].first_cell + len(windows[index - 1].local) >= first:
        index -= 1
    recent = windows[index:]
    grid = SpeakerGrid(MAX_GLOBAL, evidence_floor)
    for window, mapping in zip(recent, map_windows(*clusters, recent, config)):
        if len(window.local):
            grid.add(window.first_cell, window.local, window.weights, mapping, window.sourced)
    return grid
