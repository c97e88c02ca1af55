"""Label stability: how much the service's speaker labels move while the session runs.

- **Mapping stability** (from :func:`diareval.score.over_time.der_over_time`): how often the
  prefix-optimal mapping changes; a *reassignment* is a change that breaks an existing
  pair (a label re-pointed to another speaker), as opposed to a new pair appearing when a
  new speaker or label shows up. ``stable_from`` is the first step from which every
  prefix mapping agrees with the final mapping (each of its pairs is a final pair).
- **Label flips**: inside one reference speaker's continuous speech where that speaker
  is the only one talking, the sequence of hypothesis labels (intervals where exactly
  one known label is active) changes value; flips per minute of such speech. Mapping-free.
- **Partial-to-final changes**: turns whose partial messages showed a (non-null) label
  other than the label of the final message; label changes along the sequence.
- **SpeakerRevision**: messages, revised turns, revised turns whose label changed, entries
  for turns never finalised (``revision_entries_unmatched``) and entries older than their
  turn's final message (``revision_entries_superseded``).
- **Speaker counts over time**: distinct known labels the service had shown (in any
  message received by audio time ``t``) vs reference speakers who had spoken by ``t``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from pyannote.core import Annotation, Timeline

from diareval.score.der import Conventions, with_conventions
from diareval.score.hypothesis import PENDING_SPEAKERS, SessionTurns, is_unknown
from diareval.score.over_time import ElementaryIntervals
from diareval.sessionlog import LogLine


def _pairs(text: str) -> frozenset:
    """Parse the ``mapping`` column ("h->r,h->r") back into pairs."""
    if not isinstance(text, str) or not text:
        return frozenset()
    return frozenset(tuple(item.split("->", 1)) for item in text.split(",") if "->" in item)


def mapping_stability(curve: pd.DataFrame) -> dict:
    """Changes of the prefix-optimal mapping along a DER-over-time curve (see module doc)."""
    if curve.empty:
        return dict(mapping_changes=0, mapping_reassignments=0, stable_from=np.nan,
                    stability_note="empty curve")
    mappings = [_pairs(m) for m in curve["mapping"]]
    final = mappings[-1]
    changes = reassignments = 0
    for before, after in zip(mappings, mappings[1:]):
        if after != before:
            changes += 1
            before_h = dict(before)
            before_r = {r: h for h, r in before}
            if any(before_h.get(h, r) != r or before_r.get(r, h) != h for h, r in after) or \
                    not before <= after:
                reassignments += 1
    stable_index = len(mappings) - 1
    while stable_index > 0 and mappings[stable_index - 1] <= final:
        stable_index -= 1
    return dict(mapping_changes=changes, mapping_reassignments=reassignments,
                stable_from=float(curve["t"].iloc[stable_index]),
                stability_note="" if final else "no mapped label at the end of the session")


def label_flips(reference: Annotation, hypothesis: Annotation, uem: Timeline,
                intervals: ElementaryIntervals | None = None) -> dict:
    """Label flips inside single-speaker reference speech (see the module docstring).

    Collar-free: ``intervals`` (to reuse) must have been built with collar 0, overlap scored."""
    ei = intervals
    if ei is None or ei.conventions.collar != 0 or ei.conventions.skip_overlap:
        ei = ElementaryIntervals(reference, hypothesis, uem, Conventions())
    nr, nh, d = ei.nr, ei.nh[:, ei.known], ei.d
    single = (nr.sum(axis=1) == 1) & (d > 0)
    one_label = nh.sum(axis=1) == 1
    minutes = float(d[single].sum()) / 60.0
    flips = 0
    for r in range(nr.shape[1]):
        talking = nr[:, r] > 0
        # continuous runs of r's speech (a silence or the end of the UEM ends a run)
        run_id = np.cumsum(np.concatenate([[True], talking[1:] != talking[:-1]]))
        chosen = np.flatnonzero(talking & single & one_label)
        if len(chosen) < 2:
            continue
        labels = nh[chosen].argmax(axis=1)
        runs = run_id[chosen]
        flips += int(((labels[1:] != labels[:-1]) & (runs[1:] == runs[:-1])).sum())
    return dict(label_flips=flips, single_speaker_minutes=minutes,
                flips_per_minute=flips / minutes if minutes > 0 else np.nan,
                flips_note="" if minutes > 0 else "no single-speaker reference speech")


def partial_changes(session: SessionTurns) -> dict:
    """Partial-to-final label changes and SpeakerRevision counts of one session."""
    changed_turns = changes = 0
    for turn in session.turns:
        final = final_message_label(turn)
        shown = [label for _, label in turn.partial_labels if not is_unknown(label)]
        sequence = shown + ([final] if not is_unknown(final) else [])
        changes += sum(1 for a, b in zip(sequence, sequence[1:]) if a != b)
        if any(label != final for label in shown):
            changed_turns += 1
    revised = [t for t in session.turns if t.revised]
    return dict(turns=len(session.turns), turns_partial_label_changed=changed_turns,
                partial_label_changes=changes, revision_messages=len(session.revisions),
                revised_turns=len(revised),
                revised_label_changed=sum(1 for t in revised if t.label != t.original_label),
                revision_entries_unmatched=len(session.revision_unmatched),
                revision_entries_superseded=session.revision_superseded,
                unfinished_turns=len(session.unfinished))


def final_message_label(turn) -> str | None:
    """The label the final Turn message carried (before any SpeakerRevision)."""
    return turn.original_label if turn.revised else turn.label


def speaker_counts_over_time(log: Sequence[LogLine], reference: Annotation, uem: Timeline,
                             times: Sequence[float],
                             conventions: Conventions = Conventions()) -> pd.DataFrame:
    """Per time ``t``: distinct known labels shown in messages received by audio time ``t``
    (``n_hyp_labels_shown``) and reference speakers with speech inside the UEM that started
    by ``t`` (``n_ref_speakers``)."""
    first_shown: dict[str, float] = {}
    for line in log:
        if line.dir != "recv" or not isinstance(line.msg, dict) or line.msg.get("type") != "Turn":
            continue
        labels = [line.msg.get("speaker_label")]
        words = line.msg.get("words")
        if isinstance(words, list):
            labels += [w.get("speaker") for w in words if isinstance(w, dict)]
        for label in labels:
            if not is_unknown(label) and str(label).strip().upper() not in PENDING_SPEAKERS:
                first_shown.setdefault(str(label), line.t_audio)
    cropped = reference.crop(uem, mode="intersection") if uem is not None else reference
    first_ref = {}
    for segment, _, label in cropped.itertracks(yield_label=True):
        first_ref[label] = min(first_ref.get(label, np.inf), segment.start)
    shown = np.sort(np.array(list(first_shown.values()), dtype=float))
    spoken = np.sort(np.array(list(first_ref.values()), dtype=float))
    times = np.asarray(times, dtype=float)
    frame = pd.DataFrame(dict(
        t=times, n_hyp_labels_shown=np.searchsorted(shown, times, side="right"),
        n_ref_speakers=np.searchsorted(spoken, times, side="left")))
    frame["speaker_count_error"] = frame["n_hyp_labels_shown"] - frame["n_ref_speakers"]
    return with_conventions(frame, conventions)
