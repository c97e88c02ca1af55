"""Turn building: when a turn starts, grows and ends, and which words it holds.

silero-vad's speech probability (one per 32 ms frame) drives the turns. A turn starts at
speech and ends after ``max_turn_silence`` of silence, or after ``min_turn_silence`` when
the transcript ends a sentence (the "confident" end of turn), or on ForceEndpoint /
Terminate, or where the speaker changes without a pause (:meth:`TurnBuilder.split`; the
engine finds the change on the speaker grid): the words before the change end the turn,
the rest go on as the next one. Whisper decodes the turn as it grows (partials, at most every
``partial_interval`` s and at most every ``partial_growth`` (a half) of the turn's length,
so the cost stays linear), then once more when it ends. :class:`TurnBuilder` says what happened as
:class:`TurnStart`, :class:`TurnPartial` and :class:`TurnEnd` events; labelling and
wording are the engine's next blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from diareval.constants import SAMPLE_RATE
from diareval.server.engines.baseline.config import VAD_FRAME, BaselineConfig
from diareval.server.engines.baseline.words import SENTENCE_END, Word, plain


SPLIT_CONFIDENCE = 0.8  # end_of_turn_confidence of a turn ended by a change of speaker
SPLIT_CONTEXT = 1.0  # s of audio before the change the next turn's decodes start with


@dataclass(frozen=True, slots=True)
class TurnStart:
    """Speech began: turn ``order`` opens; ``sample`` is the start of its first speech frame."""

    order: int
    sample: int
    probability: float


@dataclass(frozen=True, slots=True)
class TurnPartial:
    """The turn so far: its words and, per word, whether it is final already."""

    order: int
    words: tuple[Word, ...]
    finals: tuple[bool, ...]


@dataclass(frozen=True, slots=True)
class TurnEnd:
    """Turn ``order`` ended with ``words`` (unsnapped; possibly none, when partials were
    already sent) and an end-of-turn confidence. ``bounds`` (s): where a change of speaker
    ended the turn or began it (:meth:`TurnBuilder.split`), its words stay within them when
    stretched over the speech around them (0 and None: no bound)."""

    order: int
    words: tuple[Word, ...]
    confidence: float
    bounds: tuple[float, float | None] = (0.0, None)


class _Turn:
    """The turn being spoken (mutable: it grows frame by frame)."""

    __slots__ = ("order", "start", "words_from", "last_speech", "decoded_at", "pause_checked",
                 "partial_words", "pause_words", "pause_speech", "partials_sent")

    def __init__(self, order: int, start: int, words_from: int | None = None):
        self.order = order
        self.start = start  # sample: decoding starts here
        # sample: words centred before it belong to the previous turn (after a split)
        self.words_from = start if words_from is None else words_from
        self.last_speech = start  # sample: end of the last speech frame
        self.decoded_at = start  # sample: audio end of the last partial decode
        self.pause_checked = False  # the current pause was already tested for a sentence end
        self.partial_words: tuple[Word, ...] = ()
        self.pause_words: list[Word] | None = None  # words decoded at the last pause
        self.pause_speech = -1  # last_speech when they were decoded
        self.partials_sent = 0


class TurnBuilder:
    """Decides the turns of one session from VAD frames; ``decode(start, end)`` gives the
    words of samples [start, end) (absolute times)."""

    def __init__(self, config: BaselineConfig, min_silence: float, max_silence: float,
                 decode: Callable[[int, int], list[Word]]):
        self.config = config
        self.min_silence, self.max_silence = min_silence, max_silence  # s
        self.decode = decode
        self.turn: _Turn | None = None
        self.next_order = 0
        self.split_partial: TurnPartial | None = None  # see take_split_partial

    @property
    def start(self) -> int | None:
        """First sample of the turn in progress (None between turns)."""
        return self.turn.start if self.turn is not None else None

    def on_frame(self, prob: float, frame_end: int, buffer_start: int, received: int):
        """One VAD frame ending at sample ``frame_end``: the event it causes, or None."""
        cfg = self.config
        speech = prob >= cfg.vad_threshold
        turn = self.turn
        pad = int(cfg.turn_pad * SAMPLE_RATE)
        if turn is None:
            if not speech:
                return None
            start = max(0, frame_end - VAD_FRAME - pad)
            self.turn = turn = _Turn(self.next_order, max(start, buffer_start))
            turn.last_speech = frame_end
            turn.decoded_at = frame_end
            return TurnStart(turn.order, frame_end - VAD_FRAME, prob)
        if speech:
            turn.last_speech = frame_end
            turn.pause_checked = False
        silence = (frame_end - turn.last_speech) / SAMPLE_RATE
        length = (frame_end - turn.start) / SAMPLE_RATE
        if silence >= self.max_silence:
            reuse = turn.pause_words if turn.pause_speech == turn.last_speech else None
            # nothing was said since the pause was decoded: its words are the final words
            return self.end(turn.last_speech + pad, 1.0, received, words=reuse,
                            decoded_to=frame_end if reuse is not None else None)
        if silence >= self.min_silence and not turn.pause_checked:
            turn.pause_checked = True
            words = self._decode(turn, frame_end)
            turn.pause_words, turn.pause_speech = words, turn.last_speech
            if (words and SENTENCE_END.search(words[-1].text)
                    and words[-1].end - words[0].start >= cfg.min_confident_turn):
                return self.end(turn.last_speech + pad, 0.9, received, words=words,
                                decoded_to=frame_end)
            if length >= cfg.max_turn_seconds:
                return self.end(frame_end, 0.5, received, words=words, decoded_to=frame_end)
            return self._partial(words, frame_end)
        if length >= cfg.max_turn_seconds + 3.0:  # no pause for a long time: cut here
            return self.end(frame_end, 0.3, received)
        grown = (frame_end - turn.decoded_at) / SAMPLE_RATE
        if cfg.partials and speech and grown >= max(cfg.partial_interval, cfg.partial_growth * length):
            return self._partial(self._decode(turn, frame_end), frame_end)
        return None

    def _partial(self, words: list[Word], decoded_to: int) -> TurnPartial | None:
        turn = self.turn
        turn.decoded_at = decoded_to
        if not words:
            return None
        # A word is final inside a partial when the previous decode agreed on it
        # and it ended over a second before the audio decoded so far.
        horizon = decoded_to / SAMPLE_RATE - 1.0
        previous = [w.text for w in turn.partial_words]
        finals = []
        for i, w in enumerate(words):
            stable = i < len(previous) and previous[i] == w.text and w.end <= horizon
            finals.append(bool(stable and not (finals and not finals[-1])))
        turn.partial_words = tuple(words)
        turn.partials_sent += 1
        return TurnPartial(turn.order, tuple(words), tuple(finals))

    @property
    def words_from(self) -> int | None:
        """Sample from which the turn in progress owns its words (None between turns)."""
        return self.turn.words_from if self.turn is not None else None

    def _decode(self, turn: _Turn, end: int) -> list[Word]:
        """The turn's words to sample ``end``: decoded from its start, without the words
        centred before ``words_from`` (the previous turn's, after a split)."""
        return [w for w in self.decode(turn.start, end)
                if (w.start + w.end) / 2 * SAMPLE_RATE >= turn.words_from]

    def split(self, at: int, decoded_to: int, received: int) -> TurnEnd | None:
        """The speaker changed at sample ``at`` without a pause: the turn in progress ends
        with its words (decoded to ``decoded_to``) whose centre lies before ``at``, and goes
        on as a new turn owning the words centred from ``at`` on (decoded from
        ``SPLIT_CONTEXT`` s earlier). With partials on, the new turn's first partial holds
        this decode's words after ``at`` (:meth:`take_split_partial`), not a decode of its
        own. None (nothing changes) when no word lies before ``at`` or none after it."""
        turn = self.turn
        if turn is None or at <= turn.words_from:
            return None
        words = self._decode(turn, decoded_to)
        before = [w for w in words if (w.start + w.end) / 2 * SAMPLE_RATE < at]
        after = words[len(before):]
        if not before or not after:
            return None
        last_speech = turn.last_speech
        ended = self.end(at, SPLIT_CONFIDENCE, received, words=before, decoded_to=decoded_to,
                         split=True)
        # the next turn decodes from a little before the change (Whisper needs the context
        # to place the first word) and owns the words centred from the change on
        self.turn = _Turn(self.next_order, max(turn.start, at - int(SPLIT_CONTEXT * SAMPLE_RATE)), at)
        self.turn.last_speech = max(last_speech, at)
        if self.config.partials:
            # its first partial: the words after the change of this decode (a decode of its
            # own here, to the same audio end, cost as much again in the same audio chunk)
            self.split_partial = self._partial(after, decoded_to)
        return ended

    def take_split_partial(self) -> TurnPartial | None:
        """The first partial of the turn a :meth:`split` began (once), or None."""
        partial, self.split_partial = self.split_partial, None
        return partial

    def end(self, end: int, confidence: float, received: int, words: list[Word] | None = None,
            decoded_to: int | None = None, split: bool = False) -> TurnEnd | None:
        """End the turn in progress at sample ``end`` (at most ``received``); ``words`` when
        already decoded to ``decoded_to``. None when there is no turn, or it holds no word
        and no partial announced it."""
        turn = self.turn
        if turn is None:
            return None
        self.turn = None
        end = min(end, received)
        if words is None or decoded_to is None:
            words = self._decode(turn, end)
        words = [w for w in words if w.start < end / SAMPLE_RATE and plain(w.text).strip("'")]
        if not words and not turn.partials_sent:
            return None  # nothing recognised and nothing announced: no turn
        self.next_order = turn.order + 1
        bounds = (turn.words_from / SAMPLE_RATE if turn.words_from > turn.start else 0.0,
                  end / SAMPLE_RATE if split else None)
        return TurnEnd(turn.order, tuple(words), float(confidence), bounds)
