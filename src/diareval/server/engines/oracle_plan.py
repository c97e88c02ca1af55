"""The oracle's plan: its turns, error model and label decisions for one recording.

Pure functions of (seed, recording uri, reference, session parameters): the streaming
engine (``oracle.py``) replays them as messages, and scoring recomputes them offline
(:func:`oracle_decisions`). See ``oracle.py``'s docstring for the whole behaviour.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from typing import Sequence

import numpy as np

from diareval.constants import UNKNOWN, WORD_COUNT_BINS, word_count_bin_index
from diareval.datasets.recording import Recording
from diareval.errors import ConfigError
from diareval.server import messages as say
from diareval.server.engines.base import SessionParams

_N_DRAWS = 10  # uniform numbers drawn per turn (columns below)
_U_WRONG, _U_TARGET, _U_NEW, _U_UNKNOWN, _U_DELAY, _U_CONF, _U_PARTIAL, _U_PARTIAL_TARGET, \
    _U_REVISION, _U_MERGE = range(_N_DRAWS)


@dataclass(frozen=True)
class OracleConfig:
    """The oracle's error model and timing. Defaults are mild.

    Label errors (:func:`p_wrong`): ``first_turns`` rule, then the overlap rule, then the
    word-count table ``p_wrong_by_words`` (buckets 1, 2, 3-5, 6-10, 11-20, 21+). A wrong
    label is a brand-new label with probability ``p_wrong_new`` (or when no other label
    exists), else another existing label chosen uniformly.
    Unknown: turns shorter than ``unknown_below_seconds`` get ``UNKNOWN`` (or null when
    ``unknown_style="null"``) with probability ``p_unknown_short``.
    ``p_partial_label_change``: partials show another existing label than the final.
    ``p_revision``: at finish, a SpeakerRevision corrects a wrongly labelled final turn.
    ``p_interval_revision`` (q): with ``speaker_labels_revision_interval_ms`` = I > 0, each
    time the audio received passes a multiple k*I, every final turn already sent whose
    current label is wrong (not its speaker's own label, that label already shown) is
    corrected with probability q, independently per turn and interval
    (:func:`interval_revision_draws`); the corrections go out as one SpeakerRevision.
    Word shape (:func:`shape_words`): Universal-Streaming models send word times on their
    family's 80 ms grid, and each word that touches the next one in its turn is sent
    zero-length with probability ``p_zero_length`` (the next word starts where it stood, so
    speech time is kept); ``exact_words=True`` sends the reference times to 1 ms for every
    model (validation of scoring against the reference).
    """

    seed: int = 0
    p_wrong_by_words: tuple[float, ...] = (0.25, 0.15, 0.08, 0.04, 0.02, 0.01)
    first_turns: int = 2
    p_wrong_first: float = 0.2
    overlap_threshold: float = 0.3
    p_wrong_overlap: float = 0.3
    p_wrong_new: float = 0.1
    unknown_below_seconds: float = 1.0
    p_unknown_short: float = 0.3
    unknown_style: str = "UNKNOWN"
    p_partial_label_change: float = 0.0
    p_revision: float = 0.0
    p_interval_revision: float = 0.5
    p_zero_length: float = 0.1
    exact_words: bool = False
    merge_gap: float | None = 0.3
    words_per_second: float = 2.5
    identify_seconds: float = 10.0

    def __post_init__(self):
        table = tuple(float(p) for p in self.p_wrong_by_words)
        object.__setattr__(self, "p_wrong_by_words", table)
        if len(table) != len(WORD_COUNT_BINS):
            raise ConfigError(f"p_wrong_by_words needs {len(WORD_COUNT_BINS)} values (buckets "
                              f"{', '.join(b[2] for b in WORD_COUNT_BINS)}), got {len(table)}")
        probabilities = {"p_wrong_first": self.p_wrong_first,
                         "p_wrong_overlap": self.p_wrong_overlap, "p_wrong_new": self.p_wrong_new,
                         "p_unknown_short": self.p_unknown_short,
                         "p_partial_label_change": self.p_partial_label_change,
                         "p_revision": self.p_revision,
                         "p_interval_revision": self.p_interval_revision,
                         "p_zero_length": self.p_zero_length,
                         **{f"p_wrong_by_words[{i}]": p for i, p in enumerate(table)}}
        for name, value in probabilities.items():
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"oracle {name} must be a probability in [0, 1], got {value}")
        if self.unknown_style not in ("UNKNOWN", "null"):
            raise ConfigError(f"unknown_style must be 'UNKNOWN' or 'null', "
                              f"got {self.unknown_style!r}")
        if self.words_per_second <= 0 or self.identify_seconds <= 0:
            raise ConfigError("words_per_second and identify_seconds must be positive")
        if not 0.0 <= self.overlap_threshold <= 1.0:
            raise ConfigError(f"overlap_threshold must be in [0, 1], got {self.overlap_threshold}")

    @classmethod
    def uniform(cls, p: float, **options) -> "OracleConfig":
        """Every turn wrong with probability ``p`` (first-turn, overlap and table rules alike)."""
        return cls(p_wrong_by_words=(p,) * len(WORD_COUNT_BINS), p_wrong_first=p,
                   p_wrong_overlap=p, **options)

    @classmethod
    def from_options(cls, **options) -> "OracleConfig":
        """Build from keyword options (e.g. the ``serve --engine-options`` JSON); unknown
        names are an error listing the valid ones. ``uniform_p_wrong=p`` is :meth:`uniform`."""
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - valid - {"uniform_p_wrong"})
        if unknown:
            raise ConfigError(f"unknown oracle option(s) {', '.join(unknown)}; valid: "
                              f"{', '.join(sorted(valid | {'uniform_p_wrong'}))}")
        if "uniform_p_wrong" in options:
            return cls.uniform(options.pop("uniform_p_wrong"), **options)
        return cls(**options)


def word_count_bucket(word_count: int) -> int:
    """Index of the word-count bucket (1, 2, 3-5, 6-10, 11-20, 21+) of ``word_count``."""
    index = word_count_bin_index(word_count)
    return 0 if index is None else index  # zero words cannot happen (every turn has one)


def p_wrong(word_count: int, overlap_ratio: float, turn_index: int, config: OracleConfig) -> float:
    """Probability that the oracle labels a turn wrongly. Precedence, first match wins:

    1. ``turn_index < config.first_turns`` (0-based, in the session): ``p_wrong_first``;
    2. ``overlap_ratio > config.overlap_threshold``: ``p_wrong_overlap``;
    3. ``config.p_wrong_by_words[bucket(word_count)]``.
    """
    if turn_index < config.first_turns:
        return config.p_wrong_first
    if overlap_ratio > config.overlap_threshold:
        return config.p_wrong_overlap
    return config.p_wrong_by_words[word_count_bucket(word_count)]


@dataclass(frozen=True)
class PlannedWord:
    """One word the oracle will emit (integer ms from stream start)."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class PlannedTurn:
    """One reference turn: speaker, words, the share of its word time in overlapped speech."""

    speaker: str
    words: tuple[PlannedWord, ...]
    overlap_ratio: float

    @property
    def start(self) -> int:
        return self.words[0].start

    @property
    def end(self) -> int:
        return self.words[-1].end

    @property
    def duration(self) -> float:
        """Seconds from the first word's start to the last word's end."""
        return (self.end - self.start) / 1000.0


@dataclass
class TurnDecision:
    """What the oracle decided for one planned turn (``identity`` indexes are internal;
    ``label`` is the letter shown, filled in when the turn is first emitted)."""

    index: int
    reference_speaker: str
    start_ms: int
    end_ms: int
    word_count: int
    overlap_ratio: float
    p_wrong: float = 0.0
    wrong: bool = False  # the wrong-label event was drawn
    unknown: bool = False
    merged: bool = False  # max_speakers cap: this speaker's first label is an existing one
    identity: int | None = None  # None when unknown or without speaker_labels
    home_identity: int | None = None  # the speaker's own label identity at decision time
    partial_identity: int | None = None  # shown on partials when different from the final
    revision_identity: int | None = None  # SpeakerRevision target at finish, if any
    final_delay_ms: int = 0
    end_of_turn_confidence: float = 0.0
    label: str | None = None  # as emitted
    extra: dict = field(default_factory=dict)


def _pseudo_words(start: float, end: float, config: OracleConfig, first: int) -> list[PlannedWord]:
    """Words ``w<first>``, ... spread evenly over [start, end] (integer ms, touching)."""
    start_ms, end_ms = int(round(start * 1000)), int(round(end * 1000))
    end_ms = max(end_ms, start_ms + 1)
    n = max(1, int(round((end - start) * config.words_per_second)))
    n = min(n, end_ms - start_ms)
    bounds = [start_ms + (end_ms - start_ms) * i // n for i in range(n + 1)]
    return [PlannedWord(bounds[i], bounds[i + 1], f"w{first + i}") for i in range(n)]


def plan_turns(recording: Recording, config: OracleConfig,
               family: say.ModelFamily | None = None) -> list[PlannedTurn]:
    """The oracle's turns for ``recording``: pure function of the reference, ``config`` and
    the model ``family`` whose word shape they take (:func:`shape_words`; None: none).

    Same-speaker segments that overlap or touch become one piece; pieces closer than
    ``merge_gap`` form one turn. Words come from each piece separately, so they never span
    a gap: with no label errors and no word shape the final words reproduce the reference
    speech (to 1 ms). Overlap ratios are measured on the shaped words.
    """
    segments = sorted((seg.start, seg.end, str(label))
                      for seg, _, label in recording.reference.itertracks(yield_label=True))
    runs: list[tuple[str, list[list[float]]]] = []  # (speaker, pieces [start, end])
    last_run: dict[str, list[list[float]]] = {}
    for start, end, speaker in segments:
        pieces = last_run.get(speaker)
        if pieces is not None and start <= pieces[-1][1]:
            pieces[-1][1] = max(pieces[-1][1], end)
        elif pieces is not None and config.merge_gap is not None and \
                start - pieces[-1][1] < config.merge_gap:
            pieces.append([start, end])
        else:
            pieces = [[start, end]]
            last_run[speaker] = pieces
            runs.append((speaker, pieces))
    overlap = [(seg.start, seg.end) for seg in recording.reference.get_overlap()]
    overlap_starts = np.array([s for s, _ in overlap], dtype=float)
    overlap_ends = np.array([e for _, e in overlap], dtype=float)
    reference_words = sorted(recording.words or [], key=lambda w: (w.start, w.end))
    planned = []
    for speaker, pieces in runs:
        words: list[PlannedWord] = []
        for start, end in pieces:
            inside = [PlannedWord(int(round(w.start * 1000)),
                                  max(int(round(w.end * 1000)), int(round(w.start * 1000)) + 1),
                                  w.text)
                      for w in reference_words
                      if w.speaker == speaker and start <= (w.start + w.end) / 2 < end]
            words += inside or _pseudo_words(start, end, config, len(words) + 1)
        planned.append(PlannedTurn(speaker, tuple(words), 0.0))
    planned.sort(key=lambda t: (t.start, t.end, t.speaker))
    if family is not None:
        planned = shape_words(planned, family, config, recording.uri)
    turns = []
    for speaker, words, _ in ((t.speaker, t.words, None) for t in planned):
        spoken = overlapped = 0.0
        for w in words:
            s, e = w.start / 1000.0, w.end / 1000.0
            spoken += e - s
            if len(overlap):
                overlapped += float(np.clip(np.minimum(e, overlap_ends)
                                            - np.maximum(s, overlap_starts), 0, None).sum())
        turns.append(PlannedTurn(speaker, tuple(words), overlapped / spoken if spoken else 0.0))
    return turns


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def draws(seed: int, uri: str, n_turns: int) -> np.ndarray:
    """The per-turn uniform numbers (``n_turns`` x 10) from (seed, uri) alone: every
    configuration of a recording sees the same draws (common random numbers)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, _stable_hash(uri)]).random(
        (n_turns, _N_DRAWS))


def interval_revision_draws(seed: int, uri: str, k: int, n_turns: int) -> np.ndarray:
    """The uniform numbers (one per planned turn) of the k-th mid-session revision (k >= 1):
    from (seed, uri, k) alone, so every pace and chunking gives the same revisions."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, _stable_hash(uri), 0x52455649,
                                  int(k)]).random(n_turns)


