"""Telephone channel: derived copies of any dataset as heard through a narrow-band call.

The channel, in order (:class:`TelephoneChannel`):

1. band-pass ``low``-``high`` Hz (300-3400 Hz, the G.712 voice band): a Butterworth filter
   of order ``order`` (6) run forwards and backwards (``scipy.signal.sosfiltfilt``), so it
   has no delay and the reference times stay exact (a real line's phase distortion is
   left out);
2. resample to ``rate`` (8 kHz) with soxr (high quality; its anti-alias filter removes
   everything above 4 kHz);
3. G.711 mu-law companding, encode and decode (8 bits per sample; the quantisation step
   grows with the level, 8 ... 1024 in 16-bit units), when ``codec="mulaw"``;
4. optional packet loss: the 8 kHz signal is cut into ``frame_ms`` (20 ms) packets and each
   is lost independently with probability ``loss`` (seeded: ``loss_seed`` and the
   recording's uri). Concealment ``"zeros"``: a lost packet is silence;
   ``"repeat"``: the last packet received is played again (silence before the first);
5. back to 16 kHz (soxr) and int16, the same number of samples as the input.

References, UEMs and words are unchanged: the channel removes information, it does not
move speech. Derived copies are cached like the noisy ones:
``<root>/telephone/<source dataset>-<hash>/<uri>.wav`` (+ RTTM and UEM beside it, so the
folder is itself a loadable dataset), the hash covering the channel settings and the
identity of every source file.

Registered names: ``telephone`` (any dataset through the channel) and ``calls``
(2-speaker phone-call mixtures of real utterances through the channel: the development
sets of quick turn-taking on narrow-band audio), see :func:`load_calls`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zlib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from scipy import signal

from diareval.datasets.audio import SAMPLE_RATE, float_to_int16, mulaw_decode, mulaw_encode
from diareval.datasets.download import cache_root
from diareval.datasets.noise import _source_identity
from diareval.datasets.recording import Recording
from diareval.datasets.rttm import format_rttm, format_uem
from diareval.errors import DatasetError

TELEPHONE_VERSION = 1
CONCEALMENTS = ("zeros", "repeat")
CODECS = ("mulaw", "none")


@dataclass(frozen=True)
class TelephoneChannel:
    """Settings of the narrow-band channel (see the module docstring for each step)."""

    low: float = 300.0
    high: float = 3400.0
    order: int = 6
    rate: int = 8000
    codec: str = "mulaw"
    loss: float = 0.0
    frame_ms: float = 20.0
    concealment: str = "zeros"
    loss_seed: int = 0

    def validate(self) -> "TelephoneChannel":
        """Raise a DatasetError naming the bad setting; return self."""
        problems = []
        if not 0 < self.low < self.high < self.rate / 2:
            problems.append(f"need 0 < low < high < rate/2, got low={self.low}, "
                            f"high={self.high}, rate={self.rate}")
        if not 0 < self.rate <= SAMPLE_RATE:
            problems.append(f"rate must be in (0, {SAMPLE_RATE}], got {self.rate}")
        if not 1 <= self.order <= 12:
            problems.append(f"order must be in [1, 12], got {self.order}")
        if self.codec not in CODECS:
            problems.append(f"codec must be one of {', '.join(CODECS)}, got {self.codec!r}")
        if not 0 <= self.loss < 1:
            problems.append(f"loss must be a probability in [0, 1), got {self.loss}")
        if self.frame_ms <= 0 or (self.frame_ms * self.rate / 1000) % 1:
            problems.append(f"frame_ms must be > 0 and a whole number of samples at "
                            f"{self.rate} Hz, got {self.frame_ms}")
        if self.concealment not in CONCEALMENTS:
            problems.append(f"concealment must be one of {', '.join(CONCEALMENTS)}, "
                            f"got {self.concealment!r}")
        if problems:
            raise DatasetError("bad telephone channel: " + "; ".join(problems))
        return self

    @property
    def frame_samples(self) -> int:
        """Samples per packet at the channel rate."""
        return int(round(self.frame_ms * self.rate / 1000))

    def lost_packets(self, n_packets: int, uri: str = "") -> np.ndarray:
        """Which of ``n_packets`` packets are lost (bool), from ``loss_seed`` and ``uri``."""
        seed = np.random.SeedSequence([int(self.loss_seed), zlib.crc32(uri.encode())])
        return np.random.default_rng(seed).random(n_packets) < self.loss

    def narrowband(self, audio: np.ndarray) -> np.ndarray:
        """Steps 1-3: 16 kHz int16 in, ``rate`` int16 out (band-passed, companded)."""
        x = np.asarray(audio, dtype=np.float64) / 32768.0
        sos = signal.butter(self.order, [self.low, self.high], btype="bandpass",
                            fs=SAMPLE_RATE, output="sos")
        if len(x) > 1:  # odd-extension padding as scipy's default, shorter for tiny inputs
            x = signal.sosfiltfilt(sos, x, padlen=min(3 * (2 * len(sos) + 1), len(x) - 1))
        narrow = float_to_int16(soxr.resample(x, SAMPLE_RATE, self.rate, quality="HQ"))
        if self.codec == "mulaw":
            narrow = mulaw_decode(mulaw_encode(narrow))
        return narrow

    def conceal(self, narrow: np.ndarray, lost: np.ndarray) -> np.ndarray:
        """Step 4: packets marked ``lost`` replaced by silence or by the last one received."""
        out = narrow.copy()
        f = self.frame_samples
        last = np.zeros(f, dtype=out.dtype)
        for i in range(len(lost)):
            packet = out[i * f:(i + 1) * f]
            if lost[i]:
                packet[:] = 0 if self.concealment == "zeros" else last[:len(packet)]
            elif len(packet) == f:
                last = packet.copy()
        return out

    def apply(self, audio: np.ndarray, uri: str = "") -> tuple[np.ndarray, np.ndarray]:
        """The whole channel: (16 kHz int16 audio of the same length, lost-packet mask)."""
        narrow = self.narrowband(audio)
        lost = self.lost_packets(-(-len(narrow) // self.frame_samples), uri)
        if lost.any():
            narrow = self.conceal(narrow, lost)
        wide = soxr.resample(narrow.astype(np.float64) / 32768.0, self.rate, SAMPLE_RATE,
                             quality="HQ")
        n = len(audio)
        wide = np.pad(wide[:n], (0, max(0, n - len(wide))))
        return float_to_int16(wide), lost


def channel_from(options: dict) -> TelephoneChannel:
    """A validated :class:`TelephoneChannel` from the channel settings among ``options``
    (removed from it; the rest is left for the source dataset)."""
    names = {f.name for f in fields(TelephoneChannel)}
    settings = {k: options.pop(k) for k in list(options) if k in names}
    return TelephoneChannel(**settings).validate()


def add_telephone(recordings: list[Recording], channel: TelephoneChannel | None = None,
                  root: str | Path | None = None, name: str | None = None) -> list[Recording]:
    """Copies of ``recordings`` through the telephone ``channel`` (cached); same references,
    UEMs and words. ``meta["lost_packets"]`` is the share of packets lost."""
    channel = (channel or TelephoneChannel()).validate()
    if not recordings:
        return []
    settings = {"channel": asdict(channel), "sources": _source_identity(recordings),
                "version": TELEPHONE_VERSION}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    label = name or str(recordings[0].meta.get("dataset", "dataset"))
    folder = cache_root(root) / "telephone" / f"{label.replace('/', '_').replace(':', '_')}-{digest}"
    losses = _complete(folder, recordings) or _build(folder, recordings, channel, settings)
    out = []
    for rec in recordings:
        meta = dict(rec.meta)
        meta.update({"derived_from": meta.get("dataset"), "telephone": asdict(channel),
                     "lost_packets": losses[rec.uri], "clean_audio": str(rec.audio_path),
                     "dataset": f"{meta.get('dataset', 'dataset')}+telephone"})
        out.append(Recording(uri=rec.uri, audio_path=folder / f"{rec.uri}.wav",
                             reference=rec.reference, uem=rec.uem, words=rec.words, meta=meta))
    return out


def _complete(folder: Path, recordings: list[Recording]) -> dict | None:
    """The share of packets lost per recording when ``folder`` holds a finished copy of
    every recording, else None (``telephone.json`` is written last, so a folder without it
    is someone's unfinished or an old layout)."""
    if not (folder / "telephone.json").exists() or not (folder / "losses.json").exists():
        return None
    try:
        losses = json.loads((folder / "losses.json").read_text())
    except ValueError:
        return None
    whole = all(rec.uri in losses and (folder / f"{rec.uri}.wav").exists() for rec in recordings)
    return losses if whole else None


def _build(folder: Path, recordings: list[Recording], channel: TelephoneChannel,
           settings: dict) -> dict:
    """Write the channel's copies into a folder of this process's own, then publish it
    whole under ``folder``, and return the share of packets lost per recording: two processes building the same set at once (two runs, or a
    run and a benchmark) never read each other's half-written files; the one that
    finishes second keeps the first one's copy (the copies are equal: seeded)."""
    tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    losses = {}
    try:
        for rec in recordings:
            audio, lost = channel.apply(rec.load_audio(), rec.uri)
            sf.write(str(tmp / f"{rec.uri}.wav"), audio, SAMPLE_RATE, subtype="PCM_16",
                     format="WAV")
            losses[rec.uri] = float(lost.mean()) if lost.size else 0.0
            (tmp / f"{rec.uri}.rttm").write_text(format_rttm(rec.reference, rec.uri))
            (tmp / f"{rec.uri}.uem").write_text(format_uem(rec.uem, rec.uri))
        (tmp / "losses.json").write_text(json.dumps(losses, indent=1, sort_keys=True) + "\n")
        (tmp / "telephone.json").write_text(json.dumps(settings, indent=1) + "\n")
        theirs = _complete(folder, recordings)
        if theirs is not None:  # another process finished first: keep theirs
            return theirs
        if folder.exists():  # unfinished (a crash) or an older layout: set it aside
            old = folder.with_name(folder.name + f".old-{os.getpid()}")
            os.replace(folder, old)
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process published between the check and the rename
            theirs = _complete(folder, recordings)
            if theirs is None:
                raise
            return theirs
        return losses
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_telephone(dataset: str = "synthetic", root: str | Path | None = None,
                   **options) -> list[Recording]:
    """Registry loader: ``load("telephone", dataset="mixtures", folder=..., seed=3, loss=0.02)``.

    Channel settings (:class:`TelephoneChannel` fields: ``low``, ``high``, ``order``,
    ``rate``, ``codec``, ``loss``, ``frame_ms``, ``concealment``, ``loss_seed``) are taken
    out of ``options``; the rest (``seed`` included) go to the source dataset's loader."""
    from diareval.datasets import load

    channel = channel_from(options)
    if root is not None and dataset in ("synthetic", "ami", "mixtures", "noisy", "calls"):
        options["root"] = root
    return add_telephone(load(dataset, **options), channel, root=root)


CALLS_FOLDER = "librispeech-utterances"


def default_utterances() -> Path:
    """Where :func:`load_calls` finds utterances without a ``folder``: ``$DIAREVAL_UTTERANCES``,
    else ``../shared/data/librispeech-utterances`` from the working directory or from the
    source checkout."""
    candidates = [Path(os.environ["DIAREVAL_UTTERANCES"])] \
        if os.environ.get("DIAREVAL_UTTERANCES") else []
    candidates += [Path.cwd().parent / "shared" / "data" / CALLS_FOLDER,
                   Path(__file__).resolve().parents[3].parent / "shared" / "data" / CALLS_FOLDER]
    for path in candidates:
        if path.is_dir():
            return path
    raise DatasetError("no utterance folder for 'calls': give folder=... or set "
                       "DIAREVAL_UTTERANCES (looked in " + ", ".join(map(str, candidates)) + ")")


def load_calls(seed: int = 0, folder: str | Path | None = None, source: str = "mixtures",
               n_conversations: int = 4, minutes: float = 1.5, n_speakers: int = 2,
               root: str | Path | None = None, **options) -> list[Recording]:
    """Phone-call development sets: ``load("calls", seed=S)``.

    ``n_conversations`` conversations of ``minutes`` (4 x 90 s), ``n_speakers`` (2), with
    the ``"call"`` turn-taking profile, mixed from the real utterances of ``folder``
    (default :func:`default_utterances`; ``source="synthetic"``: espeak-ng voices instead),
    through the :class:`TelephoneChannel` (no packet loss unless ``loss`` is given). Other
    options: :class:`TelephoneChannel` fields, then ConversationSpec fields (they win over
    the profile's values)."""
    from diareval.datasets.mixtures import load_mixtures
    from diareval.datasets.synthetic import load_synthetic

    channel = channel_from(options)
    spec = dict(profile="call", seed=seed, n_conversations=n_conversations, minutes=minutes,
                n_speakers=n_speakers, **options)
    if source == "mixtures":
        recordings = load_mixtures(folder if folder is not None else default_utterances(),
                                   root=root, **spec)
    elif source == "synthetic":
        recordings = load_synthetic(root=root, **spec)
    else:
        raise DatasetError(f"calls: source must be 'mixtures' or 'synthetic', got {source!r}")
    return add_telephone(recordings, channel, root=root)


__all__ = ["CONCEALMENTS", "TelephoneChannel", "add_telephone", "channel_from",
           "default_utterances", "load_calls", "load_telephone"]
