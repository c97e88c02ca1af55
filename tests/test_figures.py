"""Every figure of diareval.report drawn on a small oracle run: what each one drew (lines
per configuration, bars per bucket, lanes per reference speaker, bands), checked against
the tables it was drawn from."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.container import BarContainer  # noqa: E402

from diareval import report  # noqa: E402
from diareval.datasets.folder import load_folder  # noqa: E402
from diareval.errors import ConfigError  # noqa: E402
from diareval.score import RunScores, score_run  # noqa: E402
from diareval.score.der import Conventions  # noqa: E402
from diareval.server.engines.base import SessionParams  # noqa: E402
from diareval.server.engines.oracle import OracleConfig, make_oracle_factory  # noqa: E402
from diareval.sessionlog import read_session_log  # noqa: E402
from test_score_run import make_recording, stream_oracle  # noqa: E402

CONFIGS = {"oracle__max-speakers-none": None, "oracle__max-speakers-2": 2}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Three 50 s recordings (3 reference speakers each) streamed by the oracle engine
    (partial-label changes and revisions on) under max_speakers none and 2, scored."""
    root = tmp_path_factory.mktemp("figures-run")
    data = root / "data"
    data.mkdir()
    made = [make_recording(data, f"r{i}", 50.0, 10 + i) for i in range(3)]
    lines = []
    for recording in made:
        for segment, _, label in recording.reference.itertracks(yield_label=True):
            lines.append(f"SPEAKER {recording.uri} 1 {segment.start:.3f} "
                         f"{segment.duration:.3f} <NA> <NA> {label} <NA> <NA>")
    (data / "ref.rttm").write_text("\n".join(lines) + "\n")
    recordings = load_folder(data)
    factory = make_oracle_factory(recordings, OracleConfig(seed=4, p_revision=0.6,
                                                           p_partial_label_change=0.3))
    for config, max_speakers in CONFIGS.items():
        folder = root / "sessions" / config
        folder.mkdir(parents=True)
        for recording in recordings:
            stream_oracle(factory, recording, folder / f"{recording.uri}.jsonl",
                          SessionParams(speaker_labels=True, max_speakers=max_speakers))
            (folder / f"{recording.uri}.json").write_text(json.dumps({"status": "complete"}))
    (root / "run.json").write_text(json.dumps({
        "dataset": str(data), "uris": [r.uri for r in recordings],
        "configurations": [dict(name=k, model="universal-streaming-english", max_speakers=v)
                           for k, v in CONFIGS.items()]}))
    scores = score_run(root, recordings=recordings, n_boot=200)
    return root, recordings, scores


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _labelled_lines(axis):
    return [line for line in axis.lines if not line.get_label().startswith("_")]


def test_der_over_time_lines_per_configuration_and_band(run):
    _, _, scores = run
    figure = report.der_over_time_figure(scores)
    axis = figure.axes[0]
    lines = _labelled_lines(axis)
    assert len(lines) == 2 * len(CONFIGS)  # prefix and final mapping per configuration
    assert len(axis.collections) == len(CONFIGS)  # one bootstrap band each
    pooled = scores.der_over_time_dataset
    for config, style in ((c, s) for c in CONFIGS for s in ("-", "--")):
        [line] = [ln for ln in lines if ln.get_linestyle() == style and
                  ln.get_label().startswith(config.split("__")[1])]
        rows = pooled[pooled["config"] == config].sort_values("t")
        column = "der_prefix" if style == "-" else "der_final"
        assert np.allclose(line.get_xdata(), rows["t"] / 60)
        assert np.allclose(line.get_ydata(), 100 * rows[column], equal_nan=True)
    # each band spans its configuration's curve in time (its values: test_session_band)
    for band, config in zip(axis.collections, sorted(CONFIGS)):
        x = band.get_paths()[0].vertices[:, 0]
        rows = pooled[pooled["config"] == config]
        assert x.min() == pytest.approx(rows["t"].min() / 60)
        assert x.max() == pytest.approx(rows["t"].max() / 60)
    text = " ".join(t.get_text() for t in figure.texts)
    assert "collar 0 s per side" in text and "bootstrap" in text
    # from the pooled table alone: lines, no band
    alone = report.der_over_time_figure(scores.der_over_time_dataset).axes[0]
    assert len(_labelled_lines(alone)) == 4 and not alone.collections


