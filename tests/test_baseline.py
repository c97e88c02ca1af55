"""The baseline engine (issue 5): streamed chunk by chunk through the Engine interface.

Tests that load models are marked ``baseline`` and share one factory (models load once);
the clustering and option tests need no models.
"""

from __future__ import annotations

import numpy as np
import pytest

from diareval.errors import ConfigError
from diareval.server.engines.base import SessionParams
from diareval.server.engines.baseline.clustering import ClusteringConfig, OnlineSpeakerClustering

CHUNK = 800  # 50 ms at 16 kHz


def _run(engine, audio: np.ndarray) -> list[dict]:
    messages = []
    for i in range(0, len(audio), CHUNK):
        messages += engine.feed(audio[i:i + CHUNK])
    messages += engine.finish()
    return messages


def _finals(messages):
    finals = {}
    for m in messages:
        if m["type"] == "Turn" and m["end_of_turn"]:
            finals[m["turn_order"]] = m
    return [finals[k] for k in sorted(finals)]


def _labels_in_order(messages):
    """Every speaker letter in the order it first appears (turn label, then word speakers)."""
    seen = []
    for m in messages:
        items = []
        if m["type"] == "Turn":
            items = [m.get("speaker_label")] + [w.get("speaker") for w in m["words"]]
        elif m["type"] == "SpeakerRevision":
            for r in m["revisions"]:
                items += [r.get("speaker_label")] + [w.get("speaker") for w in r["words"]]
        for label in items:
            if label and label != "UNKNOWN" and label not in seen:
                seen.append(label)
    return seen


# ---------------------------------------------------------------- no models needed


def test_clustering_creates_speakers_and_honours_the_cap():
    rng = np.random.default_rng(0)
    voices = np.eye(4, 8) * 3 + rng.normal(0, 0.1, (4, 8))
    clustering = OnlineSpeakerClustering(ClusteringConfig(max_speakers=2))
    activity = np.ones((50, 3)) * 0.9
    seen = set()
    for step in range(8):
        ids = [(step + k) % 4 for k in range(3)]
        embeddings = voices[ids] + rng.normal(0, 0.05, (3, 8))
        mapping = clustering.assign(activity, embeddings, np.ones(3, bool))
        assert set(mapping) == {0, 1, 2}  # every active local speaker gets a global one
        seen |= set(mapping.values())
    assert clustering.num_speakers == 2 and seen == {0, 1}


def test_clustering_keeps_a_known_voice():
    clustering = OnlineSpeakerClustering(ClusteringConfig(max_speakers=10))
    a, b = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    activity = np.array([[0.9, 0.0, 0.0]] * 10 + [[0.0, 0.9, 0.0]] * 10)
    first = clustering.assign(activity, np.stack([a, b, a]), np.array([True, True, False]))
    second = clustering.assign(activity, np.stack([b, a, a]), np.array([True, True, False]))
    assert first == {0: 0, 1: 1} and second == {0: 1, 1: 0}
    assert clustering.num_speakers == 2


def _merged_track_grid(evidence_floor):
    """Hand-worked grid: cells 0-99 (0-2 s). Two windows saw one local track speaking
    throughout (activity 1, weight 1); the first embedded its cells 50-99 and mapped it to
    global 0, the second embedded cells 0-49 and mapped it to global 1 (one local track
    holding two real speakers). Ten more windows (weight 0.01) saw a faint speaker
    (activity 0.15) everywhere, embedded everywhere, mapped to global 2.
    Mean activity per cell: g0 = g1 = 1 / 2.1 = 0.476, g2 = 0.015 / 2.1 = 0.007.
    Evidence per cell: g1 = 1 on cells 0-49, g0 = 1 on cells 50-99, g2 = 10 x 0.15 = 1.5."""
    from diareval.server.engines.baseline.grid import SpeakerGrid

    grid = SpeakerGrid(3, evidence_floor)
    ones = np.ones((100, 1), dtype=np.float32)
    late, early = np.zeros((100, 1), bool), np.zeros((100, 1), bool)
    late[50:], early[:50] = True, True
    grid.add(0, ones, np.ones(100, np.float32), {0: 0}, late)
    grid.add(0, ones, np.ones(100, np.float32), {0: 1}, early)
    for _ in range(10):
        grid.add(0, 0.15 * ones, np.full(100, 0.01, np.float32), {0: 2}, np.ones((100, 1), bool))
    return grid


