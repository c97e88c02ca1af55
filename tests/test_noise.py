"""Noise perturbations: measured SNR equals the requested one (+-0.5 dB), cached derived datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from diareval.datasets import DatasetError, load, load_folder
from diareval.datasets.noise import (add_noise, make_noise, measure_snr, mix_at_snr,
                                     noise_sweep, pink_noise)
from fixtures import write_rttm

RATE = 16000


def _speechlike(seconds: float, seed: int) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Bursts of harmonic tones (speech-like level changes) and silences, int16."""
    rng = np.random.default_rng(seed)
    x = np.zeros(int(seconds * RATE))
    regions, t = [], 0.3
    while t < seconds - 1.0:
        length = rng.uniform(0.3, 2.0)
        a, b = int(t * RATE), int(min(t + length, seconds) * RATE)
        f0 = rng.uniform(90, 250)
        n = np.arange(b - a) / RATE
        burst = sum(np.sin(2 * np.pi * f0 * k * n) / k for k in range(1, 6))
        x[a:b] = burst * rng.uniform(0.05, 0.2)
        regions.append((a / RATE, b / RATE))
        t += length + rng.uniform(0.2, 1.0)
    return np.round(np.clip(x, -1, 1) * 32767).astype(np.int16), regions


def _folder(tmp_path: Path, n: int = 3, seconds: float = 8.0) -> Path:
    folder = tmp_path / "clean"
    folder.mkdir()
    for i in range(n):
        audio, regions = _speechlike(seconds, i)
        sf.write(str(folder / f"rec{i}.wav"), audio, RATE, subtype="PCM_16")
        write_rttm(folder / f"rec{i}.rttm",
                   {f"rec{i}": [(a, b, f"S{k % 2}") for k, (a, b) in enumerate(regions)]})
    return folder


def _snr_over(clean: np.ndarray, noisy: np.ndarray, regions) -> float:
    """Independent SNR measurement: least-squares gain, then powers over the speech regions."""
    c, y = clean.astype(np.float64), noisy.astype(np.float64)
    gain = np.dot(c, y) / np.dot(c, c)
    mask = np.zeros(len(c), dtype=bool)
    for a, b in regions:
        mask[int(round(a * RATE)):int(round(b * RATE))] = True
    signal = np.sum((gain * c[mask]) ** 2)
    noise = np.sum((y[mask] - gain * c[mask]) ** 2)
    return 10 * np.log10(signal / noise)


@pytest.mark.parametrize("kind", ["white", "pink", "babble", "folder"])
@pytest.mark.parametrize("snr", [-5.0, 0.0, 10.0, 20.0])
def test_measured_snr_is_the_requested_one(tmp_path, kind, snr):
    folder = _folder(tmp_path)
    noise = kind
    if kind == "folder":
        noise_dir = tmp_path / "noise"
        noise_dir.mkdir()
        rng = np.random.default_rng(5)
        sf.write(str(noise_dir / "hum.flac"),
                 (rng.standard_normal(3 * RATE) * 0.1).astype(np.float32), 8000)
        noise = str(noise_dir)
    recordings = load_folder(folder)
    noisy = add_noise(recordings, noise=noise, snr=snr, seed=1, root=tmp_path / "cache")
    for clean, derived in zip(recordings, noisy):
        regions = [(s.start, s.end) for s in clean.reference.get_timeline().support()]
        got = _snr_over(clean.load_audio(), derived.load_audio(), regions)
        assert got == pytest.approx(snr, abs=0.5)
        assert measure_snr(clean.load_audio(), derived.load_audio(),
                           clean.reference.get_timeline().support()) == pytest.approx(got, abs=0.01)
        assert derived.reference == clean.reference and derived.uem == clean.uem
        assert derived.audio_path != clean.audio_path