def test_session_band_is_the_bootstrap_of_the_pooled_curve(run):
    from diareval.report.over_time import session_band
    _, _, scores = run
    config = "oracle__max-speakers-none"
    curve = scores.der_over_time[scores.der_over_time["config"] == config]
    band = session_band(curve, "confusion_prefix", n_boot=200)
    pooled = scores.der_over_time_dataset
    pooled = pooled[pooled["config"] == config].sort_values("t")
    assert np.allclose(band["estimate"], pooled["der_prefix"], equal_nan=True)
    ok = band["lo"].notna()
    assert (band.loc[ok, "lo"] <= band.loc[ok, "estimate"] + 1e-12).all()
    assert (band.loc[ok, "hi"] >= band.loc[ok, "estimate"] - 1e-12).all()
    assert (band.loc[ok, "hi"] > band.loc[ok, "lo"]).any()


def test_der_windows_and_turn_k(run):
    _, _, scores = run
    axis = report.der_windows_figure(scores).axes[0]
    assert len(_labelled_lines(axis)) == 2 * len(CONFIGS)
    assert len(axis.collections) == len(CONFIGS)
    # 50 s sessions, 60 s windows: every window is cut at the session end, so the
    # nominal length is unknown and the longest window (50 s) stands for it
    windows = scores.der_windows
    assert "shorter than the window" in axis.get_title()
    full = windows[windows["window_end"] - windows["window_start"] >= 25 - 1e-9]
    starts = sorted(full["window_start"].unique())
    assert np.allclose(_labelled_lines(axis)[0].get_xdata(), (np.array(starts) + 25) / 60)
    from diareval.report.over_time import window_length
    longer = pd.DataFrame(dict(config="x", uri="u", window_start=[0.0, 10, 20, 30, 40],
                               window_end=[30.0, 40, 50, 50, 50]))
    assert window_length(longer) == (30.0, True)

    figure = report.turn_k_figure(scores)
    top, bottom = figure.axes
    assert len(top.lines) == len(bottom.lines) == len(CONFIGS)
    rows = scores.breakdowns[(scores.breakdowns["breakdown"] == "turn_k") &
                             (scores.breakdowns["config"] == sorted(CONFIGS)[0])]
    x = np.asarray(top.lines[0].get_xdata(), float)  # dodged by less than half a turn
    assert list(np.round(x).astype(int)) == sorted(rows["bucket"].astype(int))
    assert np.abs(x - np.round(x)).max() < 0.5
    assert np.allclose(top.lines[0].get_ydata(),
                       100 * rows.assign(k=rows["bucket"].astype(int)).sort_values("k")[
                           "accuracy"], equal_nan=True)
    assert len(top.collections) == len(CONFIGS)  # interval bars


def _seen_tables(scores):
    """A hand-built der_seen table (the protocol issue's columns): per session, the final
    curve's components with 10% more confusion."""
    curve = scores.der_over_time
    seen = curve[["config", "uri", "t", "reference_speech", "miss", "false_alarm"]].copy()
    seen["confusion"] = curve["confusion_final"] * 1.1
    seen["der"] = (seen["miss"] + seen["false_alarm"] + seen["confusion"]) / \
        seen["reference_speech"].where(seen["reference_speech"] > 0)
    pooled = seen.groupby(["config", "t"], as_index=False)[
        ["reference_speech", "miss", "false_alarm", "confusion"]].sum()
    pooled["der"] = (pooled["miss"] + pooled["false_alarm"] + pooled["confusion"]) / \
        pooled["reference_speech"].where(pooled["reference_speech"] > 0)
    return seen, pooled