def test_grid_names_words_by_where_the_embeddings_came_from():
    grid = _merged_track_grid(0.5)
    # g2 has the most evidence but 0.007 < 0.5 x 0.476: it is not a candidate
    assert grid.speaker_at(0.2, 0.6) == 1  # cells 10-30: only the second window's embedding
    assert grid.speaker_at(1.2, 1.6) == 0  # cells 60-80: only the first window's
    # activity only (the old rule): g0 and g1 tie at 0.476, argmax takes the first
    assert _merged_track_grid(None).speaker_at(0.2, 0.6) == 0
    # floor 0: every speaker with any activity is a candidate, and g2's 1.5 per cell wins
    assert _merged_track_grid(0.0).speaker_at(0.2, 0.6) == 2
    # past the windows: no evidence there; widened by 0.25 s it reaches cells 90-99
    assert grid.speaker_at(2.05, 2.1) == 0
    assert grid.speaker_at(3.0, 3.2) is None
    assert grid.speech_cells(98, 102, 0.5).tolist() == [True, True, False, False]
    grid.reset()
    assert grid.speaker_at(0.2, 0.6) is None


def test_live_recluster_corrects_a_merged_online_speaker():
    """Hand-worked: three 2 s windows, one local speaker each, voices a, b, a (b far from
    a). The online clustering put all three on global speaker 0. Re-clustering the
    session so far (what final Turns use with live_recluster) cuts b off: cluster {a, a}
    co-occurs with online speaker 0 twice and keeps its name, {b} takes the spare 1."""
    from diareval.server.engines.baseline.config import MAX_GLOBAL, MAX_LIVE_POINTS, BaselineConfig
    from diareval.server.engines.baseline.diarizer import Window, activity_summary
    from diareval.server.engines.baseline.grid import SpeakerGrid
    from diareval.server.engines.baseline.recluster import reclustered_grid

    config = BaselineConfig()  # the clustering logic needs no models

    def recluster(windows, start):
        return reclustered_grid(windows, start, config, MAX_GLOBAL, config.evidence_floor,
                                MAX_LIVE_POINTS)

    a, b = np.eye(3, 8)[0], np.eye(3, 8)[1]
    voices = [a, b, a + 0.1 * np.eye(3, 8)[2]]
    local = np.zeros((100, 3), np.float32)
    local[:, 0] = 0.9
    activity = np.zeros((50, 3), np.float32)
    activity[:, 0] = 0.9
    sourced = np.zeros((100, 3), bool)
    sourced[:, 0] = True
    windows = []
    online = SpeakerGrid(MAX_GLOBAL, None)
    for i, voice in enumerate(voices):
        embeddings = np.zeros((3, 8), np.float32)
        embeddings[0] = voice
        window = Window(100 * i, local, np.ones(100, np.float32), embeddings,
                        np.array([True, False, False]), activity_summary(activity), {}, {0: 0},
                        sourced)
        windows.append(window)
        online.add(100 * i, local, window.weights, {0: 0}, sourced)
    assert [online.speaker_at(t, t + 0.5) for t in (0.5, 2.5, 4.5)] == [0, 0, 0]
    grid = recluster(windows, 0.0)
    assert [grid.speaker_at(t, t + 0.5) for t in (0.5, 2.5, 4.5)] == [0, 1, 0]
    # only the windows reaching past (start - window) are mapped again: from 7.5 s, not the first
    later = recluster(windows, 7.5)
    assert later.speaker_at(0.5, 1.0) is None and later.speaker_at(2.5, 3.0) == 1


