"""The oracle engine: the reference, replayed as v3 messages, with exactly defined label errors.

Scoring is validated against it, so everything it does is a pure function of
(seed, recording uri, session parameters) and of *audio time*, never of the wall clock or
of how the audio was chunked.

1. **Which recording?** The factory keeps the first ``identify_seconds`` (10 s) of every
   catalog recording (16 kHz int16). Received audio narrows the candidates by exact prefix
   match until one remains; if several still match after ``identify_seconds`` the first is
   taken (with a warning); if none matches, :class:`EngineError` 3005
   "oracle: audio matches no known recording". The oracle needs ``sample_rate=16000``
   and ``encoding=pcm_s16le`` (anything else: EngineError 3006 at session start).
2. **Turns.** One per reference segment (same-speaker segments closer than ``merge_gap``
   are merged first), ordered by start. Words: ``Recording.words`` whose midpoint lies in
   the segment (same speaker), else pseudo-words ``w1``, ``w2``, ... spread evenly over the
   segment at ``words_per_second`` (at least one). Word times are integer ms.
3. **Timing** (audio time). Turns are sequential like the real service: turn k+1's messages
   only after turn k's final. A partial Turn (``end_of_turn`` false) each time a word's end
   passes (words so far; all ``word_is_final`` except the last). The final Turn
   (``end_of_turn`` true, ``turn_is_formatted`` false; plus a formatted copy with
   ``format_turns``) once the received audio reaches the last word's end plus a delay drawn
   per turn uniformly in [min_turn_silence, max_turn_silence]. ``finish()`` finalises every
   remaining turn with the words that ended within the received audio. Models of the U3
   Pro family (``messages.MODEL_FAMILIES``): a ``SpeechStarted`` 100 ms into each turn, a
   partial only where a pause of at least min_turn_silence follows a word, and one final
   Turn with ``turn_is_formatted`` true (as the docs describe U3 Pro).
4. **Labels** (``speaker_labels``). See :func:`assign_labels` and :func:`p_wrong`.
   Labels are "A", "B", ..., "Z", "AA", ... in order of first appearance in the messages,
   never reference names; ``speaker_label`` on every Turn and ``speaker`` on every final
   word. Every message is built by the shared vocabulary (``diareval.server.messages``).

``engine.decisions`` lists one :class:`TurnDecision` per planned turn (debugging, and the
ground truth tests recover the injected rates from); :func:`oracle_decisions` computes the
same list offline from (recording, params, config), e.g. in the scoring process.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from dataclasses import dataclass, field, fields, replace
from typing import Sequence

import numpy as np
import soundfile as sf

from diareval.constants import SAMPLE_RATE, UNKNOWN, WORD_COUNT_BINS, word_count_bin_index
from diareval.datasets.audio import float_to_int16
from diareval.datasets.recording import Recording
from diareval.errors import ConfigError
from diareval.server import messages as say
from diareval.server.engines.base import Engine, EngineError, SessionParams

logger = logging.getLogger(__name__)

SAMPLES_PER_MS = SAMPLE_RATE // 1000
SPEECH_STARTED_AFTER_MS = 100  # U3 Pro: SpeechStarted this long into a turn's first word
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


def plan_turns(recording: Recording, config: OracleConfig) -> list[PlannedTurn]:
    """The oracle's turns for ``recording``: pure function of the reference and ``config``.

    Same-speaker segments that overlap or touch become one piece; pieces closer than
    ``merge_gap`` form one turn. Words come from each piece separately, so they never span
    a gap: with no label errors the final words reproduce the reference speech (to 1 ms).
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
    turns = []
    for speaker, pieces in runs:
        words: list[PlannedWord] = []
        for start, end in pieces:
            inside = [PlannedWord(int(round(w.start * 1000)),
                                  max(int(round(w.end * 1000)), int(round(w.start * 1000)) + 1),
                                  w.text)
                      for w in reference_words
                      if w.speaker == speaker and start <= (w.start + w.end) / 2 < end]
            words += inside or _pseudo_words(start, end, config, len(words) + 1)
        spoken = overlapped = 0.0
        for w in words:
            s, e = w.start / 1000.0, w.end / 1000.0
            spoken += e - s
            if len(overlap):
                overlapped += float(np.clip(np.minimum(e, overlap_ends)
                                            - np.maximum(s, overlap_starts), 0, None).sum())
        turns.append(PlannedTurn(speaker, tuple(words), overlapped / spoken if spoken else 0.0))
    turns.sort(key=lambda t: (t.start, t.end, t.speaker))
    return turns


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def draws(seed: int, uri: str, n_turns: int) -> np.ndarray:
    """The per-turn uniform numbers (``n_turns`` x 10) from (seed, uri) alone: every
    configuration of a recording sees the same draws (common random numbers)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, _stable_hash(uri)]).random(
        (n_turns, _N_DRAWS))


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
    turns = plan_turns(recording, config)
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


def _reads_file_plainly(recording: Recording) -> bool:
    """True when ``recording.load_audio()`` is the plain file read (so a partial read of a
    16 kHz file gives exactly its first samples)."""
    if type(recording) is Recording:
        return True
    try:
        from diareval.datasets.ami import AMIRecording
    except ImportError:  # pragma: no cover - the AMI module is part of the package
        return False
    return type(recording) is AMIRecording


def audio_prefix(recording: Recording, seconds: float) -> np.ndarray:
    """The first ``seconds`` of ``recording.load_audio()``, reading only that much of a 16 kHz
    file when the recording's audio is the plain file (hour-long meetings load fast)."""
    limit = int(round(seconds * SAMPLE_RATE))
    if _reads_file_plainly(recording):
        try:
            info = sf.info(str(recording.audio_path))
        except Exception:  # unreadable here: let load_audio raise its clear error
            info = None
        if info is not None and info.samplerate == SAMPLE_RATE:
            data, _ = sf.read(str(recording.audio_path), frames=limit, dtype="float32",
                              always_2d=True)
            return float_to_int16(data.mean(axis=1))
    return recording.load_audio()[:limit]


