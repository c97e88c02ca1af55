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
   segment at ``words_per_second`` (at least one). Word times are integer ms; in the
   shape of the session's model family (:func:`shape_words`): Universal-Streaming on the
   80 ms grid with some zero-length words, U3 Pro to the ms.
3. **Timing** (audio time). Turns are sequential like the real service: turn k+1's messages
   only after turn k's final. A partial Turn (``end_of_turn`` false) each time a word's end
   passes (words so far; all ``word_is_final`` except the last). The final Turn
   (``end_of_turn`` true, ``turn_is_formatted`` false; plus a formatted copy with
   ``format_turns``) once the received audio reaches the last word's end plus a delay drawn
   per turn uniformly in [min_turn_silence, max_turn_silence]. ``finish()`` finalises every
   remaining turn with the words that ended within the received audio. Models of the U3
   Pro family (``messages.MODEL_FAMILIES``): a ``SpeechStarted`` 100 ms into each turn, a
   partial only where a pause of at least min_turn_silence follows a word (its words all
   non-final, ``utterance`` ""), and one final Turn with ``turn_is_formatted`` true and
   ``end_of_turn_confidence`` 1.0 (the api-spec's U3 Pro message sequence).
4. **Labels** (``speaker_labels``). See :func:`assign_labels` and :func:`p_wrong`.
   Labels are "A", "B", ..., "Z", "AA", ... in order of first appearance in the messages,
   never reference names; ``speaker_label`` on every Turn and ``speaker`` on every final
   word. Every message is built by the shared vocabulary (``diareval.server.messages``).
5. **Revisions.** At finish (``p_revision``) and, with ``speaker_labels_revision_interval_ms``,
   during the session (``p_interval_revision``; :class:`OracleConfig`). Every revision sent
   is recorded in ``engine.revisions`` (:class:`RevisionRecord`), so tests can check them.

``engine.decisions`` lists one :class:`TurnDecision` per planned turn (debugging, and the
ground truth tests recover the injected rates from); :func:`oracle_decisions` computes the
same list offline from (recording, params, config), e.g. in the scoring process.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import soundfile as sf

from diareval.constants import SAMPLE_RATE, UNKNOWN
from diareval.datasets.audio import float_to_int16
from diareval.datasets.recording import Recording
from diareval.errors import ConfigError
from diareval.server import messages as say
from diareval.server.engines.base import Engine, EngineError, SessionParams
# The plan (turns, error model, decisions) is its own module; its names are the oracle's API.
from diareval.server.engines.oracle_plan import (_N_DRAWS, _U_DELAY, OracleConfig, PlannedTurn,
                                                 PlannedWord, TurnDecision, assign_labels, draws,
                                                 interval_revision_draws, oracle_decisions,
                                                 p_wrong, plan_turns, shape_words,
                                                 word_count_bucket)

__all__ = ["OracleConfig", "OracleEngine", "OracleFactory", "PlannedTurn", "PlannedWord",
           "RevisionRecord", "TurnDecision", "assign_labels", "audio_prefix", "draws",
           "interval_revision_draws", "make_oracle_factory", "oracle_decisions", "p_wrong",
           "plan_turns", "shape_words", "word_count_bucket"]

logger = logging.getLogger(__name__)

SAMPLES_PER_MS = SAMPLE_RATE // 1000
SPEECH_STARTED_AFTER_MS = 100  # U3 Pro: SpeechStarted this long into a turn's first word


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


@dataclass(frozen=True)
class RevisionRecord:
    """One turn relabelled by a SpeakerRevision the oracle sent: ``kind`` "interval" (the
    k-th mid-session revision, due at ``at_ms`` of audio) or "final" (at finish)."""

    kind: str
    k: int
    at_ms: int
    turn_order: int
    label: str | None


class OracleFactory:
    """Builds one :class:`OracleEngine` per session; holds the catalog's audio prefixes."""

    def __init__(self, recordings: Sequence[Recording], config: OracleConfig):
        if not recordings:
            raise ConfigError("the oracle needs at least one recording")
        self.recordings = list(recordings)
        self.config = config
        self.prefixes = [audio_prefix(recording, config.identify_seconds)
                         for recording in self.recordings]
        self._plans: dict[tuple, list[PlannedTurn]] = {}

    def plan(self, index: int, family=None) -> list[PlannedTurn]:
        """The (cached) planned turns of catalog recording ``index``, in the word shape of
        model ``family`` (``plan_turns``)."""
        key = (index, family.name if family is not None else None)
        if key not in self._plans:
            self._plans[key] = plan_turns(self.recordings[index], self.config, family)
        return self._plans[key]

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
        self._current: dict[int, int | None] = {}  # turn_order -> label identity shown now
        self._homes: dict[str, int] = {}  # reference speaker -> its own label identity
        self.revisions: list[RevisionRecord] = []
        self._interval = params.revision_interval_ms
        self._k = 1  # the next mid-session revision is due at k * interval ms

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
        self.turns = list(self.factory.plan(index, self.family))
        u = self._u = draws(self.config.seed, self.recording.uri, len(self.turns))
        self.decisions = assign_labels(self.turns, self.params, self.config, u)
        self._turn_decision = list(self.decisions)  # parallel to self.turns (splits share)
        for decision in self.decisions:
            if decision.home_identity is not None:
                self._homes.setdefault(decision.reference_speaker, decision.home_identity)

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
            is_final = final or (self.family.partial_words_final and i < len(words) - 1)
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
        decision = self._turn_decision[index]
        self._current[self._turn_order] = None if decision.unknown else decision.identity
        self._turn_order += 1
        return messages

    def _advance(self) -> list[dict]:
        """Emit every event due by the audio received so far, in due order, with the
        mid-session revisions at their multiples of the interval."""
        out: list[dict] = []
        while self._interval and self._k * self._interval * SAMPLES_PER_MS <= self.samples:
            out += self._advance_to(self._k * self._interval * SAMPLES_PER_MS)
            out += self._interval_revision()
            self._k += 1
        return out + self._advance_to(self.samples)

    def _revise(self, entries: list[tuple[int, int]], kind: str, at_ms: int) -> list[dict]:
        """A SpeakerRevision relabelling turns (turn_order, new identity), recorded."""
        words = {order: w for order, _, w in self._emitted}
        revisions = []
        for order, identity in entries:
            label = self._label(identity, False)
            self._current[order] = identity
            self.revisions.append(RevisionRecord(kind, self._k, at_ms, order, label))
            revisions.append(say.revision_entry(order, label, [
                say.word_message(w.text, w.start, w.end, 0.95, True, label)
                for w in words[order]]))
        return [say.speaker_revision(revisions)] if revisions else []

    def _interval_revision(self) -> list[dict]:
        """The k-th mid-session revision: each wrongly labelled final turn sent so far is
        corrected with probability ``p_interval_revision`` (see :class:`OracleConfig`)."""
        u = interval_revision_draws(self.config.seed, self.recording.uri, self._k,
                                    len(self.decisions))
        entries = []
        for order, index, _ in self._emitted:
            decision = self._turn_decision[index]
            home = self._homes.get(decision.reference_speaker)
            current = self._current[order]
            if current is not None and home is not None and current != home and \
                    self._letters.get(home) is not None and \
                    u[decision.index] < self.config.p_interval_revision:
                entries.append((order, home))
        return self._revise(entries, "interval", self._k * self._interval)

    def _advance_to(self, limit: int) -> list[dict]:
        """Emit every event due by sample ``limit``, in due order."""
        out: list[dict] = []
        while self._cursor < len(self.turns):
            turn = self.turns[self._cursor]
            if self.family.speech_started and self._speech_started < self._cursor:
                first = turn.words[0]
                at = min(first.start + SPEECH_STARTED_AFTER_MS, first.end)
                due = max(at * SAMPLES_PER_MS, self._last_due)
                if due > limit:
                    break
                self._last_due = due
                self._speech_started = self._cursor
                out.append(say.speech_started(first.start, 0.9))
            elif self._shown < len(turn.words):
                due = max(turn.words[self._shown].end * SAMPLES_PER_MS, self._last_due)
                if due > limit:
                    break
                self._shown += 1
                self._last_due = due
                if not self.family.partial_per_pause or self._pause_after(turn, self._shown - 1):
                    out.append(self._turn(self._cursor, turn.words[:self._shown], final=False))
            else:
                delay = self._turn_decision[self._cursor].final_delay_ms
                due = max((turn.end + delay) * SAMPLES_PER_MS, self._last_due)
                if due > limit:
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
        entries = []
        for turn_order, index, _ in self._emitted:
            target = self._turn_decision[index].revision_identity
            if target is not None and target != self._current[turn_order]:
                entries.append((turn_order, target))
        return out + self._revise(entries, "final", self.samples // SAMPLES_PER_MS)