def shape_words(turns: Sequence[PlannedTurn], family: say.ModelFamily, config: OracleConfig,
                uri: str) -> list[PlannedTurn]:
    """``turns`` with their words in the shape ``family`` sends (see :class:`OracleConfig`):
    times rounded to ``family.word_grid_ms`` (a word never ends before it starts); with
    ``family.zero_length_words``, a word whose (rounded) end is the next word's start becomes
    zero-length with probability ``config.p_zero_length`` and the next word starts at its
    start. Unchanged with ``config.exact_words`` or a 1 ms grid without zero-length words."""
    if config.exact_words or (family.word_grid_ms <= 1 and not family.zero_length_words):
        return list(turns)
    n_words = sum(len(t.words) for t in turns)
    u = np.random.default_rng([int(config.seed) & 0xFFFFFFFF, _stable_hash(uri),
                               0x5A45524F]).random(n_words)
    p = config.p_zero_length if family.zero_length_words else 0.0
    out, n = [], 0
    for turn in turns:
        times = [[family.on_grid(w.start), family.on_grid(w.end)] for w in turn.words]
        for i, t in enumerate(times):
            t[1] = max(t[1], t[0])
            if i + 1 < len(times) and u[n + i] < p and t[1] == times[i + 1][0]:
                times[i + 1][0], t[1] = t[0], t[0]
        n += len(times)
        words = tuple(PlannedWord(s, e, w.text) for (s, e), w in zip(times, turn.words))
        out.append(PlannedTurn(turn.speaker, words, turn.overlap_ratio))
    return out


