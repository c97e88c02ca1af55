"""Incremental speaker clustering with centroid constraints (the diart recipe).

Each rolling window gives up to 3 local speakers, each with an activity curve and
(if active enough) an embedding. They are mapped to global speakers by an optimal
one-to-one assignment on cosine distance (two local speakers of one window never
share a global speaker while a free one is close enough):

- a local speaker is *active* if its peak activity >= ``tau_active``;
- an active local speaker whose distance to every centroid is > ``delta_new`` starts
  a new global speaker, but only if it is *long* (mean activity >= ``rho_update``)
  and fewer than ``max_speakers`` exist; otherwise it goes to the closest free one,
  and with the cap reached, to the closest one (extra speakers merge into the
  closest label);
- centroids are running sums of the embeddings of long local speakers assigned to them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclass
class ClusteringConfig:
    tau_active: float = 0.55
    rho_update: float = 0.3
    delta_new: float = 0.65  # cosine distance (0..2)
    max_speakers: int = 10


def cosine_distances(embeddings: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(n, d) x (m, d) -> (n, m) cosine distances (inputs need not be normalised)."""
    a = embeddings / (np.linalg.norm(embeddings, axis=1, keepdims=True) + 1e-9)
    b = centroids / (np.linalg.norm(centroids, axis=1, keepdims=True) + 1e-9)
    return 1.0 - a @ b.T


@dataclass
class OnlineSpeakerClustering:
    config: ClusteringConfig = field(default_factory=ClusteringConfig)
    centroids: list = field(default_factory=list)  # running sums, one per global speaker

    @property
    def num_speakers(self) -> int:
        return len(self.centroids)

    def assign(self, activity: np.ndarray, embeddings: np.ndarray, valid: np.ndarray,
               update: bool = True, taken: set[int] = frozenset()) -> dict[int, int]:
        """Map local speakers of one window to global speakers.

        ``activity``: (frames, k) local activity; ``embeddings``: (k, d);
        ``valid``: (k,) bool, whether each local speaker has an embedding;
        ``taken``: global speakers already given to other local speakers of this window.
        Returns {local index: global index} for the mapped local speakers; with
        ``update`` the centroids learn from this window (and may grow).
        """
        cfg = self.config
        peak = activity.max(axis=0) if len(activity) else np.zeros(activity.shape[1])
        mean = activity.mean(axis=0) if len(activity) else np.zeros(activity.shape[1])
        active = [k for k in range(activity.shape[1]) if valid[k] and peak[k] >= cfg.tau_active]
        long = {k for k in active if mean[k] >= cfg.rho_update}
        mapping: dict[int, int] = {}
        if not active:
            return mapping
        if not self.centroids:
            if not update:
                return mapping
            for k in sorted(active, key=lambda k: -mean[k]):
                if k in long and self.num_speakers < cfg.max_speakers:
                    mapping[k] = self._add(embeddings[k])
                elif self.centroids:
                    mapping[k] = int(np.argmin(cosine_distances(embeddings[k:k + 1],
                                                                np.array(self.centroids))[0]))
            return mapping
        dist = cosine_distances(embeddings[active], np.array(self.centroids))
        blocked = dist.copy()
        blocked[:, [g for g in taken if g < blocked.shape[1]]] = 10.0
        rows, cols = linear_sum_assignment(blocked)
        for r, c in zip(rows, cols):
            if blocked[r, c] <= cfg.delta_new:
                mapping[active[r]] = int(c)
        missed = [k for k in active if k not in mapping]
        new_speakers = []
        for k in missed:
            r = active.index(k)
            if update and k in long and self.num_speakers + len(new_speakers) < cfg.max_speakers:
                new_speakers.append(k)
                continue
            used = set(mapping.values()) | set(taken)
            order = list(np.argsort(dist[r]))
            free = [g for g in order if g not in used]
            # A free global speaker if one is left; with the cap reached, the closest one.
            mapping[k] = int(free[0]) if free else int(order[0])
        if update:
            for k, g in mapping.items():
                if k in long and k not in missed:
                    self.centroids[g] = self.centroids[g] + embeddings[k]
            for k in new_speakers:
                mapping[k] = self._add(embeddings[k])
        return mapping

    def _add(self, embedding: np.ndarray) -> int:
        self.centroids.append(np.array(embedding, dtype=np.float64))
        return len(self.centroids) - 1