def test_pink_noise_falls_3db_per_octave():
    x = pink_noise(2 ** 18, seed=0)
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / RATE)
    band = lambda lo: power[(freqs >= lo) & (freqs < 2 * lo)].sum()  # noqa: E731
    # 1/f power: every octave holds the same power; white noise would double per octave
    ratios = [10 * np.log10(band(2 * f) / band(f)) for f in (125, 250, 500, 1000, 2000)]
    assert np.allclose(ratios, 0.0, atol=0.5)
    white = np.abs(np.fft.rfft(make_noise("white", 2 ** 18))) ** 2
    white_ratio = white[(freqs >= 2000) & (freqs < 4000)].sum() / \
        white[(freqs >= 1000) & (freqs < 2000)].sum()
    assert 10 * np.log10(white_ratio) == pytest.approx(3.0, abs=0.5)


def test_loud_mix_is_scaled_not_clipped():
    audio = np.full(RATE, 30000, dtype=np.int16)
    audio[::2] = -30000
    out = mix_at_snr(audio, make_noise("white", RATE, seed=2), 0.0)
    assert np.abs(out.astype(int)).max() < 32767
    assert measure_snr(audio, out) == pytest.approx(0.0, abs=0.5)


def test_derived_dataset_is_cached_and_named(tmp_path):
    folder = _folder(tmp_path, n=2, seconds=4.0)
    first = load("noisy", dataset=str(folder), noise="pink", snr=5, root=tmp_path / "cache")
    assert first[0].meta["snr"] == 5.0 and "pink@5dB" in first[0].meta["dataset"]
    assert "pink@5dB" in first[0].audio_path.parent.name
    stamp = first[0].audio_path.stat().st_mtime_ns
    again = add_noise(load_folder(folder), noise="pink", snr=5, root=tmp_path / "cache")
    assert again[0].audio_path == first[0].audio_path
    assert again[0].audio_path.stat().st_mtime_ns == stamp
    # the derived folder is a dataset in its own right (audio + RTTM + UEM)
    as_folder = load_folder(first[0].audio_path.parent)
    assert [r.uri for r in as_folder] == [r.uri for r in first]
    assert as_folder[0].reference.get_timeline().support().duration() == pytest.approx(
        first[0].reference.get_timeline().support().duration(), abs=0.01)
    assert as_folder[0].meta["uem"] == "UEM file"
    sweep = noise_sweep(load_folder(folder), [0, 10], root=tmp_path / "cache")
    assert sorted(sweep) == [0.0, 10.0]
    assert sweep[0][0].audio_path != sweep[10][0].audio_path
    # same seed: same bytes; another seed: other noise
    other = add_noise(load_folder(folder), noise="pink", snr=5, seed=9, root=tmp_path / "c2")
    assert other[0].audio_path.read_bytes() != first[0].audio_path.read_bytes()


def test_noise_errors(tmp_path):
    recordings = load_folder(_folder(tmp_path, n=1, seconds=3.0))
    with pytest.raises(DatasetError, match="unknown noise 'brown'"):
        add_noise(recordings, noise="brown", snr=0, root=tmp_path)
    with pytest.raises(DatasetError, match="at least two recordings"):
        add_noise(recordings, noise="babble", snr=0, root=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no noise audio"):
        add_noise(recordings, noise=str(tmp_path / "empty"), snr=0, root=tmp_path / "x")
    missing = recordings[0].__class__(**{**recordings[0].__dict__,
                                         "audio_path": tmp_path / "gone.wav"})
    with pytest.raises(DatasetError, match="gone.wav"):
        add_noise([missing], noise="white", snr=0, root=tmp_path)


def test_a_derived_folder_missing_a_uem_gets_it_back(tmp_path):
    """A run stopped between writing a copy's RTTM and its UEM: the next call writes the
    UEM (a derived folder loaded without it would score on the whole file, not the UEM)."""
    folder = _folder(tmp_path, n=2, seconds=4.0)
    first = add_noise(load_folder(folder), noise="pink", snr=5, root=tmp_path / "cache")
    uem = first[0].audio_path.with_suffix(".uem")
    text = uem.read_text()
    uem.unlink()
    add_noise(load_folder(folder), noise="pink", snr=5, root=tmp_path / "cache")
    assert uem.read_text() == text
