"""The baseline engine: a real streaming diarizer behind the local v3 server.

Orchestration only; the compute blocks live beside it:

- ``vad``: silero-vad, one speech probability per 32 ms; drives the turns. A turn
  starts at speech and ends after ``max_turn_silence`` of silence, or after
  ``min_turn_silence`` when the transcript ends a sentence (the "confident" end of
  turn), or on ForceEndpoint / Terminate.
- ``asr``: Whisper tiny.en decodes the turn as it grows (partial Turns, decoded at
  most every ``partial_interval`` s and at most every half of the turn's length so
  the cost stays linear), then once more when it ends (the final Turn).
- ``segmentation``: every ``step`` s, pyannote segmentation-3.0 on the last
  ``window`` s gives up to 3 local speakers with overlap-aware activity.
- ``embedding``: a CAM++ embedding per active local speaker (its most recent
  ``embedding_seconds`` of single-speaker frames in the window).
- ``clustering``: diart-style incremental clustering maps local to global speakers;
  the mapped activities of overlapping windows are averaged (Hamming weights)
  on a 20 ms grid (``grid``), which also keeps, per speaker, the activity over the
  audio its embeddings came from (where each window's mapping is known to hold).

Each final word gets the global speaker most active over its span in the grid (with
``live_recluster``, a grid of the recent windows mapped by re-clustering every embedding
of the session so far, as the revision below does; partial Turns use the online
mapping); where consecutive words change speaker, the change moves to where the grid's
activity of the two speakers crosses, within ``refine_changes`` s (Whisper's word times
are less exact than segmentation-3.0's frames); the Turn gets the speaker with most word
time; labels "A", "B", ... are given in order of first appearance; a turn with under
``unknown_below`` s of speech is "UNKNOWN". Word extents are stretched over the speech
(VAD or segmentation) next to them, since Whisper's alignment makes words too short;
then the outer words of each run of one speaker's words stretch further, past other
speakers' words, over the cells where the grid has that speaker and another one active
at once (``overlap_grow``): Whisper gives one word stream, and this is how the words
come to hold overlapped speech. At the end
of the stream every local speaker embedding of the session is re-clustered at once
(``revise_offline``; else the windows are re-mapped with the final centroids), each word
takes, among the speakers active over its span, the one the windows' embeddings place
there (``grid.SpeakerGrid.speaker_at``), and a SpeakerRevision lists the turns whose
labels changed (or whose word extents do: ``overlap_grow`` and ``refine_changes`` on the
revised grid, which has seen the audio after the turn).

Time is audio time only (base.py): the same audio gives the same messages
whatever the pace.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields

import numpy as np
from scipy.optimize import linear_sum_assignment

from diareval.constants import SAMPLE_RATE, UNKNOWN
from diareval.errors import ConfigError
from diareval.server import messages as say
from diareval.server.engines.base import Engine, SessionParams
from diareval.server.engines.baseline.grid import GRID, SpeakerGrid

MAX_GLOBAL = 10  # the service's max_speakers range is 1..10
VAD_FRAME = 512


@dataclass
class BaselineConfig:
    """Every tunable of the baseline (``python -m diareval tune`` searches these)."""

    # turns
    vad_threshold: float = 0.5
    turn_pad: float = 0.2  # s of audio kept before the first / after the last speech frame
    partial_interval: float = 1.0  # s of new audio between partial decodes (at least)
    partials: bool = True
    max_turn_seconds: float = 25.0
    # A pause of min_turn_silence ends a turn early when the transcript ends a sentence
    # ("confident" end of turn), but only a turn with this much speech (s): a lone
    # "Right." waits for max_turn_silence, so it can join what its speaker says next.
    min_confident_turn: float = 1.0
    # diarization
    window: float = 5.0
    step: float = 0.5
    fresh_margin: float = 1.5  # s before the newest step that must hold speech for a window to run
    tau_active: float = 0.5
    rho_update: float = 0.3
    delta_new: float = 0.55
    embedding_seconds: float = 2.0
    min_embedding_seconds: float = 0.3
    speaker_threshold: float = 0.5  # local activity above this counts as speaking
    min_word_run: float = 0.5  # s; shorter same-speaker word runs inside another speaker's become theirs
    continuity: float = 0.6  # activity overlap (IoU) linking a local speaker to the previous window's
    refresh_steps: int = 0  # a linked local speaker is re-embedded after this many windows
    recent_seconds: float = 0.0  # a linked local speaker silent this long in the window is not re-embedded (0: off)
    # A word's speaker at the end-of-stream revision: among the speakers whose mean
    # activity over the word is at least this share of the top one's, the one with most
    # activity where the windows' embeddings came from (grid.SpeakerGrid); negative:
    # the most active one only (as live words always are, unless evidence_online).
    evidence_floor: float = 0.25
    evidence_online: bool = False  # live words too (measured worse: DER without revision 0.352 -> 0.364)
    # labels
    snap_words: bool = True  # stretch word extents over the VAD speech around them
    max_snap: float = 0.6  # s, at most, per word side
    unknown_below: float = 1.0  # s of speech; shorter turns are "UNKNOWN" (0 disables)
    revise: bool = True  # SpeakerRevision at the end of the stream
    revise_offline: bool = True  # ... from re-clustering the whole session (else: final centroids)
    offline_threshold: float = 0.5  # cosine distance cutting the offline average-linkage tree
    # Final Turns take their speakers from the session so far re-clustered as the revision
    # does (at most MAX_LIVE_POINTS embeddings); off: from the online clustering's mapping.
    live_recluster: bool = True
    # Word extents stretch over speech: VAD, or the segmentation's speech from windows of
    # speech_window s run every speech_step s (segmentation-3.0 was trained on 10 s windows
    # and finds speech better with them than with the diarization windows; 0: those).
    speech_window: float = 10.0
    speech_step: float = 2.0
    # Overlapping speech: the first and last word of each run of one speaker's words
    # stretch, past the words of other speakers, over the cells where the grid says that
    # speaker is active, at most this many s per side (0: off). Words of two speakers then
    # overlap in time where their speech does; Whisper gives one word stream, so without
    # this a hypothesis never holds two speakers at once.
    overlap_grow: float = 2.0
    grow_overlap_only: bool = True  # ... only where another speaker is active too
    grow_threshold: float = 0.5  # mean activity (of both) that counts as speaking there
    refine_changes: float = 0.3  # s around a change of speaker where the grid places it

    @classmethod
    def from_options(cls, options: dict) -> "BaselineConfig":
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigError(f"unknown baseline option(s) {', '.join(unknown)}; "
                              f"valid: {', '.join(sorted(known))}")
        values = {}
        for name, value in options.items():
            default = getattr(cls, name)
            try:
                if isinstance(default, bool):
                    values[name] = value if isinstance(value, bool) else \
                        str(value).lower() in ("1", "true", "yes", "on")
                else:
                    values[name] = type(default)(value)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"baseline option {name}={value!r}: {exc}") from exc
        config = cls(**values)
        if config.window < 1.0 or config.step <= 0 or config.step > config.window:
            raise ConfigError("baseline options: need window >= 1 s and 0 < step <= window")
        if config.speech_window and (config.speech_window < 1.0 or config.speech_step <= 0):
            raise ConfigError("baseline options: need speech_window 0 or >= 1 s, and speech_step > 0")
        return config

    def as_dict(self) -> dict:
        return asdict(self)


_SENTENCE_END = re.compile(r"[.?!]['\")\]]*$")
_PUNCT = re.compile(r"[^\w'\s-]")


def _plain(text: str) -> str:
    """The unformatted form of a word: lower case, no punctuation (apostrophes kept)."""
    return _PUNCT.sub("", text).lower().strip("-") or text.lower()


def _activity_summary(activity: np.ndarray) -> np.ndarray:
    """Two rows with the same per-speaker peak and mean as ``activity`` (all that
    clustering looks at), so long sessions do not keep every window's frames."""
    peak, mean = activity.max(axis=0), activity.mean(axis=0)
    return np.stack([peak, 2 * mean - peak]).astype(np.float32)


