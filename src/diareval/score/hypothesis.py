"""The hypothesis a session log implies: final turns, partials, revisions, hypothesis speech.

A session log (``diareval.sessionlog``) holds every Turn message the service sent.
For each ``turn_order`` the *final* turn is the last Turn message with
``end_of_turn`` true (the formatted one when ``format_turns`` sends two). Earlier
messages of the same ``turn_order`` are *partials*; they are kept for the
stability measures. ``SpeakerRevision`` messages (label corrections, at the end of the
stream and, with ``speaker_labels_revision_interval_ms``, during it) can be applied or
not; :func:`revision_entries` says which shapes are read and :func:`apply_revisions`
how they are applied (in arrival order, each entry by ``turn_order``).

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
# A word ``speaker`` that names no speaker yet: "PENDING" is seen on final words in captures of
# the real service (words the clustering had not attributed when the Turn was sent; a later
# SpeakerRevision attributes them). Such a word falls back to the turn's ``speaker_label``.
PENDING_SPEAKERS = ("PENDING",)


def is_unknown(label: object) -> bool:
    """True when a service label means "no speaker assigned": None, "" or "UNKNOWN" (any case)."""
    return label is None or (isinstance(label, str) and label.strip().upper() in ("", UNKNOWN))


def is_unknown_label(label: object) -> bool:
    """True for a hypothesis label that stands for unknown speech under the "error" policy."""
    return isinstance(label, str) and label.startswith(UNKNOWN_PREFIX)


@dataclass(frozen=True, slots=True)
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
    arrival: int = -1  # position of the final message among the log's received messages

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
class RevisionEntry:
    """One turn's correction inside a SpeakerRevision message.

    ``label`` is the revised ``speaker_label`` (``label_given`` False when the entry has no
    ``speaker_label`` key: the turn keeps its label); ``words`` the entry's words, empty when
    the entry sends none (the SDK's default ``words=[]``): then the whole turn, its words'
    own speakers included, takes ``label``."""

    turn_order: int
    label: str | None
    words: tuple[Word, ...] = ()
    label_given: bool = True


@dataclass(frozen=True)
class RevisionMessage:
    """A received SpeakerRevision: its log times, arrival position and entries."""

    t_audio: float
    t_wall: float
    arrival: int
    entries: tuple[RevisionEntry, ...]
    message: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class SessionTurns:
    """Everything :func:`final_turns` read from one log.

    ``revision_unmatched``: turn_orders named by a revision entry that have no final Turn in
    the log (the entry changes nothing; counted and reported, never an error);
    ``revision_superseded``: entries that arrived before their turn's final message (that
    message is newer than the revision and wins)."""

    turns: tuple[Turn, ...]
    unfinished: tuple[int, ...] = ()  # turn_orders with partials but no end-of-turn message
    revisions: tuple[RevisionMessage, ...] = ()
    n_turn_messages: int = 0
    warnings: tuple[str, ...] = field(default=())
    revision_unmatched: tuple[int, ...] = ()
    revision_superseded: int = 0


def parse_words(raw_words: object) -> tuple[Word, ...]:
    """Protocol words (integer ms) as :class:`Word` (seconds); malformed entries are skipped.

    A zero-length word (``start == end``, common on Universal-Streaming's 80 ms grid) is kept:
    it is a word (word counts, turn accuracy) with no duration (no DER time). A ``speaker``
    of null or "PENDING" means the word has none of its own."""
    if not isinstance(raw_words, list):
        return ()
    words = []
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
        if speaker is not None:
            speaker = str(speaker)
            if speaker.strip().upper() in PENDING_SPEAKERS:
                speaker = None
        text = raw.get("text", "")
        words.append(Word(text if isinstance(text, str) else str(text), start, end, speaker,
                          raw.get("confidence")))
    return tuple(words)


_words = parse_words  # the former private name (score/word_tables.py still imports it)


def _label(message: dict) -> str | None:
    label = message.get("speaker_label")
    return None if label is None else str(label)


def revision_entries(message: dict) -> tuple[list[RevisionEntry], list[str]]:
    """The entries of a SpeakerRevision message, and a warning per entry that was skipped.

    Shapes read: the documented one, ``{"type": "SpeakerRevision", "revisions": [{"turn_order",
    "speaker_label", "words"}, ...]}`` (SDK ``SpeakerRevisionEvent``; ``words`` defaults to
    ``[]`` and ``speaker_label`` to null there), and the earlier flat one a short-lived SDK
    parsed, ``{"type": "SpeakerRevision", "turn_order", "speaker_label", "words"}``."""
    raw = message.get("revisions")
    if not isinstance(raw, list):
        raw = [message] if "turn_order" in message else []
    entries, warnings = [], []
    for item in raw:
        if not isinstance(item, dict):
            warnings.append(f"SpeakerRevision entry is not an object: {item!r}")
            continue
        try:
            order = int(item["turn_order"])
        except (KeyError, TypeError, ValueError):
            warnings.append(f"SpeakerRevision entry without a usable turn_order: {item!r:.80}")
            continue
        given = "speaker_label" in item
        entries.append(RevisionEntry(turn_order=order, label=_label(item) if given else None,
                                     words=parse_words(item.get("words")), label_given=given))
    return entries, warnings


def revise_turn(turn: Turn, entry: RevisionEntry, t_audio: float) -> Turn:
    """``turn`` after one revision entry (see :class:`RevisionEntry`); ``t_audio`` is when the
    revision arrived. With words, the entry's words replace the turn's (text and times are the
    same per the SDK; per-word speakers are what changes); without, every word takes the
    revised label, so a word's old ``speaker`` cannot outlive the revision."""
    label = entry.label if entry.label_given else turn.label
    if entry.words:
        words = entry.words
    else:
        words = tuple(replace(w, speaker=label) for w in turn.words)
    original = turn.original_label if turn.revised else turn.label
    return replace(turn, label=label, words=words, revised=True, revised_label=label,
                   revised_at=t_audio, original_label=original)


def final_turns(log: Sequence[LogLine]) -> SessionTurns:
    """The final turn of every ``turn_order`` in a session log, in turn_order order.

    Only received messages count. The final turn is the last Turn message with
    ``end_of_turn`` true; every earlier message of the same ``turn_order`` is
    recorded in ``partial_labels``. Turn orders that never got an end-of-turn
    message are listed in ``unfinished`` (the session ended mid-turn).
    SpeakerRevision messages are collected, not applied (see :func:`apply_revisions`);
    entries for turn orders without a final Turn are listed in ``revision_unmatched``.
    """
    finals: dict[int, tuple[LogLine, dict, int]] = {}
    history: dict[int, list[tuple[float, str | None]]] = {}
    first_seen: dict[int, float] = {}
    revisions = []
    n_turns = 0
    warnings = []
    arrival = -1
    for line in log:
        if line.dir != "recv" or not isinstance(line.msg, dict):
            continue
        arrival += 1
        kind = line.msg.get("type")
        if kind == "SpeakerRevision":
            entries, skipped = revision_entries(line.msg)
            warnings += skipped
            revisions.append(RevisionMessage(line.t_audio, line.t_wall, arrival, tuple(entries),
                                             line.msg))
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
            previous_line, previous, _ = finals[order]
            history.setdefault(order, []).append((previous_line.t_audio, _label(previous)))
        if line.msg.get("end_of_turn"):
            finals[order] = (line, line.msg, arrival)
        else:
            if order in finals:
                warnings.append(f"turn_order {order}: partial after end-of-turn; ignored")
                history[order].pop()
                continue
            history.setdefault(order, []).append((line.t_audio, _label(line.msg)))
    turns = []
    for order in sorted(finals):
        line, message, position = finals[order]
        turns.append(Turn(turn_order=order, label=_label(message),
                          words=parse_words(message.get("words")),
                          transcript=str(message.get("transcript", "")), t_audio=line.t_audio,
                          t_wall=line.t_wall, partial_labels=tuple(history.get(order, ())),
                          first_t_audio=first_seen.get(order), arrival=position))
    unfinished = tuple(sorted(set(history) - set(finals)))
    unmatched, superseded = [], 0
    for revision in revisions:
        for entry in revision.entries:
            if entry.turn_order not in finals:
                unmatched.append(entry.turn_order)
            elif finals[entry.turn_order][2] > revision.arrival:
                superseded += 1
    if unmatched:
        warnings.append(f"{len(unmatched)} SpeakerRevision entr"
                        f"{'y' if len(unmatched) == 1 else 'ies'} for turn_order(s) never "
                        f"finalised in the log: {', '.join(map(str, sorted(set(unmatched))))}")
    return SessionTurns(turns=tuple(turns), unfinished=unfinished, revisions=tuple(revisions),
                        n_turn_messages=n_turns, warnings=tuple(warnings),
                        revision_unmatched=tuple(unmatched), revision_superseded=superseded)


def apply_revisions(session: SessionTurns) -> SessionTurns:
    """The turns with every SpeakerRevision applied in arrival order.

    Each entry (see :func:`revision_entries`, :func:`revise_turn`) is matched by
    ``turn_order``; a later revision of a turn overrides an earlier one. An entry that
    arrived before its turn's final message changes nothing (the final message is newer);
    an entry for a turn never finalised changes nothing and is counted in
    ``session.revision_unmatched``.
    """
    by_order = {turn.turn_order: turn for turn in session.turns}
    for revision in session.revisions:
        for entry in revision.entries:
            turn = by_order.get(entry.turn_order)
            if turn is None or turn.arrival > revision.arrival:
                continue
            by_order[entry.turn_order] = revise_turn(turn, entry, revision.t_audio)
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
        own = hypothesis_label(turn.label, turn.turn_order, unknown)
        for word in turn.words:
            if word.end <= word.start:  # zero-length: a word, but no speech time
                continue
            label = own if word.speaker is None else \
                hypothesis_label(word.speaker, turn.turn_order, unknown)
            if label is not None:
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
