"""Conversations mixed from real single-speaker utterances, with and without word alignments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import shared_data
from diareval.datasets import DatasetError, load
from diareval.datasets.mixtures import load_mixtures, scan_utterances

RATE = 16000


def _utterance(words: list[tuple[float, float]], seconds: float, f0: float, seed: int):
    """Harmonic 'words' at the given times, silence between (a stand-in for real speech)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(int(seconds * RATE)) * 1e-4  # a faint noise floor
    for start, end in words:
        t = np.arange(int(start * RATE), int(end * RATE))
        x[t] += 0.2 * sum(np.sin(2 * np.pi * f0 * k * t / RATE) / k for k in range(1, 5))
    return x.astype(np.float32)


def _aligned_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "utts"
    vocabulary = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    for s, speaker in enumerate(["11", "22", "33"]):
        lines = []
        for u in range(2):
            uri = f"{speaker}-100-{u:04d}"
            times, t = [], 0.3
            for _ in range(12):
                times.append((t, t + 0.3))
                t += 0.3 + (0.4 if len(times) % 4 == 0 else 0.05)
            path = folder / speaker / "100" / f"{uri}.flac"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), _utterance(times, t + 0.3, 110 + 60 * s, u), RATE)
            tokens, ends, last = [""], [f"{times[0][0]:.3f}"], None
            for i, (a, b) in enumerate(times):
                if last is not None and a > last:
                    tokens.append("")
                    ends.append(f"{a:.3f}")
                tokens.append(vocabulary[(i + u) % len(vocabulary)].upper())
                ends.append(f"{b:.3f}")
                last = b
            lines.append(f'{uri} "{",".join(tokens)}" "{",".join(ends)}"')
        (folder / speaker / "100" / f"{speaker}-100.alignment.txt").write_text(
            "\n".join(lines) + "\n")
    return folder


def test_aligned_mixture_has_exact_words_and_short_turns(tmp_path):
    folder = _aligned_folder(tmp_path)
    speakers = scan_utterances(folder)
    assert sorted(speakers) == ["11", "22", "33"]
    assert all(u.words and len(u.words) == 12 for us in speakers.values() for u in us)
    [rec] = load_mixtures(folder, root=tmp_path / "cache", n_conversations=1, n_speakers=3,
                          minutes=1.5, seed=2, backchannel_rate=0.4, mean_words=6)
    assert rec.words and rec.meta["words"] == "aligned"
    assert set(rec.speakers) == {"11", "22", "33"}
    audio = rec.load_audio().astype(np.float64) / 32767
    for word in rec.words:
        # every reference word covers a harmonic burst: loud in the middle of the word
        mid = int((word.start + word.end) / 2 * RATE)
        assert np.sqrt(np.mean(audio[mid - 400:mid + 400] ** 2)) > 0.01
        segments = rec.reference.label_timeline(word.speaker)
        assert any(s.start - 1e-3 <= word.start and word.end <= s.end + 1e-3 for s in segments)
    # back-channel-sized turns exist: RTTM segments holding one or two words
    counts = [sum(1 for w in rec.words if w.speaker == label and s.start - 1e-3 <= w.start < s.end)
              for s, _, label in rec.reference.itertracks(yield_label=True)]
    assert min(counts) >= 1 and sum(c <= 2 for c in counts) >= 5
    # deterministic and cached
    again = load("mixtures", folder=folder, root=tmp_path / "other", n_conversations=1,
                 n_speakers=3, minutes=1.5, seed=2, backchannel_rate=0.4, mean_words=6)
    assert again[0].audio_path.read_bytes() == rec.audio_path.read_bytes()


