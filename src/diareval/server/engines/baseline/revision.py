"""The end-of-stream revision: every window re-mapped, every sent turn labelled again.

Every local speaker embedding of the session is re-clustered at once (``revise_offline``;
else the windows are re-mapped with the final online centroids), the session's grid is
rebuilt from the new mappings, and each word takes, among the speakers active over its
span, the one the windows' embeddings place there (``grid.SpeakerGrid.speaker_at``). The
turns whose labels changed, or whose word extents do (``overlap_grow`` and
``refine_changes`` on the revised grid, which has seen the audio after the turn), are
listed; the engine says them as one SpeakerRevision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from diareval.constants import UNKNOWN
from diareval.server import messages as say
from diareval.server.engines.baseline import recluster
from diareval.server.engines.baseline.config import BaselineConfig
from diareval.server.engines.baseline.diarizer import Diarizer
from diareval.server.engines.baseline.labelling import (grow_runs, refine_changes, turn_speaker,
                                                        word_speakers)
from diareval.server.engines.baseline.sliding import relabel
from diareval.server.engines.baseline.words import Word


@dataclass(frozen=True)
class Remapped:
    """What :func:`remap_session` rebuilt ``diarizer.grid`` from: ``clusters``, the
    re-clustering's (centroids, names) (None: the online clustering's mapping was used,
    as without ``revise_offline`` or with under two embeddings), for the sliding relabel
    of :func:`revised_turns`."""

    clusters: tuple | None


def remap_session(diarizer: Diarizer, config: BaselineConfig) -> Remapped | None:
    """Rebuild ``diarizer.grid`` from every window with the revised mappings (and the
    embedding-evidence vote). None when nothing was ever clustered."""
    if not diarizer.clustering.centroids:
        return None
    grid = diarizer.grid
    grid.reset()
    grid.evidence_floor = diarizer.evidence_floor
    offline = clusters = None
    if config.revise_offline:
        clusters = recluster.offline_clusters(diarizer.windows, config, diarizer.max_speakers,
                                              points=diarizer.points, clusterer=diarizer.clusterer,
                                              sliding=diarizer.sliding_vectors)
        if clusters is not None:
            offline = recluster.map_windows(*clusters, diarizer.windows, config)
    previous: dict = {}
    for index, window in enumerate(diarizer.windows):
        if offline is not None:
            mapping = offline[index]
        else:
            mapping = {k: previous[j] for k, j in window.links.items() if j in previous}
            mapping.update(diarizer.clustering.assign(window.summary, window.embeddings,
                                                      window.valid, update=False,
                                                      taken=set(mapping.values())))
        previous = mapping
        if len(window.local):
            grid.add(window.first_cell, window.local, window.weights, mapping, window.sourced)
    return Remapped(clusters)


def revised_turns(diarizer: Diarizer, config: BaselineConfig, sent: Mapping[int, dict],
                  spans: Mapping[int, Sequence[Word]], letter: Callable[[int], str],
                  end_of_audio: float, grid=None,
                  ms: Callable[[float], int] = say.to_ms, clusters=None) -> list[dict]:
    """SpeakerRevision entries (``messages.revision_entry``) for the final Turns ``sent``
    (turn_order -> the message) whose labels or word extents change on ``grid`` (default
    ``diarizer.grid``); ``spans``: each turn's words before growing; ``letter``: global
    speaker -> letter; ``ms``: seconds -> the integer ms sent (the model's word grid);
    ``clusters``: the (centroids, names) ``grid`` was mapped to, for the sliding relabel
    (where ``diarizer.relabels``; None: no relabel, as when the grid was mapped without
    re-clustering)."""
    grid = diarizer.grid if grid is None else grid
    entries = []
    for order in sorted(sent):
        old = sent[order]
        if old.get("speaker_label") == UNKNOWN:
            continue
        words = spans[order]
        speakers = word_speakers(words, grid, config.min_word_run)
        words, speakers = refine_changes(words, speakers, grid, config.refine_changes)
        if diarizer.relabels:  # the final turn's sliding windows, against ``clusters``
            speakers = relabel(words, speakers, diarizer.sliding, clusters,
                               config.relabel_margin)
        label = turn_speaker(words, speakers)
        if label is None:
            continue
        grown = grow_runs(words, speakers, grid, config, end_of_audio)
        new_words = [dict(w) for w in old["words"]]
        for w, s, g in zip(new_words, speakers, grown):
            if s is not None:
                w["speaker"] = letter(int(s))
            w["start"], w["end"] = ms(g.start), ms(max(g.end, g.start))
        new_label = letter(int(label))
        # with overlap_grow / refine_changes a turn is also revised when only its words'
        # extents change: the revised grid sees the audio after the turn, the live one did not
        if new_label != old.get("speaker_label") or any(
                (a.get("speaker"), a["start"], a["end"]) != (b.get("speaker"), b["start"], b["end"])
                for a, b in zip(new_words, old["words"])):
            entries.append(say.revision_entry(order, new_label, new_words))
    return entries
