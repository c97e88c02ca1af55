"""``python -m diareval run`` end to end, with the local server in its own process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from diareval.sessionlog import read_session_log
from fixtures import make_dataset
from test_stream_support import read_status

CONFIG = "universal-streaming-english__max-speakers-none"


def _diareval(*args, env_extra=None, timeout=300):
    env = {k: v for k, v in os.environ.items() if k != "ASSEMBLYAI_API_KEY"}
    env.update(env_extra or {})
    t = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "diareval", "run", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)
    return proc, time.monotonic() - t


def test_local_backend_with_speed_streams_faster_than_real_time(tmp_path):
    data = tmp_path / "data"
    make_dataset(data, n=3, seconds=6.0)
    proc, wall = _diareval("--dataset", str(data), "--max-speakers", "none,2", "--speed", "6",
                           "--run-dir", str(tmp_path / "run"), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "ASSEMBLYAI_API_KEY is not set: using the local server" in proc.stdout
    assert "6 sessions: 6 complete" in proc.stdout
    # 6 s of audio each at 6x: ~1 s of streaming plus start-up and scoring (a few seconds idle,
    # several times that on a loaded machine); the pacing itself is bounded per session below
    assert wall < 6.0 + 40
    run_json = json.loads((tmp_path / "run/run.json").read_text())
    assert run_json["backend"] == "local" and run_json["engine"] == "oracle"
    assert run_json["speed"] == 6.0
    for config in (CONFIG, "universal-streaming-english__max-speakers-2"):
        for uri in ("rec0", "rec1", "rec2"):
            status = read_status(tmp_path / "run/sessions" / config / f"{uri}.json")
            assert status["status"] == "complete"
            last = status["attempts"][-1]
            # 6 s streamed in about 1 s, by the pacer's deadlines (not as fast as possible)
            assert 0.9 < last["t_last_chunk"] - last["t_first_chunk"] < 2.0
            turns = [line for line in read_session_log(
                tmp_path / "run/sessions" / config / f"{uri}.jsonl") if line.type == "Turn"]
            assert turns, "the oracle sent turns"


@pytest.mark.realtime
def test_ami_excerpts_stream_concurrently_in_real_time_and_resume_streams_nothing(
        ami_excerpts, tmp_path):
    """The acceptance run: all 11 excerpts (30 s each) at once, in real time."""
    run_dir = tmp_path / "run"
    proc, wall = _diareval("--dataset", str(ami_excerpts), "--backend", "local",
                           "--run-dir", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    assert "11 sessions: 11 complete" in proc.stdout
    # interpreter, imports, server process start, dataset loading (x2 processes) and scoring:
    # a few seconds on an idle machine, several times that on a loaded one. Real-time pacing
    # itself is bounded per session below (first to last chunk 29.9-30.5 s, lateness p99).
    startup = 30.0
    assert 30.0 <= wall <= 1.1 * 30.0 + startup, wall
    session_dir = run_dir / "sessions" / CONFIG
    uris = sorted(p.stem for p in Path(ami_excerpts).glob("*.wav"))
    assert len(uris) == 11
    assert sorted(p.name for p in session_dir.iterdir()) == \
        sorted([f"{u}.json" for u in uris] + [f"{u}.jsonl" for u in uris])
    starts, ends = [], []
    for uri in uris:
        status = read_status(session_dir / f"{uri}.json")
        assert status["status"] == "complete" and len(status["attempts"]) == 1
        attempt = status["attempts"][0]
        assert attempt["lateness_ms"]["p99"] < 50
        assert 29.9 < attempt["t_last_chunk"] - attempt["t_first_chunk"] < 30.5
        starts.append(attempt["started_at"])
        ends.append(attempt["ended_at"])
    assert max(starts) < min(ends)  # all eleven were open at the same time
    # --resume afterwards streams nothing
    before = {p.name: p.read_bytes() for p in session_dir.iterdir()}
    proc, wall = _diareval("--dataset", str(ami_excerpts), "--backend", "local",
                           "--run-dir", str(run_dir), "--resume")
    assert proc.returncode == 0, proc.stderr
    assert "11 sessions: 11 complete, 11 of them already complete before (skipped)" in proc.stdout
    assert "starting the local server" not in proc.stdout
    assert {p.name: p.read_bytes() for p in session_dir.iterdir()} == before
    assert wall < 30.0  # re-streaming any excerpt at real time would take 30 s; scoring and
    # figures alone take a few seconds idle, more under load


def test_default_dataset_is_generated_and_run_scores_it(tmp_path):
    """No --dataset: generated conversations (with --dataset-options reaching the loader, the
    local server's own load and the scorer alike), streamed, then scored by the same command."""
    pytest.importorskip("espeakng_loader")
    proc, _ = _diareval("--dataset-options", '{"n_conversations": 1, "n_speakers": 2, "minutes": 1, "seed": 3}',
                        "--speed", "20", "--run-dir", str(tmp_path / "run"), "--no-progress",
                        env_extra={"DIAREVAL_DATA": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    run_json = json.loads((tmp_path / "run/run.json").read_text())
    assert run_json["dataset"] == "synthetic"
    assert run_json["dataset_options"] == {"n_conversations": 1, "n_speakers": 2, "minutes": 1, "seed": 3}
    [status_file] = (tmp_path / "run/sessions" / CONFIG).glob("*.json")
    assert read_status(status_file)["status"] == "complete"
    # the server identified the generated audio (same options), so the oracle's turns are
    # labelled; the scorer loaded the same recording: a DER line with a real number
    assert f"{CONFIG}: DER " in proc.stdout
    # generated conversations have reference words: cpWER beside DER, and the word columns
    [der_line] = [line for line in proc.stdout.splitlines() if line.startswith(f"{CONFIG}: DER ")]
    assert re.search(r"; cpWER \d+\.\d\d%$", der_line), der_line
    assert re.search(r"cpWER%\s+tcpWER%\s+WDER%\s+WER%", proc.stdout), proc.stdout
    der = json.loads((tmp_path / "run/scores/conventions.json").read_text())
    assert der  # the conventions travel with the tables
    sessions = (tmp_path / "run/scores/sessions.csv").read_text().splitlines()
    assert len(sessions) == 2  # header + the one generated conversation
