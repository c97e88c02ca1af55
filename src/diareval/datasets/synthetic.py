"""Generated conversations: the embedded default dataset and the tool for controlled experiments.

N speakers with distinct espeak-ng voices take scripted turns whose statistics are set
by a :class:`ConversationSpec`: turn length in words (a share of 1-2 word back-channels
such as "yeah", "okay", "right", and a geometric tail for the other turns), pauses,
overlaps (how many turns start before the previous one ends, and by how much), session
length and optional background noise. Everything follows from the seed: the same spec
gives byte-identical audio, RTTM and words.

The reference is exact by construction: each speaker's turns are synthesised alone, so
a turn's speech regions are where its own signal has energy (5 ms frames), with pauses
shorter than ``merge_gap`` inside a turn kept in the segment (as in RTTM practice).
Word start times come from espeak-ng's word events (exact start samples); a word ends
where the speech before the next word's start ends.

Statistics are controlled, not just sampled: turn lengths and pauses are drawn by
stratified sampling (every block of 20 turns covers the distribution's quantiles) and
overlaps by quota (error diffusion), so a 10-minute session matches the requested
values closely instead of within sampling noise.

espeak-ng (GPL-3.0) comes with the optional ``synth`` extra (``espeakng-loader``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from pyannote.core import Annotation, Segment, Timeline

from diareval.datasets.audio import SAMPLE_RATE
from diareval.datasets.download import cache_root, publish_folder
from diareval.datasets.recording import Recording, ReferenceWord
from diareval.datasets.rttm import format_rttm, load_rttm
from diareval.datasets.turntaking import (PROFILES, GeneratedConversation, Turn,  # noqa: F401
                                         realized_statistics, schedule_conversation)
from diareval.errors import DatasetError

GENERATOR_VERSION = 3  # bump when the output for a given spec changes (invalidates caches)

BACKCHANNELS = {
    1: ("yeah", "okay", "right", "yes", "sure", "really", "exactly", "true", "wow", "no",
        "great", "absolutely"),
    2: ("uh huh", "I see", "got it", "oh okay", "yeah yeah", "all right", "oh really",
        "fair enough", "of course", "okay sure", "right right", "makes sense"),
}
VOCABULARY = tuple("""
about above across after again against almost alone along already also always among
answer around away back because become before begin behind believe below between big
black blue board book both bring build business call came carry cause change check city
clear close cold come could country course cover cut dark data decide design different
door down draw during early earth easy enough even evening every example face fact family
far fast feel few field final find fine first follow food form found four free friend
from front full game general give good great green ground group grow half hand happen
hard have head hear heavy help here high hold home hope hour house idea important inside
just keep kind know land large last late learn leave left less letter light line list
little live long look machine main make many market matter maybe mean meeting might mind
minute money month more morning most move much music name near need never next night
north nothing notice number office often open order other paper part party people plan
plant point power present price problem product project question quick quite rather read
ready real reason record remote report rest result river road room round rule same school
second seem send serve several shape short should show side simple since small sound
south speak special stand start state still stop story street strong study such sure
system table take talk team tell than that their then there these thing think those
though three through time today together too toward travel tree true turn under until
upon very voice wait walk want watch water week well west what when where which while
white whole why will window with without word work world would write year young
""".split())


@dataclass(frozen=True)
class ConversationSpec:
    """What to generate. All durations in seconds; rates are fractions of turns.

    ``n_speakers`` may be a tuple, used in turn by successive conversations.
    ``backchannel_rate``: share of turns that are 1-2 word back-channels (half of each).
    ``mean_words``: mean length in words of the other turns (3 + geometric, capped at
    ``max_words``). ``pause_mean``: mean silence before a turn that does not overlap
    (``pause_min`` + exponential); with ``pause_max`` set, that silence is uniform on
    [``pause_min``, ``pause_max``] instead (and ``pause_mean`` is not used). ``overlap_rate``: share of turns (after the first) that
    start before the previous turn ends; ``overlap_mean``: mean overlap of those turns
    (uniform on [0.5, 1.5] x mean; a turn overlaps at most 80% of either turn, so an
    overlap goes to a pair of turns long enough for it). ``noise``: None, "white", "pink"
    or a folder of noise files, mixed at ``snr`` dB over the speech. ``profile``: a named
    turn-taking profile, ``"default"`` or ``"call"`` (a phone call: 2 speakers, gaps of
    0-0.3 s, 15% back-channels, 20% overlapping turn changes; the values are in
    :data:`~diareval.datasets.turntaking.PROFILES`). :meth:`with_options` (what the loaders
    call) applies the profile's values first, then the options given explicitly.
    """

    n_conversations: int = 3
    n_speakers: int | tuple[int, ...] = (2, 3, 4)
    minutes: float = 1.0
    seed: int = 0
    backchannel_rate: float = 0.3
    mean_words: float = 10.0
    max_words: int = 40
    pause_mean: float = 0.5
    pause_min: float = 0.1
    overlap_rate: float = 0.15
    overlap_mean: float = 0.6
    words_per_minute: int = 170
    voices: tuple[str, ...] | None = None
    noise: str | None = None
    snr: float | None = None
    merge_gap: float = 0.25
    pause_max: float | None = None
    profile: str = "default"

    def validate(self) -> "ConversationSpec":
        """Raise a DatasetError naming the bad field; return self."""
        counts = self.n_speakers if isinstance(self.n_speakers, tuple) else (self.n_speakers,)
        problems = []
        if self.n_conversations < 1:
            problems.append("n_conversations must be >= 1")
        if not counts or any(not 1 <= int(n) <= 20 for n in counts):
            problems.append(f"n_speakers must be between 1 and 20, got {self.n_speakers}")
        if not 0.05 <= self.minutes <= 180:
            problems.append(f"minutes must be between 0.05 and 180, got {self.minutes}")
        if not 0 <= self.backchannel_rate <= 1:
            problems.append("backchannel_rate must be in [0, 1]")
        if not 3 <= self.mean_words <= self.max_words:
            problems.append(f"mean_words must be in [3, max_words={self.max_words}]")
        if not 0 <= self.overlap_rate < 1:
            problems.append("overlap_rate must be in [0, 1)")
        if self.overlap_mean < 0 or self.pause_mean < self.pause_min or self.pause_min < 0:
            problems.append("need overlap_mean >= 0 and pause_mean >= pause_min >= 0")
        if self.pause_max is not None and self.pause_max < self.pause_min:
            problems.append(f"pause_max must be >= pause_min={self.pause_min}")
        if self.profile not in PROFILES:
            problems.append(f"unknown profile {self.profile!r} (choose from "
                            f"{', '.join(PROFILES)})")
        if (self.noise is None) != (self.snr is None):
            problems.append("give both noise and snr, or neither")
        if self.voices is not None and len(self.voices) < max(int(n) for n in counts):
            problems.append(f"{len(self.voices)} voices for up to {max(counts)} speakers")
        if problems:
            raise DatasetError("bad synthetic conversation spec: " + "; ".join(problems))
        return self

    def with_options(self, kind: str, **options) -> "ConversationSpec":
        """This spec with ``options`` (field names; JSON lists become tuples), validated.
        ``kind`` names the dataset in the error for an unknown option."""
        fields = set(self.__dataclass_fields__)
        unknown = sorted(set(options) - fields)
        if unknown:
            raise DatasetError(f"unknown {kind} option(s) {', '.join(unknown)}; choose from "
                               + ", ".join(sorted(fields)))
        for name in ("n_speakers", "voices"):
            if isinstance(options.get(name), list):
                options[name] = tuple(options[name])
        if "profile" in options:  # the profile's values, then the options given explicitly
            if options["profile"] not in PROFILES:
                raise DatasetError(f"unknown {kind} profile {options['profile']!r}; choose "
                                   f"from {', '.join(PROFILES)}")
            options = {**PROFILES[options["profile"]], **options}
        return replace(self, **options).validate()

    def speakers_of(self, index: int) -> int:
        """Number of speakers of conversation ``index``."""
        counts = self.n_speakers if isinstance(self.n_speakers, tuple) else (self.n_speakers,)
        return int(counts[index % len(counts)])

    def key(self) -> str:
        """A short hash of the spec and generator version (the cache folder name)."""
        data = asdict(self)
        data["n_speakers"] = list(self.n_speakers) if isinstance(self.n_speakers, tuple) \
            else self.n_speakers
        data["voices"] = list(self.voices) if self.voices else None
        data["version"] = GENERATOR_VERSION
        for name, unset in (("pause_max", None), ("profile", "default")):  # added later:
            if data[name] == unset:  # the keys (cache folders) of older specs stay
                del data[name]
        text = json.dumps(data, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _turn_text(rng: np.random.Generator, n_words: int) -> str:
    if n_words <= 2:
        options = BACKCHANNELS[n_words]
        return options[int(rng.integers(len(options)))]
    return " ".join(VOCABULARY[i] for i in rng.integers(len(VOCABULARY), size=n_words))


# ---------------------------------------------------------------- synthesis


@dataclass
class _Clip:
    """A synthesised, trimmed turn at 16 kHz: samples, speech regions and word times (samples)."""

    samples: np.ndarray  # float32
    regions: list[tuple[int, int]]
    words: list[tuple[int, int, str]]


FRAME = 80  # 5 ms at 16 kHz


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) frame index pairs of the True runs of ``mask``."""
    if not mask.any():
        return []
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


