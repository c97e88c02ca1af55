"""SNR levels as a configuration axis: one run streams configurations x levels, each session
the noisy copy of its configuration's level (``run(..., snr=[...])``, ``run --snr``)."""

from __future__ import annotations

import json
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import diareval.stream.retry as retry
from diareval import report
from diareval.report.compare import noise_levels
from diareval.datasets import load
from diareval.datasets.noise import measure_snr
from diareval.errors import ConfigError
from diareval.rundir import RunDir, RunManifest
from diareval.score import score_run
from diareval.stream import run
from diareval.stream.config import StreamConfig, make_configs, parse_snr
from diareval.stream.plan import plan_run
from fixtures import make_dataset

QUIET = dict(progress=False, announce=lambda _: None)
BASE = "universal-streaming-english__max-speakers"


def test_snr_is_a_configuration_axis():
    configs = make_configs(["u3-rt-pro"], "none,2", snr="30,0")
    assert [(c.max_speakers, c.snr, c.noise) for c in configs] == \
        [(None, 30.0, "pink"), (None, 0.0, "pink"), (2, 30.0, "pink"), (2, 0.0, "pink")]
    assert configs[1].name == "u3-rt-pro__max-speakers-none__snr-0"
    assert StreamConfig("u3-rt-pro", snr=-5, noise="white").name == \
        "u3-rt-pro__max-speakers-none__snr--5"
    assert report.split_snr(configs[1].name) == ("u3-rt-pro__max-speakers-none", 0.0)
    # the SNR is not a v3 parameter: the URL is the clean configuration's
    assert configs[0].url() == StreamConfig("u3-rt-pro").url()
    assert configs[0].to_json()["snr"] == 30.0 and configs[0].to_json()["noise"] == "pink"
    assert "snr" not in StreamConfig("u3-rt-pro").to_json()  # clean: run.json as before
    assert parse_snr(None) == [None] and parse_snr([10, 10.0, -0.0]) == [10.0, 0.0]
    with pytest.raises(ConfigError, match="SNR 'x' is not a number of dB"):
        parse_snr("30,x")
    with pytest.raises(ConfigError, match="finite"):
        make_configs(["u3-rt-pro"], snr=[math.inf])
    with pytest.raises(ConfigError, match="without SNR levels"):
        make_configs(["u3-rt-pro"], noise="white")


def test_the_noisy_dataset_with_snr_levels_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="pass the clean dataset"):
        plan_run("noisy", backend="local", snr=[0], run_dir=tmp_path / "r", **QUIET)