def test_activity_summary_keeps_peak_and_mean():
    from diareval.server.engines.baseline.diarizer import activity_summary

    activity = np.random.default_rng(2).random((293, 3))
    summary = activity_summary(activity)
    assert summary.shape == (2, 3)
    assert np.allclose(summary.max(axis=0), activity.max(axis=0), atol=1e-6)
    assert np.allclose(summary.mean(axis=0), activity.mean(axis=0), atol=1e-6)


def test_unknown_option_is_a_config_error():
    from diareval.server.engines.baseline.engine import BaselineConfig

    with pytest.raises(ConfigError, match="unknown baseline option"):
        BaselineConfig.from_options({"windw": 5})
    assert BaselineConfig.from_options({"step": "1.0", "revise": "false"}).revise is False
    # the sliding relabel's options are checked too (baseline/sliding.py)
    with pytest.raises(ConfigError, match="relabel_band"):
        BaselineConfig.from_options({"relabel_band": "wide"})
    with pytest.raises(ConfigError, match="relabel_window"):
        BaselineConfig.from_options({"relabel_window": 0.2})
    assert BaselineConfig.from_options({"relabel_window": "0"}).relabel_window == 0


def test_missing_dependency_names_the_install_command(monkeypatch):
    from diareval.server.engines.baseline import _deps

    def fail(name):
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(_deps.importlib, "import_module", fail)
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[baseline\]"'):
        _deps.require("faster_whisper", "faster-whisper")


def test_streaming_fbank_equals_the_whole_signal_fbank():
    """Frames computed chunk by chunk (and trimmed) equal those of the whole signal;
    a window gets exactly the frames inside it."""
    pytest.importorskip("kaldi_native_fbank")
    from diareval.server.engines.baseline.embedding import Fbank

    rng = np.random.default_rng(3)
    audio = (rng.standard_normal(16000 * 3) * 0.05).astype(np.float32)
    fbank = Fbank()
    whole = fbank(audio)
    stream = fbank.stream()
    for i in range(0, len(audio), 800):  # 50 ms chunks, as the engine receives them
        stream.accept(audio[i:i + 800])
    first, frames = stream.window(8000, 40000)  # [0.5 s, 2.5 s)
    assert first == 50  # frame i covers samples [160 i, 160 i + 400)
    assert len(frames) == (40000 - 400) // 160 + 1 - 50
    np.testing.assert_array_equal(frames, whole[50:50 + len(frames)])
    stream.forget_before(16000)
    first, frames = stream.window(0, 48000)
    assert first == 100 and frames.shape == (len(whole) - 100, 80)
    np.testing.assert_array_equal(frames, whole[100:])