def test_der_seen_uses_the_tables_when_present(run):
    _, _, scores = run
    # score_run now writes der_seen: the figure is drawn from the run's own tables
    assert not scores.der_seen.empty and report.FIGURES["der_seen"](scores) is not None
    # a run without it (an older scorer's tables) draws nothing
    assert report.der_seen_figure(replace(scores, der_seen=pd.DataFrame(),
                                          der_seen_dataset=pd.DataFrame())) is None
    seen, pooled = _seen_tables(scores)
    extended = replace(scores, der_seen=seen, der_seen_dataset=pooled)
    axis = report.der_seen_figure(extended).axes[0]
    mine = [ln for ln in _labelled_lines(axis) if ln.get_linestyle() == "-"]
    assert len(mine) == len(CONFIGS)
    assert len(axis.collections) == len(CONFIGS)  # band from the per-session table
    rows = pooled[pooled["config"] == sorted(CONFIGS)[0]].sort_values("t")
    assert np.allclose(mine[0].get_ydata(), 100 * rows["der"], equal_nan=True)
    # one table alone: the pooled one draws lines only, the per-session one a band too
    assert not report.der_seen_figure(pooled).axes[0].collections
    assert len(report.der_seen_figure(seen).axes[0].collections) == len(CONFIGS)


def test_stability_strip_one_point_per_session(run):
    _, _, scores = run
    figure = report.stability_figure(scores)
    panels = [a for a in figure.axes if a.get_title()]
    assert len(panels) == 6
    for axis in panels:
        assert len(axis.collections) == len(CONFIGS)  # one scatter per configuration
        for points in axis.collections:
            assert len(points.get_offsets()) == 3  # sessions with a defined value
    # the medians are those of the sessions table
    sessions = scores.sessions
    changes = panels[0]
    medians = sorted(line.get_xdata()[0] for line in changes.lines)
    expected = sorted(sessions.groupby("config")["mapping_changes"].median())
    assert np.allclose(medians, expected)
    assert (sessions["revised_turns"] > 0).any()  # revisions were on: not an empty panel


def test_speaker_counts_panels_and_max_speakers_drawn(run):
    _, recordings, scores = run
    figure = report.speaker_count_figure(scores)
    panels = [a for a in figure.axes if a.get_title()]
    assert [a.get_title() for a in panels] == sorted(r.uri for r in recordings)
    for axis in panels:
        # reference + one line per configuration + the max_speakers=2 setting
        assert len(axis.lines) == 1 + len(CONFIGS) + 1
        caps = [ln for ln in axis.lines if ln.get_linestyle() == ":"]
        assert len(caps) == 1 and abs(caps[0].get_ydata()[0] - 2) < 0.1
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert "reference speakers" in legend and "max_speakers setting" in legend


@pytest.mark.parametrize("by", ["word_count", "duration", "overlap", "turn_index", "turn_k"])
def test_breakdown_bars_per_bucket(run, by):
    _, _, scores = run
    figure = report.breakdown_figure(scores, by=by)
    top, bottom = figure.axes
    table = scores.breakdowns[scores.breakdowns["breakdown"] == by]
    buckets = table["bucket"].unique()
    for axis in (top, bottom):
        containers = [k for k in axis.containers if isinstance(k, BarContainer)]
        assert len(containers) == len(CONFIGS)
        assert all(len(k.patches) == len(buckets) for k in containers)
    assert [t.get_text() for t in bottom.get_xticklabels()] == \
        [b for b in table[table["config"] == sorted(CONFIGS)[0]]["bucket"]]
    first = [k for k in top.containers if isinstance(k, BarContainer)][0]
    rows = table[table["config"] == sorted(CONFIGS)[0]]
    assert np.allclose([p.get_height() for p in first.patches],
                       100 * rows["accuracy"].fillna(0))
    vendor = "vendor" in " ".join(t.get_text() for t in top.texts)
    assert vendor == (by in ("word_count", "turn_index", "turn_k"))
    with pytest.raises(ConfigError, match="word_count"):
        report.breakdown_figure(scores, by="words")


