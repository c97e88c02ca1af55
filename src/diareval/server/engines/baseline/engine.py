"""The baseline engine: a real streaming diarizer behind the local v3 server.

:class:`BaselineEngine` only chains the blocks beside it, as diart chains its own:

1. audio (``buffer``) -> silero-vad (``vad``), one speech probability per 32 ms frame;
2. the frames drive the turns (``turns.TurnBuilder``): when a turn starts, grows and ends,
   and its words from Whisper tiny.en (``asr``, ``words.Word``);
3. every ``step`` s, the diarization window (``diarizer.Diarizer``: segmentation-3.0 ->
   CAM++ embeddings -> incremental clustering -> the session's 20 ms speaker grid); after
   it, a turn in progress also ends where the grid shows the speaker changing without a
   pause (``labelling.Labeller.change``, ``TurnBuilder.split``); the speech frames' band
   (``bandwidth.BandwidthMeter``) says whether the audio is narrow-band (a phone line),
   where the clustering's new-speaker decisions are calibrated differently;
4. final words are stretched over the speech next to them (``words.snap``) and labelled
   (``labelling.Labeller``: word and turn speakers, changes of speaker, overlapped speech;
   live re-clustering in ``recluster``; then from sliding 1 s CAM++ windows of the turn,
   ``sliding``, where the segmentation heard one voice for two);
5. at the end of the stream, the revision (``revision``): the whole session re-clustered,
   every sent turn labelled again; with ``speaker_labels_revision_interval_ms``, the same
   every interval of audio during the session too (``midsession``, on a grid of its own);
6. the engine says what happened through the shared vocabulary (``diareval.server.messages``):
   Turn, SpeakerRevision, SpeechStarted; labels "A", "B", ... in order of first appearance,
   "UNKNOWN" for a turn with under ``unknown_below`` s of speech; per model family
   (``messages.MODEL_FAMILIES``): word times on the family's grid (Universal-Streaming:
   80 ms, so words under 40 ms are zero-length), and for U3 Pro one partial per pause with
   non-final words and one formatted final (no partials as the turn grows).

Time is audio time only (base.py): the same audio gives the same messages whatever the pace.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from diareval.constants import SAMPLE_RATE, UNKNOWN
from diareval.errors import ConfigError
from diareval.server import messages as say
from diareval.server.engines.base import Engine, SessionParams
from diareval.server.engines.baseline import midsession, revision
from diareval.server.engines.baseline.bandwidth import BandwidthMeter
from diareval.server.engines.baseline.buffer import AudioBuffer
from diareval.server.engines.baseline.config import (MAX_GLOBAL, MAX_LIVE_POINTS,  # noqa: F401
                                                     MAX_OFFLINE_POINTS, VAD_FRAME, BaselineConfig)
from diareval.server.engines.baseline.diarizer import Diarizer
from diareval.server.engines.baseline.labelling import Labeller, LabelledTurn
from diareval.server.engines.baseline.turns import TurnBuilder, TurnEnd, TurnPartial, TurnStart
from diareval.server.engines.baseline.words import Word, plain, snap, speech_mask


class Models:
    """The compute blocks one session uses (the heavy models inside are process-wide)."""

    def __init__(self, diarize: bool = True):
        from diareval.server.engines.baseline.asr import Transcriber
        from diareval.server.engines.baseline.vad import StreamingVAD

        self.vad_factory = StreamingVAD
        self.transcriber = Transcriber()
        self.segmentation = self.embedding = None
        if diarize:
            from diareval.server.engines.baseline.embedding import SpeakerEmbedding
            from diareval.server.engines.baseline.segmentation import Segmentation

            self.segmentation = Segmentation()
            self.embedding = SpeakerEmbedding()


class BaselineEngine(Engine):
    """One session of the baseline streaming diarizer (see the module docstring)."""

    blocking = True

    def __init__(self, params: SessionParams, config: BaselineConfig | None = None,
                 models: Models | None = None):
        super().__init__(params)
        if params.sample_rate != SAMPLE_RATE:
            raise ConfigError(f"the baseline engine needs 16 kHz audio, got {params.sample_rate} Hz")
        self.config = config or BaselineConfig()
        self.diarize = bool(params.speaker_labels)
        self.models = models or Models(diarize=self.diarize)
        from diareval.server.engines.baseline._deps import limit_torch_threads
        limit_torch_threads()
        self.vad = self.models.vad_factory()
        self.audio = AudioBuffer()  # audio kept for decoding and embeddings
        self.vad_probs: list[float] = []
        self.family = params.family
        # U3 Pro: at most one partial per silence, so no partials as the turn grows
        turn_config = replace(self.config, partials=False) if self.family.partial_per_pause \
            else self.config
        self.turns = TurnBuilder(turn_config, params.effective_min_turn_silence / 1000.0,
                                 params.effective_max_turn_silence / 1000.0, self._decode)
        self.diarizer = self.labeller = None
        if self.diarize:
            cap = params.max_speakers or MAX_GLOBAL
            self.diarizer = Diarizer(self.config, self.models, cap)
            self.labeller = Labeller(self.config, self.diarizer, self.audio)
            self.bandwidth = BandwidthMeter(self.config.narrow_db)
        self.next_step = int(self.config.step * SAMPLE_RATE)
        self.letters = say.SpeakerLetters()
        # turn_order -> the final Turn as the client has it (as sent, revisions applied)
        self.final_turns: dict[int, dict] = {}
        self.revision_interval = params.revision_interval_ms * SAMPLE_RATE // 1000
        self.next_revision = self.revision_interval  # sample (0: no mid-session revisions)
        self.turn_spans: dict[int, list[Word]] = {}  # turn_order -> its words before growing
        self.finished = False

    @property
    def received(self) -> int:
        """Samples received so far."""
        return self.audio.received

    @property
    def windows(self) -> list:
        """The diarization windows kept for the revision (none without speaker_labels)."""
        return self.diarizer.windows if self.diarizer is not None else []

    # ------------------------------------------------------------------ input

    def feed(self, pcm: np.ndarray) -> list[dict]:
        """Take the next chunk: VAD frames drive the turns; diarization windows run as due."""
        audio = np.asarray(pcm, dtype=np.int16).astype(np.float32) / 32768.0
        self.audio.append(audio)
        if self.diarizer is not None:
            self.diarizer.fbank.accept(audio)
        messages: list[dict] = []
        for p in self.vad(audio):
            self.vad_probs.append(float(p))
            frame_end = len(self.vad_probs) * VAD_FRAME
            if self.diarize and p >= self.config.vad_threshold:
                self.bandwidth.accept(self.audio.audio(frame_end - VAD_FRAME, frame_end))
                if self.bandwidth.narrow and not self.diarizer.narrow:
                    self.diarizer.narrow = True
                    if self.config.narrow_delta_new > 0:
                        self.diarizer.clustering.config.delta_new = self.config.narrow_delta_new
            stepped = False
            while self.diarize and self.next_step <= frame_end:
                self.diarizer.step(self.next_step, self.audio, self.vad_probs)
                self.next_step += int(self.config.step * SAMPLE_RATE)
                stepped = True
            if stepped and self.turns.start is not None:
                messages += self._say(self._speaker_change(frame_end))
                messages += self._say(self.turns.take_split_partial())
            event = self.turns.on_frame(float(p), frame_end, self.audio.start, self.received)
            if event is not None:
                messages += self._say(event)
        messages += self._interval_revisions()
        self._trim_buffer()
        return messages

    def _interval_revisions(self) -> list[dict]:
        """The mid-session SpeakerRevision due (``midsession``): one when the audio received
        passes the next multiple of the interval and some sent turn changed."""
        if not (self.diarize and self.config.revise and self.next_revision) or \
                self.received < self.next_revision:
            return []
        while self.next_revision <= self.received:
            self.next_revision += self.revision_interval
        entries = midsession.interval_revision(self.diarizer, self.config, self.final_turns,
                                               self.turn_spans, self.letters,
                                               self.received / SAMPLE_RATE, self._ms)
        return [say.speaker_revision(entries)] if entries else []

    def force_endpoint(self) -> list[dict]:
        """ForceEndpoint: the turn in progress ends now."""
        return self._say(self.turns.end(self.received, 1.0, self.received))

    def update_configuration(self, changes: dict) -> list[dict]:
        """UpdateConfiguration (``messages.apply_update``): the turn silences and
        ``format_turns`` apply from now on."""
        self.params = say.apply_update(self.params, changes)
        self.turns.min_silence = self.params.effective_min_turn_silence / 1000.0
        self.turns.max_silence = self.params.effective_max_turn_silence / 1000.0
        return []

    def finish(self) -> list[dict]:
        """Terminate: a last window over the tail, the turn in progress, then the revision."""
        if self.finished:
            return []
        self.finished = True
        messages: list[dict] = []
        if self.diarize and self.received > 0:
            # one last window over the tail, so the last words have speakers
            self.diarizer.step(self.received, self.audio, self.vad_probs)
        messages += self._say(self.turns.end(self.received, 1.0, self.received))
        if self.diarize and self.config.revise and self.final_turns:
            remapped = revision.remap_session(self.diarizer, self.config)
            if remapped is not None:
                entries = revision.revised_turns(self.diarizer, self.config, self.final_turns,
                                                 self.turn_spans, self.letters,
                                                 self.received / SAMPLE_RATE, ms=self._ms,
                                                 clusters=remapped.clusters)
                if entries:
                    messages.append(say.speaker_revision(entries))
        return messages

    # ------------------------------------------------------------------ blocks

    def _speaker_change(self, frame_end: int) -> TurnEnd | None:
        """The turn in progress ends where the speaker changed without a pause, if the
        grid shows such a change (``labelling.Labeller.change``)."""
        change = self.labeller.change(self.turns.words_from / SAMPLE_RATE, frame_end / SAMPLE_RATE)
        if change is None:
            return None
        return self.turns.split(int(change * SAMPLE_RATE), frame_end, self.received)

    def _decode(self, start: int, end: int) -> list[Word]:
        """Words of audio [start, end) (samples), absolute times."""
        offset = start / SAMPLE_RATE
        return [Word(w.text, w.start + offset, w.end + offset, w.probability)
                for w in self.models.transcriber(self.audio.audio(start, end))]

    def _speech(self, start: float, end: float) -> np.ndarray:
        """Speech per grid cell of [start, end) (VAD, and segmentation when diarizing)."""
        return speech_mask(start, end, self.vad_probs, self.config.vad_threshold, self.diarizer)

    def _trim_buffer(self) -> None:
        keep_from = self.received - int(max(40.0, self.config.window + 1) * SAMPLE_RATE)
        if self.turns.start is not None:
            keep_from = min(keep_from, self.turns.start)
        if self.audio.forget_before(keep_from, 10 * SAMPLE_RATE) and self.diarizer is not None:
            self.diarizer.fbank.forget_before(keep_from)

    # ------------------------------------------------------------------ saying it

    def _say(self, event) -> list[dict]:
        """The messages of a turn event (none for None)."""
        if isinstance(event, TurnStart):
            if not self.params.family.speech_started:
                return []
            return [say.speech_started(event.sample * 1000 // SAMPLE_RATE, event.probability)]
        if isinstance(event, TurnPartial):
            return self._say_partial(event)
        if isinstance(event, TurnEnd):
            return self._say_final(event)
        return []

    def _name(self, speaker):
        """A word's speaker as sent: a global speaker's letter, UNKNOWN as is, or no key."""
        if speaker is None:
            return say.NO_SPEAKER
        return self.letters(int(speaker)) if isinstance(speaker, (int, np.integer)) else speaker

    def _ms(self, seconds: float) -> int:
        """A time as sent: integer ms on the model family's word grid."""
        return self.family.on_grid(say.to_ms(seconds))

    def _words(self, words: Sequence[Word], finals: Sequence[bool], speakers, formatted: bool):
        """Word messages; speakers named in word order (letters by first appearance), and
        only on final words (the vocabulary drops them on the others)."""
        return [say.word_message(w.text if formatted else plain(w.text), self._ms(w.start),
                                 self._ms(max(w.end, w.start)), w.probability, final,
                                 self._name(speakers[i]) if speakers else say.NO_SPEAKER)
                for i, (w, final) in enumerate(zip(words, finals))]

    def _say_partial(self, event: TurnPartial) -> list[dict]:
        speakers = label = None
        if self.diarize:
            speakers, label = self.labeller.partial(event.words)
        finals = event.finals if self.family.partial_words_final else [False] * len(event.words)
        msg_words = self._words(event.words, finals, speakers, formatted=False)
        letter = self.letters(int(label)) if label is not None else None
        return [say.turn_message(self.params, turn_order=event.order, words=msg_words,
                                 end_of_turn=False, speaker_label=letter)]

    def _say_final(self, event: TurnEnd) -> list[dict]:
        words = list(event.words)
        if self.config.snap_words:
            words = snap(words, self._speech, self.config.max_snap, self.received / SAMPLE_RATE,
                         event.bounds)
        if self.diarize:
            turn = self.labeller.final(words)
        else:
            turn = LabelledTurn(words, list(words), None, None, False)
        self.turn_spans[event.order] = turn.spans
        speakers = None
        if self.diarize:
            speakers = [UNKNOWN] * len(turn.words) if turn.unknown else turn.speakers
        finals = [True] * len(turn.words)
        messages = []
        if self.family.one_formatted_final:  # U3 Pro: one final, formatted
            formats = [True]
        else:
            formats = [False, True] if self.params.format_turns else [False]
        for formatted in formats:
            msg_words = self._words(turn.words, finals, speakers, formatted)
            letter = None
            if self.diarize:
                letter = UNKNOWN if turn.unknown else self.letters(int(turn.label))
            messages.append(say.turn_message(
                self.params, turn_order=event.order, words=msg_words, end_of_turn=True,
                formatted=formatted, end_of_turn_confidence=event.confidence,
                speaker_label=letter))
        self.final_turns[event.order] = messages[-1]
        return messages