def test_limit_threads_sets_numpy_blas_to_one_thread():
    """Idle BLAS threads spin beside every Whisper decode: the engine limits them."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    pytest.importorskip("torch")
    from diareval.server.engines.baseline import _deps

    try:
        with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
            _deps._blas_limited = False
            _deps.limit_torch_threads()
            blas = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
            assert blas and all(p["num_threads"] == 1 for p in blas)
    finally:
        _deps._blas_limited = False  # the limit was undone on leaving: set it again next time


def test_onnx_runner_matches_the_torch_fallback(monkeypatch):
    """Segmentation-3.0 through onnxruntime (default) and through torch (no onnx package)
    give the same activities."""
    pytest.importorskip("onnx")
    pytest.importorskip("torch")
    import sys

    from diareval.server.engines.baseline import segmentation

    rng = np.random.default_rng(5)
    audio = (rng.standard_normal(80000) * 0.05).astype(np.float32).reshape(1, 1, -1)
    onnx_run = segmentation._build_model()
    assert onnx_run.backend == "onnxruntime"
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx -> ImportError
    torch_run = segmentation._build_model()
    assert torch_run.backend == "torch"
    a, b = onnx_run(audio), torch_run(audio)
    assert a.shape == b.shape == (1, segmentation.num_frames(80000), 7)
    np.testing.assert_allclose(np.exp(a), np.exp(b), atol=1e-4)


# ---------------------------------------------------------------- with models


@pytest.fixture(scope="module")
def factory():
    pytest.importorskip("torch")
    pytest.importorskip("faster_whisper")
    from diareval.server.engines import make_engine_factory

    return make_engine_factory("baseline")


@pytest.fixture(scope="module")
def trn08(ami_excerpts_module):
    from diareval.datasets import load_folder

    return load_folder(ami_excerpts_module, uris=["trn08"])[0]


@pytest.fixture(scope="module")
def ami_excerpts_module():
    from conftest import shared_data

    return shared_data("ami-excerpts")


@pytest.fixture(scope="module")
def trn08_messages(factory, trn08):
    return _run(factory(SessionParams(speaker_labels=True)), trn08.load_audio())


@pytest.mark.baseline
def test_turns_words_and_labels_in_order_of_appearance(trn08_messages):
    finals = _finals(trn08_messages)
    assert len(finals) >= 3
    labels = _labels_in_order(trn08_messages)
    assert len(labels) >= 2
    assert labels == [chr(ord("A") + i) for i in range(len(labels))]
    orders = [m["turn_order"] for m in trn08_messages if m["type"] == "Turn"]
    assert orders == sorted(orders) and orders[0] == 0
    for turn in finals:
        assert turn["words"] and all(w["word_is_final"] for w in turn["words"])
        for w in turn["words"]:
            assert isinstance(w["start"], int) and isinstance(w["end"], int) and w["start"] <= w["end"]
            assert w["speaker"] in labels + ["UNKNOWN"]


@pytest.mark.baseline
def test_short_turns_are_unknown_and_longer_ones_labelled(trn08_messages):
    # The rule: a final turn with under 1 s of speech (first word start to last word end)
    # is "UNKNOWN", every word too; a longer one gets a letter.
    finals = _finals(trn08_messages)
    for turn in finals:
        span = turn["words"][-1]["end"] - turn["words"][0]["start"]
        if span < 1000:
            assert turn["speaker_label"] == "UNKNOWN"
            assert {w["speaker"] for w in turn["words"]} == {"UNKNOWN"}
        else:
            assert turn["speaker_label"] in "ABCDEFGHIJ"
    assert any(len(t["words"]) == 1 for t in finals)  # trn08 has one-word turns ("right")


@pytest.mark.baseline
def test_max_speakers_2_never_yields_a_third_label(factory, trn08):
    assert len(trn08.speakers) == 4
    messages = _run(factory(SessionParams(speaker_labels=True, max_speakers=2)), trn08.load_audio())
    assert set(_labels_in_order(messages)) <= {"A", "B"}
    assert _finals(messages)


@pytest.mark.baseline
def test_silence_only_audio_yields_no_turns(factory):
    rng = np.random.default_rng(1)
    silence = np.zeros(16000 * 6, dtype=np.int16)
    hiss = (rng.normal(0, 30, 16000 * 6)).astype(np.int16)  # about -60 dBFS noise
    for audio in (silence, hiss):
        messages = _run(factory(SessionParams(speaker_labels=True)), audio)
        assert [m for m in messages if m["type"] == "Turn"] == []


@pytest.mark.baseline
def test_force_endpoint_finalises_the_turn_now(factory, trn08):
    audio = trn08.load_audio()[int(11.9 * 16000):int(15.0 * 16000)]  # mid-sentence
    engine = factory(SessionParams(speaker_labels=True))
    messages = []
    for i in range(0, len(audio), CHUNK):
        messages += engine.feed(audio[i:i + CHUNK])
    forced = engine.force_endpoint()
    assert len(forced) == 1 and forced[0]["end_of_turn"] and forced[0]["words"]
    assert engine.force_endpoint() == []
    assert [m for m in engine.finish() if m["type"] == "Turn"] == []


@pytest.mark.baseline
def test_without_speaker_labels_no_speaker_fields(factory, trn08):
    audio = trn08.load_audio()[int(11.9 * 16000):int(18 * 16000)]
    messages = _run(factory(SessionParams(speaker_labels=False, format_turns=True)), audio)
    finals = [m for m in messages if m["type"] == "Turn" and m["end_of_turn"]]
    assert finals and all("speaker_label" not in m for m in finals)
    assert all("speaker" not in w for m in finals for w in m["words"])
    assert [m["turn_is_formatted"] for m in finals if m["turn_order"] == 0] == [False, True]


@pytest.mark.baseline
@pytest.mark.parametrize("model", ["u3-rt-pro", "universal-streaming-english"])
def test_turns_have_exactly_the_keys_of_their_model_family(factory, trn08, model):
    """Every Turn the baseline sends has the keys the shared vocabulary defines for its
    model family (``diareval.server.messages.turn_keys``); its words the word keys."""
    from diareval.server import messages as say

    audio = trn08.load_audio()[int(10 * 16000):int(18 * 16000)]
    params = SessionParams(speaker_labels=True, speech_model=model)
    messages = _run(factory(params), audio)
    turns = [m for m in messages if m["type"] == "Turn"]
    assert any(m["end_of_turn"] for m in turns) and any(not m["end_of_turn"] for m in turns)
    for m in turns:
        assert set(m) == say.turn_keys(params, m["end_of_turn"]), m
        for w in m["words"]:
            keys = {"text", "start", "end", "confidence", "word_is_final"}
            # final words always name a speaker; partial ones when the grid has one yet
            assert set(w) == keys | {"speaker"} or (not m["end_of_turn"] and set(w) == keys)
    assert any(m["type"] == "SpeechStarted" for m in messages) == params.family.speech_started


@pytest.mark.baseline
def test_real_sdk_receives_the_baseline_messages(factory, trn08):
    import threading

    sdk = pytest.importorskip("assemblyai.streaming.v3")
    from diareval.server import LocalServer

    audio = trn08.load_audio()[int(10 * 16000):int(30 * 16000)]
    events: dict[str, list] = {"turn": [], "error": [], "termination": [], "revision": []}
    done = threading.Event()
    server = LocalServer(factory, api_keys=("test-key",), lookahead_seconds=300.0)
    with server.running_in_thread():
        # The SDK streams faster than real time here, so the engine is still working when
        # Terminate arrives: wait for the Termination longer than the SDK's default 5 s.
        client = sdk.StreamingClient(sdk.StreamingClientOptions(
            api_key="test-key", api_host=server.url, terminate_timeout=120))
        client.on(sdk.StreamingEvents.Turn, lambda c, e: events["turn"].append(e))
        client.on(sdk.StreamingEvents.SpeakerRevision, lambda c, e: events["revision"].append(e))
        client.on(sdk.StreamingEvents.Error, lambda c, e: (events["error"].append(e), done.set()))
        client.on(sdk.StreamingEvents.Termination,
                  lambda c, e: (events["termination"].append(e), done.set()))
        client.connect(sdk.StreamingParameters(sample_rate=16000, speaker_labels=True,
                                               max_speakers=4, format_turns=True,
                                               speech_model="universal-streaming-english"))
        client.stream(audio[i:i + 1600].tobytes() for i in range(0, len(audio), 1600))
        client.disconnect(terminate=True)
        done.wait(60)
    assert events["error"] == [] and len(events["termination"]) == 1
    session = server.sessions[0]
    sent = [m for m in session.sent_messages if m["type"] == "Turn"]
    # every Turn the engine produced reached the SDK's callback as a parsed TurnEvent
    assert len(events["turn"]) == len(sent) > 0
    assert len(events["revision"]) == sum(m["type"] == "SpeakerRevision" for m in session.sent_messages)
    finals = [t for t in events["turn"] if t.end_of_turn and t.turn_is_formatted]
    assert finals and all(t.speaker_label for t in finals)
    assert all(isinstance(w.start, int) and w.speaker for t in finals for w in t.words)


@pytest.mark.baseline
def test_tune_command_writes_the_best_options(factory, tmp_path):
    import json

    from conftest import shared_data
    from diareval.cli import main

    output = tmp_path / "tune" / "best.json"
    import os

    relative = os.path.relpath(shared_data("ami-excerpts"))  # recorded absolute
    code = main(["tune", "--dataset", relative, "--uri", "trn02",
                 "--grid", "delta_new=0.5,0.7", "--set", "partials=false",
                 "--output", str(output)])
    assert code == 0
    best = json.loads(output.read_text())
    assert best["delta_new"] in (0.5, 0.7) and best["partials"] is False
    table = output.with_suffix(".csv").read_text().splitlines()
    assert len(table) == 3 and table[0].startswith("delta_new,der")
    import pandas as pd

    datasets = set(pd.read_csv(output.with_suffix(".csv"))["dataset"])
    assert datasets == {str(shared_data("ami-excerpts").resolve())}


@pytest.mark.baseline
def test_tune_live_objective_ranks_by_the_labels_as_sent(factory, tmp_path):
    """--objective live: rows ranked by the DER without the SpeakerRevision. On dev01 (two
    speakers) a delta_new of 1.5 never opens a second live speaker, 0.5 does, so with live
    labels from the online clustering (``live_recluster`` false) the two live DERs differ,
    while the revised ones (re-clustered offline) do not: ranked by the revised DER the
    grid order would stay, and the live DERs would not be increasing. (With the live
    re-clustering, whose clusters keep the names shown, delta_new no longer moves the live
    labels there.) Turns do not split at speaker changes here (``change_min_run`` 0):
    those splits follow the online grid, so delta_new would move the revised DER too."""
    import json

    import pandas as pd
    from conftest import shared_data
    from diareval.cli import main

    output = tmp_path / "live.json"
    code = main(["tune", "--dataset", str(shared_data("ami-excerpts")), "--uri", "dev01",
                 "--grid", "delta_new=0.5,1.5", "--set", "partials=false",
                 "--set", "change_min_run=0", "--set", "live_recluster=false",
                 "--objective", "live", "--output", str(output)])
    assert code == 0
    table = pd.read_csv(output.with_suffix(".csv"))
    assert list(table["objective"]) == ["live", "live"]
    assert table["der_live"].is_monotonic_increasing and table["der_live"].nunique() == 2
    assert table["der"].nunique() == 1
    assert json.loads(output.read_text())["delta_new"] == table["delta_new"][0]


def test_tune_range_searches_with_optuna(factory, tmp_path):
    """--range: optuna's TPE proposes values inside the range; one row per trial."""
    pytest.importorskip("optuna")
    import json

    import pandas as pd
    from conftest import shared_data
    from diareval.cli import main

    output = tmp_path / "best.json"
    import os

    relative = os.path.relpath(shared_data("ami-excerpts"))  # recorded absolute
    code = main(["tune", "--dataset", relative, "--uri", "trn02",
                 "--range", "offline_threshold=0.4:0.6", "--trials", "3",
                 "--set", "partials=false", "--output", str(output)])
    assert code == 0
    table = pd.read_csv(output.with_suffix(".csv"))
    assert len(table) == 3 and table["offline_threshold"].between(0.4, 0.6).all()
    assert table["offline_threshold"].nunique() == 3  # three proposals, not one value thrice
    best = json.loads(output.read_text())
    assert best["offline_threshold"] == table["offline_threshold"][0]


