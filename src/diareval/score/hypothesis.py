"""The hypothesis a session log implies: final turns, partials, revisions, hypothesis speech.

A session log (``diareval.sessionlog``) holds every Turn message the service sent.
For each ``turn_order`` the *final* turn is the last Turn message with
``end_of_turn`` true (the formatted one when ``format_turns`` sends two). Earlier
messages of the same ``turn_order`` are *partials*; they are kept for the
stability measures. ``SpeakerRevision`` messages (end-of-stream label corrections)
can be applied or not.

Hypothesis speech (DESIGN.md): the final words' ``[start, end]`` intervals, each
labelled with the word's ``speaker`` if present, else the turn's ``speaker_label``;
touching or overlapping same-label intervals merge. The turn-level variant labels
``[first word start, last word end]`` with the turn's label.

Unknown labels (``speaker_label`` null or ``"UNKNOWN"``) follow one of three
policies (:data:`UNKNOWN_POLICIES`):

- ``"error"`` (default): unknown speech is speech that no mapping can make right.
  Each unknown *turn* gets its own label ``UNKNOWN#<turn_order>`` (so two
  overlapping unknown turns count as two hypothesis speakers) and the DER code
  excludes every such label from the optimal mapping (:func:`is_unknown_label`);
  it is then scored as confusion over reference speech and false alarm elsewhere.
- ``"nonspeech"``: unknown speech is dropped, as if the service had said nothing.
- ``"label"``: ``"UNKNOWN"`` is an ordinary label (one for all unknown turns) that
  the mapping may pair with a reference speaker.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

from pyannote.core import Annotation, Segment

from diareval.constants import UNKNOWN
from diareval.errors import ConfigError
from diareval.sessionlog import LogLine

UNKNOWN_POLICIES = ("error", "nonspeech", "label")
LEVELS = ("word", "turn")
UNKNOWN_PREFIX = "UNKNOWN#"  # label prefix of unknown speech under the "error" policy
UNKNOWN_LABEL = UNKNOWN  # the single ordinary label under the "label" policy


def is_unknown(label: object) -> bool:
    """True when a service label means "no speaker assigned": None, "" or "UNKNOWN" (any case)."""
    return label is None or (isinstance(label, str) and label.strip().upper() in ("", UNKNOWN))


def is_unknown_label(label: object) -> bool:
    """True for a hypothesis label that stands for unknown speech under the "error" policy."""
    return isinstance(label, str) and label.startswith(UNKNOWN_PREFIX)


@dataclass(frozen=True)
class Word:
    """One hypothesis word: times in seconds, the word's own speaker when the service sent one."""

    text: str
    start: float
    end: float
    speaker: str | None = None
    confidence: float | None = None


@dataclass(frozen=True)
class Turn:
    """One turn as the service finalised it.

    ``label`` is the turn's ``speaker_label`` as sent (None when null or absent);
    ``t_audio``/``t_wall`` are the log times of the final message; ``partial_labels``
    lists ``(t_audio, speaker_label)`` of every earlier message of this turn_order
    (partials and a first unformatted end-of-turn message), in arrival order.
    ``revised_label``/``revised_at`` are set when a SpeakerRevision touched the turn
    (see :func:`apply_revisions`).
    """

    turn_order: int
    label: str | None
    words: tuple[Word, ...]
    transcript: str
    t_audio: float
    t_wall: float
    partial_labels: tuple[tuple[float, str | None], ...] = ()
    first_t_audio: float | None = None
    revised_label: str | None = None
    revised_at: float | None = None
    revised: bool = False
    original_label: str | None = None  # the final message's label when revised

    @property
    def unknown(self) -> bool:
        """True when the turn has no assigned speaker."""
        return is_unknown(self.label)

    @property
    def start(self) -> float | None:
        """First word start (s), None for a turn without words."""
        return min(w.start for w in self.words) if self.words else None

    @property
    def end(self) -> float | None:
        """Last word end (s), None for a turn without words."""
        return max(w.end for w in self.words) if self.words else None


