"""Mid-session revisions (``speaker_labels_revision_interval_ms``): every interval of audio,
the session so far is re-clustered as the end-of-stream revision does, on a grid of its own
(the live grid, which labels the next turns, is left as it is), and the final turns sent so
far whose speakers or word extents change are said as one SpeakerRevision.

What a later revision is compared with is what the client has then: each turn as sent, with
the revisions already sent applied (:func:`apply_entries`); so only changes are listed, and
the end-of-stream revision lists what still differs after the mid-session ones.
"""

from __future__ import annotations

from typing import Callable, Mapping, MutableMapping, Sequence

from diareval.server.engines.baseline import recluster
from diareval.server.engines.baseline.config import BaselineConfig
from diareval.server.engines.baseline.diarizer import Diarizer
from diareval.server.engines.baseline.grid import SpeakerGrid
from diareval.server.engines.baseline.revision import revised_turns
from diareval.server.engines.baseline.words import Word


def session_grid(diarizer: Diarizer, config: BaselineConfig
                 ) -> tuple[SpeakerGrid, tuple] | None:
    """A new grid of every window so far, mapped by re-clustering them all at once (as
    ``revision.remap_session`` does, without touching ``diarizer.grid``), and the clusters
    (centroids, names) it was mapped to; None when nothing can be re-clustered yet."""
    if not diarizer.clustering.centroids or not config.revise_offline:
        return None
    clusters = recluster.offline_clusters(diarizer.windows, config, diarizer.max_speakers,
                                          points=diarizer.points, clusterer=diarizer.clusterer,
                                          sliding=diarizer.sliding_vectors)
    if clusters is None:
        return None
    grid = SpeakerGrid(diarizer.grid.n_speakers, diarizer.evidence_floor)
    for window, mapping in zip(diarizer.windows,
                               recluster.map_windows(*clusters, diarizer.windows, config)):
        if len(window.local):
            grid.add(window.first_cell, window.local, window.weights, mapping, window.sourced)
    return grid, clusters


def apply_entries(shown: MutableMapping[int, dict], entries: Sequence[dict]) -> None:
    """Update ``shown`` (turn_order -> the Turn as the client has it) with SpeakerRevision
    ``entries``: the turn's ``speaker_label`` and, when the entry has words, its words."""
    for entry in entries:
        turn = dict(shown[entry["turn_order"]])
        turn["speaker_label"] = entry["speaker_label"]
        if entry["words"]:
            turn["words"] = [dict(w) for w in entry["words"]]
        shown[entry["turn_order"]] = turn


def interval_revision(diarizer: Diarizer, config: BaselineConfig,
                      shown: MutableMapping[int, dict], spans: Mapping[int, Sequence[Word]],
                      letter: Callable[[int], str], end_of_audio: float,
                      ms: Callable[[float], int]) -> list[dict]:
    """The entries of one mid-session SpeakerRevision (empty: nothing changed), applied to
    ``shown``."""
    if not shown:
        return []
    found = session_grid(diarizer, config)
    if found is None:
        return []
    grid, clusters = found
    entries = revised_turns(diarizer, config, shown, spans, letter, end_of_audio, grid=grid,
                            ms=ms, clusters=clusters)
    apply_entries(shown, entries)
    return entries