def test_tune_rejects_an_unknown_option():
    from diareval.cli import main

    assert main(["tune", "--dataset", ".", "--grid", "no_such_option=1"]) == 2


def test_word_extents_use_the_long_segmentation_where_it_has_run():
    """Hand-worked: no VAD speech in 0-2 s (cells 0-99). The diarization windows' grid
    has speech on cells 0-49; the long (speech_window) segmentation covered cells 25-74,
    with speech on 40-74 only. Where it ran it decides, elsewhere the windows' grid does."""
    from diareval.server.engines.baseline.config import BaselineConfig
    from diareval.server.engines.baseline.diarizer import Diarizer
    from diareval.server.engines.baseline.words import speech_mask

    diarizer = Diarizer(BaselineConfig())  # no models: only its grids are used
    local = np.zeros((100, 3), np.float32)
    local[:50, 0] = 0.9
    diarizer.grid.add(0, local, np.ones(100, np.float32), {0: 0}, np.zeros((100, 3), bool))
    speech = np.zeros(50, np.float32)
    speech[15:] = 0.9
    diarizer.speech_grid.add_speech(25, speech, np.ones(50, np.float32))
    assert list(diarizer.speech_grid.covered(20, 80)) == [False] * 5 + [True] * 50 + [False] * 5
    assert not speech_mask(0.0, 2.0, [0.0] * 100, 0.5).any()  # VAD only: no speech
    mask = speech_mask(0.0, 2.0, [0.0] * 100, 0.5, diarizer)
    expected = np.zeros(100, bool)
    expected[:25] = True  # windows' grid
    expected[40:75] = True  # long segmentation
    assert (mask == expected).all()