class OracleFactory:
    """Builds one :class:`OracleEngine` per session; holds the catalog's audio prefixes."""

    def __init__(self, recordings: Sequence[Recording], config: OracleConfig):
        if not recordings:
            raise ConfigError("the oracle needs at least one recording")
        self.recordings = list(recordings)
        self.config = config
        self.prefixes = [audio_prefix(recording, config.identify_seconds)
                         for recording in self.recordings]
        self._plans: dict[int, list[PlannedTurn]] = {}

    def plan(self, index: int) -> list[PlannedTurn]:
        """The (cached) planned turns of catalog recording ``index``."""
        if index not in self._plans:
            self._plans[index] = plan_turns(self.recordings[index], self.config)
        return self._plans[index]

    def __call__(self, params: SessionParams) -> "OracleEngine":
        return OracleEngine(params, self)


def make_oracle_factory(recordings: Sequence[Recording], config: OracleConfig | None = None,
                        **options) -> OracleFactory:
    """The oracle engine factory over ``recordings``; ``options`` override ``config`` fields
    (e.g. ``seed=1``, ``uniform_p_wrong=0.4``, ``p_wrong_by_words=[...]``)."""
    if config is not None and options:
        config = replace(config, **options)
    elif config is None:
        config = OracleConfig.from_options(**options)
    return OracleFactory(recordings, config)