def test_der_by_region_and_latency(run):
    _, _, scores = run
    axis = report.der_by_region_figure(scores).axes[0]
    containers = [k for k in axis.containers if isinstance(k, BarContainer)]
    assert len(containers) == 3 * len(CONFIGS)  # miss, false alarm, confusion stacked
    assert all(len(k.patches) == 2 for k in containers)  # single, overlap
    regions = scores.der_by_region_dataset
    first = regions[regions["config"] == sorted(CONFIGS)[0]].set_index("region")
    tops = [sum(k.patches[i].get_height() for k in containers[:3]) for i in range(2)]
    assert np.allclose(tops, 100 * first.loc[["single", "overlap"], "der"])

    figure = report.latency_figure(scores)
    for axis in figure.axes[:2]:
        steps = [ln for ln in axis.lines if ln.get_label().startswith("max-speakers")]
        assert len(steps) == len(CONFIGS)
        assert max(steps[0].get_ydata()) == pytest.approx(100)


def test_timeline_lanes_per_reference_speaker_and_errors_add_up(run):
    root, recordings, scores = run
    recording = recordings[0]
    config = "oracle__max-speakers-2"
    log = read_session_log(root / "sessions" / config / f"{recording.uri}.jsonl")
    figure = report.session_timeline_figure(log, recording, Conventions())
    axis = figure.axes[0]
    lanes = [t.get_text() for t in axis.get_yticklabels()]
    speakers = sorted(recording.reference.labels())
    assert lanes[:len(speakers)] == speakers
    assert len(lanes) in (len(speakers), len(speakers) + 1)  # + the no-reference lane
    assert axis.get_xlim() == (0.0, pytest.approx(50.0))
    # the error regions add up to the session's DER components in the sessions table
    from diareval.score.hypothesis import hypothesis_from_log
    errors, _, _ = report.error_regions(recording.reference,
                                        hypothesis_from_log(log, uri=recording.uri),
                                        recording.uem)
    totals = {}
    for segment, _, (status, _, _) in errors.itertracks(yield_label=True):
        totals[status] = totals.get(status, 0.0) + segment.duration
    row = scores.sessions.set_index(["config", "uri"]).loc[(config, recording.uri)]
    assert totals.get("confusion", 0) == pytest.approx(row["confusion"], abs=1e-6)
    assert totals.get("missed detection", 0) == pytest.approx(row["miss"], abs=1e-6)
    assert totals.get("false alarm", 0) == pytest.approx(row["false_alarm"], abs=1e-6)
    assert row["confusion"] > 0  # max_speakers=2 on 3 speakers: something to shade
    assert len(axis.collections) > len(speakers)
    # revisions marked (one marker per revised turn), partial labels drawn faint
    from diareval.score.hypothesis import session_turns
    turns = session_turns(log).turns
    markers = [ln for ln in axis.lines if ln.get_marker() == "v"]
    assert len(markers) == sum(1 for t in turns if t.revised and t.words) > 0
    faint = [k for k in axis.collections if k.get_alpha() == pytest.approx(0.4)]
    assert len(faint) == sum(len([1 for (a, _), b in zip(t.partial_labels,
                                                         [p for p, _ in t.partial_labels[1:]]
                                                         + [t.t_audio]) if b > a])
                             for t in turns if t.words)
    # zoom; the run-directory variant finds the log and the dataset itself
    zoomed = report.timeline_from_run(root, recording.uri, config=config, scores=scores,
                                      xlim=(10, 20)).axes[0]
    assert zoomed.get_xlim() == (10.0, 20.0)
    assert config in zoomed.get_title()


