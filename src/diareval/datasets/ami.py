"""AMI meeting corpus, the standard diarization protocol (BUT "AMI-diarization-setup").

Full-corpus-ASR partition (train/dev/test), ``only_words`` reference RTTMs, whole-file
UEMs, Mix-Headset audio by default (``mic="ihm"``) or the first microphone of array 1
(``mic="sdm"``, ``Array1-01``). Optional reference words from the AMI manual
annotations 1.6.2 (``words/<meeting>.<agent>.words.xml``; agents mapped to the global
speaker names the RTTMs use by ``corpusResources/meetings.xml``).

``download_ami`` + ``load_ami`` are a pair: download is idempotent and resumable (see
:mod:`diareval.datasets.download`), load works without audio (references and UEMs
only), in which case ``Recording.audio_path`` is where the audio would be and loading
audio raises a :class:`DatasetError` that says how to download it.

Local layout under ``<root>/ami`` mirrors the sources, so a checkout of the setup
repository works as a root too::

    lists/<subset>.meetings.txt
    only_words/rttms/<subset>/<uri>.rttm
    uems/<subset>/<uri>.uem
    amicorpus/<uri>/audio/<uri>.Mix-Headset.wav     (or .Array1-01.wav)
    annotations/words/<uri>.<A-E>.words.xml
    annotations/corpusResources/meetings.xml
"""

from __future__ import annotations

import io
import os
import sys
import wave
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from diareval.datasets.audio import SAMPLE_RATE, audio_duration, load_audio
from diareval.datasets.download import cache_root, download_file
from diareval.datasets.recording import Recording
from diareval.datasets.rttm import load_rttm, load_uem
from diareval.errors import DatasetError
# the manual annotations' words (re-exported: ``diareval.datasets.ami.load_ami_words`` ...)
from diareval.datasets.ami_words import (load_agent_names, load_ami_words,  # noqa: F401
                                         parse_words_xml, words_to_annotation)

# Pinned commit of https://github.com/BUTSpeechFIT/AMI-diarization-setup (branch main).
SETUP_COMMIT = "2509d8933721023fab4def2618aabd5c28eb82e9"
SETUP_URL = ("https://raw.githubusercontent.com/BUTSpeechFIT/AMI-diarization-setup/"
             + SETUP_COMMIT)
# The official AMI corpus site; audio under AMICorpusMirror/amicorpus (as in the setup's
# pyannote/download_ami.sh), annotations under AMICorpusAnnotations.
CORPUS_URL = "https://groups.inf.ed.ac.uk/ami"
SETUP_URL_ENV = "DIAREVAL_AMI_SETUP_URL"
CORPUS_URL_ENV = "DIAREVAL_AMI_MIRROR"
ANNOTATIONS_ZIP = "ami_public_manual_1.6.2.zip"

SUBSETS = ("train", "dev", "test")
_SUBSET_ALIASES = {"development": "dev", "validation": "dev", "eval": "test"}
MICS = {"ihm": "Mix-Headset", "sdm": "Array1-01"}
BYTES_PER_SECOND = SAMPLE_RATE * 2  # AMI wavs: 16 kHz, 16-bit, mono
DOWNLOAD_HINT = "python -m diareval datasets download ami --subset {subset} --mic {mic}"


def _subset(subset: str) -> str:
    subset = _SUBSET_ALIASES.get(subset, subset)
    if subset not in SUBSETS:
        raise DatasetError(f"unknown AMI subset {subset!r}: choose one of {', '.join(SUBSETS)}")
    return subset


def _mic(mic: str) -> str:
    if mic not in MICS:
        raise DatasetError(f"unknown AMI microphone {mic!r}: choose one of "
                           + ", ".join(f"{k} ({v})" for k, v in MICS.items()))
    return mic


def ami_dir(root: str | Path | None = None) -> Path:
    """The AMI folder: ``root`` itself if it is a setup checkout, else ``<root>/ami``."""
    base = cache_root(root)
    if (base / "lists").is_dir():
        return base
    return base / "ami"


def setup_url(url: str | None = None) -> str:
    """Base URL of the setup files: ``url``, ``$DIAREVAL_AMI_SETUP_URL`` or the pinned GitHub commit."""
    return (url or os.environ.get(SETUP_URL_ENV) or SETUP_URL).rstrip("/")


