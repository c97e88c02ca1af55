from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st
from pyannote.core import Segment, Timeline

from diareval.datasets import (DatasetError, format_rttm, format_uem, load, load_folder, parse_rttm,
                               parse_uem)
from fixtures import annotation, write_rttm


def test_parse_rttm_hand_example():
    text = ("SPKR-INFO f1 1 <NA> <NA> <NA> unknown A <NA> <NA>\n"
            "SPEAKER f1 1 0.50 1.25 <NA> <NA> A <NA> <NA>\n"
            "# a comment\n\n"
            "SPEAKER f1 1 1.00 2.00 <NA> <NA> B <NA> <NA>\n"
            "SPEAKER f2 1 3 1 <NA> <NA> A\n")
    refs = parse_rttm(text)
    assert sorted(refs) == ["f1", "f2"]
    assert refs["f1"].label_duration("A") == pytest.approx(1.25)
    assert refs["f1"].label_duration("B") == pytest.approx(2.0)
    segs = [(s.start, s.end, lab) for s, _, lab in refs["f1"].itertracks(yield_label=True)]
    assert segs == [(0.5, 1.75, "A"), (1.0, 3.0, "B")]


@pytest.mark.parametrize("line, message", [
    ("SPEAKER f1 1 0.5 1.0 <NA> <NA>", "missing: name"),
    ("SPEAKER f1 1 0.5 -1.0 <NA> <NA> A <NA> <NA>", "positive"),
    ("SPEAKER f1 1 0.5 0 <NA> <NA> A <NA> <NA>", "positive"),
    ("SPEAKER my file 1 0.5 1.0 <NA> <NA> A <NA> <NA>", "spaces"),
    ("SPEAKER f1 1 abc 1.0 <NA> <NA> A <NA> <NA>", "not a number"),
    ("SPEAKR f1 1 0.5 1.0 <NA> <NA> A <NA> <NA>", "record type"),
])
def test_parse_rttm_errors_name_the_line(line, message):
    with pytest.raises(DatasetError, match=message) as info:
        parse_rttm("SPEAKER ok 1 0 1 <NA> <NA> A <NA> <NA>\n" + line, source="x.rttm")
    assert "x.rttm:2" in str(info.value)


def test_parse_uem():
    uem = parse_uem("f1 1 0.0 10.0\nf1 1 5.0 12.0\nf2 1 1 2\n")
    assert uem["f1"].duration() == pytest.approx(12.0)
    with pytest.raises(DatasetError, match="u.uem:1"):
        parse_uem("f1 1 3 2", source="u.uem")


def test_format_uem_hand_example_reads_back():
    uem = Timeline([Segment(12.25, 30.125), Segment(0.0, 10.5)], uri="f1")
    text = format_uem(uem)
    assert text == "f1 1 0.000 10.500\nf1 1 12.250 30.125\n"
    assert parse_uem(text) == {"f1": uem}
    # the AMI setup's whole-file UEMs carry 6 decimals (sample-exact ends)
    ami = format_uem(Timeline([Segment(0.0, 1546.333312)]), "IS1008c", decimals=6)
    assert ami == "IS1008c 1 0.000000 1546.333312\n"
    assert parse_uem(ami)["IS1008c"].extent().end == 1546.333312
    assert format_uem(Timeline(uri="f1")) == ""
    with pytest.raises(DatasetError, match="no uri"):
        format_uem(Timeline([Segment(0.0, 1.0)]))


def _tracks(annotation_):
    return sorted((round(s.start, 6), round(s.end, 6), label)
                  for s, _, label in annotation_.itertracks(yield_label=True))


# times on the 1 ms grid both writers use; speaker names without spaces
_MS = st.integers(0, 3_600_000)
_SPANS = st.lists(st.tuples(_MS, st.integers(1, 60_000)), min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@given(spans=_SPANS, speakers=st.lists(st.sampled_from(["A", "B", "spk_3", "FEE013"]),
                                       min_size=12, max_size=12))
def test_format_rttm_and_format_uem_round_trip_through_the_parsers(spans, speakers):
    turns = [(start / 1000, (start + length) / 1000, speakers[i])
             for i, (start, length) in enumerate(spans)]
    reference = annotation("rec-1", turns)
    parsed = parse_rttm(format_rttm(reference), source="round-trip.rttm")["rec-1"]
    assert _tracks(parsed) == _tracks(reference)
    uem = Timeline([Segment(start, end) for start, end, _ in turns], uri="rec-1").support()
    assert parse_uem(format_uem(uem), source="round-trip.uem") == {"rec-1": uem}


def _write_wav(path: Path, seconds: float, rate: int = 8000, channels: int = 2):
    samples = np.zeros((int(seconds * rate), channels), dtype="float32")
    sf.write(str(path), samples, rate)


def test_folder_loader_normalises_audio_and_defaults_uem(tmp_path):
    _write_wav(tmp_path / "a.wav", 2.0)
    write_rttm(tmp_path / "a.rttm", {"a": [(0.1, 0.6, "S1")]})
    [rec] = load_folder(tmp_path)
    audio = rec.load_audio()
    assert audio.dtype == np.int16 and audio.ndim == 1 and len(audio) == 32000
    assert rec.meta["uem"] == "whole file" and rec.uem.duration() == pytest.approx(2.0)


def test_folder_loader_mismatch_is_an_error(tmp_path):
    _write_wav(tmp_path / "a.wav", 1.0)
    write_rttm(tmp_path / "all.rttm", {"b": [(0.1, 0.6, "S1")]})
    with pytest.raises(DatasetError, match="no audio for RTTM URI"):
        load_folder(tmp_path)


def test_unreadable_audio_names_the_file(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"not a wav file at all")
    write_rttm(tmp_path / "a.rttm", {"a": [(0.1, 0.6, "S1")]})
    with pytest.raises(DatasetError, match="a.wav"):
        load_folder(tmp_path)


def test_unknown_dataset_lists_choices():
    with pytest.raises(DatasetError, match="unknown dataset 'no-such-thing'"):
        load("no-such-thing")


def test_ami_excerpts_load(ami_excerpts):
    recordings = load(ami_excerpts)
    assert len(recordings) == 11
    assert {r.uri for r in recordings} >= {"dev00", "trn01", "trn09"}
    for r in recordings:
        assert r.uem.duration() == pytest.approx(30.0)
        assert r.meta["uem"] == "UEM file"


def test_int16_audio_round_trips_exactly(tmp_path):
    samples = np.array([-32768, -32767, -16385, -1, 0, 1, 16384, 16385, 32767] * 100,
                       dtype=np.int16)
    sf.write(str(tmp_path / "x.wav"), samples, 16000, subtype="PCM_16")
    from diareval.datasets import load_audio
    assert np.array_equal(load_audio(tmp_path / "x.wav"), samples)
