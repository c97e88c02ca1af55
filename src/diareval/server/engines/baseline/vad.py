"""Voice activity: silero-vad (ONNX, shipped inside the ``silero-vad`` wheel) via onnxruntime.

Streaming: one speech probability per 512-sample (32 ms) frame, with the model's
recurrent state and 64-sample context carried across calls. The onnxruntime
session is shared by every stream of the process (``run`` is thread-safe); each
stream keeps its own state.
"""

from __future__ import annotations

import numpy as np

from diareval.constants import SAMPLE_RATE
from diareval.server.engines.baseline._deps import package_file, require, shared

FRAME = 512  # samples at 16 kHz (32 ms)
CONTEXT = 64


def _build_session():
    ort = require("onnxruntime", "onnxruntime")
    path = package_file("silero_vad", "data/silero_vad.onnx", "the silero-vad model (silero-vad wheel)")
    opts = ort.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


class StreamingVAD:
    """Feed float32 audio of any length; get one speech probability per completed 32 ms frame."""

    def __init__(self):
        self.session = shared("silero-vad", _build_session)
        self.state = np.zeros((2, 1, 128), dtype=np.float32)
        self.context = np.zeros((1, CONTEXT), dtype=np.float32)
        self.pending = np.zeros(0, dtype=np.float32)
        self.sr = np.array(SAMPLE_RATE, dtype=np.int64)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """Probabilities of the frames completed by ``audio`` (float32 in [-1, 1])."""
        self.pending = np.concatenate([self.pending, audio.astype(np.float32)])
        n = len(self.pending) // FRAME
        probs = np.zeros(n, dtype=np.float32)
        for i in range(n):
            frame = self.pending[i * FRAME:(i + 1) * FRAME][None, :]
            x = np.concatenate([self.context, frame], axis=1)
            out, self.state = self.session.run(None, {"input": x, "state": self.state, "sr": self.sr})
            self.context = x[:, -CONTEXT:]
            probs[i] = float(out[0, 0])
        self.pending = self.pending[n * FRAME:]
        return probs