ACTIVITY_DB = -30.0  # a 5 ms frame is speech if its RMS is within 30 dB of the turn's speech level


def _make_clip(synthesis, text: str, level: float, merge_gap: float) -> _Clip:
    """Resample to 16 kHz, normalise the speech to RMS ``level``, find the speech regions
    (5 ms frames within ``ACTIVITY_DB`` of the speech level), and zero everything outside
    them (with 5 ms fades), so the audio is exactly silent where the reference says so."""
    x = synthesis.samples.astype(np.float32) / 32768.0
    x = soxr.resample(x, synthesis.sample_rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    n = len(x) // FRAME
    x = x[:n * FRAME]
    rms = np.sqrt(np.mean(x.reshape(n, FRAME).astype(np.float64) ** 2, axis=1))
    if n == 0 or rms.max() <= 0:
        raise DatasetError(f"espeak-ng produced no audible speech for {text!r}")
    loud = rms > rms.max() * 10 ** (-40 / 20)
    speech_level = float(np.sqrt(np.mean(rms[loud] ** 2)))
    active = rms > speech_level * 10 ** (ACTIVITY_DB / 20)
    runs = _runs(active)
    first, last = runs[0][0] * FRAME, runs[-1][1] * FRAME
    x = x[first:last] * (level / speech_level)
    frame_active = active[runs[0][0]:runs[-1][1]]
    # regions: active runs (in samples, relative to the trimmed clip) with short gaps merged
    regions: list[list[int]] = []
    gap = int(merge_gap * SAMPLE_RATE)
    for a, b in runs:
        a, b = a * FRAME - first, b * FRAME - first
        if regions and a - regions[-1][1] < gap:
            regions[-1][1] = b
        else:
            regions.append([a, b])
    envelope = np.zeros(len(x), dtype=np.float32)
    ramp = np.linspace(0.0, 1.0, FRAME, dtype=np.float32)
    for a, b in regions:
        envelope[a:b] = 1.0
        envelope[a:a + FRAME] = ramp[:len(envelope[a:a + FRAME])]
        envelope[max(a, b - FRAME):b] = ramp[::-1][-len(envelope[max(a, b - FRAME):b]):]
    x = x * envelope
    # words: espeak word events (22.05 kHz start samples, 1-based char offsets) -> 16 kHz
    tokens, offsets, position = text.split(), [], 0
    for token in tokens:
        position = text.index(token, position)
        offsets.append(position)
        position += len(token)
    starts: dict[int, int] = {}
    ratio = SAMPLE_RATE / synthesis.sample_rate
    for sample, char in zip(synthesis.word_starts, synthesis.word_positions):
        index = max(i for i, off in enumerate(offsets) if off <= max(char - 1, 0))
        starts.setdefault(index, int(round(sample * ratio)) - first)
    # a token without its own event (espeak sometimes joins words): interpolate its start
    # between the known neighbours by character offset
    known = sorted(starts)
    if known:
        for i in range(len(tokens)):
            if i in starts:
                continue
            before = max((j for j in known if j < i), default=None)
            after = min((j for j in known if j > i), default=None)
            lo_s, lo_c = (starts[before], offsets[before]) if before is not None else (0, 0)
            hi_s, hi_c = (starts[after], offsets[after]) if after is not None else \
                (len(x), len(text))
            starts[i] = int(lo_s + (hi_s - lo_s) * (offsets[i] - lo_c) / max(hi_c - lo_c, 1))
    words = []
    for i, token in enumerate(tokens):
        start = starts.get(i)
        if start is None:
            continue
        nxt = next((starts[j] for j in range(i + 1, len(tokens)) if j in starts), len(x))
        start, end = max(start, 0), min(nxt, len(x))
        # trim to speech: first active frame at/after start, last active frame before end
        fa, fb = start // FRAME, max(start // FRAME, (end - 1) // FRAME)
        on = np.flatnonzero(frame_active[fa:fb + 1])
        if on.size:
            start = max(start, (fa + on[0]) * FRAME)
            end = min(end, (fa + on[-1] + 1) * FRAME)
        if end <= start:
            end = min(start + FRAME, len(x))
        words.append((start, end, token))
    return _Clip(x, [(a, b) for a, b in regions], words)


def _voice_settings(spec: ConversationSpec, rng: np.random.Generator, n: int):
    from diareval.datasets.espeak import DISTINCT_VOICES, EXTRA_VOICES

    pool = list(spec.voices) if spec.voices else list(DISTINCT_VOICES)
    if n > len(pool):
        pool += [v for v in EXTRA_VOICES if v not in pool]
    order = rng.permutation(len(pool)) if not spec.voices else np.arange(len(pool))
    settings = []
    for k in range(n):
        settings.append({
            "voice": pool[int(order[k % len(pool)])],
            "rate": int(round(spec.words_per_minute * rng.uniform(0.9, 1.1))),
            "pitch": int(rng.integers(35, 66)),
            "level": float(rng.uniform(0.045, 0.07)),  # speech RMS, full scale 1.0
        })
    return settings


def generate_conversation(spec: ConversationSpec, index: int = 0,
                          uri: str | None = None) -> GeneratedConversation:
    """Generate conversation ``index`` of ``spec`` (deterministic: same inputs, same bytes)."""
    from diareval.datasets.espeak import Espeak

    spec.validate()
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, index, GENERATOR_VERSION]))
    n = spec.speakers_of(index)
    uri = uri or f"synthetic-s{spec.seed}-{index:02d}"
    speakers = [f"spk{k}" for k in range(n)]
    settings = _voice_settings(spec, rng, n)
    clips: dict[tuple[int, str], _Clip] = {}
    with Espeak() as tts:
        def make_turn(k: int, n_words: int):
            text = _turn_text(rng, n_words)
            if (k, text) not in clips:  # each distinct phrase once per voice
                s = settings[k]
                clips[(k, text)] = _make_clip(
                    tts.synthesize(text, s["voice"], rate=s["rate"], pitch=s["pitch"]),
                    text, s["level"], spec.merge_gap)
            return clips[(k, text)], text, n_words

        conversation = schedule_conversation(spec, rng, uri, speakers, make_turn,
                                             noise_seed=spec.seed * 1000 + index)
    conversation.voices = {speakers[k]: settings[k]["voice"] for k in range(n)}
    return conversation