def _speaker_runs(speakers: list) -> list[tuple[int, int, object]]:
    """Maximal runs of equal consecutive speakers: (first index, last index, speaker)."""
    runs: list[list] = []
    for i, s in enumerate(speakers):
        if runs and runs[-1][2] == s:
            runs[-1][1] = i
        else:
            runs.append([i, i, s])
    return [tuple(run) for run in runs]


def _window_cells(start: int, end: int) -> tuple[int, np.ndarray, np.ndarray]:
    """The grid cells a window of samples [start, end) covers (from the first whole cell
    at or after max(0, start)): first cell, cell centre times (s), and Hamming weights over
    the window's span (+ 0.01, so its edges still count), as diart aggregates windows."""
    c0 = max(0, int(np.ceil(max(0, start) / SAMPLE_RATE / GRID)))
    cell_times = (np.arange(c0, int(end / SAMPLE_RATE / GRID)) + 0.5) * GRID
    position = (cell_times - start / SAMPLE_RATE) / ((end - start) / SAMPLE_RATE)
    return c0, cell_times, (0.54 - 0.46 * np.cos(2 * np.pi * position)).astype(np.float32) + 0.01


MAX_OFFLINE_POINTS = 2000  # the offline tree is built on at most this many embeddings
MAX_LIVE_POINTS = 1000  # ... and the one re-built at every final turn (live_recluster)


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


