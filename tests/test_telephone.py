"""Telephone material: the narrow-band channel (band, mu-law steps, packet loss, determinism,
cached copies) and the phone-call turn-taking profile (gaps, back-channels, overlaps)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import shared_data
from diareval.datasets import DatasetError, load, load_folder
from diareval.datasets.audio import mulaw_decode, mulaw_encode
from diareval.datasets.synthetic import ConversationSpec, _Clip
from diareval.datasets.telephone import TelephoneChannel, add_telephone
from diareval.datasets.turntaking import PROFILES, schedule_conversation

RATE = 16000


# ---------------------------------------------------------------- the channel


def _band_gain_db(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Output over input power in [lo, hi) Hz, in dB: Welch periodograms (Hann windows of
    4096 samples; a plain FFT of the whole signal leaks about -40 dB into the stop bands)."""
    from scipy.signal import welch

    f, px = welch(x.astype(np.float64), RATE, nperseg=4096)
    _, py = welch(y.astype(np.float64), RATE, nperseg=4096)
    band = (f >= lo) & (f < hi)
    return float(10 * np.log10(py[band].sum() / px[band].sum()))


@pytest.fixture(scope="module")
def white():
    return (np.random.default_rng(0).standard_normal(10 * RATE) * 3000).astype(np.int16)


@pytest.mark.parametrize("codec", ["mulaw", "none"])
def test_the_channel_is_narrow_band(white, codec):
    """White noise through the channel: flat in the voice band, little left outside it
    (the mu-law quantisation noise, white over 0-4 kHz, sets the floor with the codec)."""
    out, lost = TelephoneChannel(codec=codec).apply(white)
    assert len(out) == len(white) and out.dtype == np.int16 and not lost.any()
    bands = [_band_gain_db(white, out, lo, lo + 250) for lo in range(500, 3000, 250)]
    assert max(bands) - min(bands) < 1.5, bands  # flat pass band
    passband = float(np.mean(bands))
    assert abs(passband) < 1.5
    above = _band_gain_db(white, out, 3400, 8000) - passband
    below = _band_gain_db(white, out, 0, 300) - passband
    assert above < -18, above  # most of it is the 3.4-3.6 kHz edge of the filter
    assert _band_gain_db(white, out, 4000, 8000) - passband < -50  # the 8 kHz rate
    assert below < -15, below
    floor = -30 if codec == "mulaw" else -45
    assert _band_gain_db(white, out, 0, 200) - passband < floor