# ---------------------------------------------------------------- dataset + cache



def write_words(path: str | Path, words: list[ReferenceWord]) -> None:
    """Write reference words as TSV: speaker, start, end, text."""
    lines = ["speaker\tstart\tend\ttext"] + [f"{w.speaker}\t{w.start:.4f}\t{w.end:.4f}\t{w.text}"
                                             for w in words]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_words(path: str | Path) -> list[ReferenceWord]:
    """Read reference words written by :func:`write_words`."""
    path = Path(path)
    words = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines()[1:], start=2):
        fields = line.split("\t")
        if len(fields) != 4:
            raise DatasetError(f"{path}:{number}: words line needs 4 tab-separated fields")
        try:
            words.append(ReferenceWord(fields[0], float(fields[1]), float(fields[2]), fields[3]))
        except ValueError:
            raise DatasetError(f"{path}:{number}: bad word times {fields[1:3]}") from None
    return words


DEFAULT_SPEC = ConversationSpec()  # 3 conversations x 1 min, 2/3/4 speakers: the default dataset


def synthetic_dir(spec: ConversationSpec, root: str | Path | None = None) -> Path:
    """Cache folder of a spec: ``<root>/synthetic/<hash of the spec>``."""
    return cache_root(root) / "synthetic" / spec.key()


