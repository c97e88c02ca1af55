"""Generated conversations: reference agrees with the audio, statistics as requested, determinism."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("espeakng_loader")

from diareval.datasets import DatasetError, load  # noqa: E402
from diareval.datasets.synthetic import (ConversationSpec, generate_conversation,  # noqa: E402
                                         load_synthetic)

TEN_MINUTES = ConversationSpec(n_speakers=4, minutes=10, seed=7, backchannel_rate=0.3,
                               mean_words=10.0, overlap_rate=0.15, overlap_mean=0.6,
                               pause_mean=0.5)


@pytest.fixture(scope="module")
def ten_minutes():
    start = time.perf_counter()
    conversation = generate_conversation(TEN_MINUTES, 0)
    return conversation, time.perf_counter() - start


def test_ten_minute_session_is_fast(ten_minutes):
    conversation, seconds = ten_minutes
    assert len(conversation.audio) == 600 * 16000
    assert seconds < 10.0, f"10-min 4-speaker session took {seconds:.1f} s"


def _segments(annotation):
    return sorted((s.start, s.end, label) for s, _, label in annotation.itertracks(yield_label=True))


def test_statistics_match_the_request(ten_minutes):
    """Measured from the RTTM and the words only (not from the generator's own turn list)."""
    conversation, _ = ten_minutes
    _check_statistics(conversation, TEN_MINUTES)


def test_statistics_match_another_request():
    spec = ConversationSpec(n_speakers=3, minutes=10, seed=21, backchannel_rate=0.5,
                            mean_words=6.0, overlap_rate=0.1, overlap_mean=0.4, pause_mean=0.3)
    _check_statistics(generate_conversation(spec, 0), spec)


def _check_statistics(conversation, spec):
    segments = _segments(conversation.reference)
    assert len({label for _, _, label in segments}) == spec.speakers_of(0)
    words_in = []
    for start, end, label in segments:
        words_in.append(sum(1 for w in conversation.words if w.speaker == label
                            and start <= (w.start + w.end) / 2 <= end))
    words_in = np.array(words_in)
    assert (words_in >= 1).all()
    assert len(segments) > 150  # enough turns for the statistics to mean something
    backchannel = np.mean(words_in <= 2)
    assert backchannel == pytest.approx(spec.backchannel_rate, rel=0.10)
    assert np.mean(words_in == 1) == pytest.approx(spec.backchannel_rate / 2, rel=0.15)
    assert words_in[words_in > 2].mean() == pytest.approx(spec.mean_words, rel=0.10)
    overlaps, pauses, last_end = [], [], segments[0][1]
    for start, end, _ in segments[1:]:
        if start < last_end:
            overlaps.append(min(last_end, end) - start)
        else:
            pauses.append(start - last_end)
        last_end = max(last_end, end)
    assert len(overlaps) / (len(segments) - 1) == pytest.approx(spec.overlap_rate, rel=0.10)
    assert np.mean(overlaps) == pytest.approx(spec.overlap_mean, rel=0.10)
    assert np.mean(pauses) == pytest.approx(spec.pause_mean, rel=0.10)
    assert min(pauses) >= spec.pause_min - 0.011


def _active_frames(audio: np.ndarray, frame: int = 160, threshold_db: float = -50.0):
    x = audio.astype(np.float64) / 32767.0
    n = len(x) // frame
    rms = np.sqrt(np.mean(x[:n * frame].reshape(n, frame) ** 2, axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-10)) > threshold_db


def test_rttm_agrees_with_the_audio(ten_minutes):
    """Silence outside the labelled regions, speech inside, region edges within 50 ms."""
    conversation, _ = ten_minutes
    audible = _active_frames(conversation.audio, threshold_db=-60.0)  # 10 ms frames
    loud = _active_frames(conversation.audio, threshold_db=-45.0)
    times = (np.arange(len(audible)) + 0.5) * 0.01
    labelled = np.zeros(len(audible), dtype=bool)
    near = np.zeros(len(audible), dtype=bool)
    support = conversation.reference.get_timeline().support()
    for segment in support:
        labelled |= (times >= segment.start) & (times <= segment.end)
        near |= (times >= segment.start - 0.05) & (times <= segment.end + 0.05)
    assert not (audible & ~near).any(), "sound more than 50 ms outside the RTTM"
    assert loud[labelled].mean() > 0.8, "labelled regions are mostly speech-loud"
    for segment in support:
        inside = np.flatnonzero(audible & (times >= segment.start - 0.05)
                                & (times <= segment.end + 0.05))
        assert inside.size, f"no sound in labelled {segment}"
        assert abs(times[inside[0]] - segment.start) <= 0.05, segment
        assert abs(times[inside[-1]] - segment.end) <= 0.05, segment


def test_words_inside_their_speakers_segments(ten_minutes):
    conversation, _ = ten_minutes
    reference = conversation.reference
    for word in conversation.words[::7]:
        assert word.end > word.start
        turns = reference.label_timeline(word.speaker)
        assert any(s.start - 0.001 <= word.start and word.end <= s.end + 0.001 for s in turns)
    texts = {w.text for w in conversation.words}
    assert {"yeah", "okay", "right"} & texts
    # every scripted word has a timed reference word, in order, inside its turn
    for turn in conversation.turns[:60]:
        inside = [w.text for w in conversation.words if w.speaker == turn.speaker
                  and turn.start - 1e-3 <= w.start and w.end <= turn.end + 1e-3]
        assert inside == turn.text.split()


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    spec = dict(n_conversations=2, n_speakers=3, minutes=0.25, seed=3)
    first = load_synthetic(tmp_path / "a", **spec)
    generate_conversation(ConversationSpec(n_speakers=2, minutes=0.2, seed=99))  # disturb state
    second = load_synthetic(tmp_path / "b", **spec)
    for a, b in zip(first, second):
        assert a.audio_path.read_bytes() == b.audio_path.read_bytes()
        assert a.audio_path.with_suffix(".rttm").read_bytes() == \
            b.audio_path.with_suffix(".rttm").read_bytes()
        assert a.words == b.words
    other = load_synthetic(tmp_path / "a", **{**spec, "seed": 4})
    assert other[0].audio_path.read_bytes() != first[0].audio_path.read_bytes()


def test_default_dataset_is_small_cached_and_registered(tmp_path):
    recordings = load("synthetic", root=tmp_path)
    assert [len(r.speakers) for r in recordings] == [2, 3, 4]
    assert all(r.duration == pytest.approx(60.0) for r in recordings)
    assert all(r.words and r.meta["voices"] for r in recordings)
    audio = recordings[0].load_audio()
    assert audio.dtype == np.int16 and len(audio) == 60 * 16000
    mtime = recordings[0].audio_path.stat().st_mtime_ns
    again = load_synthetic(tmp_path)
    assert again[0].audio_path.stat().st_mtime_ns == mtime  # cached, not regenerated
    voices = set(recordings[2].meta["voices"].values())
    assert len(voices) == 4  # distinct voices


def test_bad_options_are_clear_errors(tmp_path):
    with pytest.raises(DatasetError, match="unknown synthetic option"):
        load_synthetic(tmp_path, speakers=3)
    with pytest.raises(DatasetError, match="n_speakers"):
        load_synthetic(tmp_path, n_speakers=0)
    with pytest.raises(DatasetError, match="noise and snr"):
        load_synthetic(tmp_path, noise="pink")


def _ltas(samples: np.ndarray, rate: int) -> np.ndarray:
    """Long-term average spectrum in 20 log-spaced bands (dB, normalised)."""
    import soxr

    x = soxr.resample(samples.astype(np.float32) / 32768, rate, 16000)
    n = 1024
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[::256]
    frames = frames[np.sqrt((frames ** 2).mean(axis=1)) > 0.01]
    power = (np.abs(np.fft.rfft(frames * np.hanning(n), axis=1)) ** 2).mean(axis=0)
    edges, freqs = np.geomspace(80, 8000, 21), np.fft.rfftfreq(n, 1 / 16000)
    bands = np.array([power[(freqs >= lo) & (freqs < hi)].mean()
                      for lo, hi in zip(edges[:-1], edges[1:])])
    return 10 * np.log10(bands / bands.sum())


def test_default_voices_are_distinct():
    """Two texts per voice: every pair of voices differs more than one voice's two texts."""
    from diareval.datasets.espeak import DISTINCT_VOICES, Espeak

    from diareval.datasets.synthetic import VOCABULARY

    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(VOCABULARY, size=60)) for _ in range(2)]
    spectra = {}
    with Espeak() as tts:
        for voice in DISTINCT_VOICES:
            spectra[voice] = [_ltas(tts.synthesize(t, voice).samples, 22050) for t in texts]
    distance = lambda a, b: float(np.sqrt(np.mean((a - b) ** 2)))  # noqa: E731
    same = max(distance(*spectra[v]) for v in DISTINCT_VOICES)
    different = min(distance(spectra[a][0], spectra[b][1])
                    for a in DISTINCT_VOICES for b in DISTINCT_VOICES if a != b)
    assert different > same, (different, same)


def test_same_bytes_in_another_process():
    import hashlib
    import subprocess
    import sys

    code = ("import hashlib; from diareval.datasets.synthetic import ConversationSpec, "
            "generate_conversation as g; c = g(ConversationSpec(n_speakers=3, minutes=0.3, "
            "seed=5), 1); print(hashlib.sha256(c.audio.tobytes()).hexdigest())")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, timeout=120).stdout.strip()
    here = generate_conversation(ConversationSpec(n_speakers=3, minutes=0.3, seed=5), 1)
    assert hashlib.sha256(here.audio.tobytes()).hexdigest() == other


def test_background_noise_at_the_requested_snr():
    from diareval.datasets.noise import measure_snr

    clean = generate_conversation(ConversationSpec(n_speakers=2, minutes=0.3, seed=4), 0)
    noisy = generate_conversation(ConversationSpec(n_speakers=2, minutes=0.3, seed=4,
                                                   noise="white", snr=5.0), 0)
    assert noisy.reference == clean.reference and noisy.words == clean.words
    speech = clean.reference.get_timeline().support()
    assert measure_snr(clean.audio, noisy.audio, speech) == pytest.approx(5.0, abs=0.5)
