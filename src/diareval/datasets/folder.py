"""Any folder of audio + RTTM (+ UEM): VoxConverse, DIHARD, CALLHOME, AMI excerpts, your own data."""

from __future__ import annotations

from pathlib import Path

from pyannote.core import Segment, Timeline

from diareval.datasets.audio import check_audio_length
from diareval.datasets.recording import Recording
from diareval.datasets.rttm import load_rttm, load_uem
from diareval.datasets.words import words_beside
from diareval.errors import DatasetError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".sph", ".aiff", ".aif")


def load_folder(root: str | Path, uris: list[str] | None = None) -> list[Recording]:
    """Load every recording in ``root`` (searched recursively).

    Audio files are matched to RTTM URIs by file stem. RTTMs may be one per file
    or one combined file; UEMs likewise. Without a UEM the whole audio is scored
    (``recording.meta["uem"] == "whole file"`` says so). Every audio file needs a
    reference and every reference URI needs audio: a mismatch is an error naming
    them, so a typo never silently drops data. Audio much shorter than its WAV header
    declares or than its RTTM/UEM needs (a truncated file) is an error naming the file and
    both durations (:func:`~diareval.datasets.audio.check_audio_length`). Reference words
    come from ``<uri>.stm`` or a SegLST ``<uri>.json`` beside the audio
    (:mod:`diareval.datasets.words`), else None.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory")
    audio = {}
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
        if path.stem in audio:
            raise DatasetError(f"{root}: two audio files for URI {path.stem!r}: "
                               f"{audio[path.stem]} and {path}")
        audio[path.stem] = path
    references = {}
    for path in sorted(root.rglob("*.rttm")):
        for uri, annotation in load_rttm(path).items():
            if uri in references:
                references[uri].update(annotation)
            else:
                references[uri] = annotation
    uems = {}
    for path in sorted(root.rglob("*.uem")):
        uems.update(load_uem(path))
    if not audio:
        raise DatasetError(f"{root}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
    if not references:
        raise DatasetError(f"{root}: no RTTM files")
    wanted = sorted(audio) if uris is None else list(uris)
    no_reference = [uri for uri in wanted if uri not in references]
    no_audio = sorted(set(references) - set(audio)) if uris is None else \
        [uri for uri in wanted if uri not in audio]
    if no_audio:
        raise DatasetError(f"{root}: no audio for RTTM URI(s) {', '.join(no_audio)}")
    if no_reference:
        raise DatasetError(f"{root}: no RTTM reference for audio {', '.join(no_reference)}")
    recordings = []
    for uri in wanted:
        ends = [references[uri].get_timeline().extent().end] if references[uri] else []
        if uri in uems and uems[uri]:
            ends.append(uems[uri].extent().end)
        duration = check_audio_length(audio[uri], max(ends) if ends else None,
                                      "its RTTM/UEM")
        if uri in uems:
            uem, uem_source = uems[uri], "UEM file"
        else:
            uem, uem_source = Timeline([Segment(0.0, duration)], uri=uri), "whole file"
        # reference words: <uri>.stm or SegLST <uri>.json beside the audio (none: WER absent)
        recordings.append(Recording(uri=uri, audio_path=audio[uri], reference=references[uri],
                                    uem=uem, words=words_beside(audio[uri], uri),
                                    meta={"dataset": str(root), "uem": uem_source,
                                          "duration": duration}))
    return recordings
