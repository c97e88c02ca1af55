"""score_run over a run directory (oracle-engine logs), bad inputs, and CLI = API."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from pyannote.core import Annotation, Segment, Timeline

from diareval.cli import main as cli_main
from diareval.datasets.recording import Recording
from diareval.errors import DiarevalError
from diareval.score import Conventions, score_rttm, score_run, score_session
from diareval.server.engines.base import SessionParams
from diareval.server.engines.oracle import OracleConfig, make_oracle_factory
from diareval.sessionlog import SessionLogWriter, read_session_log
from fixtures import write_rttm


def make_recording(folder: Path, uri: str, duration: float, seed: int) -> Recording:
    """Noise audio (the oracle identifies recordings by their audio) and a random
    3-speaker reference with some overlapping backchannels."""
    rng = np.random.default_rng(seed)
    path = folder / f"{uri}.wav"
    sf.write(path, (rng.standard_normal(int(duration * 16000)) * 3000).astype(np.int16), 16000)
    reference, t, i = Annotation(uri=uri), 0.5, 0
    while t < duration - 1:
        speaker = f"spk{rng.integers(3)}"
        end = min(t + float(rng.choice([0.4, 0.8, 1.5, 3.0, 6.0])), duration)
        reference[Segment(t, end), i] = speaker
        i += 1
        if rng.random() < 0.2:
            other = f"spk{(int(speaker[3:]) + 1) % 3}"
            start = t + (end - t) * 0.3
            reference[Segment(start, min(start + 0.7, duration)), i] = other
            i += 1
        t = end + float(rng.uniform(0.05, 1.0))
    return Recording(uri=uri, audio_path=path, reference=reference,
                     uem=Timeline([Segment(0, duration)], uri=uri), meta={"uem": "whole file"})


def stream_oracle(factory, recording: Recording, log_path: Path, params=None,
                  chunk: float = 0.1) -> None:
    """Drive the oracle engine directly (no websocket) and log its messages."""
    engine = factory(params or SessionParams(speaker_labels=True))
    audio = recording.load_audio()
    step, sent = int(chunk * 16000), 0
    with SessionLogWriter(log_path) as writer:
        writer.write("recv", 0.0, 0.0, {"type": "Begin", "id": "x", "expires_at": 0})
        for start in range(0, len(audio), step):
            block = audio[start:start + step]
            sent += len(block)
            for message in engine.feed(block):
                writer.write("recv", sent / 16000, sent / 16000, message)
        for message in engine.finish():
            writer.write("recv", sent / 16000, sent / 16000, message)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    (root / "audio").mkdir()
    recordings = [make_recording(root / "audio", f"r{i}", 60.0, i) for i in range(4)]
    factory = make_oracle_factory(recordings, OracleConfig(seed=2, p_revision=0.5))
    configs = ["oracle__max-speakers-none", "oracle__max-speakers-2"]
    for config, max_speakers in zip(configs, (None, 2)):
        folder = root / "sessions" / config
        folder.mkdir(parents=True)
        for recording in recordings[:3]:
            stream_oracle(factory, recording, folder / f"{recording.uri}.jsonl",
                          SessionParams(speaker_labels=True, max_speakers=max_speakers))
            (folder / f"{recording.uri}.json").write_text(json.dumps({"status": "complete"}))
    folder = root / "sessions" / configs[0]
    # a failed session, a session of a recording the dataset does not have, a log whose
    # last line was cut mid-write, and a complete session whose log has no Turn
    (folder / "r3.json").write_text(json.dumps({"status": "failed", "error": "3005"}))
    stream_oracle(factory, recordings[3], folder / "r3.jsonl")
    (folder / "ghost.jsonl").write_text("")
    (folder / "ghost.json").write_text(json.dumps({"status": "complete"}))
    with open(folder / "r2.jsonl", "a") as file:
        file.write('{"dir": "recv", "t_wall": 99.0, "t_aud')
    with SessionLogWriter(root / "sessions" / configs[1] / "r3.jsonl") as writer:
        writer.write("recv", 0.0, 0.0, {"type": "Begin", "id": "y", "expires_at": 0})
    (root / "sessions" / configs[1] / "r3.json").write_text(json.dumps({"status": "complete"}))
    (root / "run.json").write_text(json.dumps({
        "dataset": "unused", "uris": [r.uri for r in recordings],
        "configurations": [{"name": configs[0], "max_speakers": None},
                           {"name": configs[1], "max_speakers": 2}]}))
    return root, recordings


def test_score_run_tables_and_skips(run_dir):
    root, recordings = run_dir
    tables = score_run(root, recordings=recordings, n_boot=100)
    sessions = tables.sessions.set_index(["config", "uri"])
    none, two = "oracle__max-speakers-none", "oracle__max-speakers-2"
    assert not sessions.loc[(none, "r3"), "scored"]
    assert "status failed" in sessions.loc[(none, "r3"), "note"]
    assert not sessions.loc[(none, "ghost"), "scored"]
    assert "not in the dataset" in sessions.loc[(none, "ghost"), "note"]
    assert "truncated" in sessions.loc[(none, "r2"), "note"]
    assert sessions.loc[(none, "r2"), "scored"]
    # no Turn: scored, all reference speech missed, said so
    empty = sessions.loc[(two, "r3")]
    assert empty["scored"] and empty["der"] == pytest.approx(1.0)
    assert empty["miss"] == pytest.approx(empty["reference_speech"])
    assert "no final Turn" in empty["note"]
    # time-weighted dataset DER = summed components of the scored sessions
    scored = tables.sessions[tables.sessions["scored"] &
                                (tables.sessions["config"] == none)]
    row = tables.der_dataset.set_index("config").loc[none]
    errors = scored[["miss", "false_alarm", "confusion"]].to_numpy().sum()
    assert row["der"] == pytest.approx(errors / scored["reference_speech"].sum())
    assert row["der_lo"] <= row["der"] <= row["der_hi"]
    assert row["jer"] == pytest.approx(scored["jer_speaker_error"].sum()
                                       / scored["jer_speaker_count"].sum())
    # every table carries the conventions
    for name, table in tables.tables().items():
        if not table.empty:
            assert "conv_collar" in table.columns, name
    written = {p.name for p in (root / "scores").iterdir()}
    for name in ("sessions", "turns", "der_over_time", "breakdowns", "der_dataset",
                 "comparisons", "speaker_count_by_setting"):
        assert f"{name}.parquet" in written and f"{name}.csv" in written
    comparisons = tables.comparisons
    assert set(comparisons["measure"]) >= {"der", "turn_accuracy", "turn_accuracy_by_word_count",
                                           "turn_accuracy_by_turn_index"}
    # the paired difference is b minus a, on the sessions both configurations scored
    overall = comparisons[comparisons["measure"] == "turn_accuracy"].iloc[0]
    assert overall["difference"] == pytest.approx(overall["b"] - overall["a"])
    assert overall["n_sessions"] == 3
    counts = tables.speaker_count_by_setting.set_index("max_speakers")
    assert set(counts.index) == {"none", "2"}
    conventions = json.loads((root / "scores" / "conventions.json").read_text())
    assert conventions["conv_collar"] == 0.0 and conventions["conv_uem"] == "whole file"


def test_no_silent_nan_in_session_rows(run_dir):
    root, recordings = run_dir
    sessions = score_run(root, recordings=recordings, n_boot=50, write=False).sessions
    scored = sessions[sessions["scored"]]
    for column in ("der", "miss", "false_alarm", "confusion", "reference_speech"):
        assert scored[column].notna().all(), column


def test_empty_reference_gives_a_clear_result(run_dir):
    root, recordings = run_dir
    recording = recordings[0]
    empty = Recording(uri=recording.uri, audio_path=recording.audio_path,
                      reference=Annotation(uri=recording.uri), uem=recording.uem)
    log = read_session_log(root / "sessions" / "oracle__max-speakers-none" / "r0.jsonl")
    scores = score_session(log, empty)
    assert math.isnan(scores.summary["der"])
    assert "no reference speech" in scores.summary["note"]
    assert scores.summary["false_alarm"] > 0
    curve = scores.tables["der_over_time"]
    assert curve["der_prefix"].isna().all() and (curve["note"] != "").all()
    with pytest.raises(DiarevalError):
        score_session(log, None)


def test_cli_run_dir_matches_api(run_dir, capsys):
    root, recordings = run_dir
    folder = root.parent / (root.name + "_data")
    folder.mkdir(exist_ok=True)
    # a dataset folder the CLI can load by path: audio + RTTM + UEM
    from diareval.datasets.rttm import format_rttm, format_uem
    rttm, uem = [], []
    for recording in recordings:
        target = folder / recording.audio_path.name
        if not target.exists():
            target.write_bytes(recording.audio_path.read_bytes())
        rttm.append(format_rttm(recording.reference))
        uem.append(format_uem(Timeline([Segment(0.0, 60.0)]), recording.uri))
    (folder / "all.rttm").write_text("".join(rttm))
    (folder / "all.uem").write_text("".join(uem))
    assert cli_main(["score", str(root), "--dataset", str(folder), "--n-boot", "50",
                     "--collar", "0.25"]) == 0
    out = capsys.readouterr().out
    assert "collar 0.25 s per side" in out
    figures = {p.name for p in (root / "figures").iterdir()}
    assert {"der_over_time.png", "accuracy_by_word_count.png"} <= figures
    written = pd.read_csv(root / "scores" / "sessions.csv")
    api = score_run(root, Conventions(collar=0.25), dataset=str(folder), n_boot=50,
                    write=False).sessions
    merged = written.merge(api, on=["config", "uri"], suffixes=("_cli", "_api"))
    scored = merged[merged["scored_api"]]
    # RTTM round trip rounds times to 1 ms, so allow 1e-2 s of speech per session
    assert np.allclose(scored["der_cli"], scored["der_api"], atol=1e-3)


def test_cli_rttm_form_matches_score_rttm(tmp_path, capsys):
    ref = tmp_path / "ref.rttm"
    hyp = tmp_path / "hyp.rttm"
    write_rttm(ref, {"f": [(0, 10, "A"), (10, 20, "B")]})
    write_rttm(hyp, {"f": [(0, 12, "1"), (12, 20, "2"), (20, 22, "3")]})
    assert cli_main(["score", "--ref", str(ref), "--hyp", str(hyp), "--collar", "0.5"]) == 0
    out = capsys.readouterr().out
    # hand-worked in test_der.py example 2 (UEM [0,22] = union of extents here): 1/6
    assert "16.67" in out and "collar 0.5 s per side" in out
    table = score_rttm(ref, hyp, None, Conventions(collar=0.5, hypothesis="rttm"))
    assert table.set_index("uri").loc["TOTAL", "der"] == pytest.approx(1 / 6)
    assert cli_main(["score", "--ref", str(ref)]) == 2


def test_write_scores_never_leaves_a_half_written_table(tmp_path, monkeypatch):
    """A stop in the middle of writing a table (Ctrl-C, full disk) leaves the previous
    file, or none, never a truncated one that breaks the next read."""
    from diareval.score import RunScores
    from diareval.score.run import write_scores
    scores = tmp_path / "scores"
    old = pd.DataFrame({"der": [0.1, 0.2]})
    write_scores(RunScores(sessions=old), scores, Conventions())
    real_to_csv = pd.DataFrame.to_csv

    def broken_to_csv(self, path, *args, **kwargs):
        with open(path, "w") as file:
            file.write("der\n0.")  # half a table, then the failure
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken_to_csv)
    with pytest.raises(OSError, match="disk full"):
        write_scores(RunScores(sessions=pd.DataFrame({"der": [0.3]})), scores, Conventions())
    monkeypatch.setattr(pd.DataFrame, "to_csv", real_to_csv)
    pd.testing.assert_frame_equal(pd.read_csv(scores / "sessions.csv"), old)
    assert not list(scores.glob("*.tmp"))


def test_run_scores_by_name_and_read_back(run_dir):
    """score_run returns named tables; what it writes reads back as the same RunScores."""
    from diareval.errors import ConfigError
    from diareval.report import breakdown_figure
    from diareval.score import RunScores
    root, recordings = run_dir
    scores = score_run(root, recordings=recordings, n_boot=50)
    assert isinstance(scores, RunScores)
    assert set(scores.tables()) == set(RunScores.table_names())
    again = RunScores.read(root / "scores")
    assert list(again.sessions["uri"]) == list(scores.sessions["uri"])
    assert np.allclose(again.der_dataset["der"], scores.der_dataset["der"])
    assert again.conventions == scores.conventions != ""
    with pytest.raises(DiarevalError, match="no table"):
        RunScores.from_tables({"der_datasett": scores.der_dataset})
    with pytest.raises(ConfigError, match="word_count"):
        breakdown_figure(scores, by="word_count_bin")