def load_synthetic(root: str | Path | None = None, spec: ConversationSpec | None = None,
                   progress: bool = False, **options) -> list[Recording]:
    """Generated conversations as Recordings, generated once and cached by spec hash.

    ``load_synthetic(n_speakers=4, minutes=10, seed=1)`` or ``load_synthetic(spec=...)``;
    options are :class:`ConversationSpec` fields. The default is the small embedded
    dataset (3 conversations of 1 minute, with 2, 3 and 4 speakers).
    """
    spec = (spec or DEFAULT_SPEC).with_options("synthetic", **options)
    folder = synthetic_dir(spec, root)
    if not (folder / "dataset.json").exists():
        _generate_dataset(spec, folder, progress)
    manifest = json.loads((folder / "dataset.json").read_text())
    recordings = []
    for item in manifest["recordings"]:
        uri = item["uri"]
        reference = load_rttm(folder / f"{uri}.rttm").get(uri, Annotation(uri=uri))
        duration = item["duration"]
        recordings.append(Recording(
            uri=uri, audio_path=folder / f"{uri}.wav", reference=reference,
            uem=Timeline([Segment(0.0, duration)], uri=uri),
            words=read_words(folder / f"{uri}.words.tsv"),
            meta={"dataset": "synthetic", "uem": "whole file", "duration": duration,
                  "spec": manifest["spec"], "voices": item["voices"],
                  "n_speakers": item["n_speakers"], "realized": item.get("realized")}))
    return recordings