def test_speaker_runs_stretch_over_overlapped_speech():
    """Hand-worked: one window, weights 1, cells of 20 ms. Speaker 0 is active on cells
    0-119 (0-2.4 s), speaker 1 on cells 80-199 (1.6-4.0 s): they overlap on 1.6-2.4 s.
    Whisper's one word stream gives speaker 0 a word on 1.0-1.6 s and speaker 1 a word on
    1.6-3.0 s. With overlap_grow, speaker 0's run stretches forward over the overlap
    (to 2.4 s, where it stops speaking), speaker 1's backward over it (to 1.6 s: it is
    not active before); speaker 0's start stays (no other speaker before 1.6 s)."""
    from diareval.server.engines.baseline.config import MAX_GLOBAL, BaselineConfig
    from diareval.server.engines.baseline.grid import SpeakerGrid
    from diareval.server.engines.baseline.labelling import grow_runs
    from diareval.server.engines.baseline.words import Word

    grid = SpeakerGrid(MAX_GLOBAL, None)
    local = np.zeros((200, 3), np.float32)
    local[:120, 0] = 0.9
    local[80:, 1] = 0.9
    grid.add(0, local, np.ones(200, np.float32), {0: 0, 1: 1}, np.zeros((200, 3), bool))
    # speaker 0 from 1.6 s on: active alone or not, contiguous up to cell 119
    assert grid.active_until(0, 1.6, 1, 5.0, 0.5) == pytest.approx(2.4)
    assert grid.active_until(0, 1.6, 1, 0.5, 0.5) == pytest.approx(2.1)  # the limit
    assert grid.active_until(1, 1.6, -1, 5.0, 0.5) == pytest.approx(1.6)  # not active before
    assert grid.active_until(0, 1.0, -1, 5.0, 0.5) == pytest.approx(0.0)
    assert grid.active_until(0, 1.0, -1, 5.0, 0.5, overlap=True) == pytest.approx(1.0)
    assert grid.active_until(1, 3.0, 1, 5.0, 0.5, overlap=True) == pytest.approx(3.0)
    assert grid.active_until(1, 3.0, 1, 5.0, 0.5) == pytest.approx(4.0)

    end_of_audio = 4.0
    words = [Word("so", 1.0, 1.6, 0.9), Word("yes", 1.6, 3.0, 0.9)]
    for grow, expected in ((0.0, [("so", 1.0, 1.6, 0.9), ("yes", 1.6, 3.0, 0.9)]),
                           (2.0, [("so", 1.0, 2.4, 0.9), ("yes", 1.6, 3.0, 0.9)]),
                           (0.3, [("so", 1.0, 1.9, 0.9), ("yes", 1.6, 3.0, 0.9)])):
        out = grow_runs(words, [0, 1], grid, BaselineConfig(overlap_grow=grow), end_of_audio)
        assert [w.text for w in out] == ["so", "yes"]
        assert np.allclose([(w.start, w.end, w.probability) for w in out],
                           [w[1:] for w in expected])
    # a run of two words of one speaker: only its outer edges move
    out = grow_runs([Word("a", 0.5, 1.0, 1.0), Word("b", 1.0, 1.6, 1.0), Word("c", 1.6, 3.0, 1.0)],
                    [0, 0, 1], grid, BaselineConfig(overlap_grow=2.0), end_of_audio)
    assert np.allclose([(w.start, w.end) for w in out], [(0.5, 1.0), (1.0, 2.4), (1.6, 3.0)])


