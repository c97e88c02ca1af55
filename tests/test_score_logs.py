"""score --log: logs captured anywhere score exactly like diareval's own (issue 13, item 6).

The raw logs are what an app writes from the SDK's callbacks, as docs/bring-your-own-logs.md
shows: each message through the SDK's own pydantic model (``model_validate`` then
``model_dump(mode="json")``) with a ``t_wall`` beside it; or websocket text frames wrapped
with an ISO ``received_at``.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from assemblyai.streaming.v3.models import (BeginEvent, SpeakerRevisionEvent, TerminationEvent,
                                            TurnEvent)
from pyannote.core import Annotation, Segment

from diareval.cli import main as cli_main
from diareval.datasets.rttm import format_rttm
from diareval.errors import DatasetError
from diareval.score import Conventions, score_logs
from diareval.score.logs import format_log_scores, log_table, read_message_log
from diareval.server.engines.base import SessionParams
from diareval.server.engines.oracle import OracleConfig, make_oracle_factory
from diareval.sessionlog import read_session_log

from test_score_run import make_recording, stream_oracle

SDK_MODELS = {"Begin": BeginEvent, "Turn": TurnEvent, "SpeakerRevision": SpeakerRevisionEvent,
              "Termination": TerminationEvent}
COLUMNS = ["der", "miss_rate", "false_alarm_rate", "confusion_rate", "jer", "unknown_turn_rate",
           "revised_turns", "reference_speech"]


def sdk_capture(line) -> dict:
    """One SDK callback's line: the event as the SDK parsed it, plus the receive time."""
    event = SDK_MODELS[line.msg["type"]].model_validate(line.msg)
    return {"t_wall": line.t_wall, **event.model_dump(mode="json")}


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """Two oracle sessions (with SpeakerRevisions) as diareval logs, as SDK captures, as
    websocket captures; one multi-file reference RTTM."""
    root = tmp_path_factory.mktemp("logs")
    (root / "audio").mkdir()
    recordings = [make_recording(root / "audio", f"m{i}", 40.0, 10 + i) for i in range(2)]
    factory = make_oracle_factory(recordings, OracleConfig(seed=3, p_revision=0.6))
    for name in ("diareval", "sdk", "websocket"):
        (root / name).mkdir()
    start = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
    for recording in recordings:
        path = root / "diareval" / f"{recording.uri}.jsonl"
        stream_oracle(factory, recording, path, SessionParams(speaker_labels=True))
        lines = [line for line in read_session_log(path) if line.dir == "recv"]
        assert any(line.msg["type"] == "SpeakerRevision" for line in lines)
        (root / "sdk" / path.name).write_text(
            "".join(json.dumps(sdk_capture(line)) + "\n" for line in lines))
        (root / "websocket" / path.name).write_text("".join(
            json.dumps({"received_at": (start + timedelta(seconds=line.t_wall)).isoformat(),
                        "message": json.dumps(line.msg)}) + "\n" for line in lines))
    (root / "ref.rttm").write_text("".join(format_rttm(r.reference) for r in recordings))
    return root, recordings


def test_raw_sdk_and_websocket_logs_score_like_diareval_logs(logs):
    root, _ = logs
    tables = {name: log_table(score_logs(root / name, root / "ref.rttm", n_boot=20))
              for name in ("diareval", "sdk", "websocket")}
    base = tables["diareval"]
    assert list(base["file"]) == ["m0", "m1", "TOTAL"]
    assert base["revised_turns"].iloc[-1] > 0 and (base["der"] > 0).all()
    for name in ("sdk", "websocket"):
        pd.testing.assert_frame_equal(tables[name][["file"] + COLUMNS], base[["file"] + COLUMNS])
    # the on-screen curve too: same receive times, same messages
    seen = [score_logs(root / name, root / "ref.rttm", n_boot=20).der_seen
            for name in ("diareval", "websocket")]
    assert np.allclose(seen[0]["der"].fillna(-1), seen[1]["der"].fillna(-1), atol=1e-12)
    # once every message is in, the screen is the final hypothesis: its DER is the session's
    scores = score_logs(root / "diareval", root / "ref.rttm", n_boot=20)
    for row in scores.sessions.itertuples():
        assert row.unfinished_turns == 0
        last = scores.der_seen[scores.der_seen["uri"] == row.uri].iloc[-1]
        assert last["der"] == pytest.approx(row.der, abs=1e-12)