def corpus_url(url: str | None = None) -> str:
    """Base URL of the AMI corpus: ``url``, ``$DIAREVAL_AMI_MIRROR`` or the official site."""
    return (url or os.environ.get(CORPUS_URL_ENV) or CORPUS_URL).rstrip("/")


def audio_relpath(uri: str, mic: str = "ihm") -> str:
    """Path of a meeting's audio relative to the AMI folder (and to the corpus mirror's amicorpus)."""
    return f"amicorpus/{uri}/audio/{uri}.{MICS[_mic(mic)]}.wav"


def meetings(root: str | Path | None = None, subset: str = "test") -> list[str]:
    """Meeting URIs of ``subset`` from ``lists/<subset>.meetings.txt``."""
    path = ami_dir(root) / "lists" / f"{_subset(subset)}.meetings.txt"
    if not path.exists():
        raise DatasetError(f"{path}: AMI setup files not found; run "
                           f"`{DOWNLOAD_HINT.format(subset=subset, mic='ihm')}` "
                           "(or pass download=True)")
    uris = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not uris:
        raise DatasetError(f"{path}: empty meeting list")
    return uris


# ---------------------------------------------------------------- recordings


def _select(wanted: list[str], uris, subset: str) -> list[str]:
    """The meetings of ``wanted`` named in ``uris`` (all when None), in list order; a
    DatasetError names any that are not meetings of the subset."""
    if uris is None:
        return wanted
    unknown = sorted(set(uris) - set(wanted))
    if unknown:
        raise DatasetError(f"not AMI {subset} meetings: {', '.join(unknown)}")
    return [u for u in wanted if u in set(uris)]


@dataclass
class AMIRecording(Recording):
    """An AMI :class:`Recording` whose audio may not be downloaded yet."""

    def load_audio(self) -> np.ndarray:
        """The audio as 16 kHz mono int16; a DatasetError naming the download command if absent."""
        if not Path(self.audio_path).exists():
            raise DatasetError(
                f"{self.audio_path}: AMI audio not downloaded; run `"
                + DOWNLOAD_HINT.format(subset=self.meta.get("subset", "test"),
                                       mic=self.meta.get("mic", "ihm")) + "`")
        return load_audio(self.audio_path, SAMPLE_RATE)

    @property
    def duration(self) -> float:
        """Audio duration (from the file if present, else the end of the whole-file UEM)."""
        if Path(self.audio_path).exists():
            return audio_duration(self.audio_path)
        return self.uem.extent().end


def load_ami(root: str | Path | None = None, subset: str = "test", mic: str = "ihm",
             words: bool | None = None, uris: list[str] | None = None,
             download: bool | None = False, yes: bool = False,
             confirm: Callable[[str], bool] | None = None) -> list[Recording]:
    """Load an AMI subset as :class:`Recording` objects (audio may be absent).

    ``words``: None loads reference words when the manual annotations are present, True
    requires them, False skips them. ``uris`` restricts to some meetings. With
    ``download=True`` missing files are fetched first (:func:`ensure_ami`; a multi-GB
    download asks ``confirm`` unless ``yes``). ``download=None`` (what ``load("ami")``
    uses) downloads on first use: when audio is missing it asks on a terminal (or goes
    ahead with ``yes``), and otherwise raises a DatasetError naming the download command.
    """
    subset, mic = _subset(subset), _mic(mic)
    if download is None:
        complete = (ami_dir(root) / "lists" / f"{subset}.meetings.txt").exists() and \
            not missing_audio(root, subset, mic)
        interactive = confirm is not None or (sys.stdin is not None and sys.stdin.isatty())
        if not complete:
            if not (yes or interactive):
                raise DatasetError(
                    f"AMI {subset} ({MICS[mic]}) is not downloaded in {ami_dir(root)}; run `"
                    + DOWNLOAD_HINT.format(subset=subset, mic=mic) + "` (add --yes to skip "
                    "the question), or load it with download=True, yes=True")
            download = True
    if download:
        ensure_ami(root, subset=subset, mic=mic, words=bool(words), yes=yes, confirm=confirm)
    base = ami_dir(root)
    wanted = _select(meetings(root, subset), uris, subset)
    annotations = base / "annotations"
    have_words = (annotations / "corpusResources" / "meetings.xml").exists()
    if words and not have_words:
        raise DatasetError(f"{annotations}: AMI manual annotations not downloaded; run `"
                           + DOWNLOAD_HINT.format(subset=subset, mic=mic) + " --words`")
    agents = load_agent_names(annotations / "corpusResources" / "meetings.xml") \
        if have_words and words is not False else None
    recordings: list[Recording] = []
    for uri in wanted:
        rttm = base / "only_words" / "rttms" / subset / f"{uri}.rttm"
        uem_path = base / "uems" / subset / f"{uri}.uem"
        reference = load_rttm(rttm).get(uri)
        if reference is None:
            raise DatasetError(f"{rttm}: no SPEAKER lines for {uri}")
        uem = load_uem(uem_path).get(uri)
        if uem is None:
            raise DatasetError(f"{uem_path}: no line for {uri}")
        meeting_words = None
        if agents is not None:
            meeting_words = load_ami_words(annotations / "words", uri, agents)
        recordings.append(AMIRecording(
            uri=uri, audio_path=base / audio_relpath(uri, mic), reference=reference, uem=uem,
            words=meeting_words,
            meta={"dataset": "ami", "subset": subset, "mic": mic, "uem": "UEM file",
                  "duration": uem.extent().end}))
    return recordings


