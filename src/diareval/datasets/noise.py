"""Noise perturbations: derived copies of any dataset mixed with noise at a set SNR.

For the "noise degrades labels" question, measured as a sweep over SNRs. Noise kinds:
``"white"``, ``"pink"`` (1/f power), ``"babble"`` (a sum of other recordings of the same
dataset) or a folder of the user's noise files (looped and concatenated).

SNR convention: the power of the clean recording over its *reference speech* regions
(whole file if it has none) over the power of the added noise over the same regions,
in dB. Speech-region power is used because meetings contain long silences that would
otherwise lower the apparent signal power by several dB. If speech plus noise would
clip, both are scaled down together, which leaves the SNR unchanged.

Derived datasets are cached like the others: ``<root>/derived/<name>-<hash>/<uri>.wav``,
where the hash covers the noise settings and the identity (path, size, mtime) of every
source file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import soundfile as sf
from pyannote.core import Timeline

from diareval.datasets.audio import SAMPLE_RATE, float_to_int16, load_audio
from diareval.datasets.download import cache_root
from diareval.datasets.recording import Recording
from diareval.datasets.rttm import format_rttm
from diareval.errors import DatasetError

NOISE_KINDS = ("white", "pink", "babble")
_AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".sph", ".aiff", ".aif")


def white_noise(n: int, seed: int = 0) -> np.ndarray:
    """``n`` samples of Gaussian white noise, unit variance (float64)."""
    return np.random.default_rng(seed).standard_normal(n)


def pink_noise(n: int, seed: int = 0) -> np.ndarray:
    """``n`` samples of pink (1/f power) noise, unit variance: white noise shaped in frequency."""
    if n == 0:
        return np.zeros(0)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    scale = np.ones_like(freqs)
    scale[1:] = 1.0 / np.sqrt(freqs[1:])
    scale[0] = 0.0  # no DC
    noise = np.fft.irfft(spectrum * scale, n)
    return noise / max(float(noise.std()), 1e-12)


def folder_noise(folder: str | Path, n: int, seed: int = 0) -> np.ndarray:
    """``n`` samples from the audio files of ``folder`` (shuffled by ``seed``, looped)."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in _AUDIO_SUFFIXES)
    if not files:
        raise DatasetError(f"{folder}: no noise audio files ({', '.join(_AUDIO_SUFFIXES)})")
    rng = np.random.default_rng(seed)
    pieces, have = [], 0
    order = list(rng.permutation(len(files)))
    while have < n:
        if not order:
            order = list(rng.permutation(len(files)))
        samples = load_audio(files[order.pop()]).astype(np.float64)
        if samples.size == 0 or not samples.any():
            continue
        pieces.append(samples)
        have += samples.size
    joined = np.concatenate(pieces)
    start = int(rng.integers(0, joined.size - n + 1))
    return joined[start:start + n]


def babble_noise(sources: list[np.ndarray], n: int, talkers: int = 4,
                 seed: int = 0) -> np.ndarray:
    """Babble: the sum of ``talkers`` random excerpts of ``sources`` (other recordings)."""
    usable = [s.astype(np.float64) for s in sources if s.size and s.any()]
    if not usable:
        raise DatasetError("babble noise needs other recordings with audio")
    rng = np.random.default_rng(seed)
    out = np.zeros(n)
    for _ in range(talkers):
        source = usable[int(rng.integers(len(usable)))]
        source = source / max(float(source.std()), 1e-12)
        offset = int(rng.integers(len(source)))
        reps = int(np.ceil((n + offset) / len(source)))
        out += np.tile(source, reps)[offset:offset + n]
    return out


def make_noise(kind: str | Path, n: int, seed: int = 0,
               others: list[np.ndarray] | None = None) -> np.ndarray:
    """``n`` samples of noise: "white", "pink", "babble" (needs ``others``) or a folder path."""
    if kind == "white":
        return white_noise(n, seed)
    if kind == "pink":
        return pink_noise(n, seed)
    if kind == "babble":
        if not others:
            raise DatasetError("babble noise needs other recordings of the dataset")
        return babble_noise(others, n, seed=seed)
    path = Path(kind).expanduser()
    if path.is_dir():
        return folder_noise(path, n, seed)
    raise DatasetError(f"unknown noise {kind!r}: choose one of {', '.join(NOISE_KINDS)} "
                       "or give a folder of noise audio files")