def test_cli_log_form_prints_the_table_and_writes_it(logs, tmp_path, capsys):
    root, _ = logs
    out = tmp_path / "out"
    assert cli_main(["score", "--log", str(root / "sdk"), "--ref", str(root / "ref.rttm"),
                     "--n-boot", "20", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    header = printed.splitlines()[1].split()
    assert header[:8] == ["file", "DER%", "miss%", "FA%", "conf%", "JER%", "unknown%",
                          "revised"]
    api = log_table(score_logs(root / "diareval", root / "ref.rttm", n_boot=20))
    total = next(line for line in printed.splitlines() if line.startswith("TOTAL"))
    assert total.split()[1] == f"{100 * api['der'].iloc[-1]:.2f}"
    assert (out / "sessions.csv").exists() and (out / "der_seen.parquet").exists()
    assert (out / "der_seen_dataset.csv").exists()
    # one file, and --no-revisions changes the numbers the revisions changed
    assert cli_main(["score", "--log", str(root / "sdk" / "m0.jsonl"), "--ref",
                     str(root / "ref.rttm"), "--no-revisions", "--n-boot", "20"]) == 0
    assert "revisions ignored" in capsys.readouterr().out


def test_bad_inputs_name_the_file(logs, tmp_path):
    root, recordings = logs
    stray = tmp_path / "stray.jsonl"
    stray.write_text((root / "sdk" / "m0.jsonl").read_text())
    with pytest.raises(DatasetError, match="stray.jsonl: no reference for uri 'stray'"):
        score_logs([stray, root / "sdk" / "m1.jsonl"], root / "ref.rttm")
    broken = tmp_path / "m0.jsonl"
    broken.write_text('{"type": "Turn"}\nnot json\n{"type": "Begin"}\n')
    with pytest.raises(DatasetError, match=r"m0.jsonl:2: not JSON"):
        read_message_log(broken)
    broken.write_text('{"hello": 1}\n')
    with pytest.raises(DatasetError, match=r"m0.jsonl:1: neither a message"):
        read_message_log(broken)
    with pytest.raises(DatasetError, match="no such log"):
        score_logs(tmp_path / "missing", root / "ref.rttm")


def test_a_log_without_receive_times_is_scored_and_says_so(logs, tmp_path):
    root, _ = logs
    lines = [json.loads(line) for line in (root / "sdk" / "m0.jsonl").read_text().splitlines()]
    for line in lines:
        del line["t_wall"]
    (tmp_path / "m0.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    # a single log and a single-uri reference match whatever the names
    only = tmp_path / "only.rttm"
    only.write_text(format_rttm(logs[1][0].reference))
    timeless = log_table(score_logs(tmp_path / "m0.jsonl", only, n_boot=20))
    timed = log_table(score_logs(root / "sdk" / "m0.jsonl", only, n_boot=20))
    assert timeless["der"].iloc[0] == pytest.approx(timed["der"].iloc[0], abs=1e-12)
    assert "no receive times" in timeless["note"].iloc[0]


def test_a_session_without_reference_speech_says_der_is_undefined(logs, tmp_path):
    root, _ = logs
    silent = tmp_path / "silent.rttm"
    silent.write_text("SPEAKER m0 1 100.000 1.000 <NA> <NA> spk0 <NA> <NA>\n")
    uem = tmp_path / "m0.uem"
    uem.write_text("m0 1 0.000 40.000\n")
    table = log_table(score_logs(root / "sdk" / "m0.jsonl", silent, uem, n_boot=20))
    assert math.isnan(table["der"].iloc[0])
    text = format_log_scores(table)
    assert "nan" not in text.lower()
    assert "n/a" in text and "no reference speech in the scored region: DER undefined" in text


def test_the_docs_capture_snippet_records_what_the_sdk_delivers(tmp_path, monkeypatch):
    # the five lines of docs/bring-your-own-logs.md, run as written in a real SDK app against
    # the local server; the captured file then scores like the messages the server sent
    import re
    import threading
    from pathlib import Path

    sdk = pytest.importorskip("assemblyai.streaming.v3")
    from diareval.datasets import load_folder
    from diareval.score.der import der
    from diareval.score.hypothesis import hypothesis_from_log
    from diareval.server import LocalServer
    from diareval.server.engines import make_engine_factory
    from fixtures import write_synthetic_dataset
    from diareval.sessionlog import LogLine

    doc = (Path(__file__).resolve().parents[1] / "docs" / "bring-your-own-logs.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    assert len([line for line in snippet.splitlines() if not line.startswith("import")]) == 5
    recordings = load_folder(write_synthetic_dataset(tmp_path / "syn", n_recordings=1,
                                                     duration=20.0, n_speakers=2, seed=5))
    recording = recordings[0]
    server = LocalServer(make_engine_factory("oracle", recordings=recordings, seed=0),
                         api_keys=("test-key",), lookahead_seconds=300.0)
    monkeypatch.chdir(tmp_path)
    done = threading.Event()
    with server.running_in_thread():
        client = sdk.StreamingClient(sdk.StreamingClientOptions(api_key="test-key",
                                                                api_host=server.url))
        namespace = {"client": client, "StreamingEvents": sdk.StreamingEvents}
        exec(snippet, namespace)
        client.on(sdk.StreamingEvents.Termination, lambda c, e: done.set())
        client.connect(sdk.StreamingParameters(sample_rate=16000, speaker_labels=True,
                                               speech_model="universal-streaming-english"))
        audio = recording.load_audio()
        client.stream(audio[i:i + 1600].tobytes() for i in range(0, len(audio) - 800, 1600))
        client.disconnect(terminate=True)
        assert done.wait(10)
    namespace["log"].close()
    sent = server.sessions[0].sent_messages
    captured = [json.loads(line) for line in (tmp_path / "meeting-01.jsonl").read_text()
                .splitlines()]
    assert [m["type"] for m in captured] == [m["type"] for m in sent
                                              if m["type"] in SDK_MODELS]
    reference = {"meeting-01": recording.reference}
    scores = score_logs(tmp_path / "meeting-01.jsonl", reference,
                        {"meeting-01": recording.uem}, n_boot=20)
    expected = der(recording.reference,
                   hypothesis_from_log([LogLine("recv", 0.0, 0.0, m) for m in sent]),
                   recording.uem)
    assert scores.sessions["der"].iloc[0] == pytest.approx(expected.der, abs=1e-12)
    assert scores.sessions["note"].iloc[0] == ""
