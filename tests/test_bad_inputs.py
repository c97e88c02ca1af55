"""Bad input that used to pass silently (issue 13, item 7): truncated audio, no reference speech."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from diareval.cli.score import dataset_der_line, report_undefined_sessions
from diareval.datasets import load_folder
from diareval.datasets.audio import check_audio_length, wav_header_duration
from diareval.errors import DatasetError


def write_wav(path, seconds, rate=16000):
    sf.write(path, (np.random.default_rng(0).standard_normal(int(seconds * rate)) * 1000)
             .astype(np.int16), rate, subtype="PCM_16")


def test_a_truncated_wav_names_the_file_and_both_durations(tmp_path):
    write_wav(tmp_path / "a.wav", 10.0)
    (tmp_path / "a.rttm").write_text("SPEAKER a 1 0.5 8.0 <NA> <NA> s1 <NA> <NA>\n")
    assert len(load_folder(tmp_path)) == 1
    data = (tmp_path / "a.wav").read_bytes()
    (tmp_path / "a.wav").write_bytes(data[:44 + 1000])  # the header still says 10 s
    assert wav_header_duration(tmp_path / "a.wav") == pytest.approx(10.0)
    with pytest.raises(DatasetError) as error:
        load_folder(tmp_path)
    message = str(error.value)
    assert "a.wav" in message and "0.03 s" in message and "10.00 s" in message
    assert "WAV header" in message


def test_audio_shorter_than_its_reference_or_uem_is_an_error(tmp_path):
    write_wav(tmp_path / "b.wav", 5.0)
    (tmp_path / "b.rttm").write_text("SPEAKER b 1 1.0 19.0 <NA> <NA> s1 <NA> <NA>\n")
    with pytest.raises(DatasetError, match=r"b.wav: the audio holds 5.00 s but its RTTM/UEM "
                                           r"needs 20.00 s"):
        load_folder(tmp_path)
    (tmp_path / "b.rttm").write_text("SPEAKER b 1 1.0 3.0 <NA> <NA> s1 <NA> <NA>\n")
    (tmp_path / "b.uem").write_text("b 1 0.000 30.000\n")
    with pytest.raises(DatasetError, match="needs 30.00 s"):
        load_folder(tmp_path)
    # within the tolerance (annotations often end a little after the audio): accepted
    (tmp_path / "b.uem").write_text("b 1 0.000 5.500\n")
    assert load_folder(tmp_path)[0].uem.extent().end == 5.5
    assert check_audio_length(tmp_path / "b.wav", 5.9) == pytest.approx(5.0)


def test_other_formats_are_checked_against_the_reference(tmp_path):
    sf.write(tmp_path / "c.flac", np.zeros(16000, dtype=np.int16), 16000)
    assert wav_header_duration(tmp_path / "c.flac") is None
    with pytest.raises(DatasetError, match="c.flac: the audio holds 1.00 s"):
        check_audio_length(tmp_path / "c.flac", 12.0)


def test_undefined_der_is_said_never_printed_as_nan(capsys):
    note = "no reference speech in the scored region: DER undefined (false alarm 3.000 s)"
    row = SimpleNamespace(config="c", der=math.nan, der_lo=math.nan, der_hi=math.nan,
                          miss_rate=math.nan, false_alarm_rate=math.nan,
                          confusion_rate=math.nan, sessions=1, note=note)
    line = dataset_der_line(row)
    assert "nan" not in line.lower() and "DER undefined" in line and "false alarm 3.000" in line
    sessions = pd.DataFrame(dict(config=["c", "c"], uri=["x", "y"], scored=[True, True],
                                 der=[math.nan, 0.1], note=[note, ""]))
    report_undefined_sessions(sessions)
    err = capsys.readouterr().err
    assert "c/x: DER undefined: no reference speech" in err and "c/y" not in err
