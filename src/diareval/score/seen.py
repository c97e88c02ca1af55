"""DER of what the user has on screen at time t.

At each time ``t`` (``step, 2*step, ...``) the *screen* is what an app that draws every
message as it arrives shows: for each ``turn_order`` the latest Turn message received by
``t`` (a partial or a final; a partial that comes after the turn's final is ignored, as
:func:`~diareval.score.hypothesis.final_turns` ignores it), with every SpeakerRevision
received by ``t`` applied in arrival order (:func:`~diareval.score.hypothesis.revise_turn`;
a Turn message that arrives after a revision of its turn replaces the revised version).
That hypothesis is scored on ``[0, t]`` of audio (the scored region cut at ``t``, as
:func:`~diareval.score.over_time.der_over_time` cuts it) with the prefix's own optimal
mapping.

Time axis: ``t`` is the session's **wall clock** (``t_wall`` of each received message,
seconds since the session started) by default: a message counts from the moment it
arrived. Audio time ``[0, t]`` is compared with wall time ``t``: for a stream paced at real
time (what the service requires, and what ``diareval run`` sends) audio sent by wall time
``t`` is ``t`` up to connection set-up (~0.1 s). ``clock="audio"`` uses ``t_audio`` (audio
sent when the message arrived) instead, for logs of streams paced faster than real time.
A log of a stream paced faster than real time (the local server's ``--speed``) is put on
the audio scale: its wall times are multiplied by the pace, audio sent / wall time at the
last audio chunk (used when above 1.5; at real-time pacing the factor is 1), so ``t`` still
means "when the audio up to ``t`` had been sent". The curve runs until the last message is in, so its last row scores everything received:
without unfinished turns it equals the session's DER.

Computation (exact, one pass): every version of a turn (one per message or applied
revision) is alive on ``[arrival, next version's arrival)``. Elementary intervals
(:class:`~diareval.score.over_time.ElementaryIntervals`, built with an empty hypothesis and
every version's boundaries) are cut so that each label is on or off in each one; a label
switching on or off in interval ``i`` at time ``tau`` changes the DER components of every
step ``t >= tau`` whose prefix holds ``i``. Those changes are summed per step with one
``bincount``, so the cost is the number of changes, not steps x intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from pyannote.core import Annotation, Timeline

from diareval.errors import ConfigError
from diareval.score.der import Conventions, DERResult, with_conventions
from diareval.score.hypothesis import (SessionTurns, Turn, _label, is_unknown_label,
                                       parse_words, revise_turn, revision_entries, turn_speech)
from diareval.score.over_time import (ElementaryIntervals, session_end, solve_mapping,
                                      time_grid)
from diareval.sessionlog import LogLine

CLOCKS = ("wall", "audio")


@dataclass(frozen=True)
class Version:
    """One version of a turn on screen: alive on ``[born, died)``, its speech intervals."""

    turn_order: int
    born: float
    died: float
    speech: tuple[tuple[float, float, str], ...]


def screen_versions(log: Sequence[LogLine], conventions: Conventions = Conventions(),
                    clock: str = "wall", session: SessionTurns | None = None
                    ) -> tuple[list[Version], float]:
    """Every version of every turn the screen showed, and the time the last message arrived.

    ``conventions`` gives the level, the unknown policy and whether revisions apply;
    ``session`` (:func:`~diareval.score.hypothesis.final_turns` of the same log, optional)
    lends its parsed final messages' words so they are not parsed twice."""
    parsed = {t.arrival: t.words for t in session.turns} if session is not None else {}
    if clock not in CLOCKS:
        raise ConfigError(f"clock must be one of {', '.join(CLOCKS)}, got {clock!r}")
    pace = stream_pace(log) if clock == "wall" else 1.0
    current: dict[int, tuple[Turn, float]] = {}
    final: set[int] = set()
    versions: list[Version] = []
    last = 0.0

    def show(order: int, turn: Turn, t: float) -> None:
        if order in current:
            old, born = current[order]
            versions.append(_version(old, born, t, conventions))
        current[order] = (turn, t)

    arrival = -1  # counted as final_turns counts it
    for line in log:
        if line.dir != "recv" or not isinstance(line.msg, dict):
            continue
        arrival += 1
        t = line.t_wall * pace if clock == "wall" else line.t_audio
        kind = line.msg.get("type")
        if kind == "Turn":
            try:
                order = int(line.msg["turn_order"])
            except (KeyError, TypeError, ValueError):
                continue
            is_final = bool(line.msg.get("end_of_turn"))
            if order in final and not is_final:
                continue
            if is_final:
                final.add(order)
            last = max(last, t)
            show(order, Turn(turn_order=order, label=_label(line.msg),
                             words=parsed[arrival] if arrival in parsed else
                             parse_words(line.msg.get("words")),
                             transcript="", t_audio=line.t_audio, t_wall=line.t_wall), t)
        elif kind == "SpeakerRevision":
            last = max(last, t)  # the curve's length does not depend on the revision setting
            if not conventions.revisions:
                continue
            for entry in revision_entries(line.msg)[0]:
                if entry.turn_order in current:
                    turn = current[entry.turn_order][0]
                    show(entry.turn_order, revise_turn(turn, entry, line.t_audio), t)
    for order, (turn, born) in current.items():
        versions.append(_version(turn, born, math.inf, conventions))
    return [v for v in versions if v.died > v.born], last


