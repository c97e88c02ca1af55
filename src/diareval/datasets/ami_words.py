"""AMI manual annotations 1.6.2: the timed reference words (``words/<meeting>.<agent>.words.xml``,
agents mapped to the RTTMs' global speaker names by ``corpusResources/meetings.xml``), and
speaker turns from words by the BUT ``only_words`` rule. Used by :mod:`diareval.datasets.ami`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from pyannote.core import Annotation, Segment

from diareval.datasets.recording import ReferenceWord
from diareval.errors import DatasetError



def load_agent_names(meetings_xml: str | Path) -> dict[str, dict[str, str]]:
    """``{meeting: {agent letter: global speaker name}}`` from ``corpusResources/meetings.xml``."""
    path = Path(meetings_xml)
    try:
        tree = ET.parse(path)
    except (ET.ParseError, OSError) as exc:
        raise DatasetError(f"{path}: cannot parse meetings XML ({exc})") from exc
    names: dict[str, dict[str, str]] = {}
    for meeting in tree.iter("meeting"):
        observation = meeting.get("observation")
        if not observation:
            continue
        for speaker in meeting.iter("speaker"):
            agent, name = speaker.get("nxt_agent"), speaker.get("global_name")
            if agent and name:
                names.setdefault(observation, {})[agent] = name
    return names


def parse_words_xml(path: str | Path, speaker: str) -> list[ReferenceWord]:
    """The timed words of one AMI ``*.words.xml`` file (punctuation and untimed words skipped)."""
    path = Path(path)
    try:
        tree = ET.parse(path)
    except (ET.ParseError, OSError) as exc:
        raise DatasetError(f"{path}: cannot parse words XML ({exc})") from exc
    words = []
    for element in tree.getroot().iter("w"):
        if element.get("punc") == "true":
            continue
        start, end = element.get("starttime"), element.get("endtime")
        if start is None or end is None:
            continue  # a few words carry no times in the manual annotations
        try:
            start_s, end_s = float(start), float(end)
        except ValueError:
            raise DatasetError(f"{path}: word {element.get('{http://nite.sourceforge.net/}id')}"
                               f" has bad times {start!r}, {end!r}") from None
        text = (element.text or "").strip()
        if text:
            words.append(ReferenceWord(speaker, start_s, end_s, text))
    return words


def load_ami_words(words_dir: str | Path, uri: str,
                   agents: dict[str, dict[str, str]]) -> list[ReferenceWord]:
    """All reference words of meeting ``uri``, speakers as global names, sorted by start."""
    words_dir = Path(words_dir)
    files = sorted(words_dir.glob(f"{uri}.*.words.xml"))
    if not files:
        raise DatasetError(f"{words_dir}: no {uri}.*.words.xml files")
    names = agents.get(uri, {})
    words: list[ReferenceWord] = []
    for path in files:
        agent = path.name.split(".")[1]
        if agent not in names:
            raise DatasetError(f"{path}: agent {agent!r} of {uri} has no global_name in "
                               "corpusResources/meetings.xml")
        words.extend(parse_words_xml(path, names[agent]))
    words.sort(key=lambda w: (w.start, w.end, w.speaker))
    return words


def words_to_annotation(words: list[ReferenceWord], uri: str | None = None) -> Annotation:
    """Speaker turns from words, the BUT ``only_words`` rule: a speaker's words that touch
    or overlap merge; words separated by a pause do not. Zero-length words are dropped."""
    annotation = Annotation(uri=uri)
    by_speaker: dict[str, list[ReferenceWord]] = {}
    for word in words:
        by_speaker.setdefault(word.speaker, []).append(word)
    for speaker, items in by_speaker.items():
        items.sort(key=lambda w: w.start)
        current: list[float] | None = None
        for word in items:
            if word.end <= word.start:
                continue
            if current is not None and word.start <= current[1]:
                current[1] = max(current[1], word.end)
                continue
            if current is not None:
                annotation[Segment(*current), speaker] = speaker
            current = [word.start, word.end]
        if current is not None:
            annotation[Segment(*current), speaker] = speaker
    # unique track names per segment/speaker
    return annotation.rename_tracks("string")