def test_comparison_forest_rows(run):
    _, _, scores = run
    figure = report.comparison_figure(scores)
    top, bottom = figure.axes[:2]
    accuracy = scores.comparisons[scores.comparisons["measure"] != "der"]
    rows = accuracy.drop_duplicates(["measure", "bucket"])
    assert len(bottom.get_yticklabels()) == len(rows)
    # per row: an interval line and a point (one compared configuration)
    drawn = [ln for ln in bottom.lines if len(ln.get_xdata()) in (1, 2) and
             ln.get_color() not in ("0.3", "0.8")]  # not the 0 line nor group rules
    assert len(drawn) == 2 * len(rows.dropna(subset=["difference"]))
    der = scores.comparisons[scores.comparisons["measure"] == "der"].iloc[0]
    [point] = [ln for ln in top.lines if len(np.atleast_1d(ln.get_xdata())) == 1]
    assert np.atleast_1d(point.get_xdata())[0] == pytest.approx(100 * der["difference"])


def _noisy_sessions():
    rows = []
    rng = np.random.default_rng(0)
    for base, level in (("oracle", 0.1), ("baseline", 0.3)):
        for snr in (0, 10, 20):
            for uri in ("a", "b", "c"):
                speech = 50.0
                error = speech * (level + 0.01 * (20 - snr) + rng.uniform(0, 0.02))
                rows.append(dict(config=f"{base}__snr-{snr}", uri=uri, scored=True,
                                 reference_speech=speech, miss=error / 2, false_alarm=0.0,
                                 confusion=error / 2))
    return pd.DataFrame(rows)


def test_noise_figure_one_line_per_configuration():
    assert report.split_snr("oracle__max-speakers-2__snr-5") == ("oracle__max-speakers-2", 5.0)
    assert report.split_snr("oracle__snr--5db") == ("oracle", -5.0)
    assert report.split_snr("pink@10dB") == ("pink", 10.0)
    assert report.split_snr("oracle__max-speakers-2") == ("oracle__max-speakers-2", None)
    sessions = _noisy_sessions()
    figure = report.noise_figure(sessions)
    left = figure.axes[0]
    assert len(left.containers) == 2  # one errorbar line per configuration (no SNR part)
    expected = sessions[sessions["config"].str.startswith("oracle")].assign(
        snr=lambda f: f["config"].str.extract(r"snr-(\d+)")[0].astype(float),
        errors=lambda f: f["miss"] + f["confusion"]).groupby("snr")[
        ["errors", "reference_speech"]].sum()
    [oracle] = [k for k in left.containers if k.get_label() == "oracle"]
    assert list(oracle.lines[0].get_xdata()) == [0.0, 10.0, 20.0]
    assert np.allclose(oracle.lines[0].get_ydata(),
                       100 * expected["errors"] / expected["reference_speech"])
    # one run per level; a single level is no sweep
    runs = {snr: RunScores(sessions=sessions[sessions["config"] == f"oracle__snr-{snr}"]
                           .assign(config="oracle")) for snr in (0, 10, 20)}
    assert len(report.noise_figure(runs).axes[0].containers) == 1
    assert report.noise_figure(sessions[sessions["config"].str.endswith("snr-0")]) is None
    assert report.FIGURES["noise"](RunScores(sessions=sessions)) is not None
    assert len(figure.axes) == 1  # no turns table: DER only


def test_noise_figure_accuracy_from_the_turns(run):
    """Two 'SNR levels' that are the same run: both lines, accuracy = the pooled turns."""
    _, _, scores = run
    figure = report.noise_figure({0: scores, 10: scores})
    left, right = figure.axes
    assert len(left.containers) == len(right.containers) == len(CONFIGS)
    turns = scores.turns[scores.turns["config"] == sorted(CONFIGS)[0]]
    accuracy = turns["correct"].dropna().astype(bool).mean()
    first = [k for k in right.containers if k.get_label() == "max-speakers-2"][0]
    assert np.allclose(first.lines[0].get_ydata(), 100 * accuracy)
    assert list(first.lines[0].get_xdata()) == [0.0, 10.0]