def _region_mask(n: int, speech: Timeline | None, sample_rate: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    if speech is not None:
        for segment in speech:
            a = max(0, int(round(segment.start * sample_rate)))
            b = min(n, int(round(segment.end * sample_rate)))
            mask[a:b] = True
    if not mask.any():
        mask[:] = True
    return mask


def measure_snr(clean: np.ndarray, noisy: np.ndarray, speech: Timeline | None = None,
                sample_rate: int = SAMPLE_RATE) -> float:
    """SNR in dB of ``noisy`` = a * clean + noise, over the speech regions (module convention).

    The gain ``a`` (the anti-clipping scale) is estimated by least squares first."""
    clean = clean.astype(np.float64)
    noisy = noisy.astype(np.float64)
    mask = _region_mask(len(clean), speech, sample_rate)
    gain = float(np.dot(clean, noisy) / max(np.dot(clean, clean), 1e-12))
    noise = noisy - gain * clean
    signal_power = np.mean((gain * clean[mask]) ** 2)
    noise_power = max(float(np.mean(noise[mask] ** 2)), 1e-20)
    return float(10 * np.log10(signal_power / noise_power))


def mix_at_snr(audio: np.ndarray, noise: np.ndarray, snr_db: float,
               speech: Timeline | None = None, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``audio`` (int16) plus ``noise`` scaled to ``snr_db`` over the speech regions; int16 out."""
    if len(noise) != len(audio):
        raise DatasetError(f"noise has {len(noise)} samples, audio {len(audio)}")
    clean = audio.astype(np.float64) / 32768.0  # the inverse of float_to_int16
    noise = noise.astype(np.float64)
    mask = _region_mask(len(clean), speech, sample_rate)
    signal_power = float(np.mean(clean[mask] ** 2))
    noise_power = float(np.mean(noise[mask] ** 2))
    if signal_power <= 0:
        raise DatasetError("cannot set an SNR on silent audio")
    if noise_power <= 0:
        raise DatasetError("the noise is silent")
    mixed = clean + noise * np.sqrt(signal_power / (noise_power * 10 ** (snr_db / 10)))
    peak = float(np.abs(mixed).max())
    if peak > 0.99:
        mixed *= 0.99 / peak
    return float_to_int16(mixed)


def _source_identity(recordings: list[Recording]) -> list:
    identity = []
    for r in recordings:
        path = Path(r.audio_path)
        try:
            stat = path.stat()
            identity.append([r.uri, str(path.resolve()), stat.st_size, int(stat.st_mtime)])
        except OSError:
            raise DatasetError(f"{path}: audio of {r.uri} not found; cannot add noise "
                               "to a recording without audio") from None
    return identity


def derived_name(noise: str | Path, snr: float) -> str:
    """A readable name of a perturbation, e.g. ``pink@10dB``."""
    kind = noise if noise in NOISE_KINDS else Path(noise).name
    return f"{kind}@{snr:g}dB"


def add_noise(recordings: list[Recording], noise: str | Path = "pink", snr: float = 10.0,
              seed: int = 0, root: str | Path | None = None, name: str | None = None,
              babble_talkers: int = 4) -> list[Recording]:
    """Noisy copies of ``recordings`` at ``snr`` dB (cached), same references, UEMs and words.

    ``noise``: "white", "pink", "babble" (other recordings of the same list) or a folder.
    Each recording gets its own noise (seeded by ``seed`` and its position).
    """
    if not recordings:
        return []
    if not np.isfinite(snr):
        raise DatasetError(f"snr must be a finite number of dB, got {snr}")
    identity = _source_identity(recordings)
    settings = {"noise": str(noise), "snr": float(snr), "seed": int(seed),
                "babble_talkers": babble_talkers, "sources": identity, "version": 1}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    label = name or derived_name(noise, snr)
    folder = cache_root(root) / "derived" / f"{label.replace('/', '_')}-{digest}"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    audio_cache: dict[str, np.ndarray] = {}
    for index, rec in enumerate(recordings):
        dest = folder / f"{rec.uri}.wav"
        if not dest.exists():
            audio = audio_cache.pop(rec.uri, None)
            if audio is None:
                audio = rec.load_audio()
            others = None
            if noise == "babble":
                others = [other.load_audio() for other in recordings if other.uri != rec.uri]
                if not others:
                    raise DatasetError("babble noise needs at least two recordings")
            noise_samples = make_noise(noise, len(audio), seed=seed * 100_003 + index,
                                       others=others)
            speech = rec.reference.get_timeline().support()
            noisy = mix_at_snr(audio, noise_samples, snr, speech=speech)
            part = dest.with_name(dest.name + ".part")  # not *.wav: never taken for audio
            sf.write(str(part), noisy, SAMPLE_RATE, subtype="PCM_16", format="WAV")
            os.replace(part, dest)
        # references beside the audio: the derived folder is itself a loadable dataset
        # (``--dataset <folder>``; reference words stay available through this API only)
        rttm, uem = folder / f"{rec.uri}.rttm", folder / f"{rec.uri}.uem"
        if not (rttm.exists() and uem.exists()):  # a stop between the two: write both again
            rttm.write_text(format_rttm(rec.reference, rec.uri))
            uem.write_text("".join(f"{rec.uri} 1 {s.start:.3f} {s.end:.3f}\n" for s in rec.uem))
        meta = dict(rec.meta)
        meta.update({"derived_from": meta.get("dataset"), "noise": str(noise), "snr": float(snr),
                     "dataset": f"{meta.get('dataset', 'dataset')}+{label}",
                     "clean_audio": str(rec.audio_path)})
        out.append(Recording(uri=rec.uri, audio_path=dest, reference=rec.reference,
                             uem=rec.uem, words=rec.words, meta=meta))
    (folder / "derived.json").write_text(json.dumps(settings, indent=1) + "\n")
    return out


def load_noisy(dataset: str = "synthetic", noise: str = "pink", snr: float = 10.0,
               seed: int = 0, root: str | Path | None = None, **options) -> list[Recording]:
    """Registry loader: ``load("noisy", dataset="ami", noise="pink", snr=5, subset="test")``.

    ``options`` go to the source dataset's loader (``root`` is shared by both)."""
    from diareval.datasets import load

    if root is not None and dataset in ("synthetic", "ami", "mixtures"):  # cached loaders
        options["root"] = root
    return add_noise(load(dataset, **options), noise=noise, snr=snr, seed=seed, root=root)


def load_noise_levels(dataset: str = "synthetic", options: dict | None = None,
                      levels: list | tuple = (), clean: bool = False,
                      root: str | Path | None = None) -> list[Recording]:
    """Registry loader ``"noise-levels"``: the recordings of ``dataset`` (loaded with
    ``options``) at several noise levels in one list, for the local server of a run whose
    configurations stream different SNRs (``run(..., snr=[...])``).

    ``levels``: ``[noise, snr]`` pairs (each made by :func:`add_noise`, seed 0, as the
    runner makes them); ``clean``: the clean recordings too. A uri appears once per level:
    same reference, other audio (the oracle identifies a session by its audio)."""
    from diareval.datasets import load

    recordings = load(dataset, **dict(options or {}))
    out = list(recordings) if clean else []
    for noise, snr in levels:
        out += add_noise(recordings, noise=noise, snr=float(snr), root=root)
    return out


def noise_sweep(recordings: list[Recording], snrs: list[float], noise: str = "pink",
                seed: int = 0, root: str | Path | None = None) -> dict[float, list[Recording]]:
    """``{snr: noisy copies}`` for each SNR: the "noise degrades labels" sweep."""
    return {float(s): add_noise(recordings, noise=noise, snr=s, seed=seed, root=root)
            for s in snrs}


__all__ = ["NOISE_KINDS", "add_noise", "babble_noise", "derived_name", "folder_noise",
           "load_noise_levels", "load_noisy", "make_noise", "measure_snr", "mix_at_snr",
           "noise_sweep", "pink_noise", "white_noise"]