# ---------------------------------------------------------------- download


def _setup_files(subset: str, uris: list[str]) -> list[str]:
    files = []
    for uri in uris:
        files.append(f"only_words/rttms/{subset}/{uri}.rttm")
        files.append(f"uems/{subset}/{uri}.uem")
    return files


def estimate_audio_bytes(root: str | Path | None = None, subset: str = "test") -> int:
    """Audio bytes a subset needs, from its UEM durations (16 kHz 16-bit mono)."""
    base = ami_dir(root)
    total = 0.0
    for uri in meetings(root, subset):
        for timeline in load_uem(base / "uems" / subset / f"{uri}.uem").values():
            total += timeline.extent().end
    return int(total * BYTES_PER_SECOND)


def missing_audio(root: str | Path | None = None, subset: str = "test",
                  mic: str = "ihm") -> list[str]:
    """Meetings of ``subset`` whose audio file is not downloaded."""
    base = ami_dir(root)
    return [uri for uri in meetings(root, subset) if not (base / audio_relpath(uri, mic)).exists()]


def download_ami(root: str | Path | None = None, subset: str = "test", mic: str = "ihm",
                 words: bool = False, audio: bool = True, uris: list[str] | None = None,
                 base_url: str | None = None, setup_base_url: str | None = None,
                 progress: bool = True) -> Path:
    """Download an AMI subset into ``<root>/ami``; idempotent and resumable. Returns the folder.

    Fetches the setup files (meeting list, ``only_words`` RTTMs, UEMs) from the pinned
    AMI-diarization-setup commit, the audio from the AMI corpus mirror (size checked
    against Content-Length, then the audio length against the whole-file UEM), and with
    ``words=True`` the manual annotations (``ami_public_manual_1.6.2.zip``; words and
    meetings.xml are extracted). URLs: ``base_url``/``$DIAREVAL_AMI_MIRROR`` and
    ``setup_base_url``/``$DIAREVAL_AMI_SETUP_URL``.
    """
    subset, mic = _subset(subset), _mic(mic)
    base = ami_dir(root)
    setup, corpus = setup_url(setup_base_url), corpus_url(base_url)
    list_name = f"lists/{subset}.meetings.txt"
    download_file(f"{setup}/{list_name}", base / list_name, progress=False)
    wanted = _select(meetings(base, subset), uris, subset)
    for name in tqdm(_setup_files(subset, wanted), desc=f"AMI {subset} references",
                     disable=not progress, leave=False):
        download_file(f"{setup}/{name}", base / name, progress=False)
    if audio:
        for uri in tqdm(wanted, desc=f"AMI {subset} audio ({MICS[mic]})", unit="meeting",
                        disable=not progress):
            relpath = audio_relpath(uri, mic)
            dest = base / relpath
            fresh = not dest.exists()
            download_file(f"{corpus}/AMICorpusMirror/{relpath}", dest, progress=progress,
                          description=f"{uri}.{MICS[mic]}.wav")
            if fresh:
                _check_audio(dest, base / "uems" / subset / f"{uri}.uem", uri)
    if words:
        download_ami_annotations(base, base_url=base_url, progress=progress)
    return base