def test_registry_and_write_figures(run, tmp_path):
    root, _, scores = run
    drawn = {name: draw(scores) for name, draw in report.FIGURES.items()}
    # one SNR level, no reference words
    absent = {"noise", "cpwer_over_time"}
    assert {n for n, f in drawn.items() if f is None} == absent
    for name, fig in drawn.items():
        if fig is not None:
            assert fig.get_figwidth() == pytest.approx(8.0), name
            assert any("collar" in t.get_text() for t in fig.texts), name
    assert all(draw(RunScores()) is None for draw in report.FIGURES.values())
    with pytest.raises(ConfigError, match="der_over_time"):
        report.figure(scores, "der_over_tim")
    written = report.write_figures(scores, tmp_path / "figures", run_dir=root, timelines=1)
    names = [p.stem for p in written]
    assert names[:len(drawn) - len(absent)] == [n for n in report.FIGURES if drawn[n] is not None]
    assert names[-1] == "timeline__oracle__max-speakers-none__r0"
    assert all(p.stat().st_size > 10_000 for p in written)


def test_write_figures_without_the_recording_warns_and_writes_the_rest(run, tmp_path):
    root, recordings, scores = run
    elsewhere = tmp_path / "run"
    (elsewhere / "sessions").mkdir(parents=True)
    for config in CONFIGS:
        (elsewhere / "sessions" / config).symlink_to(root / "sessions" / config)
    (elsewhere / "run.json").write_text(json.dumps({"dataset": str(tmp_path / "gone")}))
    with pytest.warns(UserWarning, match="no session timeline"):
        written = report.write_figures(scores, tmp_path / "figures", run_dir=elsewhere)
    assert written and not any(p.stem.startswith("timeline") for p in written)
    # given the recordings, the timelines are drawn
    written = report.write_figures(scores, tmp_path / "again", run_dir=elsewhere,
                                   recordings=recordings, timelines=2)
    assert sum(p.stem.startswith("timeline") for p in written) == 2


def test_readme_figures_are_those_the_script_makes():
    """The README shows only PNGs docs/make_figures.py writes, and they are committed."""
    import importlib.util
    import re
    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("make_figures", root / "docs/make_figures.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    made = {f"{name}.png" for name in script.FIGURES} | {"timeline.png"}
    assert set(script.FIGURES) <= set(report.FIGURES)
    shown = re.findall(r"\]\(docs/figures/([^)]+)\)", (root / "README.md").read_text())
    assert shown and set(shown) <= made
    for name in shown:
        assert 10_000 < (root / "docs/figures" / name).stat().st_size < script.MAX_BYTES


def test_cpwer_over_time_figure_draws_a_line_per_configuration_and_the_wer():
    """Hand-built tables: one cpWER line per configuration (values as given, in %), and a
    dotted WER line for the configuration whose WER the run knows."""
    curve = pd.DataFrame({"config": ["a", "a", "b", "b"], "t": [60.0, 120.0, 60.0, 120.0],
                          "cpwer": [0.30, 0.20, 0.50, 0.40]})
    curve.attrs["conventions"] = "collar 0 s per side"
    scores = RunScores(cpwer_over_time_dataset=curve,
                       wer_dataset=pd.DataFrame({"config": ["a"], "wer": [0.10]}))
    figure = report.FIGURES["cpwer_over_time"](scores)
    axis = figure.axes[0]
    solid = [line for line in axis.lines if line.get_linestyle() == "-"]
    dotted = [line for line in axis.lines if line.get_linestyle() == ":"]
    assert len(solid) == 2 and len(dotted) == 1
    assert np.allclose(solid[0].get_ydata(), [30.0, 20.0])
    assert np.allclose(solid[0].get_xdata(), [1.0, 2.0])
    assert np.allclose(dotted[0].get_ydata(), 10.0)
    assert report.FIGURES["cpwer_over_time"](RunScores()) is None