def stream_pace(log: Sequence[LogLine]) -> float:
    """Audio seconds sent per wall second, from the last audio chunk sent; 1 unless clearly
    faster than real time (> 1.5), and 1 for a log without sent audio (a raw capture)."""
    for line in reversed(log):
        if line.dir == "send" and isinstance(line.msg, dict) and \
                line.msg.get("type") == "AudioChunk" and line.t_wall > 0:
            ratio = line.t_audio / line.t_wall
            return ratio if ratio > 1.5 else 1.0
    return 1.0


def _version(turn: Turn, born: float, died: float, conventions: Conventions) -> Version:
    """The version's speech: its intervals, same-label ones that touch merged."""
    by_label: dict[str, list[list[float]]] = {}
    for start, end, label, _ in sorted(turn_speech([turn], conventions.level,
                                                   conventions.unknown)):
        spans = by_label.setdefault(label, [])
        if spans and start <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end])
    speech = tuple((s, e, label) for label, spans in by_label.items() for s, e in spans)
    return Version(turn.turn_order, born, died, speech)


_NO_CHANGES = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0),
               np.zeros(0, dtype=np.int64))


def _label_changes(versions: list[Version], bounds: np.ndarray, labels: dict[str, int]):
    """(interval, label, time, +1/-1): where a label switches on or off, and when."""
    starts, ends, which, born, died = [], [], [], [], []
    for v in versions:
        for s, e, label in v.speech:
            starts.append(s)
            ends.append(e)
            which.append(labels[label])
            born.append(v.born)
            died.append(v.died)
    if not starts:
        return _NO_CHANGES
    a = np.searchsorted(bounds, np.asarray(starts))
    b = np.searchsorted(bounds, np.asarray(ends))
    length = b - a
    # one birth (+1) and, for versions that were replaced, one death (-1) per covered interval
    died_arr = np.asarray(died)
    tau = np.concatenate([np.asarray(born), died_arr[np.isfinite(died_arr)]])
    delta = np.concatenate([np.ones(len(born), dtype=np.int64),
                            -np.ones(int(np.isfinite(died_arr).sum()), dtype=np.int64)])
    first = np.concatenate([a, a[np.isfinite(died_arr)]])
    count = np.concatenate([length, length[np.isfinite(died_arr)]])
    label = np.concatenate([np.asarray(which), np.asarray(which)[np.isfinite(died_arr)]])
    total = int(count.sum())
    if total == 0:
        return _NO_CHANGES
    owner = np.repeat(np.arange(len(count)), count)
    offsets = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    interval = first[owner] + offsets
    label, tau, delta = label[owner], tau[owner], delta[owner]
    # net change per (label, interval, time), then the running count of covering tracks
    order = np.lexsort((tau, interval, label))
    label, interval, tau, delta = label[order], interval[order], tau[order], delta[order]
    key_new = np.concatenate([[True], (label[1:] != label[:-1]) | (interval[1:] != interval[:-1])
                              | (tau[1:] != tau[:-1])])
    group = np.cumsum(key_new) - 1
    net = np.bincount(group, weights=delta).astype(np.int64)
    label, interval, tau = label[key_new], interval[key_new], tau[key_new]
    cell_new = np.concatenate([[True], (label[1:] != label[:-1])
                               | (interval[1:] != interval[:-1])])
    cell = np.cumsum(cell_new) - 1
    running = np.cumsum(net)
    cell_start = np.flatnonzero(cell_new)
    running = running - np.concatenate([[0], running[cell_start[1:] - 1]])[cell]
    on = running > 0
    was_on = np.concatenate([[False], on[:-1]])
    was_on[cell_start] = False
    change = on.astype(np.int64) - was_on.astype(np.int64)
    keep = change != 0
    return interval[keep], label[keep], tau[keep], change[keep]