class OracleEngine(Engine):
    """One session of the oracle (see the module docstring)."""

    def __init__(self, params: SessionParams, factory: OracleFactory):
        super().__init__(params)
        if params.sample_rate != SAMPLE_RATE or params.encoding != "pcm_s16le":
            raise EngineError(f"oracle engine needs sample_rate=16000 and encoding=pcm_s16le, "
                              f"got sample_rate={params.sample_rate} encoding={params.encoding}",
                              code=3006)
        self.factory, self.config = factory, factory.config
        self.samples = 0  # audio received, in samples
        self._buffer: list[np.ndarray] = []
        self._candidates = list(range(len(factory.recordings)))
        self._checked = 0  # samples of received audio already matched against the candidates
        self.recording: Recording | None = None
        self.turns: list[PlannedTurn] = []
        self.decisions: list[TurnDecision] = []
        self._letters = say.SpeakerLetters()
        self._cursor = 0  # index into self.turns of the turn in progress
        self._shown = 0  # words of the current turn already shown in partials
        self._last_due = 0  # samples: emitted events are due in non-decreasing order
        self._turn_order = 0
        self._turn_decision: list[TurnDecision] = []  # parallel to self.turns
        self._u = np.zeros((0, _N_DRAWS))
        self._speech_started = -1  # index of the last turn whose SpeechStarted went out (U3)
        self.family = params.family
        # (turn_order, index into self.turns, words) of every final emitted
        self._emitted: list[tuple[int, int, tuple[PlannedWord, ...]]] = []

    # --- identification --------------------------------------------------------------------

    def _identify(self) -> None:
        received = np.concatenate(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
        self._buffer = [received]
        checked = self._checked  # every candidate already matches received[:checked]
        remaining = []
        for index in self._candidates:
            prefix = self.factory.prefixes[index]
            n = min(len(prefix), len(received))
            if n <= checked or np.array_equal(prefix[checked:n], received[checked:n]):
                remaining.append(index)
        self._candidates = remaining
        self._checked = len(received)
        if not remaining:
            raise EngineError("oracle: audio matches no known recording", code=3005)
        window = int(self.config.identify_seconds * SAMPLE_RATE)
        if len(remaining) == 1:
            self._choose(remaining[0])
        elif len(received) >= window or all(len(received) >= len(self.factory.prefixes[i])
                                             for i in remaining):
            uris = [self.factory.recordings[i].uri for i in remaining]
            message = (f"oracle: {len(remaining)} recordings share the first "
                       f"{len(received) / SAMPLE_RATE:.1f} s of audio ({', '.join(uris)}); "
                       f"taking {uris[0]}")
            warnings.warn(message)
            logger.warning(message)
            self._choose(remaining[0])

    def _choose(self, index: int) -> None:
        self.recording = self.factory.recordings[index]
        self._buffer = []
        self.turns = list(self.factory.plan(index))
        u = self._u = draws(self.config.seed, self.recording.uri, len(self.turns))
        self.decisions = assign_labels(self.turns, self.params, self.config, u)
        self._turn_decision = list(self.decisions)  # parallel to self.turns (splits share)

    def label_of(self, identity: int | None) -> str | None:
        """The letter an internal label identity was shown as (None if never shown)."""
        return self._letters.get(identity) if identity is not None else None

    # --- messages ---------------------------------------------------------------------------

    def _label(self, identity: int | None, unknown: bool) -> str | None:
        if unknown:
            return UNKNOWN if self.config.unknown_style == "UNKNOWN" else None
        if identity is None:
            return None
        return self._letters(identity)

    def _turn(self, index: int, words: Sequence[PlannedWord], final: bool,
              formatted: bool = False) -> dict:
        decision = self._turn_decision[index]
        if final:
            identity = decision.identity
        else:
            identity = decision.partial_identity if decision.partial_identity is not None \
                else decision.identity
        label = self._label(identity, decision.unknown)
        if final and decision.label is None:
            decision.label = label
        word_dicts = []
        for i, w in enumerate(words):
            is_final = final or i < len(words) - 1
            speaker = label if self.params.speaker_labels and is_final else say.NO_SPEAKER
            word_dicts.append(say.word_message(w.text, w.start, w.end, 0.95, is_final, speaker))
        transcript = " ".join(d["text"] for d in word_dicts if d["word_is_final"])
        if formatted and transcript:
            transcript = transcript[0].upper() + transcript[1:] + "."
        return say.turn_message(
            self.params, turn_order=self._turn_order, words=word_dicts, end_of_turn=final,
            formatted=formatted,
            end_of_turn_confidence=decision.end_of_turn_confidence if final else 0.0,
            speaker_label=label, transcript=transcript)

    def _finals(self, index: int, words: Sequence[PlannedWord]) -> list[dict]:
        if self.family.one_formatted_final:  # U3 Pro: one final, already formatted
            messages = [self._turn(index, words, final=True, formatted=True)]
        else:
            messages = [self._turn(index, words, final=True)]
            if self.params.format_turns:
                messages.append(self._turn(index, words, final=True, formatted=True))
        self._emitted.append((self._turn_order, index, tuple(words)))
        self._turn_order += 1
        return messages

    def _advance(self) -> list[dict]:
        """Emit every event due by the audio received so far, in due order."""
        out: list[dict] = []
        while self._cursor < len(self.turns):
            turn = self.turns[self._cursor]
            if self.family.speech_started and self._speech_started < self._cursor:
                first = turn.words[0]
                at = min(first.start + SPEECH_STARTED_AFTER_MS, first.end)
                due = max(at * SAMPLES_PER_MS, self._last_due)
                if due > self.samples:
                    break
                self._last_due = due
                self._speech_started = self._cursor
                out.append(say.speech_started(first.start, 0.9))
            elif self._shown < len(turn.words):
                due = max(turn.words[self._shown].end * SAMPLES_PER_MS, self._last_due)
                if due > self.samples:
                    break
                self._shown += 1
                self._last_due = due
                if not self.family.partial_per_pause or self._pause_after(turn, self._shown - 1):
                    out.append(self._turn(self._cursor, turn.words[:self._shown], final=False))
            else:
                delay = self._turn_decision[self._cursor].final_delay_ms
                due = max((turn.end + delay) * SAMPLES_PER_MS, self._last_due)
                if due > self.samples:
                    break
                self._last_due = due
                out += self._finals(self._cursor, turn.words)
                self._cursor += 1
                self._shown = 0
        return out

    def _pause_after(self, turn: PlannedTurn, i: int) -> bool:
        """U3 Pro sends at most one partial per silence: after word ``i`` only when a pause of
        at least min_turn_silence follows inside the turn."""
        return i + 1 < len(turn.words) and \
            turn.words[i + 1].start - turn.words[i].end >= self.params.effective_min_turn_silence

    # --- Engine interface ---------------------------------------------------------------------

    def feed(self, pcm: np.ndarray) -> list[dict]:
        """Count the audio; identify the recording while needed; return the events now due."""
        self.samples += len(pcm)
        if self.recording is None:
            self._buffer.append(np.asarray(pcm, dtype=np.int16))
            self._identify()
            if self.recording is None:
                return []
        return self._advance()

    def update_configuration(self, changes: dict) -> list[dict]:
        """Apply min/max_turn_silence (and the other turn settings) from UpdateConfiguration:
        turns not yet finalised get their finalisation delay redrawn from the same uniform
        numbers within the new bounds (``messages.apply_update``). Other keys are ignored."""
        params = say.apply_update(self.params, changes)
        if params is self.params:
            return []
        self.params = params
        low = self.params.effective_min_turn_silence
        high = max(low, self.params.effective_max_turn_silence)
        for decision in self._turn_decision[self._cursor:]:
            decision.final_delay_ms = int(round(low + self._u[decision.index, _U_DELAY]
                                                * (high - low)))
        return self._advance() if self.recording is not None else []

    def force_endpoint(self) -> list[dict]:
        """Finalise the turn in progress with the words shown so far; its remaining words
        become a new turn with the same label decision."""
        if self.recording is None or self._cursor >= len(self.turns) or self._shown == 0:
            return []
        turn = self.turns[self._cursor]
        shown, rest = turn.words[:self._shown], turn.words[self._shown:]
        out = self._finals(self._cursor, shown)
        if rest:
            self.turns[self._cursor] = PlannedTurn(turn.speaker, shown, turn.overlap_ratio)
            self.turns.insert(self._cursor + 1, PlannedTurn(turn.speaker, rest,
                                                            turn.overlap_ratio))
            self._turn_decision.insert(self._cursor + 1, self._turn_decision[self._cursor])
        self._cursor += 1
        self._shown = 0
        self._last_due = max(self._last_due, self.samples)
        return out + self._advance()

    def finish(self) -> list[dict]:
        """Everything due, then a final Turn for each remaining turn with the words that ended
        within the received audio; then a SpeakerRevision if any emitted turn is revised."""
        if self.recording is None:
            if not self._buffer or not self._candidates:
                return []
            self._choose(self._candidates[0])
        out = self._advance()
        for index in range(self._cursor, len(self.turns)):
            words = [w for w in self.turns[index].words if w.end * SAMPLES_PER_MS <= self.samples]
            if words:
                out += self._finals(index, words)
        self._cursor = len(self.turns)
        revisions = []
        for turn_order, index, words in self._emitted:
            decision = self._turn_decision[index]
            if decision.revision_identity is None:
                continue
            label = self._label(decision.revision_identity, False)
            revisions.append(say.revision_entry(turn_order, label, [
                say.word_message(w.text, w.start, w.end, 0.95, True, label) for w in words]))
        if revisions:
            out.append(say.speaker_revision(revisions))
        return out
