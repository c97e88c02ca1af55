"""How much of the DER the speaker labels cost: the same speech, labelled by an oracle.

DER mixes two failures: speech the service did not return as words (miss), words
where nobody spoke (false alarm), and words with the wrong speaker (confusion).
:func:`oracle_labelled` keeps the hypothesis speech exactly (every final word's
``[start, end]``, unknown turns included) and gives each word the reference speaker
it overlaps most, so its DER is the floor that a perfect speaker labeller reaches
with these words; the session's DER minus this floor is what the labels cost.
Words that overlap no reference speech keep a label of their own (false alarm
under any labels).
"""

from __future__ import annotations

from typing import Iterable

from pyannote.core import Annotation, Segment

from diareval.score.hypothesis import Turn, merge_intervals, turn_speech

NOBODY = "<no reference speaker>"


def oracle_labelled(turns: Iterable[Turn], reference: Annotation, level: str = "word",
                    uri: str | None = None) -> Annotation:
    """The hypothesis speech of ``turns`` with reference-chosen labels (see the module).

    Each interval (a word, or a turn with ``level="turn"``) is labelled with the
    reference speaker whose speech overlaps it longest (ties: the first in label
    order); touching same-label intervals merge as in the ordinary hypothesis.
    """
    intervals = []
    for start, end, _, order in turn_speech(turns, level, unknown="label"):
        overlap: dict[str, float] = {}
        for segment, _, speaker in reference.crop(Segment(start, end), mode="intersection") \
                .itertracks(yield_label=True):
            overlap[speaker] = overlap.get(speaker, 0.0) + segment.duration
        label = max(sorted(overlap), key=overlap.get) if overlap else NOBODY
        intervals.append((start, end, label, order))
    return merge_intervals(intervals, uri=uri)