class _Turn:
    """The turn being spoken."""

    def __init__(self, order: int, start: int):
        self.order = order
        self.start = start  # sample
        self.last_speech = start  # sample: end of the last speech frame
        self.decoded_at = start  # sample: audio end of the last partial decode
        self.pause_checked = False  # the current pause was already tested for a sentence end
        self.partial_words: list = []
        self.pause_words: list | None = None  # words decoded at the last pause
        self.pause_speech = -1  # last_speech when they were decoded
        self.partials_sent = 0


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
        self.min_silence = params.effective_min_turn_silence / 1000.0
        self.max_silence = params.effective_max_turn_silence / 1000.0
        cap = params.max_speakers if (self.diarize and params.max_speakers) else MAX_GLOBAL
        from diareval.server.engines.baseline.clustering import ClusteringConfig, OnlineSpeakerClustering
        self.clustering = OnlineSpeakerClustering(ClusteringConfig(
            tau_active=self.config.tau_active, rho_update=self.config.rho_update,
            delta_new=self.config.delta_new, max_speakers=int(cap)))
        self.vad = self.models.vad_factory()
        # audio kept for decoding and embeddings: buffer[0] is sample `buffer_start`
        self.buffer = np.zeros(0, dtype=np.float32)
        self.buffer_start = 0
        # fbank frames of everything received (embeddings of the rolling windows reuse them)
        self.fbank = self.models.embedding.fbank.stream() if self.diarize else None
        self.received = 0  # samples
        self.vad_frames = 0
        self.vad_probs: list[float] = []
        self.turn: _Turn | None = None
        self.next_order = 0
        self.next_step = int(self.config.step * SAMPLE_RATE)
        # speaker-activity grid (cells of GRID s); the embedding-evidence vote is for the
        # revision (and live words only with evidence_online)
        self.evidence_floor = self.config.evidence_floor if self.config.evidence_floor >= 0 else None
        self.grid = SpeakerGrid(MAX_GLOBAL, self.evidence_floor if self.config.evidence_online else None)
        self.previous: dict | None = None  # the last window: activity, times, mapping, ages
        self.speech_grid = SpeakerGrid(1, None)  # speech of the speech_window segmentations
        self.speech_at = None  # sample: end of the last one
        # per window, for the end-of-stream revision: (first cell, local activity on the grid,
        # weights, embeddings, valid, activity summary, continuity links, online mapping,
        # cells of each local speaker's embedding audio)
        self.windows: list[tuple] = []
        self.letters = say.SpeakerLetters()
        self.final_turns: dict[int, dict] = {}  # turn_order -> the final Turn message sent
        self.turn_words: dict[int, list] = {}  # turn_order -> [(start s, end s)] of its words
        self.finished = False

    # ------------------------------------------------------------------ input

    def feed(self, pcm: np.ndarray) -> list[dict]:
        audio = np.asarray(pcm, dtype=np.int16).astype(np.float32) / 32768.0
        self.buffer = np.concatenate([self.buffer, audio])
        self.received += len(audio)
        if self.fbank is not None:
            self.fbank.accept(audio)
        messages: list[dict] = []
        probs = self.vad(audio)
        for p in probs:
            self.vad_probs.append(float(p))
            self.vad_frames += 1
            frame_end = self.vad_frames * VAD_FRAME
            while self.diarize and self.next_step <= frame_end:
                self._diarize_step(self.next_step)
                self.next_step += int(self.config.step * SAMPLE_RATE)
            messages += self._turn_logic(float(p), frame_end)
        self._trim_buffer()
        return messages

    def force_endpoint(self) -> list[dict]:
        return self._finalise(self.received, confidence=1.0) if self.turn else []

    def update_configuration(self, changes: dict) -> list[dict]:
        """UpdateConfiguration (``messages.apply_update``): the turn silences and
        ``format_turns`` apply from now on."""
        self.params = say.apply_update(self.params, changes)
        self.min_silence = self.params.effective_min_turn_silence / 1000.0
        self.max_silence = self.params.effective_max_turn_silence / 1000.0
        return []

    def finish(self) -> list[dict]:
        if self.finished:
            return []
        self.finished = True
        messages: list[dict] = []
        if self.diarize and self.received > 0:
            # one last window over the tail, so the last words have speakers
            self._diarize_step(self.received)
        if self.turn:
            messages += self._finalise(self.received, confidence=1.0)
        if self.diarize and self.config.revise and self.final_turns:
            messages += self._revision()
        return messages

    # ------------------------------------------------------------------ turns

    def _turn_logic(self, prob: float, frame_end: int) -> list[dict]:
        cfg = self.config
        speech = prob >= cfg.vad_threshold
        turn = self.turn
        if turn is None:
            if not speech:
                return []
            start = max(0, frame_end - VAD_FRAME - int(cfg.turn_pad * SAMPLE_RATE))
            self.turn = turn = _Turn(self.next_order, max(start, self.buffer_start))
            turn.last_speech = frame_end
            turn.decoded_at = frame_end
            out = []
            if self.params.family.speech_started:
                out.append(say.speech_started((frame_end - VAD_FRAME) * 1000 // SAMPLE_RATE, prob))
            return out
        if speech:
            turn.last_speech = frame_end
            turn.pause_checked = False
        silence = (frame_end - turn.last_speech) / SAMPLE_RATE
        length = (frame_end - turn.start) / SAMPLE_RATE
        if silence >= self.max_silence:
            reuse = turn.pause_words if turn.pause_speech == turn.last_speech else None
            # nothing was said since the pause was decoded: its words are the final words
            return self._finalise(turn.last_speech + int(cfg.turn_pad * SAMPLE_RATE), confidence=1.0,
                                  words=reuse, decoded_to=frame_end if reuse is not None else None)
        if silence >= self.min_silence and not turn.pause_checked:
            turn.pause_checked = True
            words = self._decode(turn.start, frame_end)
            turn.pause_words, turn.pause_speech = words, turn.last_speech
            if (words and _SENTENCE_END.search(words[-1][0])
                    and words[-1][2] - words[0][1] >= cfg.min_confident_turn):
                return self._finalise(turn.last_speech + int(cfg.turn_pad * SAMPLE_RATE),
                                      confidence=0.9, words=words, decoded_to=frame_end)
            if length >= cfg.max_turn_seconds:
                return self._finalise(frame_end, confidence=0.5, words=words, decoded_to=frame_end)
            return self._partial(words, frame_end)
        if length >= cfg.max_turn_seconds + 3.0:  # no pause for a long time: cut here
            return self._finalise(frame_end, confidence=0.3)
        grown = (frame_end - turn.decoded_at) / SAMPLE_RATE
        if cfg.partials and speech and grown >= max(cfg.partial_interval, 0.5 * length):
            return self._partial(self._decode(turn.start, frame_end), frame_end)
        return []

    def _decode(self, start: int, end: int) -> list[tuple]:
        """Words of audio [start, end) as (text, start s, end s, probability), absolute times."""
        audio = self._audio(start, end)
        offset = start / SAMPLE_RATE
        return [(w.text, w.start + offset, w.end + offset, w.probability)
                for w in self.models.transcriber(audio)]

    def _partial(self, words: list[tuple], decoded_to: int) -> list[dict]:
        turn = self.turn
        turn.decoded_at = decoded_to
        if not words:
            return []
        # A word is final inside a partial when the previous decode agreed on it
        # and it ended over a second before the audio decoded so far.
        horizon = decoded_to / SAMPLE_RATE - 1.0
        previous = [w[0] for w in turn.partial_words]
        finals = []
        for i, w in enumerate(words):
            stable = i < len(previous) and previous[i] == w[0] and w[2] <= horizon
            if not stable or (finals and not finals[-1]):
                finals.append(False)
            else:
                finals.append(True)
        turn.partial_words = words
        turn.partials_sent += 1
        speakers = self._word_speakers(words) if self.diarize else None
        label = self._turn_speaker(words, speakers) if self.diarize else None
        msg_words = [self._word(w, final, speakers[i] if speakers else None, formatted=False)
                     for i, (w, final) in enumerate(zip(words, finals))]
        letter = self._letter_of(label, msg_words) if self.diarize else None
        return [say.turn_message(self.params, turn_order=turn.order, words=msg_words,
                                 end_of_turn=False, speaker_label=letter)]

    def _finalise(self, end: int, confidence: float, words: list[tuple] | None = None,
                  decoded_to: int | None = None) -> list[dict]:
        turn = self.turn
        self.turn = None
        end = min(end, self.received)
        if words is None or decoded_to is None:
            words = self._decode(turn.start, end)
        words = [w for w in words if w[1] < end / SAMPLE_RATE and _plain(w[0]).strip("'")]
        if self.config.snap_words:
            words = self._snap(words)
        if not words and not turn.partials_sent:
            return []  # nothing recognised and nothing announced: no turn
        self.next_order = turn.order + 1
        speakers = label = grid = None
        if self.diarize:
            grid = (self._reclustered_grid(words[0][1]) if self.config.live_recluster and words
                    else self.grid)
            speakers = self._word_speakers(words, grid)
            words, speakers = self._refine_changes(words, speakers, grid)
            label = self._turn_speaker(words, speakers)
        span = (words[-1][2] - words[0][1]) if words else 0.0
        if self.diarize and label is None and words and span >= self.config.unknown_below:
            label = self._turn_embedding_speaker(words)
            speakers = [label] * len(words)
        unknown = self.diarize and (label is None or span < self.config.unknown_below)
        self.turn_words[turn.order] = [(w[1], w[2]) for w in words]
        if self.diarize and not unknown:
            words = self._grow_runs(words, speakers, grid)
        messages = []
        variants = [False, True] if self.params.format_turns else [False]
        for formatted in variants:
            msg_words = [self._word(w, True, None if not self.diarize else
                                    (UNKNOWN if unknown else speakers[i]), formatted)
                         for i, w in enumerate(words)]
            letter = None
            if self.diarize:
                letter = UNKNOWN if unknown else self._letter_of(label, msg_words)
            messages.append(say.turn_message(
                self.params, turn_order=turn.order, words=msg_words, end_of_turn=True,
                formatted=formatted, end_of_turn_confidence=confidence, speaker_label=letter))
        self.final_turns[turn.order] = messages[-1]
        return messages

    def _speech_mask(self, start: float, end: float) -> np.ndarray:
        """Speech (bool) per GRID cell of [start, end): silero VAD or segmentation activity."""
        c0, c1 = max(0, int(round(start / GRID))), max(0, int(round(end / GRID)))
        if c1 <= c0:
            return np.zeros(0, dtype=bool)
        times = (np.arange(c0, c1) + 0.5) * GRID
        frames = (times * SAMPLE_RATE / VAD_FRAME).astype(int)
        probs = np.asarray(self.vad_probs, dtype=np.float32)
        vad = np.zeros(len(frames), dtype=bool)
        ok = frames < len(probs)
        vad[ok] = probs[frames[ok]] >= self.config.vad_threshold
        if not self.diarize:
            return vad
        speech = self.grid.speech_cells(c0, c1, self.config.speaker_threshold)
        if self.config.speech_window > 0:  # the long windows where they have run yet
            covered = self.speech_grid.covered(c0, c1)
            speech[covered] = self.speech_grid.speech_cells(c0, c1, self.config.speaker_threshold)[covered]
        return vad | speech

    def _snap(self, words: list[tuple]) -> list[tuple]:
        """Word extents from Whisper's alignment are often too short (even zero): stretch
        each word over the contiguous speech (VAD or segmentation) next to it, up to its
        neighbours and at most ``max_snap`` s per side."""
        limit = self.config.max_snap
        out = []
        for i, (text, start, end, prob) in enumerate(words):
            lo = max(out[-1][2] if out else 0.0, start - limit)
            hi = min(words[i + 1][1] if i + 1 < len(words) else self.received / SAMPLE_RATE,
                     end + limit)
            new_start, new_end = start, end
            if start > lo:
                before = self._speech_mask(lo, start)[::-1]
                run = len(before) if before.all() else int(np.argmin(before))
                new_start = max(lo, start - run * GRID)
            if hi > end:
                after = self._speech_mask(end, hi)
                run = len(after) if after.all() else int(np.argmin(after))
                new_end = min(hi, end + run * GRID)
            out.append((text, new_start, max(new_end, new_start), prob))
        return out

    def _word(self, w: tuple, final: bool, speaker, formatted: bool) -> dict:
        text, start, end, prob = w
        # speaker: a global index until _letter_of turns it into a letter
        return say.word_message(text if formatted else _plain(text), say.to_ms(start),
                                say.to_ms(max(end, start)), prob, final,
                                say.NO_SPEAKER if speaker is None else speaker)

    def _letter_of(self, label, msg_words: list[dict]) -> str | None:
        """Give letters in order of first appearance (words in time order, then the turn)."""
        for word in msg_words:
            g = word.get("speaker")
            if isinstance(g, (int, np.integer)):
                word["speaker"] = self._letter(int(g))
        if label is None:
            return None
        return self._letter(int(label))

    def _letter(self, g: int) -> str:
        return self.letters(g)

    # ------------------------------------------------------------------ audio buffer

    def _audio(self, start: int, end: int) -> np.ndarray:
        start = max(start, self.buffer_start)
        return self.buffer[start - self.buffer_start:max(start, end) - self.buffer_start]

    def _window_audio(self, end: int, length: int) -> np.ndarray:
        """The ``length`` samples before ``end``, zero-padded in front where the buffer
        (or the session) does not reach back that far."""
        audio = np.zeros(length, dtype=np.float32)
        available = self._audio(end - length, end)
        audio[length - len(available):] = available
        return audio

    def _trim_buffer(self) -> None:
        keep_from = self.received - int(max(40.0, self.config.window + 1) * SAMPLE_RATE)
        if self.turn is not None:
            keep_from = min(keep_from, self.turn.start)
        if keep_from - self.buffer_start > 10 * SAMPLE_RATE:
            self.buffer = self.buffer[keep_from - self.buffer_start:].copy()
            self.buffer_start = keep_from
            if self.fbank is not None:
                self.fbank.forget_before(keep_from)

    # ------------------------------------------------------------------ diarization

    def _diarize_step(self, window_end: int) -> None:
        from diareval.server.engines.baseline.segmentation import frame_centers

        cfg = self.config
        w = int(cfg.window * SAMPLE_RATE)
        window_start = window_end - w
        # Skip windows with no speech in their newest part: there is nothing new to
        # label, and the earlier frames were covered by the previous windows.
        fresh = window_end - int((cfg.step + cfg.fresh_margin) * SAMPLE_RATE)
        f0, f1 = max(0, max(window_start, fresh) // VAD_FRAME), window_end // VAD_FRAME
        if not any(p >= cfg.vad_threshold for p in self.vad_probs[f0:f1 + 1]):
            self.previous = None
            return
        activity = self.models.segmentation(self._window_audio(window_end, w))  # (frames, 3)
        times = (window_start + frame_centers(len(activity))) / SAMPLE_RATE
        # Local speakers that continue one of the previous window's (same activity over
        # the overlap) may keep its global speaker without a new embedding (embeddings
        # are the engine's main cost): for up to `refresh_steps` windows ...
        links = self._continuity(activity, times)
        recent = times >= times[-1] - cfg.recent_seconds
        quiet = {k for k in range(activity.shape[1])
                 if cfg.recent_seconds > 0 and activity[recent, k].max(initial=0.0) < cfg.tau_active}
        # ... and so do local speakers that stopped talking (nothing new to learn from them).
        reuse = {k: k_prev for k, (k_prev, age) in links.items()
                 if age < cfg.refresh_steps or k in quiet}
        embeddings, valid, sources = self._local_embeddings(window_start, window_end, activity,
                                                            skip=set(reuse))
        c0, cell_times, weights = _window_cells(window_start, window_end)
        c1 = c0 + len(cell_times)
        local = np.stack([np.interp(cell_times, times, activity[:, k])
                          for k in range(activity.shape[1])], axis=1)
        # the span of each embedded local speaker's embedding audio, in cells of this window
        sourced = np.zeros(local.shape, dtype=bool)
        for k, (first, last) in sources.items():
            sourced[max(0, int(first / SAMPLE_RATE / GRID) - c0):
                    max(0, int(last / SAMPLE_RATE / GRID) + 1 - c0), k] = True
        mapping = {k: self.previous["mapping"][k_prev] for k, k_prev in reuse.items()
                   if k_prev in self.previous["mapping"]}
        mapping.update(self.clustering.assign(activity, embeddings, valid & ~np.isin(
            np.arange(len(valid)), list(mapping)), taken=set(mapping.values())))
        ages = {k: (links[k][1] + 1 if k in mapping and k in reuse else 0) for k in mapping}
        self.windows.append((c0, local.astype(np.float32), weights, embeddings, valid,
                             _activity_summary(activity),
                             {k: reuse[k] for k in mapping if k in reuse}, dict(mapping), sourced))
        self.previous = {"activity": activity, "times": times, "mapping": mapping, "ages": ages}
        if c1 > c0:
            self.grid.add(c0, local, weights, mapping, sourced)
        if cfg.speech_window > 0 and (self.speech_at is None or window_end - self.speech_at
                                      >= int(cfg.speech_step * SAMPLE_RATE) - 1):
            self._speech_segmentation(window_end)

    def _speech_segmentation(self, window_end: int) -> None:
        """Segmentation-3.0 on the last ``speech_window`` s: its speech (any local speaker),
        Hamming-weighted per cell, goes to ``speech_grid`` (word extents only)."""
        from diareval.server.engines.baseline.segmentation import frame_centers

        self.speech_at = window_end
        w = int(self.config.speech_window * SAMPLE_RATE)
        activity = self.models.segmentation(self._window_audio(window_end, w))
        times = (window_end - w + frame_centers(len(activity))) / SAMPLE_RATE
        c0, cell_times, weights = _window_cells(window_end - w, window_end)
        if len(cell_times):
            speech = np.interp(cell_times, times, np.clip(activity.sum(axis=1), 0.0, 1.0))
            self.speech_grid.add_speech(c0, speech.astype(np.float32), weights)

    def _continuity(self, activity: np.ndarray, times: np.ndarray) -> dict[int, tuple[int, int]]:
        """{local speaker: (the previous window's local speaker it continues, its age)}."""
        prev = self.previous
        if not prev or not prev["mapping"]:
            return {}
        overlap = times <= prev["times"][-1]
        if overlap.sum() < 10:
            return {}
        now = activity[overlap]
        before = np.stack([np.interp(times[overlap], prev["times"], prev["activity"][:, k])
                           for k in range(prev["activity"].shape[1])], axis=1)
        score = np.zeros((now.shape[1], before.shape[1]))
        for k in range(now.shape[1]):
            for j in range(before.shape[1]):
                union = np.maximum(now[:, k], before[:, j]).sum()
                score[k, j] = np.minimum(now[:, k], before[:, j]).sum() / union if union > 1.0 else 0.0
        rows, cols = linear_sum_assignment(-score)
        links = {}
        for k, j in zip(rows, cols):
            if score[k, j] >= self.config.continuity and j in prev["mapping"]:
                links[int(k)] = (int(j), prev["ages"].get(int(j), 0))
        return links

    def _local_embeddings(self, window_start: int, window_end: int, activity: np.ndarray,
                          skip: set = frozenset()):
        """One embedding per active local speaker of the window [window_start, window_end)
        (samples), from its recent single-speaker frames. Returns the embeddings, which
        are valid, and {local speaker: (first, last) sample of its embedding's frames}."""
        cfg = self.config
        k = activity.shape[1]
        embeddings = np.zeros((k, 192), dtype=np.float32)
        valid = np.zeros(k, dtype=bool)
        sources: dict[int, tuple[int, int]] = {}
        active = [s for s in range(k) if activity[:, s].max() >= cfg.tau_active and s not in skip]
        if not active:
            return embeddings, valid, sources
        from diareval.server.engines.baseline.segmentation import FRAME_SIZE, FRAME_STEP

        first, feats = self.fbank.window(window_start, window_end)  # (n, 80), 10 ms frames
        centres = (first + np.arange(len(feats))) * 160 + 200 - window_start
        seg_index = np.clip(np.round((centres - (FRAME_SIZE - 1) / 2) / FRAME_STEP).astype(int),
                            0, len(activity) - 1)
        on = activity >= cfg.speaker_threshold
        alone = on & (on.sum(axis=1, keepdims=True) == 1)
        chosen, owners = [], []
        for s in active:
            mask = alone[seg_index, s]
            if mask.sum() < cfg.min_embedding_seconds * 100:
                mask = on[seg_index, s]
            if mask.sum() < cfg.min_embedding_seconds * 100:
                continue
            rows = np.flatnonzero(mask)[-int(cfg.embedding_seconds * 100):]
            chosen.append(feats[rows])
            owners.append(s)
            sources[s] = (int((first + rows[0]) * 160 + 200), int((first + rows[-1]) * 160 + 200))
        if chosen:
            embeddings[owners] = self.models.embedding.from_features(chosen)
            valid[owners] = True
        return embeddings, valid, sources

    def _word_speakers(self, words: list[tuple], grid: SpeakerGrid | None = None) -> list:
        """The global speaker of each word in ``grid`` (default: the session's grid)."""
        grid = self.grid if grid is None else grid
        speakers = [grid.speaker_at(w[1], w[2]) for w in words]
        # words nobody was found for take their neighbours' speaker
        known = [i for i, s in enumerate(speakers) if s is not None]
        if not known:
            return speakers
        for i, s in enumerate(speakers):
            if s is None:
                j = min(known, key=lambda j: abs(j - i))
                speakers[i] = speakers[j]
        # a short run of words between two runs of one other speaker is a flicker:
        # it joins its neighbours
        if self.config.min_word_run > 0:
            runs = _speaker_runs(speakers)
            for r in range(1, len(runs) - 1):
                first, last, s = runs[r]
                if (runs[r - 1][2] == runs[r + 1][2]
                        and words[last][2] - words[first][1] < self.config.min_word_run):
                    for i in range(first, last + 1):
                        speakers[i] = runs[r - 1][2]
        return speakers

    def _refine_changes(self, words: list[tuple], speakers: list, grid: SpeakerGrid):
        """Where consecutive words change speaker (x to y), place the change where the
        grid's activity of x and y crosses within ``refine_changes`` s of the words'
        boundary: the words there whose centre falls on the other side change speaker,
        and the last x word and the first y word meet at the change."""
        margin = self.config.refine_changes
        if margin <= 0 or len(words) < 2 or speakers is None:
            return words, speakers
        words, speakers = list(words), list(speakers)
        for i in range(len(words) - 1):
            x, y = speakers[i], speakers[i + 1]
            if x == y or not isinstance(x, (int, np.integer)) or not isinstance(y, (int, np.integer)):
                continue
            boundary = (words[i][2] + words[i + 1][1]) / 2
            lo, hi = boundary - margin, boundary + margin
            c0, c1 = max(0, int(round(lo / GRID))), int(round(hi / GRID))
            if c1 <= c0:
                continue
            activity, covered = grid.mean_activity(c0, c1)
            if not covered.all():
                continue
            d = activity[:, x] - activity[:, y]  # > 0 where x is the more active
            # split k: cells before it are x's, from it on y's; maximise the agreement
            agreement = np.concatenate([[0.0], np.cumsum(d)]) - np.concatenate([np.cumsum(d[::-1])[::-1], [0.0]])
            change = (c0 + int(np.argmax(agreement))) * GRID
            for j in range(len(words)):
                centre = (words[j][1] + words[j][2]) / 2
                if lo <= centre <= hi and speakers[j] in (x, y):
                    speakers[j] = x if centre < change else y
            last_x = max((j for j in range(len(words)) if speakers[j] == x and words[j][1] < change), default=None)
            if last_x is not None and last_x + 1 < len(words) and speakers[last_x + 1] == y:
                a, b = words[last_x], words[last_x + 1]
                if a[1] < change < b[2] and b[1] <= a[2] + 0.02:  # they meet: move the meeting point
                    words[last_x] = (a[0], a[1], change, a[3])
                    words[last_x + 1] = (b[0], change, b[2], b[3])
        return words, speakers

    def _grow_runs(self, words: list[tuple], speakers: list, grid: SpeakerGrid | None) -> list[tuple]:
        """Words with each same-speaker run's outer edges stretched over the grid activity
        of its speaker (``overlap_grow``), past other speakers' words."""
        limit = self.config.overlap_grow
        if limit <= 0 or grid is None or not words or speakers is None:
            return words
        out = list(words)
        end_of_audio = self.received / SAMPLE_RATE
        for i, j, g in _speaker_runs(speakers):
            if isinstance(g, (int, np.integer)):
                text, start, end, prob = out[i]
                start = min(start, grid.active_until(int(g), start, -1, limit, self.config.grow_threshold,
                                                     self.config.grow_overlap_only))
                out[i] = (text, max(0.0, start), end, prob)
                text, start, end, prob = out[j]
                end = max(end, grid.active_until(int(g), end, 1, min(limit, end_of_audio - end),
                                                 self.config.grow_threshold,
                                                 self.config.grow_overlap_only))
                out[j] = (text, start, end, prob)
        return out

    def _turn_embedding_speaker(self, words: list[tuple]):
        """No window saw a speaker over this turn: embed the turn itself (its last 3 s)
        and take the closest global speaker, or start one."""
        audio = self._audio(int(words[0][1] * SAMPLE_RATE), int(words[-1][2] * SAMPLE_RATE))
        audio = audio[-3 * SAMPLE_RATE:]
        if len(audio) < self.config.min_embedding_seconds * SAMPLE_RATE:
            return None
        embedding = self.models.embedding(audio)
        activity = np.ones((10, 1), dtype=np.float32)
        mapping = self.clustering.assign(activity, embedding[None], np.array([True]))
        return mapping.get(0)

    @staticmethod
    def _turn_speaker(words: list[tuple], speakers: list):
        totals: dict[int, float] = {}
        for w, s in zip(words, speakers or []):
            if s is not None:
                totals[s] = totals.get(s, 0.0) + max(w[2] - w[1], 0.02)
        return max(totals, key=totals.get) if totals else None

    def _reclustered_grid(self, start: float) -> SpeakerGrid:
        """A grid of the windows from ``start`` - window on, mapped to the clusters of the
        embeddings of the session so far (re-clustered as the end-of-stream revision does,
        on at most ``MAX_LIVE_POINTS`` of them: about 45 ms per final turn at the cap)."""
        clusters = self._offline_clusters(MAX_LIVE_POINTS)
        if clusters is None:
            return self.grid
        first = int((start - self.config.window) / GRID)
        index = len(self.windows)
        while index > 0 and self.windows[index - 1][0] + len(self.windows[index - 1][1]) >= first:
            index -= 1
        windows = self.windows[index:]
        grid = SpeakerGrid(MAX_GLOBAL, self.evidence_floor)
        for window, mapping in zip(windows, self._map_windows(*clusters, windows)):
            if len(window[1]):
                grid.add(window[0], window[1], window[2], mapping, window[8])
        return grid

    def _offline_clusters(self, max_points: int = MAX_OFFLINE_POINTS) -> tuple[np.ndarray, list[int]] | None:
        """Re-cluster every local speaker embedding of the session so far at once
        (average-linkage agglomerative clustering on cosine distance, cut at
        ``offline_threshold``, at most ``max_speakers`` clusters). Returns the cluster
        centroids and the global speaker each is named after: the online speaker it
        overlaps most, so letters already shown stay where they were right; None with
        fewer than two embeddings."""
        from scipy.cluster.hierarchy import fcluster, linkage

        from diareval.server.engines.baseline.clustering import cosine_distances

        points, owners = [], []
        for index, window in enumerate(self.windows):
            embeddings, valid, activity = window[3], window[4], window[5]
            for k in range(len(valid)):
                if valid[k] and activity[:, k].mean() >= self.config.rho_update:
                    points.append(embeddings[k])
                    owners.append((index, k))
        if len(points) < 2:
            return None
        points = np.asarray(points, dtype=np.float64)
        if len(points) > max_points:  # long sessions: an evenly spaced sample
            keep = np.linspace(0, len(points) - 1, max_points).astype(int)
            points, owners = points[keep], [owners[i] for i in keep]
        tree = linkage(points, method="average", metric="cosine")
        labels = fcluster(tree, t=self.config.offline_threshold, criterion="distance")
        cap = self.clustering.config.max_speakers
        if labels.max() > cap:
            labels = fcluster(tree, t=cap, criterion="maxclust")
        clusters = sorted(set(labels))
        centroids = np.stack([points[labels == c].mean(axis=0) for c in clusters])
        # name clusters after online speakers: Hungarian on how often they co-occur
        online_ids = sorted({g for w in self.windows for g in w[7].values()})
        overlap = np.zeros((len(clusters), max(online_ids, default=-1) + 1))
        for (index, k), label in zip(owners, labels):
            g = self.windows[index][7].get(k)
            if g is not None:
                overlap[clusters.index(label), g] += 1
        names = {}
        if overlap.size:
            rows, cols = linear_sum_assignment(-overlap)
            names = {clusters[r]: int(c) for r, c in zip(rows, cols) if overlap[r, c] > 0}
        spare = [g for g in range(cap) if g not in names.values()]
        for i, c in enumerate(clusters):
            if c in names:
                continue
            if spare:
                names[c] = spare.pop(0)
            else:  # no label left under the cap: join the closest named cluster
                named = [j for j, other in enumerate(clusters) if other in names]
                dist = cosine_distances(centroids[i:i + 1], centroids[named])[0]
                names[c] = names[clusters[named[int(np.argmin(dist))]]]
        return centroids, [names[c] for c in clusters]

    def _map_windows(self, centroids: np.ndarray, names: list[int], windows: list) -> list[dict]:
        """{local speaker: global speaker} per window: every local speaker with an
        embedding goes to its closest cluster (one-to-one within a window when possible)."""
        from diareval.server.engines.baseline.clustering import cosine_distances

        mappings = []
        for window in windows:
            embeddings, valid, activity = window[3], window[4], window[5]
            mapping: dict = {}
            active = [k for k in range(len(valid)) if valid[k]
                      and activity[:, k].max() >= self.config.tau_active]
            if active:
                dist = cosine_distances(embeddings[active], centroids)
                rows, cols = linear_sum_assignment(dist)
                for r, c in zip(rows, cols):
                    mapping[active[r]] = names[c]
                for r, k in enumerate(active):
                    if k not in mapping:
                        mapping[k] = names[int(np.argmin(dist[r]))]
            mappings.append(mapping)
        return mappings

    def _offline_mappings(self) -> list[dict] | None:
        """Every window's mapping from re-clustering the whole session (the revision)."""
        clusters = self._offline_clusters()
        return None if clusters is None else self._map_windows(*clusters, self.windows)

    def _revision(self) -> list[dict]:
        """Re-map every window with the final centroids; revise the turns whose labels change."""
        if not self.clustering.centroids:
            return []
        self.grid.reset()
        self.grid.evidence_floor = self.evidence_floor
        offline = self._offline_mappings() if self.config.revise_offline else None
        previous: dict = {}
        for index, (c0, local, weights, embeddings, valid, activity, links, _, sourced) in enumerate(self.windows):
            if offline is not None:
                mapping = offline[index]
            else:
                mapping = {k: previous[j] for k, j in links.items() if j in previous}
                mapping.update(self.clustering.assign(activity, embeddings, valid, update=False,
                                                      taken=set(mapping.values())))
            previous = mapping
            if len(local):
                self.grid.add(c0, local, weights, mapping, sourced)
        revisions = []
        for order in sorted(self.final_turns):
            old = self.final_turns[order]
            if old.get("speaker_label") == UNKNOWN:
                continue
            spans = self.turn_words[order]
            words = [(None, s, e, None) for s, e in spans]
            speakers = self._word_speakers(words)
            words, speakers = self._refine_changes(words, speakers, self.grid)
            label = self._turn_speaker(words, speakers)
            if label is None:
                continue
            grown = self._grow_runs(words, speakers, self.grid)
            new_words = [dict(w) for w in old["words"]]
            for w, s, g in zip(new_words, speakers, grown):
                if s is not None:
                    w["speaker"] = s
                w["start"], w["end"] = int(round(g[1] * 1000)), int(round(max(g[2], g[1]) * 1000))
            new_label = self._letter_of(label, new_words)
            # with overlap_grow / refine_changes a turn is also revised when only its words'
            # extents change: the revised grid sees the audio after the turn, the live one did not
            if new_label != old.get("speaker_label") or any(
                    (a.get("speaker"), a["start"], a["end"]) != (b.get("speaker"), b["start"], b["end"])
                    for a, b in zip(new_words, old["words"])):
                revisions.append(say.revision_entry(order, new_label, new_words))
        if not revisions:
            return []
        return [say.speaker_revision(revisions)]
