"""compare_runs / `python -m diareval compare`: configurations across runs, paired differences,
refusals (other conventions, other recordings), CLI = API."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pyannote.core import Annotation, Segment, Timeline

from diareval.cli import main as cli_main
from diareval.datasets.recording import Recording
from diareval.errors import ConfigError, DiarevalError
from diareval.report import compare_runs
from diareval.report.comparison import SETTINGS
from diareval.score import Conventions, score_run
from diareval.server.engines.base import SessionParams
from diareval.server.engines.oracle import OracleConfig, make_oracle_factory
from diareval.sessionlog import SessionLogWriter

CONFIG = "universal-streaming-english__max-speakers-none"
CLEAN = OracleConfig(seed=1, p_wrong_by_words=(0,) * 6, p_wrong_first=0, p_wrong_overlap=0,
                     p_unknown_short=0)
HEAVY = OracleConfig(seed=1, p_wrong_by_words=(0.6,) * 6, p_wrong_first=0.6, p_wrong_overlap=0.6)


def make_recording(folder: Path, uri: str, duration: float, seed: int) -> Recording:
    """Noise audio (the oracle identifies recordings by their audio) and a random 3-speaker
    reference with turns of 1 to 15 words' length."""
    rng = np.random.default_rng(seed)
    path = folder / f"{uri}.wav"
    sf.write(path, (rng.standard_normal(int(duration * 16000)) * 3000).astype(np.int16), 16000)
    reference, t, i = Annotation(uri=uri), 0.5, 0
    while t < duration - 1:
        end = min(t + float(rng.choice([0.4, 0.8, 1.5, 3.0, 6.0])), duration)
        reference[Segment(t, end), i] = f"spk{rng.integers(3)}"
        i += 1
        t = end + float(rng.uniform(0.05, 1.0))
    return Recording(uri=uri, audio_path=path, reference=reference,
                     uem=Timeline([Segment(0, duration)], uri=uri), meta={"uem": "whole file"})


def make_run(root: Path, recordings, oracle: OracleConfig, engine_options: dict,
             conventions: Conventions = Conventions()) -> Path:
    """A scored run directory of the oracle driven directly (no websocket), one config."""
    factory = make_oracle_factory(recordings, oracle)
    folder = root / "sessions" / CONFIG
    folder.mkdir(parents=True)
    for recording in recordings:
        engine = factory(SessionParams(speaker_labels=True))
        audio, sent = recording.load_audio(), 0
        with SessionLogWriter(folder / f"{recording.uri}.jsonl") as writer:
            writer.write("recv", 0.0, 0.0, {"type": "Begin", "id": "x", "expires_at": 0})
            for start in range(0, len(audio), 1600):
                sent += len(audio[start:start + 1600])
                for message in engine.feed(audio[start:start + 1600]):
                    writer.write("recv", sent / 16000, sent / 16000, message)
            for message in engine.finish():
                writer.write("recv", sent / 16000, sent / 16000, message)
        (folder / f"{recording.uri}.json").write_text(json.dumps({"status": "complete"}))
    (root / "run.json").write_text(json.dumps({
        "dataset": "unused", "dataset_options": {}, "uris": [r.uri for r in recordings],
        "configurations": [{"name": CONFIG, "model": "universal-streaming-english",
                            "max_speakers": None, "params": {}}],
        "backend": "local", "engine": "oracle", "engine_options": engine_options,
        "versions": {"python": "3.11"}, "git_sha": "abc"}))
    score_run(root, conventions, recordings=recordings, n_boot=200, step=5.0)
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs of the same 5 recordings: the oracle with no label errors and with many."""
    root = tmp_path_factory.mktemp("compare")
    (root / "audio").mkdir()
    recordings = [make_recording(root / "audio", f"r{i}", 40.0, i) for i in range(5)]
    clean = make_run(root / "clean", recordings, CLEAN, {"p_wrong_first": 0})
    heavy = make_run(root / "heavy", recordings, HEAVY, {"p_wrong_first": 0.6})
    return clean, heavy, recordings


def test_paired_difference_excludes_zero(runs):
    clean, heavy, _ = runs
    comparison = compare_runs([clean, heavy], n_boot=300)
    ids = list(comparison.configurations["id"])
    assert ids == [f"{CONFIG}__clean", f"{CONFIG}__heavy"]  # same config name: made unique by run
    assert comparison.baseline == ids[0]
    assert set(SETTINGS) <= set(comparison.configurations.columns)
    assert list(comparison.configurations["engine"]) == ["oracle", "oracle"]
    der = comparison.differences.set_index("measure").loc["der"]
    assert der["b_config"] == ids[1] and der["n_sessions"] == 5
    assert der["lo"] > 0 and der["significant"]
    accuracy = comparison.differences.set_index("measure").loc["turn_accuracy"]
    assert accuracy["hi"] < 0 and accuracy["significant"]
    text = comparison.format()
    assert "higher: worse (interval excludes 0)" in text
    assert "lower: worse (interval excludes 0)" in text


def test_numbers_match_each_run(runs):
    """The pooled DER per configuration is each run's own der_dataset, and the paired
    difference's point estimate is the difference of the pooled ratios (computed here)."""
    from diareval.score import RunScores
    clean, heavy, _ = runs
    comparison = compare_runs([clean, heavy], n_boot=100)
    own = [RunScores.read(run / "scores").der_dataset["der"].iloc[0] for run in (clean, heavy)]
    assert comparison.configurations["der"].to_numpy() == pytest.approx(own)
    pooled = []
    for run in (clean, heavy):
        s = RunScores.read(run / "scores").sessions
        pooled.append((s["miss"] + s["false_alarm"] + s["confusion"]).sum()
                      / s["reference_speech"].sum())
    der = comparison.differences.set_index("measure").loc["der"]
    assert der["difference"] == pytest.approx(pooled[1] - pooled[0])
    assert pooled[0] < 0.1 < pooled[1]