def test_mulaw_step_sizes():
    """G.711: segment e has 16 levels 8 << e apart (16-bit units); every sample decodes to
    within half a step; the codec agrees with the server's table (written separately)."""
    from diareval.server.protocol import MULAW_TO_INT16, encode_mulaw

    levels = np.unique(mulaw_decode(np.arange(256, dtype=np.uint8)).astype(int))
    positive = levels[levels >= 0]
    assert len(positive) == 128 and positive[0] == 0 and positive[-1] == 32124
    for e in range(8):
        segment = positive[16 * e:16 * (e + 1)]
        assert set(np.diff(segment)) == {8 << e}, (e, segment)
    x = np.arange(-32635, 32636)
    codes = mulaw_encode(x.astype(np.int16))
    decoded = mulaw_decode(codes).astype(int)
    exponent = (~codes.astype(int) >> 4) & 0x07
    assert np.all(np.abs(decoded - x) <= (8 << exponent) // 2)
    assert np.array_equal(mulaw_decode(np.arange(256, dtype=np.uint8)), MULAW_TO_INT16)
    assert np.array_equal(codes, np.frombuffer(encode_mulaw(x.astype(np.int16)), np.uint8))
    assert np.all(np.diff(mulaw_decode(mulaw_encode(np.arange(-32768, 32768)))) >= 0)


def test_mulaw_keeps_about_38_db_snr_at_speech_levels(white):
    """Companding: the SNR is nearly level-independent (8-bit mu-law: ~38 dB)."""
    for scale in (0.1, 1.0, 3.0):
        x = np.clip(white * scale, -32768, 32767).astype(np.int16)
        err = mulaw_decode(mulaw_encode(x)).astype(float) - x
        snr = 10 * np.log10(np.mean(x.astype(float) ** 2) / np.mean(err ** 2))
        assert 34 < snr < 40, (scale, snr)


def test_packet_loss_rate_and_concealment(white):
    channel = TelephoneChannel(loss=0.1, loss_seed=3)
    lost = channel.lost_packets(20_000, "rec")
    assert abs(lost.mean() - 0.1) < 4 * np.sqrt(0.1 * 0.9 / 20_000)
    assert not np.array_equal(lost, channel.lost_packets(20_000, "other"))  # per recording
    out, lost = channel.apply(white, "rec")
    assert len(lost) == 500 and 0.05 < lost.mean() < 0.15  # 10 s of 20 ms packets
    narrow = channel.narrowband(white)
    zeros = channel.conceal(narrow, lost)
    repeat = TelephoneChannel(loss=0.1, concealment="repeat").conceal(narrow, lost)
    f = channel.frame_samples
    assert f == 160
    for i in np.flatnonzero(lost):
        assert not zeros[i * f:(i + 1) * f].any()
        last = max((j for j in range(i) if not lost[j]), default=None)
        expected = narrow[last * f:(last + 1) * f] if last is not None else np.zeros(f)
        assert np.array_equal(repeat[i * f:(i + 1) * f], expected)
    # at 16 kHz the middle of a lost packet (concealed by silence) is (nearly) silent
    i = next(i for i in np.flatnonzero(lost) if 0 < i < len(lost) - 1
             and not lost[i - 1] and not lost[i + 1])
    middle = out[2 * i * f + 80:2 * (i + 1) * f - 80].astype(float)
    assert np.sqrt(np.mean(middle ** 2)) < 0.05 * np.sqrt(np.mean(out.astype(float) ** 2))


def test_same_settings_same_bytes(white):
    channel = TelephoneChannel(loss=0.05, concealment="repeat", loss_seed=1)
    a, lost_a = channel.apply(white, "x")
    b, lost_b = TelephoneChannel(loss=0.05, concealment="repeat", loss_seed=1).apply(white, "x")
    assert a.tobytes() == b.tobytes() and np.array_equal(lost_a, lost_b)
    c, _ = TelephoneChannel(loss=0.05, concealment="repeat", loss_seed=2).apply(white, "x")
    assert c.tobytes() != a.tobytes()
    short = channel.apply(white[:10], "x")[0]  # shorter than the filter's padding
    assert len(short) == 10


def _folder(tmp_path: Path, n: int = 2, seconds: float = 4.0) -> Path:
    folder = tmp_path / "clean"
    folder.mkdir()
    for i in range(n):
        rng = np.random.default_rng(i)
        audio = (rng.standard_normal(int(seconds * RATE)) * 2000).astype(np.int16)
        audio[: RATE // 2] = 0
        sf.write(str(folder / f"rec{i}.wav"), audio, RATE, subtype="PCM_16")
        (folder / f"rec{i}.rttm").write_text(
            f"SPEAKER rec{i} 1 0.500 {seconds - 1:.3f} <NA> <NA> S{i} <NA> <NA>\n")
        (folder / f"rec{i}.uem").write_text(f"rec{i} 1 0.250 {seconds - 0.25:.3f}\n")
    return folder


def test_derived_copies_are_cached_and_keep_the_references(tmp_path):
    folder = _folder(tmp_path)
    clean = load_folder(folder)
    first = load("telephone", dataset=str(folder), loss=0.1, root=tmp_path / "cache")
    assert [r.uri for r in first] == [r.uri for r in clean]
    for a, b in zip(clean, first):
        assert b.reference == a.reference and b.uem == a.uem and b.words == a.words
        assert b.duration == a.duration and b.audio_path != a.audio_path
        assert b.meta["telephone"]["loss"] == 0.1 and 0 < b.meta["lost_packets"] < 0.3
        assert b.meta["dataset"].endswith("+telephone")
    stamp = first[0].audio_path.stat().st_mtime_ns
    again = add_telephone(load_folder(folder), TelephoneChannel(loss=0.1),
                          root=tmp_path / "cache")
    assert again[0].audio_path == first[0].audio_path
    assert again[0].audio_path.stat().st_mtime_ns == stamp
    assert again[0].meta["lost_packets"] == first[0].meta["lost_packets"]
    as_folder = load_folder(first[0].audio_path.parent)  # a dataset of its own
    assert [r.uri for r in as_folder] == [r.uri for r in first]
    assert as_folder[0].uem.duration() == pytest.approx(clean[0].uem.duration(), abs=1e-3)
    other = add_telephone(load_folder(folder), TelephoneChannel(loss=0.1, loss_seed=5),
                          root=tmp_path / "other")
    assert other[0].audio_path.read_bytes() != first[0].audio_path.read_bytes()
    same = add_telephone(load_folder(folder), TelephoneChannel(loss=0.1),
                         root=tmp_path / "same")
    assert same[0].audio_path.read_bytes() == first[0].audio_path.read_bytes()



def _build_copies(args):
    folder, root = args
    out = add_telephone(load_folder(folder), TelephoneChannel(loss=0.1), root=root)
    return [(r.audio_path, r.audio_path.read_bytes(), r.meta["lost_packets"]) for r in out]


def test_concurrent_builds_of_one_set_agree(tmp_path):
    """Four processes building the same copies at once (two runs, or a run and a benchmark)
    all get the same, whole files; no temporary folder is left behind."""
    import multiprocessing

    folder, root = _folder(tmp_path), tmp_path / "cache"
    with multiprocessing.get_context("fork").Pool(4) as pool:
        results = pool.map(_build_copies, [(folder, root)] * 4)
    assert all(result == results[0] for result in results)
    built = results[0][0][0].parent
    assert sorted(p.name for p in built.parent.iterdir()) == [built.name]
    assert all(sf.info(str(path)).frames > 0 for path, _, _ in results[0])


def test_an_unfinished_copy_is_rebuilt(tmp_path):
    """A folder a crashed build left (a truncated losses.json, no telephone.json) is built
    again, not read."""
    folder, root = _folder(tmp_path), tmp_path / "cache"
    first = add_telephone(load_folder(folder), TelephoneChannel(loss=0.1), root=root)
    built = first[0].audio_path.parent
    (built / "telephone.json").unlink()
    (built / "losses.json").write_text('{"a": 0.1')
    again = add_telephone(load_folder(folder), TelephoneChannel(loss=0.1), root=root)
    assert [r.meta["lost_packets"] for r in again] == [r.meta["lost_packets"] for r in first]
    assert (built / "telephone.json").exists()

def test_telephone_errors(tmp_path):
    with pytest.raises(DatasetError, match="loss must be a probability"):
        TelephoneChannel(loss=1.5).validate()
    with pytest.raises(DatasetError, match="concealment must be one of zeros, repeat"):
        load("telephone", dataset=str(_folder(tmp_path)), concealment="fade")
    with pytest.raises(DatasetError, match="low < high"):
        TelephoneChannel(low=3400, high=300).validate()


# ---------------------------------------------------------------- the call profile


def _tone_turns(seconds_per_word: float = 0.3):
    """make_turn for schedule_conversation: a steady tone per turn, n_words x 0.3 s long."""
    def make_turn(k: int, n_words: int):
        n = int(n_words * seconds_per_word * RATE)
        t = np.arange(n) / RATE
        samples = (0.05 * np.sin(2 * np.pi * (150 + 60 * k) * t)).astype(np.float32)
        words = [(int(i * seconds_per_word * RATE), int((i + 1) * seconds_per_word * RATE),
                  f"w{i}") for i in range(n_words)]
        return _Clip(samples, [(0, n)], words), " ".join(w[2] for w in words), n_words
    return make_turn


@pytest.fixture(scope="module")
def call():
    spec = ConversationSpec().with_options("synthetic", profile="call", minutes=20, seed=11)
    rng = np.random.default_rng(11)
    return spec, schedule_conversation(spec, rng, "call", ["A", "B"], _tone_turns())


def test_call_profile_values():
    spec = ConversationSpec().with_options("synthetic", profile="call")
    assert spec.n_speakers == 2 and spec.pause_min == 0.0 and spec.pause_max == 0.3
    assert 0.1 <= spec.backchannel_rate <= 0.2 and spec.overlap_rate > 0
    assert spec.key() != ConversationSpec().key()
    # options given explicitly win over the profile's
    assert ConversationSpec().with_options("synthetic", profile="call",
                                           backchannel_rate=0.1).backchannel_rate == 0.1
    assert ConversationSpec().with_options("synthetic", profile="default") == ConversationSpec()
    assert set(PROFILES["call"]) <= set(ConversationSpec.__dataclass_fields__)
    with pytest.raises(DatasetError, match="unknown mixture profile 'meeting'"):
        ConversationSpec().with_options("mixture", profile="meeting")


def test_call_profile_statistics(call):
    """From the reference alone: speaker changes every turn, no silence between turns over
    0.3 s (mean ~0.15 s), 10-20% back-channels, 15-25% of changes overlapped by 0.15-0.45 s."""
    _, conversation = call
    segments = sorted((s.start, s.end, label) for s, _, label in
                      conversation.reference.itertracks(yield_label=True))
    assert len(segments) > 300  # 20 minutes of quick turns
    assert {label for *_, label in segments} == {"A", "B"}
    assert all(a[2] != b[2] for a, b in zip(segments, segments[1:]))  # alternating
    gaps = np.array([b[0] - a[1] for a, b in zip(segments, segments[1:])])
    silences, overlaps = gaps[gaps >= 0], -gaps[gaps < 0]
    assert silences.max() <= 0.3 + 1e-3
    assert 0.13 < silences.mean() < 0.17  # uniform on [0, 0.3]
    assert 0.1 < np.mean(silences < 0.1) < 0.45  # spread over the range, not one value
    assert 0.15 <= len(overlaps) / len(gaps) <= 0.25
    assert overlaps.min() >= 0.15 - 1e-3 and overlaps.max() <= 0.45 + 1e-3
    lengths = np.array([b - a for a, b, _ in segments])
    backchannel = np.mean(lengths <= 2 * 0.3 + 1e-6)  # 1-2 words of 0.3 s
    assert 0.10 <= backchannel <= 0.20, backchannel


def test_default_profile_is_unchanged():
    """The scheduler's default statistics (pauses 0.1 s + exponential) are not the call's."""
    spec = ConversationSpec(n_speakers=2, minutes=20, seed=11)
    conversation = schedule_conversation(spec, np.random.default_rng(11), "d", ["A", "B"],
                                         _tone_turns())
    segments = sorted((s.start, s.end) for s, _ in conversation.reference.itertracks())
    gaps = np.array([b[0] - a[1] for a, b in zip(segments, segments[1:])])
    assert gaps[gaps >= 0].min() >= 0.1 - 1e-3 and gaps.max() > 1.0


def test_espeak_call_has_short_gaps_and_two_voices():
    pytest.importorskip("espeakng_loader")
    from diareval.datasets.synthetic import generate_conversation

    spec = ConversationSpec().with_options("synthetic", profile="call", minutes=1, seed=2)
    conversation = generate_conversation(spec, 0)
    assert len(set(conversation.voices.values())) == 2
    turns = conversation.turns
    gaps = np.array([b.start - max(t.end for t in turns[:i + 1])
                     for i, b in enumerate(turns[1:])])
    assert gaps.max() <= 0.3 + 1e-3 and (gaps < 0).any()
    support = list(conversation.reference.get_timeline().support())
    silences = [b.start - a.end for a, b in zip(support, support[1:])]
    assert max(silences) <= 0.3 + 1e-3  # no silence over 0.3 s anywhere in the call
    words = conversation.words
    changes = [b.start - a.end for a, b in zip(words, words[1:]) if a.speaker != b.speaker]
    assert len(changes) > 15 and np.median(changes) < 0.3


def test_calls_from_librispeech_utterances(tmp_path):
    folder = shared_data("librispeech-utterances")
    recordings = load("calls", seed=1, folder=str(folder), n_conversations=1, minutes=0.5,
                      root=tmp_path)
    [rec] = recordings
    assert len(rec.speakers) == 2 and rec.duration == pytest.approx(30.0)
    assert rec.meta["telephone"]["rate"] == 8000 and rec.meta["dataset"].endswith("+telephone")
    audio = rec.load_audio().astype(np.float64)
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    f = np.fft.rfftfreq(len(audio), 1 / RATE)
    assert spectrum[f > 4000].sum() < 1e-4 * spectrum.sum()
    again = load("calls", seed=1, folder=str(folder), n_conversations=1, minutes=0.5,
                 root=tmp_path)
    assert again[0].audio_path == rec.audio_path


def test_call_mixture_of_aligned_utterances(tmp_path):
    """The call profile through the mixtures generator (real-utterance path, generated
    audio): two of the folder's speakers, gaps 0-0.3 s, back-channels and overlaps as asked."""
    from test_synthetic_mixtures import _aligned_folder

    from diareval.datasets.mixtures import generate_mixture, scan_utterances
    from diareval.datasets.turntaking import realized_statistics

    speakers = scan_utterances(_aligned_folder(tmp_path))
    spec = ConversationSpec().with_options("mixture", profile="call", minutes=10, seed=4)
    conversation = generate_mixture(speakers, spec, 0)
    turns = conversation.turns
    assert len({t.speaker for t in turns}) == 2
    assert all(a.speaker != b.speaker for a, b in zip(turns, turns[1:]))
    gaps = np.array([b.start - max(t.end for t in turns[:i + 1])
                     for i, b in enumerate(turns[1:])])
    assert gaps.max() <= 0.3 + 1e-3 and 0.1 < gaps[gaps >= 0].mean() < 0.2
    stats = realized_statistics(turns)
    assert 0.10 <= stats["backchannel_share"] <= 0.20, stats
    assert 0.15 <= stats["overlap_rate"] <= 0.25, stats
    # 1-2 word turns are real words cut at word boundaries
    assert all(len(t.text.split()) == t.n_words for t in turns)


def test_calls_with_espeak_voices(tmp_path):
    pytest.importorskip("espeakng_loader")
    [rec] = load("calls", source="synthetic", seed=1, n_conversations=1, minutes=0.3,
                 root=tmp_path)
    assert len(rec.speakers) == 2 and rec.meta["spec"]["profile"] == "call"
    assert rec.meta["telephone"]["codec"] == "mulaw" and rec.meta["lost_packets"] == 0.0
    with pytest.raises(DatasetError, match="source must be 'mixtures' or 'synthetic'"):
        load("calls", source="ami", root=tmp_path)
