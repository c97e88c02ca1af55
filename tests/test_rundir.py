"""diareval.rundir: the run directory's paths and files; runs written before it still read."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from diareval.rundir import (RunDir, RunDirError, RunManifest, SessionStatus, atomic_paths,
                             read_json, write_json_atomic)
from diareval.score import score_run
from diareval.server import LocalServer
from diareval.server.engines import make_engine_factory
from diareval.stream import run
from fixtures import make_dataset
from test_stream_support import files_under

OLD_RUN = Path(__file__).parent / "data_fixtures" / "old_run"  # made by make_old_run.py (74159de)
C_NONE = "universal-streaming-english__max-speakers-none"
C_TWO = "universal-streaming-english__max-speakers-2"
KEY = "test-key"


@pytest.fixture
def old_run(tmp_path):
    """A copy of the old run and its recordings (regenerated: make_dataset is seeded)."""
    target = tmp_path / "old_run"
    shutil.copytree(OLD_RUN, target)
    return RunDir(target), make_dataset(tmp_path / "data", n=2, seconds=1.5)


def test_an_old_run_reads_through_rundir(old_run):
    rundir, _ = old_run
    manifest = rundir.read_manifest()
    assert manifest.configuration_names == [C_NONE, C_TWO]
    assert manifest.uris == ("rec0", "rec1") and manifest.backend == "local"
    assert manifest.speed == math.inf and len(manifest.invocations) == 2
    # run.json's configurations in its order; the attempt archive is not a session
    assert [(s.config, s.uri) for s in rundir.sessions()] == [
        (C_NONE, "rec0"), (C_NONE, "rec1"), (C_TWO, "rec0"), (C_TWO, "rec1")]
    status = rundir.read_status(C_NONE, "rec1")
    assert status.status == "complete" and status.config == C_NONE
    assert [a["log"] for a in status.attempts] == ["rec1.attempt1.jsonl", "rec1.jsonl"]
    assert rundir.attempt_path(C_NONE, "rec1", 1).exists()
    # every file the old code wrote comes back unchanged through the dataclasses
    for path in files_under(rundir.path):
        if path.suffix == ".json":
            data = read_json(path)
            cls = RunManifest if path.name == "run.json" else SessionStatus
            assert cls.from_json(data, path).to_json() == data, path
    assert rundir.read_status(C_TWO, "no-such-uri") is None


def test_an_old_run_scores_as_before(old_run):
    """The numbers score_run gave on this fixture before rundir.py (74159de, same call)."""
    rundir, recordings = old_run
    scores = score_run(rundir.path, recordings=recordings, n_boot=50)
    sessions = scores.sessions.set_index(["config", "uri"])
    assert sessions["scored"].all() and len(sessions) == 4
    for config in (C_NONE, C_TWO):
        assert sessions.loc[(config, "rec0"), "der"] == pytest.approx(0.5)
        assert sessions.loc[(config, "rec0"), "confusion"] == pytest.approx(0.5)
        assert sessions.loc[(config, "rec1"), "der"] == pytest.approx(0.0)
    assert list(scores.der_dataset["der"]) == pytest.approx([0.25, 0.25])
    assert {"sessions.csv", "sessions.parquet", "conventions.json"} <= \
        {p.name for p in rundir.scores_dir.iterdir()}
    assert not list(rundir.scores_dir.glob("*.tmp"))


def test_an_old_run_resumes_with_the_new_runner(old_run):
    rundir, recordings = old_run
    # the same recordings, under the dataset name the old run recorded (a folder made by the
    # fixture's script, since deleted)
    recordings = [replace(r, meta={**r.meta, "dataset": rundir.read_manifest().dataset})
                  for r in recordings]
    with LocalServer(make_engine_factory("oracle", recordings=recordings), api_keys=(KEY,),
                     lookahead_seconds=None).running_in_thread() as server:
        options = dict(backend="local", host=server.url, api_key=KEY, speed=math.inf,
                       chunk_seconds=0.5, max_speakers="none,2", run_dir=rundir.path,
                       resume=True, progress=False, announce=lambda _: None)
        again = run(recordings, **options)
        assert again.ok and again.skipped == 4 and server.sessions == []
        status = rundir.read_status(C_NONE, "rec1")
        rundir.write_status(C_NONE, "rec1", SessionStatus.from_json(
            {**status.to_json(), "status": "failed"}))
        third = run(recordings, **options)
        assert third.ok and third.streamed == 1 and len(server.sessions) == 1
    status = rundir.read_status(C_NONE, "rec1")
    assert [a["log"] for a in status.attempts] == \
        ["rec1.attempt1.jsonl", "rec1.attempt2.jsonl", "rec1.jsonl"]
    assert len(rundir.read_manifest().invocations) == 4


def test_a_new_run_writes_the_old_layout_and_keys(tmp_path):
    recordings = make_dataset(tmp_path / "data", n=2, seconds=1.5)
    new = RunDir(tmp_path / "new")
    with LocalServer(make_engine_factory("oracle", recordings=recordings), api_keys=(KEY,),
                     lookahead_seconds=None).running_in_thread() as server:
        assert run(recordings, backend="local", host=server.url, api_key=KEY, speed=math.inf,
                   chunk_seconds=0.5, max_speakers="none,2", run_dir=new.path,
                   progress=False, announce=lambda _: None).ok
    old = RunDir(OLD_RUN)
    assert {str(p.relative_to(new.path)) for p in files_under(new.path)} == \
        {str(p.relative_to(old.path)) for p in files_under(old.path)} - \
        {f"sessions/{C_NONE}/rec1.attempt1.jsonl"}
    assert list(read_json(new.manifest_path)) == list(read_json(old.manifest_path))
    for config in (C_NONE, C_TWO):
        fresh, before = read_json(new.status_path(config, "rec0")), \
            read_json(old.status_path(config, "rec0"))
        assert list(fresh) == list(before)
        assert list(fresh["attempts"][0]) == list(before["attempts"][0])


@pytest.mark.parametrize("text, message", [
    ("{not json", "cannot be read as JSON"),
    ("[1, 2]", "a JSON object expected"),
    ('{"status": "done"}', '"status" must be one of pending, running'),
    ('{"attempts": []}', '"status" must be one of'),
    ('{"status": "complete", "attempts": {"a": 1}}', '"attempts" must be a list of objects'),
    ('{"status": "complete", "audio_seconds": "long"}', '"audio_seconds" must be a number'),
])
def test_a_malformed_status_file_is_an_error_naming_it(tmp_path, text, message):
    rundir = RunDir(tmp_path / "run")
    path = rundir.status_path("cfg", "rec0")
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(RunDirError, match=message) as caught:
        rundir.read_status("cfg", "rec0")
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("data, message", [
    ({"uris": "rec0"}, '"uris" must be a list of strings'),
    ({"configurations": [{"model": "x"}]}, 'every configuration needs a "name"'),
    ({"configurations": {"name": "x"}}, '"configurations" must be a list of objects'),
    ({"dataset": 3}, '"dataset" must be a string or null'),
    ({"dataset_options": [1]}, '"dataset_options" must be an object or null'),
    ({"seed": True}, '"seed" must be a number or null'),
])
def test_a_malformed_manifest_is_an_error_naming_it(tmp_path, data, message):
    rundir = RunDir(tmp_path / "run")
    rundir.path.mkdir()
    rundir.manifest_path.write_text(json.dumps(data))
    with pytest.raises(RunDirError, match=message) as caught:
        rundir.read_manifest()
    assert str(rundir.manifest_path) in str(caught.value)
    with pytest.raises(RunDirError, match=message):
        score_run(rundir.path, recordings=[])


def test_score_run_names_an_unreadable_status_file_in_its_row(old_run):
    rundir, recordings = old_run
    rundir.status_path(C_TWO, "rec1").write_text('{"status": "compl')
    sessions = score_run(rundir.path, recordings=recordings, n_boot=20,
                         write=False).sessions.set_index(["config", "uri"])
    row = sessions.loc[(C_TWO, "rec1")]
    assert not row["scored"] and row["status"] == "unreadable status file"
    assert str(rundir.status_path(C_TWO, "rec1")) in row["note"]
    assert sessions["scored"].sum() == 3


def test_minimal_files_written_by_hand_are_enough(tmp_path):
    """Tests and older tools write run.json with three keys and statuses with one."""
    rundir = RunDir(tmp_path / "run")
    write_json_atomic(rundir.manifest_path, {"dataset": "x", "uris": ["b", "a"],
                                             "configurations": [{"name": "c"}]})
    write_json_atomic(rundir.status_path("c", "a"), {"status": "failed", "error": "3005"})
    rundir.log_path("d", "z").parent.mkdir(parents=True)
    rundir.log_path("d", "z").write_text("")
    rundir.attempt_path("d", "z", 1).write_text("")
    manifest = rundir.read_manifest()
    assert manifest.dataset == "x" and manifest.dataset_options is None
    assert manifest.configuration("c") == {"name": "c"} and manifest.configuration("d") == {}
    assert rundir.read_status("c", "a") == SessionStatus(status="failed", error="3005")
    found = [(s.config, s.uri) for s in rundir.sessions()]
    assert found == [("c", "a"), ("c", "b"), ("d", "a"), ("d", "b"), ("d", "z")]
    assert rundir.sessions()[0].log == rundir.path / "sessions" / "c" / "a.jsonl"


def test_archive_log_takes_the_next_free_number(tmp_path):
    rundir = RunDir(tmp_path / "run")
    assert rundir.archive_log("c", "u", 0) is None  # no log yet
    log = rundir.log_path("c", "u")
    log.parent.mkdir(parents=True)
    log.write_text("first\n")
    assert rundir.archive_log("c", "u", 0) == "u.attempt1.jsonl"
    log.write_text("second\n")
    assert rundir.archive_log("c", "u", 1) == "u.attempt2.jsonl"  # 1 is taken
    assert not log.exists()
    assert rundir.attempt_path("c", "u", 2).read_text() == "second\n"


def test_a_relative_dataset_resolves_beside_the_runs_folder(tmp_path, monkeypatch):
    """Runs once recorded a folder as given (``data``, from the repository root); scored from
    elsewhere, ``runs/<run>/../data`` is where it is."""
    (tmp_path / "repo" / "data").mkdir(parents=True)
    rundir = RunDir(tmp_path / "repo" / "runs" / "r1")
    rundir.path.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert rundir.dataset_source("data") == str((tmp_path / "repo" / "data").resolve())
    assert rundir.dataset_source("synthetic") == "synthetic"  # a registered name
    assert rundir.dataset_source("elsewhere") == "elsewhere"  # left for the loader's error
    monkeypatch.chdir(tmp_path / "repo")
    assert rundir.dataset_source("data") == "data"  # exists from here


def test_atomic_paths_leave_the_old_files_on_failure(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("old a")
    with pytest.raises(OSError, match="full"):
        with atomic_paths(a, b) as (tmp_a, tmp_b):
            tmp_a.write_text("new a")
            raise OSError("disk full")
    assert a.read_text() == "old a" and not b.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    with atomic_paths(a, b) as (tmp_a, tmp_b):
        tmp_a.write_text("new a")
        tmp_b.write_text("new b")
    assert a.read_text() == "new a" and b.read_text() == "new b"
