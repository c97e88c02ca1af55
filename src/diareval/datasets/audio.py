"""Reading audio: any rate, channel count or sample format in, 16 kHz mono int16 out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from diareval.constants import SAMPLE_RATE
from diareval.errors import DatasetError


def audio_duration(path: str | Path) -> float:
    """Duration in seconds of an audio file, read from its header (no decoding)."""
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises RuntimeError/LibsndfileError/OSError
        raise DatasetError(f"{path}: cannot read audio ({exc})") from exc
    return info.frames / info.samplerate


def wav_header_duration(path: str | Path) -> float | None:
    """The duration a RIFF/WAVE header declares (data chunk size / block align / rate), or
    None for another format or a header that declares no size (a stream's placeholder).
    libsndfile reports the frames actually present, so a truncated file looks short, not
    broken: comparing the two is how :func:`check_audio_length` notices."""
    try:
        with open(path, "rb") as file:
            head = file.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            rate = align = None
            while True:
                chunk = file.read(8)
                if len(chunk) < 8:
                    return None
                kind, size = chunk[:4], int.from_bytes(chunk[4:], "little")
                if kind == b"fmt ":
                    fmt = file.read(size + size % 2)
                    rate = int.from_bytes(fmt[4:8], "little")
                    align = int.from_bytes(fmt[12:14], "little")
                elif kind == b"data":
                    if not (rate and align) or size in (0, 0xFFFFFFFF):
                        return None
                    return size / align / rate
                else:
                    file.seek(size + size % 2, 1)
    except OSError:
        return None


TRUNCATION_TOLERANCE = 1.0  # s (and 1% of the expected duration): shorter is an error


def check_audio_length(path: str | Path, needed: float | None = None,
                       what: str = "its reference/UEM") -> float:
    """The duration of the audio ``path`` holds, after checking it is not much shorter than
    its WAV header declares, or than ``needed`` seconds (the end of its reference or UEM,
    ``what`` names it): a truncated file would stream a fraction of a second and score as if
    the speaker never spoke. "Much": more than 1 s and 1% short."""
    duration = audio_duration(path)
    for expected, source in ((wav_header_duration(path), "its WAV header declares"),
                             (needed, f"{what} needs")):
        if expected is not None and expected - duration > max(TRUNCATION_TOLERANCE,
                                                              0.01 * expected):
            raise DatasetError(f"{path}: the audio holds {duration:.2f} s but {source} "
                               f"{expected:.2f} s (a truncated or wrong file?)")
    return duration


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Load ``path`` as mono int16 PCM at ``sample_rate`` (default 16 kHz).

    Channels are averaged, the rate is converted with soxr (high quality), float
    samples are clipped to [-1, 1] before the int16 conversion.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: audio file not found")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise DatasetError(f"{path}: cannot read audio ({exc})") from exc
    mono = data.mean(axis=1)
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
    return float_to_int16(mono)


def float_to_int16(samples: np.ndarray) -> np.ndarray:
    """Convert float samples in [-1, 1) to int16 (rounding to nearest, clipping).

    The scale is 32768, the inverse of how soundfile reads int16 (v / 32768), so 16-bit
    audio round-trips exactly; +1.0 clips to 32767."""
    return np.clip(np.round(np.asarray(samples, dtype=np.float64) * 32768.0),
                   -32768, 32767).astype(np.int16)


# --- G.711 mu-law (the telephone channel's codec; numpy, no audioop) -------------------------

MULAW_BIAS = 0x84  # 132: added to the magnitude so every segment's levels are 2^k apart
MULAW_CLIP = 32635  # largest magnitude encoded (32635 + 132 = 0x7FFF)


def mulaw_encode(samples: np.ndarray) -> np.ndarray:
    """int16 samples -> G.711 mu-law codes (uint8), the standard 8-segment companding.

    Segment ``e`` (0-7) holds 16 levels spaced ``8 << e`` apart in 16-bit units (8 ... 1024),
    so the quantisation step grows with the level; bits are inverted as on the wire."""
    x = np.asarray(samples).astype(np.int32)
    sign = np.where(x < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(x), MULAW_CLIP) + MULAW_BIAS  # 132 .. 32767
    exponent = np.zeros_like(magnitude)
    for e in range(1, 8):  # the segment is the position of the highest set bit above bit 7
        exponent[magnitude >= (0x100 << (e - 1))] = e
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)


def mulaw_decode(codes: np.ndarray) -> np.ndarray:
    """G.711 mu-law codes (uint8) -> int16 samples (the middle of each code's interval)."""
    c = ~np.asarray(codes).astype(np.int32) & 0xFF
    exponent = (c >> 4) & 0x07
    magnitude = ((((c & 0x0F) << 3) + MULAW_BIAS) << exponent) - MULAW_BIAS
    return np.where(c & 0x80, -magnitude, magnitude).astype(np.int16)
