"""Conversations mixed from real single-speaker utterances (LibriSpeech-style folders).

The second source of generated conversations, for realism: real voices, with the same
turn-taking controls as the espeak-ng generator (:class:`ConversationSpec`: turn length,
back-channels, pauses, overlaps, session length, noise), cached by spec and by the
identity of the source files.

Folder layout: one sub-folder per speaker (``<folder>/<speaker>/**/<utt>.flac``, as in
LibriSpeech). Optional, anywhere below the folder:

- transcripts ``*.trans.txt`` (LibriSpeech: ``<utt> WORD WORD ...`` per line);
- word alignments, either ``*.alignment.txt`` (the librispeech-alignments format:
  ``<utt> ",WORD,,WORD," "0.50,0.80,..."`` with the end time of every token, empty
  tokens being silences) or CTM files ``*.ctm`` (``<utt> <channel> <start> <dur> <word>``).

What the reference contains depends on what the folder has:

- with alignments: turns are runs of consecutive aligned words with the requested word
  counts (so 1-2 word back-channels are real words cut at word boundaries); reference
  words are exact, speech regions are the words (pauses >= ``merge_gap`` split them);
- without alignments (e.g. ``../shared/data/librispeech-utterances``, audio only):
  **no reference words** (``Recording.words`` is None). Speech regions come from an
  energy detector (5 ms frames within 30 dB of the utterance's speech level, pauses
  shorter than ``merge_gap`` bridged), and turn length is controlled by duration
  (requested words x 0.37 s, LibriSpeech's mean word duration), cut at the quietest
  frame near that length. Transcripts alone do not give word times, so they are not
  used for reference words.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from pyannote.core import Annotation, Segment, Timeline

from diareval.datasets.audio import SAMPLE_RATE, load_audio
from diareval.datasets.download import cache_root, publish_folder
from diareval.datasets.recording import Recording
from diareval.datasets.rttm import format_rttm, load_rttm
from diareval.datasets.synthetic import (FRAME, ConversationSpec, _Clip, _runs,
                                         read_words, schedule_conversation, write_words)
from diareval.errors import DatasetError

MIXTURES_VERSION = 1
SECONDS_PER_WORD = 0.37
AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".mp3", ".sph")


@dataclass
class Utterance:
    """One source utterance: audio file, speaker, and word times if an alignment exists."""

    uri: str
    path: Path
    speaker: str
    words: list[tuple[float, float, str]] | None = None


def _parse_alignment_txt(path: Path) -> dict[str, list[tuple[float, float, str]]]:
    out = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        match = re.fullmatch(r'\s*(\S+)\s+"([^"]*)"\s+"([^"]*)"\s*', line)
        if not match:
            raise DatasetError(f"{path}:{number}: expected <utt> \"words\" \"end times\"")
        tokens = match.group(2).split(",")
        try:
            ends = [float(t) for t in match.group(3).split(",")]
        except ValueError:
            raise DatasetError(f"{path}:{number}: end times are not numbers") from None
        if len(tokens) != len(ends):
            raise DatasetError(f"{path}:{number}: {len(tokens)} tokens but {len(ends)} times")
        words, start = [], 0.0
        for token, end in zip(tokens, ends):
            if token.strip():
                words.append((start, end, token.strip()))
            start = end
        out[match.group(1)] = words
    return out


def _parse_ctm(path: Path) -> dict[str, list[tuple[float, float, str]]]:
    out: dict[str, list[tuple[float, float, str]]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith(";;"):
            continue
        if len(fields) < 5:
            raise DatasetError(f"{path}:{number}: CTM line needs <utt> <channel> <start> "
                               "<duration> <word>")
        try:
            start, duration = float(fields[2]), float(fields[3])
        except ValueError:
            raise DatasetError(f"{path}:{number}: start/duration are not numbers") from None
        out.setdefault(fields[0], []).append((start, start + duration, fields[4]))
    return out


def scan_utterances(folder: str | Path) -> dict[str, list[Utterance]]:
    """``{speaker: utterances}`` of a speaker-per-folder tree, with word alignments if any."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a directory")
    alignments: dict[str, list[tuple[float, float, str]]] = {}
    for path in sorted(folder.rglob("*.alignment.txt")):
        alignments.update(_parse_alignment_txt(path))
    for path in sorted(folder.rglob("*.ctm")):
        alignments.update(_parse_ctm(path))
    speakers: dict[str, list[Utterance]] = {}
    for speaker_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(p for p in speaker_dir.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        if files:
            speakers[speaker_dir.name] = [
                Utterance(p.stem, p, speaker_dir.name, alignments.get(p.stem)) for p in files]
    if not speakers:
        raise DatasetError(f"{folder}: no speaker folders with audio "
                           f"({', '.join(AUDIO_SUFFIXES)}) below it")
    return speakers


def _energy_regions(x: np.ndarray, merge_gap: float) -> list[tuple[int, int]]:
    n = len(x) // FRAME
    if n == 0:
        return []
    rms = np.sqrt(np.mean(x[:n * FRAME].reshape(n, FRAME).astype(np.float64) ** 2, axis=1))
    if rms.max() <= 0:
        return []
    loud = rms > rms.max() * 10 ** (-40 / 20)
    level = float(np.sqrt(np.mean(rms[loud] ** 2)))
    active = rms > level * 10 ** (-30 / 20)
    regions: list[list[int]] = []
    for a, b in _runs(active):
        if regions and (a * FRAME - regions[-1][1]) < merge_gap * SAMPLE_RATE:
            regions[-1][1] = b * FRAME
        else:
            regions.append([a * FRAME, b * FRAME])
    return [(a, b) for a, b in regions]


class _Source:
    """Cuts turns from one speaker's utterances (audio loaded once, 16 kHz float)."""

    def __init__(self, utterances: list[Utterance], rng: np.random.Generator, level: float,
                 merge_gap: float):
        self.utterances, self.rng, self.level, self.merge_gap = utterances, rng, level, merge_gap
        self.audio: dict[str, np.ndarray] = {}
        self.order: list[int] = []

    def _load(self, utterance: Utterance) -> np.ndarray:
        if utterance.uri not in self.audio:
            self.audio[utterance.uri] = load_audio(utterance.path).astype(np.float32) / 32768.0
        return self.audio[utterance.uri]

    def _next(self) -> Utterance:
        if not self.order:
            self.order = list(self.rng.permutation(len(self.utterances)))
        return self.utterances[self.order.pop()]

    def turn(self, n_words: int):
        utterance = self._next()
        x = self._load(utterance)
        if utterance.words:
            return self._aligned(utterance, x, n_words)
        return self._by_duration(utterance, x, n_words)

    def _finish(self, piece: np.ndarray, regions, words) -> _Clip:
        speech = np.zeros(len(piece), dtype=bool)
        for a, b in regions:
            speech[a:b] = True
        rms = float(np.sqrt(np.mean(piece[speech] ** 2))) if speech.any() else 0.0
        return _Clip((piece * (self.level / max(rms, 1e-6))).astype(np.float32), regions, words)

    def _aligned(self, utterance: Utterance, x: np.ndarray, n_words: int):
        words = utterance.words
        count = min(n_words, len(words))
        first = int(self.rng.integers(0, len(words) - count + 1))
        chosen = words[first:first + count]
        pad = 0.05
        lo = max(chosen[0][0] - pad, words[first - 1][1] if first > 0 else 0.0, 0.0)
        hi = min(chosen[-1][1] + pad, words[first + count][0] if first + count < len(words)
                 else len(x) / SAMPLE_RATE, len(x) / SAMPLE_RATE)
        a0 = int(round(lo * SAMPLE_RATE))
        piece = x[a0:int(round(hi * SAMPLE_RATE))]
        clip_words = [(int(round(s * SAMPLE_RATE)) - a0, int(round(e * SAMPLE_RATE)) - a0, t)
                      for s, e, t in chosen]
        regions: list[list[int]] = []
        for s, e, _ in clip_words:
            if regions and s - regions[-1][1] < self.merge_gap * SAMPLE_RATE:
                regions[-1][1] = max(regions[-1][1], e)
            else:
                regions.append([s, e])
        clip = self._finish(piece, [(a, b) for a, b in regions], clip_words)
        return clip, " ".join(t for _, _, t in chosen), count

    def _by_duration(self, utterance: Utterance, x: np.ndarray, n_words: int):
        regions = _energy_regions(x, self.merge_gap)
        if not regions:
            raise DatasetError(f"{utterance.path}: no speech found")
        target = int(n_words * SECONDS_PER_WORD * SAMPLE_RATE)
        begin = regions[int(self.rng.integers(len(regions)))][0]
        end = min(begin + target, regions[-1][1])
        if end < regions[-1][1]:  # cut at the quietest 5 ms frame within +-20% of the target
            lo, hi = begin + int(0.8 * target), min(begin + int(1.2 * target), len(x))
            n = max(1, (hi - lo) // FRAME)
            frames = x[lo:lo + n * FRAME].reshape(n, -1) if hi - lo >= FRAME else None
            if frames is not None:
                end = lo + int(np.argmin(np.mean(frames ** 2, axis=1))) * FRAME
        piece = x[begin:end]
        inside = [(max(a, begin) - begin, min(b, end) - begin) for a, b in regions
                  if b > begin and a < end]
        inside = [(a, b) for a, b in inside if b > a]
        if not inside:
            inside = [(0, len(piece))]
        # trim to the speech so the turn starts and ends with it
        piece = piece[inside[0][0]:inside[-1][1]]
        shift = inside[0][0]
        inside = [(a - shift, b - shift) for a, b in inside]
        return self._finish(piece, inside, []), f"[{utterance.uri}]", n_words


def _folder_identity(speakers: dict[str, list[Utterance]]) -> list:
    identity = []
    for speaker, utterances in sorted(speakers.items()):
        for u in utterances:
            stat = u.path.stat()
            identity.append([speaker, u.uri, stat.st_size, int(stat.st_mtime),
                             len(u.words) if u.words else 0])
    return identity


def generate_mixture(speakers: dict[str, list[Utterance]], spec: ConversationSpec,
                     index: int = 0, uri: str | None = None):
    """Conversation ``index`` mixed from real utterances (deterministic from the seed)."""
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, index, MIXTURES_VERSION]))
    n = spec.speakers_of(index)
    if n > len(speakers):
        raise DatasetError(f"{n} speakers requested but the folder has {len(speakers)}")
    names = sorted(speakers)
    chosen = [names[i] for i in sorted(rng.permutation(len(names))[:n])]
    sources = [_Source(speakers[name], rng, float(rng.uniform(0.045, 0.07)), spec.merge_gap)
               for name in chosen]
    uri = uri or f"mixture-s{spec.seed}-{index:02d}"
    conversation = schedule_conversation(
        spec, rng, uri, chosen, lambda k, n_words: sources[k].turn(n_words),
        noise_seed=spec.seed * 1000 + index)
    conversation.voices = {name: name for name in chosen}
    return conversation