def download_ami_annotations(ami_folder: str | Path, base_url: str | None = None,
                             progress: bool = True) -> Path:
    """Download the AMI manual annotations 1.6.2 and extract the words and meetings.xml."""
    folder = Path(ami_folder) / "annotations"
    marker = folder / ".extracted"
    if marker.exists():
        return folder
    archive = download_file(f"{corpus_url(base_url)}/AMICorpusAnnotations/{ANNOTATIONS_ZIP}",
                            folder / ANNOTATIONS_ZIP, progress=progress)
    try:
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist()
                     if (n.startswith("words/") and n.endswith(".words.xml"))
                     or n == "corpusResources/meetings.xml"]
            if "corpusResources/meetings.xml" not in names:
                raise DatasetError(f"{archive}: no corpusResources/meetings.xml inside")
            for name in names:
                zf.extract(name, folder)
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"{archive}: not a zip file ({exc}); delete it and download again") \
            from exc
    marker.write_text("words/ and corpusResources/meetings.xml extracted\n")
    return folder


def _check_audio(path: Path, uem_path: Path, uri: str) -> None:
    """A downloaded wav must open and must not be shorter than its whole-file UEM (beyond
    1 s + 1%: channels of one meeting differ slightly in length; a truncated file is far
    shorter). A failing file is moved aside to ``<name>.bad``, never used.

    Some AMI wavs carry invalid chunks (the setup's download script rewrites them with the
    ``wave`` module): do the same when soundfile cannot read the header."""
    try:
        duration = audio_duration(path)
    except DatasetError:
        try:
            _rewrite_wav(path)
            duration = audio_duration(path)
        except DatasetError:
            bad = path.with_name(path.name + ".bad")
            os.replace(path, bad)
            raise
    uem = load_uem(uem_path).get(uri)
    if uem is not None:
        expected = uem.extent().end
        if duration < expected - (1.0 + 0.01 * expected):
            bad = path.with_name(path.name + ".bad")
            os.replace(path, bad)
            raise DatasetError(f"{path}: audio lasts {duration:.2f} s but the UEM says "
                               f"{expected:.2f} s; moved to {bad.name}, not used")


def _rewrite_wav(path: Path) -> None:
    try:
        buffer = io.BytesIO()
        with wave.open(str(path), "rb") as reader, wave.open(buffer, "wb") as writer:
            writer.setparams(reader.getparams())
            writer.writeframes(reader.readframes(reader.getnframes()))
    except (wave.Error, EOFError, OSError) as exc:
        raise DatasetError(f"{path}: not a readable wav file ({exc})") from exc
    part = path.with_name(path.name + ".fixed")
    part.write_bytes(buffer.getvalue())
    os.replace(part, path)


def ensure_ami(root: str | Path | None = None, subset: str = "test", mic: str = "ihm",
               words: bool = False, yes: bool = False,
               confirm: Callable[[str], bool] | None = None, progress: bool = True,
               ask_above_bytes: int = 200_000_000, **urls) -> Path:
    """Download whatever of an AMI subset is missing, asking first when it is big.

    The setup files are small and fetched without asking; the audio size is estimated
    from the UEMs, and a download above ``ask_above_bytes`` (200 MB: any real subset; the
    test subset is about 1 GB, train about 9 GB) needs ``yes`` or
    ``confirm(message) -> True`` (default: ask on a terminal, refuse otherwise).
    """
    subset, mic = _subset(subset), _mic(mic)
    base = download_ami(root, subset, mic, audio=False, progress=progress, **urls)
    todo = missing_audio(base, subset, mic)
    if todo:
        needed = sum(int(load_uem(base / "uems" / subset / f"{u}.uem")[u].extent().end
                         * BYTES_PER_SECOND) for u in todo)
        message = (f"AMI {subset} ({MICS[mic]}): {len(todo)} meeting(s) to download, about "
                   f"{needed / 1e9:.1f} GB into {base}. Continue?")
        if needed > ask_above_bytes and not yes:
            ask = confirm or _ask_terminal
            if not ask(message):
                raise DatasetError(f"AMI download declined ({message.rstrip('?')}); "
                                   "pass --yes to download without asking")
        download_ami(root, subset, mic, words=words, progress=progress, **urls)
    elif words:
        download_ami_annotations(base, base_url=urls.get("base_url"), progress=progress)
    return base


def load_ami_on_first_use(**options) -> list[Recording]:
    """``load("ami", ...)``: :func:`load_ami` that downloads on first use (``download=None``)."""
    options.setdefault("download", None)
    return load_ami(**options)


def _ask_terminal(message: str) -> bool:
    if not sys.stdin or not sys.stdin.isatty():
        return False
    return input(f"{message} [y/N] ").strip().lower() in ("y", "yes")