def test_cli_equals_api_and_writes(runs, tmp_path, capsys):
    clean, heavy, _ = runs
    out = tmp_path / "out"
    assert cli_main(["compare", str(clean), str(heavy), "--n-boot", "100", "--out",
                     str(out)]) == 0
    printed = capsys.readouterr().out
    assert compare_runs([clean, heavy], n_boot=100).format() in printed
    assert (out / "configurations.csv").exists() and (out / "differences.csv").exists()
    assert (out / "figures" / "comparisons.png").exists()  # the forest plot of the differences


def test_baseline_by_run_name_and_unknown(runs):
    clean, heavy, _ = runs
    comparison = compare_runs([clean, heavy], baseline="heavy", n_boot=50)
    assert comparison.baseline == f"{CONFIG}__heavy"
    assert comparison.differences.set_index("measure").loc["der", "hi"] < 0
    with pytest.raises(ConfigError, match="unknown"):
        compare_runs([clean, heavy], baseline="nope", n_boot=50)


def test_refuses_other_conventions(runs, tmp_path, capsys):
    clean, heavy, recordings = runs
    forgiving = tmp_path / "forgiving"
    shutil.copytree(heavy, forgiving, ignore=shutil.ignore_patterns("scores"))
    score_run(forgiving, Conventions(collar=0.25, skip_overlap=True), recordings=recordings,
              n_boot=50, step=5.0)
    with pytest.raises(DiarevalError, match="different conventions.*conv_collar: 0.0 vs 0.25"):
        compare_runs([clean, forgiving])
    assert cli_main(["compare", str(clean), str(forgiving)]) == 2
    assert "different conventions" in capsys.readouterr().err


def test_refuses_other_recordings_unless_common(runs, tmp_path):
    clean, heavy, recordings = runs
    fewer = make_run(tmp_path / "fewer", recordings[:3], HEAVY, {})
    with pytest.raises(DiarevalError, match="different recordings.*--common-recordings"):
        compare_runs([clean, fewer])
    other = tmp_path / "other"
    shutil.copytree(heavy, other)
    manifest = json.loads((other / "run.json").read_text())
    manifest["dataset_options"] = {"minutes": 2}  # same uris, another spec
    (other / "run.json").write_text(json.dumps(manifest))
    with pytest.raises(DiarevalError, match="different recordings.*minutes"):
        compare_runs([clean, other])
    assert compare_runs([clean, other], common_recordings=True, n_boot=20).uris
    comparison = compare_runs([clean, fewer], common_recordings=True, n_boot=50)
    assert comparison.uris == ("r0", "r1", "r2")
    assert set(comparison.scores.sessions["uri"]) == {"r0", "r1", "r2"}
    assert comparison.differences.set_index("measure").loc["der", "n_sessions"] == 3