@dataclass(frozen=True)
class SessionTurns:
    """Everything :func:`final_turns` read from one log."""

    turns: tuple[Turn, ...]
    unfinished: tuple[int, ...] = ()  # turn_orders with partials but no end-of-turn message
    revisions: tuple[tuple[float, dict], ...] = ()  # (t_audio, SpeakerRevision message)
    n_turn_messages: int = 0
    warnings: tuple[str, ...] = field(default=())


def _words(raw_words: object) -> tuple[Word, ...]:
    """Protocol words (integer ms) as :class:`Word` (seconds); malformed entries are skipped."""
    words = []
    if not isinstance(raw_words, list):
        return ()
    for raw in raw_words:
        if not isinstance(raw, dict):
            continue
        try:
            start, end = float(raw["start"]) / 1000.0, float(raw["end"]) / 1000.0
        except (KeyError, TypeError, ValueError):
            continue
        if end < start:
            start, end = end, start
        speaker = raw.get("speaker")
        words.append(Word(text=str(raw.get("text", "")), start=start, end=end,
                          speaker=speaker if isinstance(speaker, str) or speaker is None else
                          str(speaker), confidence=raw.get("confidence")))
    return tuple(words)


def _label(message: dict) -> str | None:
    label = message.get("speaker_label")
    return None if label is None else str(label)


def final_turns(log: Sequence[LogLine]) -> SessionTurns:
    """The final turn of every ``turn_order`` in a session log, in turn_order order.

    Only received messages count. The final turn is the last Turn message with
    ``end_of_turn`` true; every earlier message of the same ``turn_order`` is
    recorded in ``partial_labels``. Turn orders that never got an end-of-turn
    message are listed in ``unfinished`` (the session ended mid-turn).
    SpeakerRevision messages are collected, not applied (see :func:`apply_revisions`).
    """
    finals: dict[int, tuple[LogLine, dict]] = {}
    history: dict[int, list[tuple[float, str | None]]] = {}
    first_seen: dict[int, float] = {}
    revisions = []
    n_turns = 0
    warnings = []
    for line in log:
        if line.dir != "recv" or not isinstance(line.msg, dict):
            continue
        kind = line.msg.get("type")
        if kind == "SpeakerRevision":
            revisions.append((line.t_audio, line.msg))
            continue
        if kind != "Turn":
            continue
        n_turns += 1
        try:
            order = int(line.msg["turn_order"])
        except (KeyError, TypeError, ValueError):
            warnings.append(f"Turn message without a usable turn_order at t_audio={line.t_audio}")
            continue
        first_seen.setdefault(order, line.t_audio)
        if order in finals:
            # a later message of an already-final turn (formatted copy): the previous final
            # becomes history, the last one wins
            previous_line, previous = finals[order]
            history.setdefault(order, []).append((previous_line.t_audio, _label(previous)))
        if line.msg.get("end_of_turn"):
            finals[order] = (line, line.msg)
        else:
            if order in finals:
                warnings.append(f"turn_order {order}: partial after end-of-turn; ignored")
                history[order].pop()
                continue
            history.setdefault(order, []).append((line.t_audio, _label(line.msg)))
    turns = []
    for order in sorted(finals):
        line, message = finals[order]
        turns.append(Turn(turn_order=order, label=_label(message),
                          words=_words(message.get("words")),
                          transcript=str(message.get("transcript", "")), t_audio=line.t_audio,
                          t_wall=line.t_wall, partial_labels=tuple(history.get(order, ())),
                          first_t_audio=first_seen.get(order)))
    unfinished = tuple(sorted(set(history) - set(finals)))
    return SessionTurns(turns=tuple(turns), unfinished=unfinished, revisions=tuple(revisions),
                        n_turn_messages=n_turns, warnings=tuple(warnings))