def _hypothesis(messages, uri):
    from diareval.score.hypothesis import hypothesis_from_log
    from diareval.sessionlog import LogLine

    return hypothesis_from_log([LogLine("recv", 0.0, 0.0, m) for m in messages], level="word",
                               unknown="error", revisions=True, uri=uri)


@pytest.mark.baseline
def test_overlapped_speech_gets_words_of_two_speakers(factory, trn08, trn08_messages):
    """trn08 (4 speakers, 30 s, much overlap): with overlap_grow (the default) the
    hypothesis covers more of the reference's overlapped speech with two labels at once
    than the plain word stream does, and scores a lower DER."""
    from diareval.score.der import Conventions, der
    from diareval.server.engines import make_engine_factory

    plain = _run(make_engine_factory("baseline", overlap_grow=0)(SessionParams(speaker_labels=True)),
                 trn08.load_audio())
    overlap = trn08.reference.get_overlap()

    def covered(messages):
        return _hypothesis(messages, "trn08").get_overlap().crop(overlap).duration()

    grown, flat = covered(trn08_messages), covered(plain)
    assert grown >= flat + 0.5, (grown, flat)
    scores = [der(trn08.reference, _hypothesis(m, "trn08"), trn08.uem, Conventions()).der
              for m in (trn08_messages, plain)]
    assert scores[0] < scores[1], scores