def test_one_run_over_configurations_and_snr_levels(tmp_path, monkeypatch):
    """2 configurations x 2 levels against the local server (oracle, started by the run):
    4 config folders, run.json records the levels, the audio at 0 dB is not the audio at
    30 dB, scored sessions carry snr, the noise figure draws 2 lines of 2 points."""
    data = tmp_path / "data"
    recordings = make_dataset(data, n=2, seconds=2.0)
    streamed: dict[tuple[str, float], np.ndarray] = {}
    original = retry.recording_audio

    def capture(recording):
        source = original(recording)

        class Capturing:
            duration = source.duration

            def blocks(self, samples):
                parts = []
                for block in source.blocks(samples):
                    parts.append(np.asarray(block))
                    yield block
                streamed[(recording.uri, recording.meta.get("snr"))] = np.concatenate(parts)
        return Capturing()

    monkeypatch.setattr(retry, "recording_audio", capture)
    monkeypatch.setenv("DIAREVAL_DATA", str(tmp_path / "cache"))  # the noisy copies' cache
    run_dir = tmp_path / "run"
    result = run(str(data), backend="local", speed=math.inf, chunk_seconds=0.5,
                 max_speakers="none,2", snr=[30, 0], run_dir=run_dir,
                 **QUIET)
    names = [f"{BASE}-{k}__snr-{level}" for k in ("none", "2") for level in (30, 0)]
    assert result.ok and result.streamed == 8, result.summary()
    rundir = RunDir(run_dir)
    assert sorted(p.name for p in (run_dir / "sessions").iterdir()) == sorted(names)
    assert all(rundir.read_status(n, r.uri).status == "complete"
               for n in names for r in recordings)
    manifest = rundir.read_manifest()
    assert manifest.configuration_names == names
    assert manifest.snr_levels == [30.0, 0.0]
    assert [(c["snr"], c["noise"]) for c in manifest.configurations] == \
        [(30.0, "pink"), (0.0, "pink")] * 2
    assert manifest.dataset == str(data.resolve())  # the clean recordings, one dataset
    # what was streamed: the clean audio plus noise at each level (measured), never clean
    assert sorted(streamed) == sorted((r.uri, s) for r in recordings for s in (30.0, 0.0))
    for recording in recordings:
        clean = recording.load_audio()
        speech = recording.reference.get_timeline().support()
        at_0, at_30 = streamed[(recording.uri, 0.0)], streamed[(recording.uri, 30.0)]
        assert len(at_0) == len(at_30) == len(clean)
        assert not np.array_equal(at_0, at_30)
        assert measure_snr(clean, at_0, speech) == pytest.approx(0.0, abs=0.5)
        assert measure_snr(clean, at_30, speech) == pytest.approx(30.0, abs=0.5)
    # scoring: the references by uri (the same at every level), snr from run.json
    scores = score_run(run_dir, n_boot=50)
    sessions = scores.sessions
    assert sessions["scored"].all() and len(sessions) == 8
    assert sessions.groupby("config")["snr"].first().to_dict() == \
        {n: float(n.rsplit("-", 1)[1]) for n in names}
    assert noise_levels(scores) == [0.0, 30.0]
    figure = report.FIGURES["noise"](scores)
    lines = {k.get_label(): k for k in figure.axes[0].containers}
    assert sorted(lines) == ["max-speakers-2", "max-speakers-none"]  # the shared part cut
    for line in lines.values():
        assert list(line.lines[0].get_xdata()) == [0.0, 30.0]
    plt.close(figure)
    # compare reads the one run: configurations with their snr setting
    comparison = report.compare_runs([run_dir], baseline=names[0], n_boot=50)
    table = comparison.configurations
    assert list(table["snr"]) == [30.0, 0.0, 30.0, 0.0]
    # resume: nothing streamed again
    again = run(str(data), backend="local", speed=math.inf, chunk_seconds=0.5,
                max_speakers="none,2", snr=[30, 0], run_dir=run_dir, resume=True, **QUIET)
    assert again.ok and again.streamed == 0 and again.skipped == 8


def test_an_old_run_json_without_snr_reads(tmp_path):
    data = {"dataset": "synthetic", "configurations": [{"name": "a", "model": "x"}]}
    assert RunManifest.from_json(data).snr_levels == []
    with pytest.raises(Exception, match='"snr" must be a number'):
        RunManifest.from_json({"configurations": [{"name": "a", "snr": "loud"}]})


def test_the_server_catalog_holds_every_level(tmp_path, monkeypatch):
    """The local server of an SNR run loads the clean recordings' noisy copies (the oracle
    recognises a session by its audio), same uris and references."""
    monkeypatch.setenv("DIAREVAL_DATA", str(tmp_path / "cache"))
    recordings = make_dataset(tmp_path / "data", n=2, seconds=1.5)
    plan = plan_run(str(tmp_path / "data"), backend="local", snr=[10, 0], noise="white",
                    run_dir=tmp_path / "r", **QUIET)
    served = plan.for_local_server()
    assert served.server_dataset == "noise-levels" and plan.server_dataset != "noise-levels"
    assert json.loads(json.dumps(dict(served.dataset_options)))  # JSON for the child process
    catalog = load(served.server_dataset, **served.dataset_options)
    assert [r.uri for r in catalog] == ["rec0", "rec1"] * 2
    assert [r.meta["snr"] for r in catalog] == [10.0, 10.0, 0.0, 0.0]
    by_level = {(r.uri, r.meta["snr"]): r for r in catalog}
    for (config, recording) in plan.sessions_to_stream():
        copy = by_level[(recording.uri, config.snr)]
        assert copy.audio_path == recording.audio_path
        assert copy.reference == recordings[int(recording.uri[-1])].reference
    # recorded options stay the clean dataset's
    assert plan.dataset_options == {} and plan.dataset == str((tmp_path / "data").resolve())
    assert pd.Series([c.snr for c in plan.configs]).tolist() == [10.0, 0.0]