def test_librispeech_utterances_without_alignments(tmp_path):
    folder = shared_data("librispeech-utterances")
    [rec] = load_mixtures(folder, root=tmp_path, n_conversations=1, n_speakers=4, minutes=3,
                          seed=0, overlap_rate=0.2)
    assert rec.words is None and rec.meta["words"] == "none (no alignments)"
    assert len(rec.speakers) == 4 and set(rec.speakers) <= set(scan_utterances(folder))
    audio = rec.load_audio().astype(np.float64) / 32767
    assert len(audio) == 3 * 60 * RATE
    frame = 160
    n = len(audio) // frame
    rms = np.sqrt(np.mean(audio[:n * frame].reshape(n, frame) ** 2, axis=1))
    times = (np.arange(n) + 0.5) / 100
    labelled = np.zeros(n, dtype=bool)
    for segment in rec.reference.get_timeline().support():
        labelled |= (times >= segment.start) & (times <= segment.end)
    # speech is where the RTTM says: labelled frames are far louder than unlabelled ones
    assert np.median(rms[labelled]) > 10 * np.median(rms[~labelled])
    starts = sorted(s.start for s in rec.reference.get_timeline().support())
    assert len(starts) > 30


def test_mixture_errors(tmp_path):
    folder = _aligned_folder(tmp_path)
    with pytest.raises(DatasetError, match="4 speakers requested but the folder has 3"):
        load_mixtures(folder, root=tmp_path / "c", n_conversations=1, n_speakers=4, minutes=0.5)
    bad = next(folder.rglob("*.alignment.txt"))
    bad.write_text('11-100-0000 "A,B" "0.1"\n')
    with pytest.raises(DatasetError, match="alignment.txt:1: 2 tokens but 1 times"):
        scan_utterances(folder)
    with pytest.raises(DatasetError, match="not a directory"):
        scan_utterances(tmp_path / "missing")


def test_noisy_mixtures_keep_everything_under_the_given_root(tmp_path, monkeypatch):
    """load("noisy", dataset="mixtures", root=R): the mixtures are generated under R too
    (root "is shared by both"), not in the default cache."""
    monkeypatch.setenv("DIAREVAL_DATA", str(tmp_path / "default-cache"))
    folder = _aligned_folder(tmp_path)
    [rec] = load("noisy", dataset="mixtures", folder=folder, root=tmp_path / "root",
                 noise="white", snr=10, n_conversations=1, n_speakers=3, minutes=0.5, seed=1,
                 mean_words=6)
    assert (tmp_path / "root" / "mixtures").is_dir()
    assert Path(rec.meta["clean_audio"]).is_relative_to(tmp_path / "root")
    assert not (tmp_path / "default-cache").exists()


def test_publish_folder_keeps_the_copy_another_process_published(tmp_path):
    """Two processes building one cached set: the second to finish finds the first's copy
    (before its rename, or after it, when the rename fails because the target is full) and
    drops its own; a target that is not a finished copy is an error, not silently kept."""
    from diareval.datasets.download import publish_folder

    def build(name, text):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "dataset.json").write_text(text)
        return folder

    target = tmp_path / "set"
    publish_folder(build("a.tmp", "first"), target)
    assert (target / "dataset.json").read_text() == "first" and not (tmp_path / "a.tmp").exists()
    publish_folder(build("b.tmp", "second"), target)  # theirs was there before the rename
    assert (target / "dataset.json").read_text() == "first" and not (tmp_path / "b.tmp").exists()

    # the race itself: the other copy lands between the check and the rename
    import diareval.datasets.download as download
    late = tmp_path / "late"
    real_replace = download.os.replace

    def replace_after_the_other(src, dst):
        if Path(dst) == late and not late.exists():
            real_replace(build("other.tmp", "other"), late)
        return real_replace(src, dst)

    download.os.replace = replace_after_the_other
    try:
        publish_folder(build("c.tmp", "mine"), late)
    finally:
        download.os.replace = real_replace
    assert (late / "dataset.json").read_text() == "other" and not (tmp_path / "c.tmp").exists()

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "half.wav").write_text("")
    with pytest.raises(OSError):
        publish_folder(build("d.tmp", "x"), broken)