def assign_labels(turns: Sequence[PlannedTurn], params: SessionParams, config: OracleConfig,
                  u: np.ndarray) -> list[TurnDecision]:
    """Decide every turn's label, in turn order. Label identities are created in order of use.

    Per turn (speaker s, turn index k): if ``duration < unknown_below_seconds`` and
    ``u < p_unknown_short`` -> unknown. Otherwise wrong iff ``u < p_wrong(...)``.
    Correct: s's own identity (created on first need; under the ``max_speakers`` cap an
    extra speaker is *merged* into an existing identity, preferring ones that are no
    speaker's own). Wrong: a new identity with probability ``p_wrong_new`` (or when there is
    no other; never beyond the cap), else another existing identity chosen uniformly.
    """
    cap = params.max_speakers
    homes: dict[str, int] = {}
    n_ids = 0
    decisions = []
    min_silence, max_silence = params.effective_min_turn_silence, params.effective_max_turn_silence
    for k, turn in enumerate(turns):
        row = u[k]
        d = TurnDecision(index=k, reference_speaker=turn.speaker, start_ms=turn.start,
                         end_ms=turn.end, word_count=len(turn.words),
                         overlap_ratio=turn.overlap_ratio)
        d.final_delay_ms = int(round(min_silence + row[_U_DELAY] * (max_silence - min_silence)))
        d.end_of_turn_confidence = round(0.5 + 0.5 * float(row[_U_CONF]), 4)
        decisions.append(d)
        if not params.speaker_labels:
            continue
        if turn.duration < config.unknown_below_seconds and \
                row[_U_UNKNOWN] < config.p_unknown_short:
            d.unknown = True
            d.home_identity = homes.get(turn.speaker)
            continue
        d.p_wrong = p_wrong(len(turn.words), turn.overlap_ratio, k, config)
        d.wrong = bool(row[_U_WRONG] < d.p_wrong)
        home = homes.get(turn.speaker)
        room = cap is None or n_ids < cap
        if not d.wrong:
            if home is None:
                if room:
                    home, n_ids = n_ids, n_ids + 1
                else:
                    owned = set(homes.values())
                    candidates = [i for i in range(n_ids) if i not in owned] or list(range(n_ids))
                    home = candidates[int(row[_U_MERGE] * len(candidates))]
                    d.merged = True
                homes[turn.speaker] = home
            d.identity = home
        else:
            others = [i for i in range(n_ids) if i != home]
            if (row[_U_NEW] < config.p_wrong_new or not others) and room:
                d.identity, n_ids = n_ids, n_ids + 1
            elif others:
                d.identity = others[int(row[_U_TARGET] * len(others))]
            else:  # at the cap with only the speaker's own identity: cannot be wrong
                d.identity = home
        d.home_identity = homes.get(turn.speaker)
        if row[_U_PARTIAL] < config.p_partial_label_change:
            shown = [i for i in range(n_ids) if i != d.identity]
            if shown:
                d.partial_identity = shown[int(row[_U_PARTIAL_TARGET] * len(shown))]
    if params.speaker_labels and config.p_revision > 0:
        for d in decisions:
            home = homes.get(d.reference_speaker)
            if d.identity is not None and home is not None and d.identity != home and \
                    u[d.index, _U_REVISION] < config.p_revision:
                d.revision_identity = home
    return decisions


def oracle_decisions(recording: Recording, params: SessionParams,
                     config: OracleConfig | None = None) -> list[TurnDecision]:
    """The oracle's per-turn decisions for ``recording`` under ``params``, without streaming.

    The same decisions a session makes (they depend on nothing else), with ``label`` filled
    as the session shows it when the whole recording is streamed. Scoring can check itself
    against these from another process (the server's engines live in the server process).
    """
    config = config or OracleConfig()
    turns = plan_turns(recording, config, params.family)
    decisions = assign_labels(turns, params, config, draws(config.seed, recording.uri,
                                                           len(turns)))
    letters = say.SpeakerLetters()
    for decision in decisions:
        for identity in (decision.partial_identity, decision.identity):
            if identity is not None:
                letters(identity)
        if decision.unknown:
            decision.label = UNKNOWN if config.unknown_style == "UNKNOWN" else None
        elif params.speaker_labels:
            decision.label = letters(decision.identity)
    return decisions