def apply_revisions(session: SessionTurns) -> SessionTurns:
    """The turns with every SpeakerRevision applied in arrival order.

    A revision ``{"turn_order", "speaker_label", "words"?}`` replaces the turn's
    label (and its words, when the revision carries a non-empty word list, so
    per-word speakers are revised too). Revisions of unknown turn orders are ignored.
    """
    by_order = {turn.turn_order: turn for turn in session.turns}
    for t_audio, message in session.revisions:
        entries = message.get("revisions")
        if not isinstance(entries, list):
            continue
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            try:
                order = int(entry["turn_order"])
            except (KeyError, TypeError, ValueError):
                continue
            turn = by_order.get(order)
            if turn is None:
                continue
            label = entry.get("speaker_label", turn.label)
            label = None if label is None else str(label)
            words = _words(entry.get("words")) or turn.words
            original = turn.original_label if turn.revised else turn.label
            by_order[order] = replace(turn, label=label, words=words, revised=True,
                                      revised_label=label, revised_at=t_audio,
                                      original_label=original)
    return replace(session, turns=tuple(by_order[o] for o in sorted(by_order)))


def session_turns(log: Sequence[LogLine], revisions: bool = True) -> SessionTurns:
    """:func:`final_turns`, with SpeakerRevisions applied when ``revisions`` is true."""
    session = final_turns(log)
    return apply_revisions(session) if revisions else session


def _check(level: str, unknown: str) -> None:
    if level not in LEVELS:
        raise ConfigError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    if unknown not in UNKNOWN_POLICIES:
        raise ConfigError(f"unknown policy must be one of {', '.join(UNKNOWN_POLICIES)}, "
                          f"got {unknown!r}")


def hypothesis_label(label: str | None, turn_order: int, unknown: str = "error") -> str | None:
    """The hypothesis label of speech the service labelled ``label`` (None = drop it)."""
    if not is_unknown(label):
        return label
    if unknown == "error":
        return f"{UNKNOWN_PREFIX}{turn_order}"
    if unknown == "label":
        return UNKNOWN_LABEL
    return None


def turn_speech(turns: Iterable[Turn], level: str = "word",
                unknown: str = "error") -> list[tuple[float, float, str, int]]:
    """Hypothesis speech intervals ``(start, end, label, turn_order)`` before merging."""
    _check(level, unknown)
    intervals = []
    for turn in turns:
        if not turn.words:
            continue
        if level == "turn":
            label = hypothesis_label(turn.label, turn.turn_order, unknown)
            if label is not None and turn.end > turn.start:
                intervals.append((turn.start, turn.end, label, turn.turn_order))
            continue
        for word in turn.words:
            raw = word.speaker if word.speaker is not None else turn.label
            label = hypothesis_label(raw, turn.turn_order, unknown)
            if label is not None and word.end > word.start:
                intervals.append((word.start, word.end, label, turn.turn_order))
    return intervals


def merge_intervals(intervals: Iterable[tuple[float, float, str]], uri: str | None = None
                    ) -> Annotation:
    """An Annotation with one track per maximal run of touching/overlapping same-label intervals."""
    by_label: dict[str, list[tuple[float, float]]] = {}
    for start, end, label, *_ in intervals:
        by_label.setdefault(label, []).append((start, end))
    annotation = Annotation(uri=uri)
    track = 0
    for label in sorted(by_label):
        spans = sorted(by_label[label])
        current_start, current_end = spans[0]
        merged = []
        for start, end in spans[1:]:
            if start <= current_end:
                current_end = max(current_end, end)
            else:
                merged.append((current_start, current_end))
                current_start, current_end = start, end
        merged.append((current_start, current_end))
        for start, end in merged:
            annotation[Segment(start, end), track] = label
            track += 1
    return annotation


def hypothesis_from_turns(turns: Iterable[Turn], level: str = "word", unknown: str = "error",
                          uri: str | None = None) -> Annotation:
    """Hypothesis speech of final turns (see the module docstring for the rules)."""
    return merge_intervals(turn_speech(turns, level, unknown), uri=uri)


def hypothesis_from_log(log: Sequence[LogLine], level: str = "word", unknown: str = "error",
                        revisions: bool = True, uri: str | None = None) -> Annotation:
    """The hypothesis Annotation of a session log.

    ``level``: "word" (default) or "turn"; ``unknown``: "error" (default), "nonspeech"
    or "label"; ``revisions``: apply SpeakerRevision messages (default) or not.
    A log without final turns gives an empty Annotation (all reference speech missed).
    """
    _check(level, unknown)
    return hypothesis_from_turns(session_turns(log, revisions).turns, level, unknown, uri=uri)