def load_mixtures(folder: str | Path, root: str | Path | None = None,
                  spec: ConversationSpec | None = None, **options) -> list[Recording]:
    """Conversations mixed from the utterances in ``folder``, generated once and cached.

    Options are :class:`ConversationSpec` fields (``n_speakers``, ``minutes``, ``seed``,
    ``backchannel_rate``, ``overlap_rate`` ...). ``Recording.words`` is None unless the
    folder has word alignments (see the module docstring)."""
    spec = (spec or ConversationSpec()).with_options("mixture", **options)
    folder = Path(folder).expanduser()
    speakers = scan_utterances(folder)
    identity = {"spec": spec.key(), "folder": str(folder.resolve()),
                "files": _folder_identity(speakers), "version": MIXTURES_VERSION}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    target = cache_root(root) / "mixtures" / f"{folder.name}-{digest}"
    if not (target / "dataset.json").exists():
        tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        items = []
        for index in range(spec.n_conversations):
            conv = generate_mixture(speakers, spec, index)
            sf.write(str(tmp / f"{conv.uri}.wav"), conv.audio, SAMPLE_RATE, subtype="PCM_16")
            (tmp / f"{conv.uri}.rttm").write_text(format_rttm(conv.reference, conv.uri))
            has_words = bool(conv.words)
            if has_words:
                write_words(tmp / f"{conv.uri}.words.tsv", conv.words)
            items.append({"uri": conv.uri, "duration": len(conv.audio) / SAMPLE_RATE,
                          "speakers": list(conv.voices), "words": has_words})
        (tmp / "dataset.json").write_text(json.dumps(
            {"spec": asdict(spec), "folder": str(folder), "recordings": items}, indent=1) + "\n")
        publish_folder(tmp, target)
    manifest = json.loads((target / "dataset.json").read_text())
    recordings = []
    for item in manifest["recordings"]:
        uri = item["uri"]
        recordings.append(Recording(
            uri=uri, audio_path=target / f"{uri}.wav",
            reference=load_rttm(target / f"{uri}.rttm").get(uri, Annotation(uri=uri)),
            uem=Timeline([Segment(0.0, item["duration"])], uri=uri),
            words=read_words(target / f"{uri}.words.tsv") if item["words"] else None,
            meta={"dataset": f"mixtures:{folder.name}", "uem": "whole file",
                  "duration": item["duration"], "speakers": item["speakers"],
                  "words": "aligned" if item["words"] else "none (no alignments)"}))
    return recordings