def test_a_change_of_speaker_moves_to_where_the_grid_places_it():
    """Hand-worked: speaker 0 active on 0-2 s (cells 0-99), speaker 1 on 2-4 s. Whisper's
    alignment puts the change late: "b" (1.8-2.1) is labelled 0 and "c" (2.1-3.0) 1; the
    activity of 0 minus 1 crosses at 2.0 s, inside the 0.3 s around their boundary, so "b"
    ends and "c" starts at 2.0. Second case, the change early: "b" (1.6-1.9) labelled 1,
    though its centre (1.75) is in 0's speech: it becomes 0's, and it meets "c" at 2.0."""
    from diareval.server.engines.baseline.config import MAX_GLOBAL
    from diareval.server.engines.baseline.grid import SpeakerGrid
    from diareval.server.engines.baseline.labelling import refine_changes
    from diareval.server.engines.baseline.words import Word

    grid = SpeakerGrid(MAX_GLOBAL, None)
    local = np.zeros((200, 3), np.float32)
    local[:100, 0] = 0.9
    local[100:, 1] = 0.9
    grid.add(0, local, np.ones(200, np.float32), {0: 0, 1: 1}, np.zeros((200, 3), bool))
    activity, covered = grid.mean_activity(98, 102)
    assert covered.all() and np.allclose(activity[:, :2], [[0.9, 0], [0.9, 0], [0, 0.9], [0, 0.9]])
    late = [Word("a", 1.0, 1.8, 1.0), Word("b", 1.8, 2.1, 1.0), Word("c", 2.1, 3.0, 1.0)]
    words, speakers = refine_changes(late, [0, 0, 1], grid, 0.3)
    assert speakers == [0, 0, 1]
    assert np.allclose([(w.start, w.end) for w in words], [(1.0, 1.8), (1.8, 2.0), (2.0, 3.0)])
    early = [Word("a", 1.0, 1.6, 1.0), Word("b", 1.6, 1.9, 1.0), Word("c", 1.9, 3.0, 1.0)]
    words, speakers = refine_changes(early, [0, 1, 1], grid, 0.3)
    assert speakers == [0, 0, 1]
    assert np.allclose([(w.start, w.end) for w in words], [(1.0, 1.6), (1.6, 2.0), (2.0, 3.0)])
    # off: nothing moves
    assert refine_changes(early, [0, 1, 1], grid, 0.0) == (early, [0, 1, 1])
