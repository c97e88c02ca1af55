"""The baseline's diarization blocks, diart's chain: segmentation -> embedding -> clustering
-> aggregation.

Every ``step`` s, pyannote segmentation-3.0 on the last ``window`` s gives up to 3 local
speakers with overlap-aware activity; a CAM++ embedding per active local speaker (its most
recent ``embedding_seconds`` of single-speaker frames) goes to the incremental clustering,
which maps local to global speakers; the mapped activities are averaged on the session's
20 ms grid (``grid.SpeakerGrid``). Every window is kept as a :class:`Window` for the
re-clustering (``recluster``) and the end-of-stream revision (``revision``). A local speaker
whose embedding frames are nearly those of an embedding of the previous window takes that
embedding (``reuse_embeddings``): embeddings are the main cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from diareval.constants import SAMPLE_RATE
from diareval.server.engines.baseline.buffer import AudioBuffer
from diareval.server.engines.baseline.config import MAX_GLOBAL, VAD_FRAME, BaselineConfig
from diareval.server.engines.baseline.grid import GRID, SpeakerGrid


@dataclass(frozen=True, slots=True)
class Window:
    """One diarization window as the re-clustering and the revision need it.

    ``first_cell``: grid cell of ``local``'s first row; ``local``: local speakers' activity
    per grid cell (cells x 3); ``weights``: the window's Hamming weight per cell;
    ``embeddings`` / ``valid``: one embedding per local speaker and which exist;
    ``summary``: :func:`activity_summary` of the frame activity; ``links``: {local speaker:
    the previous window's local speaker it continues, keeping its global speaker};
    ``mapping``: the online {local: global} mapping; ``sourced``: per cell and local
    speaker, whether its embedding's audio lies there.
    """

    first_cell: int
    local: np.ndarray
    weights: np.ndarray
    embeddings: np.ndarray
    valid: np.ndarray
    summary: np.ndarray
    links: dict
    mapping: dict
    sourced: np.ndarray


@dataclass(frozen=True, slots=True)
class _Previous:
    """The last window that ran: its frame activity and times, mapping and link ages."""

    activity: np.ndarray
    times: np.ndarray
    mapping: dict
    ages: dict


def activity_summary(activity: np.ndarray) -> np.ndarray:
    """Two rows with the same per-speaker peak and mean as ``activity`` (all that
    clustering looks at), so long sessions do not keep every window's frames."""
    peak, mean = activity.max(axis=0), activity.mean(axis=0)
    return np.stack([peak, 2 * mean - peak]).astype(np.float32)


def window_cells(start: int, end: int) -> tuple[int, np.ndarray, np.ndarray]:
    """The grid cells a window of samples [start, end) covers (from the first whole cell
    at or after max(0, start)): first cell, cell centre times (s), and Hamming weights over
    the window's span (+ 0.01, so its edges still count), as diart aggregates windows."""
    c0 = max(0, int(np.ceil(max(0, start) / SAMPLE_RATE / GRID)))
    cell_times = (np.arange(c0, int(end / SAMPLE_RATE / GRID)) + 0.5) * GRID
    position = (cell_times - start / SAMPLE_RATE) / ((end - start) / SAMPLE_RATE)
    return c0, cell_times, (0.54 - 0.46 * np.cos(2 * np.pi * position)).astype(np.float32) + 0.01


class Diarizer:
    """The session's diarization state: online clustering, speaker grid, kept windows.

    ``models`` (``engine.Models``) may be None where only the grids are used (tests).
    """

    def __init__(self, config: BaselineConfig, models=None, max_speakers: int = MAX_GLOBAL):
        from diareval.server.engines.baseline.clustering import (ClusteringConfig,
                                                                 OnlineSpeakerClustering)

        self.config = config
        self.models = models
        self.clustering = OnlineSpeakerClustering(ClusteringConfig(
            tau_active=config.tau_active, rho_update=config.rho_update,
            delta_new=config.delta_new, max_speakers=int(max_speakers)))
        # fbank frames of everything received (embeddings of the rolling windows reuse them)
        self.fbank = models.embedding.fbank.stream() if models is not None else None
        # the embedding-evidence vote is for the revision (live words only with evidence_online)
        self.evidence_floor = config.evidence_floor if config.evidence_floor >= 0 else None
        self.grid = SpeakerGrid(MAX_GLOBAL, self.evidence_floor if config.evidence_online else None)
        self.speech_grid = SpeakerGrid(1, None)  # speech of the speech_window segmentations
        self.speech_at: int | None = None  # sample: end of the last one
        self.previous: _Previous | None = None
        # the last window's embeddings and the absolute fbank frames each was computed from
        self.embedded: list[tuple[np.ndarray, np.ndarray]] = []
        self.windows: list[Window] = []
        # narrow-band audio (set by the engine from its bandwidth.BandwidthMeter) and a
        # max_speakers hint decide how the re-clustering clusters (``clusterer``)
        self.narrow = False
        self.hinted = max_speakers < MAX_GLOBAL
        # their embeddings as the re-clustering takes them, kept up to date as windows come
        from diareval.server.engines.baseline.recluster import SessionPoints
        self.points = SessionPoints(config.rho_update)
        # sliding-window embeddings of the final turns (where ``relabels`` says)
        self.sliding = None
        if config.relabel_window > 0 and models is not None and models.embedding is not None:
            from diareval.server.engines.baseline.sliding import SlidingEmbeddings
            self.sliding = SlidingEmbeddings(models.embedding, config.relabel_window,
                                             config.relabel_hop)

    @property
    def max_speakers(self) -> int:
        """The cap on global speakers (``max_speakers``, else MAX_GLOBAL)."""
        return self.clustering.config.max_speakers

    @property
    def clusterer(self) -> str:
        """How the re-clustering clusters (``recluster.offline_clusters``): "narrow" on
        narrow-band audio (spectral once there are enough embeddings, till then "split"),
        "split" with max_speakers given (the tree cut, and merges down to ``split_floor``
        undone), else "tree" (the tree cut at ``offline_threshold``)."""
        return "narrow" if self.narrow else "split" if self.hinted else "tree"

    @property
    def sliding_vectors(self) -> np.ndarray | None:
        """The final turns' sliding-window embeddings so far (None without them)."""
        return self.sliding.matrix if self.sliding is not None else None

    @property
    def relabels(self) -> bool:
        """Whether words are labelled again from sliding embeddings (``sliding.relabel``):
        with ``relabel_window`` on, on any audio (``relabel_band`` "all") or on narrow-band
        audio only ("narrow")."""
        return self.sliding is not None and (self.narrow or self.config.relabel_band == "all")

    def speech_cells(self, c0: int, c1: int) -> np.ndarray:
        """Segmentation speech (bool) per cell of [c0, c1): the long ``speech_window``
        segmentations where they have run, the diarization windows elsewhere."""
        threshold = self.config.speaker_threshold
        speech = self.grid.speech_cells(c0, c1, threshold)
        if self.config.speech_window > 0:
            covered = self.speech_grid.covered(c0, c1)
            speech[covered] = self.speech_grid.speech_cells(c0, c1, threshold)[covered]
        return speech

    def step(self, window_end: int, audio: AudioBuffer, vad_probs: list[float]) -> None:
        """Run the window ending at sample ``window_end``: segmentation, embeddings, mapping,
        grid (and the long speech segmentation when due)."""
        from diareval.server.engines.baseline.segmentation import frame_centers

        cfg = self.config
        w = int(cfg.window * SAMPLE_RATE)
        window_start = window_end - w
        # Skip windows with no speech in their newest part: there is nothing new to
        # label, and the earlier frames were covered by the previous windows.
        fresh = window_end - int((cfg.step + cfg.fresh_margin) * SAMPLE_RATE)
        f0, f1 = max(0, max(window_start, fresh) // VAD_FRAME), window_end // VAD_FRAME
        if not any(p >= cfg.vad_threshold for p in vad_probs[f0:f1 + 1]):
            self.previous = None
            return
        activity = self.models.segmentation(audio.window(window_end, w))  # (frames, 3)
        times = (window_start + frame_centers(len(activity))) / SAMPLE_RATE
        # Local speakers that continue one of the previous window's (same activity over
        # the overlap) may keep its global speaker without a new embedding (embeddings
        # are the engine's main cost): for up to `refresh_steps` windows ...
        links = self._continuity(activity, times)
        recent = times >= times[-1] - cfg.recent_seconds
        quiet = {k for k in range(activity.shape[1])
                 if cfg.recent_seconds > 0 and activity[recent, k].max(initial=0.0) < cfg.tau_active}
        # ... and so do local speakers that stopped talking (nothing new to learn from them).
        reuse = {k: k_prev for k, (k_prev, age) in links.items()
                 if age < cfg.refresh_steps or k in quiet}
        embeddings, valid, sources = self._local_embeddings(window_start, window_end, activity,
                                                            skip=set(reuse))
        c0, cell_times, weights = window_cells(window_start, window_end)
        c1 = c0 + len(cell_times)
        local = np.stack([np.interp(cell_times, times, activity[:, k])
                          for k in range(activity.shape[1])], axis=1)
        # the span of each embedded local speaker's embedding audio, in cells of this window
        sourced = np.zeros(local.shape, dtype=bool)
        for k, (first, last) in sources.items():
            sourced[max(0, int(first / SAMPLE_RATE / GRID) - c0):
                    max(0, int(last / SAMPLE_RATE / GRID) + 1 - c0), k] = True
        mapping = {k: self.previous.mapping[k_prev] for k, k_prev in reuse.items()
                   if k_prev in self.previous.mapping}
        mapping.update(self.clustering.assign(activity, embeddings, valid & ~np.isin(
            np.arange(len(valid)), list(mapping)), taken=set(mapping.values())))
        ages = {k: (links[k][1] + 1 if k in mapping and k in reuse else 0) for k in mapping}
        self.windows.append(Window(c0, local.astype(np.float32), weights, embeddings, valid,
                                   activity_summary(activity),
                                   {k: reuse[k] for k in mapping if k in reuse}, dict(mapping),
                                   sourced))
        self.previous = _Previous(activity, times, mapping, ages)
        if c1 > c0:
            self.grid.add(c0, local, weights, mapping, sourced)
        if cfg.speech_window > 0 and (self.speech_at is None or window_end - self.speech_at
                                      >= int(cfg.speech_step * SAMPLE_RATE) - 1):
            self._speech_segmentation(window_end, audio)

    def _speech_segmentation(self, window_end: int, audio: AudioBuffer) -> None:
        """Segmentation-3.0 on the last ``speech_window`` s: its speech (any local speaker),
        Hamming-weighted per cell, goes to ``speech_grid`` (word extents only)."""
        from diareval.server.engines.baseline.segmentation import frame_centers

        self.speech_at = window_end
        w = int(self.config.speech_window * SAMPLE_RATE)
        activity = self.models.segmentation(audio.window(window_end, w))
        times = (window_end - w + frame_centers(len(activity))) / SAMPLE_RATE
        c0, cell_times, weights = window_cells(window_end - w, window_end)
        if len(cell_times):
            speech = np.interp(cell_times, times, np.clip(activity.sum(axis=1), 0.0, 1.0))
            self.speech_grid.add_speech(c0, speech.astype(np.float32), weights)

    def _continuity(self, activity: np.ndarray, times: np.ndarray) -> dict[int, tuple[int, int]]:
        """{local speaker: (the previous window's local speaker it continues, its age)}."""
        prev = self.previous
        if not prev or not prev.mapping:
            return {}
        overlap = times <= prev.times[-1]
        if overlap.sum() < 10:
            return {}
        now = activity[overlap]
        before = np.stack([np.interp(times[overlap], prev.times, prev.activity[:, k])
                           for k in range(prev.activity.shape[1])], axis=1)
        score = np.zeros((now.shape[1], before.shape[1]))
        for k in range(now.shape[1]):
            for j in range(before.shape[1]):
                union = np.maximum(now[:, k], before[:, j]).sum()
                score[k, j] = np.minimum(now[:, k], before[:, j]).sum() / union if union > 1.0 else 0.0
        rows, cols = linear_sum_assignment(-score)
        links = {}
        for k, j in zip(rows, cols):
            if score[k, j] >= self.config.continuity and j in prev.mapping:
                links[int(k)] = (int(j), prev.ages.get(int(j), 0))
        return links

    def _local_embeddings(self, window_start: int, window_end: int, activity: np.ndarray,
                          skip: set = frozenset()):
        """One embedding per active local speaker of the window [window_start, window_end)
        (samples), from its recent single-speaker frames. Returns the embeddings, which
        are valid, and {local speaker: (first, last) sample of its embedding's frames}."""
        cfg = self.config
        k = activity.shape[1]
        embeddings = np.zeros((k, 192), dtype=np.float32)
        valid = np.zeros(k, dtype=bool)
        sources: dict[int, tuple[int, int]] = {}
        active = [s for s in range(k) if activity[:, s].max() >= cfg.tau_active and s not in skip]
        if not active:
            return embeddings, valid, sources
        from diareval.server.engines.baseline.segmentation import FRAME_SIZE, FRAME_STEP

        first, feats = self.fbank.window(window_start, window_end)  # (n, 80), 10 ms frames
        centres = (first + np.arange(len(feats))) * 160 + 200 - window_start
        seg_index = np.clip(np.round((centres - (FRAME_SIZE - 1) / 2) / FRAME_STEP).astype(int),
                            0, len(activity) - 1)
        on = activity >= cfg.speaker_threshold
        alone = on & (on.sum(axis=1, keepdims=True) == 1)
        chosen, owners, frames, embedded = [], [], [], []
        for s in active:
            mask = alone[seg_index, s]
            if mask.sum() < cfg.min_embedding_seconds * 100:
                mask = on[seg_index, s]
            if mask.sum() < cfg.min_embedding_seconds * 100:
                continue
            rows = np.flatnonzero(mask)[-int(cfg.embedding_seconds * 100):]
            sources[s] = (int((first + rows[0]) * 160 + 200), int((first + rows[-1]) * 160 + 200))
            reused = self._reusable(first + rows) if cfg.reuse_embeddings > 0 else None
            if reused is not None:
                embeddings[s], valid[s] = reused[1], True
                embedded.append(reused)
                continue
            chosen.append(feats[rows])
            owners.append(s)
            frames.append(first + rows)
        if chosen:
            computed = self.models.embedding.from_features(chosen)
            embeddings[owners] = computed
            valid[owners] = True
            embedded += list(zip(frames, computed))
        self.embedded = embedded
        return embeddings, valid, sources

    def _reusable(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(frames, embedding) of the previous window's embedding computed from nearly the
        same absolute fbank ``frames`` (Jaccard >= ``reuse_embeddings``), or None."""
        for entry in self.embedded:
            shared_frames = np.intersect1d(frames, entry[0], assume_unique=True).size
            union = len(frames) + len(entry[0]) - shared_frames
            if union and shared_frames >= self.config.reuse_embeddings * union:
                return entry
        return None

    def speaker_of_audio(self, audio: np.ndarray):
        """The global speaker closest to an embedding of ``audio`` (its last 3 s), or a new
        one; None when it is too short to embed."""
        audio = audio[-3 * SAMPLE_RATE:]
        if len(audio) < self.config.min_embedding_seconds * SAMPLE_RATE:
            return None
        embedding = self.models.embedding(audio)
        activity = np.ones((10, 1), dtype=np.float32)
        mapping = self.clustering.assign(activity, embedding[None], np.array([True]))
        return mapping.get(0)