def _generate_dataset(spec: ConversationSpec, folder: Path, progress: bool) -> None:
    from tqdm.auto import tqdm

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    items = []
    for index in tqdm(range(spec.n_conversations), desc="generating conversations",
                      disable=not progress):
        conv = generate_conversation(spec, index)
        sf.write(str(tmp / f"{conv.uri}.wav"), conv.audio, SAMPLE_RATE, subtype="PCM_16")
        (tmp / f"{conv.uri}.rttm").write_text(format_rttm(conv.reference, conv.uri))
        write_words(tmp / f"{conv.uri}.words.tsv", conv.words)
        (tmp / f"{conv.uri}.turns.tsv").write_text(
            "speaker\tstart\tend\tn_words\toverlap\ttext\n" + "".join(
                f"{t.speaker}\t{t.start:.4f}\t{t.end:.4f}\t{t.n_words}\t{t.overlap:.4f}\t{t.text}\n"
                for t in conv.turns))
        items.append({"uri": conv.uri, "duration": len(conv.audio) / SAMPLE_RATE,
                      "n_speakers": spec.speakers_of(index), "voices": conv.voices,
                      "realized": realized_statistics(conv.turns)})
    spec_json = asdict(spec)
    (tmp / "dataset.json").write_text(json.dumps(
        {"spec": spec_json, "version": GENERATOR_VERSION, "recordings": items}, indent=1) + "\n")
    publish_folder(tmp, folder)  # another process may have finished first: theirs is kept