def test_folder_of_runs(runs, tmp_path):
    """A folder holding runs (as `run --snr` writes) is every run inside it."""
    clean, heavy, _ = runs
    grid = tmp_path / "grid"
    grid.mkdir()
    for run, snr in ((clean, 20), (heavy, 0)):
        shutil.copytree(run, grid / f"snr-{snr}")
        manifest = json.loads((grid / f"snr-{snr}" / "run.json").read_text())
        manifest.update(dataset="noisy", dataset_options={"dataset": "x", "snr": snr})
        (grid / f"snr-{snr}" / "run.json").write_text(json.dumps(manifest))
    comparison = compare_runs([grid], n_boot=50)
    configs = comparison.configurations
    assert list(configs["run"]) == ["snr-0", "snr-20"]
    assert list(configs["id"]) == [f"{CONFIG}__snr-0", f"{CONFIG}__snr-20"]
    assert list(configs["snr"]) == [0, 20]
    sessions = comparison.scores.sessions
    assert sessions.groupby("config")["snr"].first().to_dict() == \
        {f"{CONFIG}__snr-0": 0.0, f"{CONFIG}__snr-20": 20.0}


def test_param_grid_configurations():
    """--param NAME repeated with other values: one configuration per value, ids unique."""
    from diareval.cli.run import _params
    from diareval.stream.config import ParamGrid, make_configs
    params = _params([("format_turns", True), ("format_turns", False),
                      ("keyterms_prompt", ["a", "b"]), ("format_turns", True)])
    assert params == {"format_turns": ParamGrid([True, False]), "keyterms_prompt": ["a", "b"]}
    configs = make_configs(["u3-rt-pro"], "none,2", params)
    assert [(c.max_speakers, dict(c.params)["format_turns"]) for c in configs] == \
        [(None, True), (None, False), (2, True), (2, False)]
    assert all(dict(c.params)["keyterms_prompt"] == ["a", "b"] for c in configs)
    assert len({c.name for c in configs}) == 4


def test_run_snr_levels_are_one_run(tmp_path, monkeypatch, capsys):
    """run --snr 0,10: one run whose configurations are the levels (``snr=[0, 10]``) of the
    clean dataset; the noisy dataset's options name the clean one."""
    import diareval.stream

    calls = []

    class Result:
        ok, run_dir = True, None

        def summary(self):
            return "ok"

        def count(self, status):
            return 0

    def fake_run(dataset, **kwargs):
        calls.append((dataset, kwargs["dataset_options"], kwargs["run_dir"], kwargs.get("snr"),
                      kwargs.get("noise")))
        return Result()

    monkeypatch.setattr(diareval.stream, "run", fake_run)
    assert cli_main(["run", "--backend", "local", "--snr", "0,10", "--noise", "white",
                     "--dataset-options", '{"minutes": 0.5}', "--run-dir",
                     str(tmp_path / "g")]) == 0
    assert calls == [("synthetic", {"minutes": 0.5}, str(tmp_path / "g"), [0.0, 10.0],
                      "white")]
    calls.clear()
    assert cli_main(["run", "--backend", "local", "--snr", "5", "--dataset", "noisy",
                     "--dataset-options", '{"dataset": "ami", "noise": "babble", "snr": 3}',
                     "--run-dir", str(tmp_path / "h")]) == 0
    assert calls == [("ami", {}, str(tmp_path / "h"), [5.0], "babble")]
    calls.clear()
    assert cli_main(["run", "--backend", "local", "--run-dir", str(tmp_path / "i")]) == 0
    assert calls[0][0] == "synthetic" and calls[0][3:] == (None, None)
    assert cli_main(["run", "--backend", "local", "--snr", "x"]) == 2