def der_seen(log: Sequence[LogLine], reference: Annotation, uem: Timeline,
             conventions: Conventions = Conventions(), step: float = 1.0,
             clock: str = "wall", session: SessionTurns | None = None) -> pd.DataFrame:
    """DER of the screen at ``t = step, 2*step, ...`` until every message is in (module doc).

    One row per ``t``: the DER components on ``[0, t]`` (``confusion`` with the prefix's own
    optimal mapping), ``der`` (NaN with ``note`` while no reference speech is in the
    prefix), ``unknown_speech``, ``mapping``, ``turns_shown`` (turns with speech on screen)
    and ``versions_received`` (turn versions shown by ``t``: Turn messages and applied
    revision entries). ``clock``: "wall" (default) or "audio"; ``session``: see
    :func:`screen_versions`."""
    versions, last = screen_versions(log, conventions, clock, session)
    end = max(session_end(reference, Annotation(), uem), last)
    times = time_grid(end, step) if end > 0 else np.array([step])
    edges = {t for v in versions for s, e, _ in v.speech for t in (s, e)}
    ei = ElementaryIntervals(reference, Annotation(), uem, conventions,
                             grid=sorted(set(times.tolist()) | edges))
    names = sorted({label for v in versions for _, _, label in v.speech}, key=str)
    labels = {name: i for i, name in enumerate(names)}
    known = np.array([not is_unknown_label(n) for n in names], dtype=bool)
    known_index = np.cumsum(known) - 1
    n_known, n_ref = int(known.sum()), len(ei.ref_labels)
    interval, label, tau, change = _label_changes(versions, ei.bounds, labels)

    n_steps = len(times)
    prefix_end = np.searchsorted(ei.bounds, times)  # intervals [0, prefix_end) are in [0, t]
    # the step from which each change counts: its interval is inside [0, t] and it happened
    entry = np.maximum(np.searchsorted(prefix_end, interval + 1, side="left"),
                       np.searchsorted(times, tau, side="left"))
    NR = ei.nr.sum(axis=1)
    d = ei.d
    # hypothesis speaker count before/after each change, per (interval, time)
    order = np.lexsort((tau, interval))
    interval, label, tau, change, entry = (x[order] for x in (interval, label, tau, change,
                                                               entry))
    nh_after = np.zeros(len(change), dtype=np.int64)
    if len(change):
        new_interval = np.concatenate([[True], interval[1:] != interval[:-1]])
        running = np.cumsum(change)
        starts = np.flatnonzero(new_interval)
        base = np.concatenate([[0], running[starts[1:] - 1]])
        nh_after = running - base[np.cumsum(new_interval) - 1]
    nh_before = nh_after - change
    nr_i, d_i = NR[interval], d[interval]

    def per_step(values: np.ndarray) -> np.ndarray:
        keep = entry < n_steps
        return np.cumsum(np.bincount(entry[keep], weights=values[keep], minlength=n_steps))

    miss = per_step((np.maximum(nr_i - nh_after, 0) - np.maximum(nr_i - nh_before, 0)) * d_i)
    fa = per_step((np.maximum(nh_after - nr_i, 0) - np.maximum(nh_before - nr_i, 0)) * d_i)
    matched = per_step((np.minimum(nr_i, nh_after) - np.minimum(nr_i, nh_before)) * d_i)
    is_known = known[label] if len(known) else np.zeros(0, dtype=bool)
    unknown = per_step(np.where(is_known, 0, change) * d_i)
    total0 = np.concatenate([[0.0], np.cumsum(NR * d)])[prefix_end]
    miss = miss + total0
    gain = np.zeros((n_steps, max(n_known, 1), max(n_ref, 1)))
    cooc = np.zeros_like(gain)
    if is_known.any() and n_ref:
        k_entry, k_label = entry[is_known], known_index[label[is_known]]
        k_interval, k_change = interval[is_known], change[is_known]
        inside = k_entry < n_steps
        flat = (k_entry[inside, None] * max(n_known, 1) + k_label[inside, None]) * n_ref + \
            np.arange(n_ref)[None, :]
        nr_rows = ei.nr[k_interval[inside]]
        size = n_steps * max(n_known, 1) * n_ref
        gain = np.bincount(flat.ravel(), weights=(k_change[inside, None] * nr_rows *
                                                  d[k_interval[inside], None]).ravel(),
                           minlength=size).reshape(n_steps, max(n_known, 1), n_ref)
        cooc = np.bincount(flat.ravel(), weights=(k_change[inside, None] * nr_rows *
                                                  ei.d_map[k_interval[inside], None]).ravel(),
                           minlength=size).reshape(n_steps, max(n_known, 1), n_ref)
        gain, cooc = np.cumsum(gain, axis=0), np.cumsum(cooc, axis=0)
    known_names = [n for n in names if not is_unknown_label(n)]
    shown_turns = _turns_shown(versions, times)
    received = np.searchsorted(np.sort(np.array([v.born for v in versions] or [np.inf])),
                               times, side="right")
    mappings, previous = [], None
    # the mapping only changes when the co-occurrence does (silences, the tail)
    changed = np.concatenate([[True], (cooc[1:] != cooc[:-1]).any(axis=(1, 2)) |
                              (gain[1:] != gain[:-1]).any(axis=(1, 2))])
    for k in range(n_steps):
        if not (n_known and n_ref):
            mappings.append(None)
            continue
        if previous is None or changed[k]:
            previous = solve_mapping(cooc[k, :n_known, :n_ref], gain[k, :n_known, :n_ref],
                                     known_names, ei.ref_labels)
        mappings.append(previous)
    correct = np.array([m.correct if m is not None else 0.0 for m in mappings], dtype=float)
    # as ElementaryIntervals.result: clip the rounding residue of the sums
    total, miss, fa, unknown = (np.maximum(x, 0.0) for x in (total0, miss, fa, unknown))
    confusion = np.maximum(matched - correct, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        der = (miss + fa + confusion) / np.where(total > 0, total, np.nan)
    frame = pd.DataFrame(dict(
        t=times.astype(float), reference_speech=total, correct=correct, miss=miss,
        false_alarm=fa, confusion=confusion, der=der, unknown_speech=unknown,
        mapping=[str(m) if m is not None else "" for m in mappings],
        turns_shown=shown_turns.astype(int), versions_received=received.astype(int),
        note=[DERResult(reference_speech=t_, false_alarm=f_).note if t_ <= 0 else ""
              for t_, f_ in zip(total, fa)]))
    frame.attrs["clock"] = clock
    return with_conventions(frame, conventions)


def _turns_shown(versions: list[Version], times: np.ndarray) -> np.ndarray:
    """Turns with at least one speech interval on screen at each time."""
    first: dict[int, float] = {}
    for v in versions:
        if v.speech:
            first[v.turn_order] = min(first.get(v.turn_order, math.inf), v.born)
    return np.searchsorted(np.sort(np.array(list(first.values()) or [math.inf])), times,
                           side="right")


def der_seen_dataset(curve: pd.DataFrame, conventions: Conventions) -> pd.DataFrame:
    """The screen DER pooled per configuration and ``t``: components summed over the
    sessions that last until ``t`` (time-weighted, like ``der_over_time_dataset``)."""
    keys = [k for k in ("config", "t") if k in curve.columns]
    pooled = curve.groupby(keys, sort=True)[["reference_speech", "miss", "false_alarm",
                                             "confusion", "unknown_speech"]].sum().reset_index()
    pooled["sessions"] = curve.groupby(keys, sort=True).size().to_numpy()
    speech = pooled["reference_speech"].where(pooled["reference_speech"] > 0)
    pooled["der"] = (pooled["miss"] + pooled["false_alarm"] + pooled["confusion"]) / speech
    pooled["note"] = np.where(pooled["reference_speech"] > 0, "",
                              "no reference speech yet: DER undefined")
    return with_conventions(pooled, conventions)
