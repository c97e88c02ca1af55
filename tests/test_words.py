"""Word metrics: MeetEval's Python API = its CLI on the same SegLST files; WDER hand-worked;
reference words from STM / SegLST files; absent metrics without reference words."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pyannote.core import Annotation, Segment, Timeline

from diareval.datasets.recording import Recording, ReferenceWord
from diareval.datasets.words import load_words, parse_stm, words_beside
from diareval.errors import ConfigError, DatasetError
from diareval.score import Conventions
from diareval.score.hypothesis import Turn, Word
from diareval.score.word_tables import aggregate_words, session_words
from diareval.score.words import (WordScores, cpwer_over_time, hypothesis_segments,
                                  meeteval_scores, prefix_ends, prepare, reference_segments,
                                  word_scores)


def words_of(speaker_text: list[tuple[str, str]], step: float = 0.5) -> list[ReferenceWord]:
    """Reference words one after the other, ``step`` s each, (speaker, text)."""
    return [ReferenceWord(s, i * step, (i + 1) * step, t) for i, (s, t) in enumerate(speaker_text)]


def turns_of(labelled: list[tuple[str | None, str, float, float]]) -> list[Turn]:
    """One Turn per hypothesis word: (label, text, start, end)."""
    return [Turn(turn_order=k, label=label, words=(Word(text, start, end),), transcript=text,
                 t_audio=end, t_wall=end) for k, (label, text, start, end) in enumerate(labelled)]


def scores(reference_words, turns, unknown="error", normalizer="lower,rm([^a-z0-9 ])"):
    ref = prepare(reference_segments(reference_words, "s"), normalizer)
    hyp = prepare(hypothesis_segments(turns, "s", unknown), normalizer)
    return word_scores(ref, hyp)


# --- MeetEval's Python API = `meeteval-wer` on the same SegLST files -----------------------

def fixture_pair(seed: int):
    """Three reference speakers with overlap; a hypothesis with substitutions, deletions,
    insertions, swapped labels, zero-length words, per-word speakers and an unknown turn."""
    rng = np.random.default_rng(seed)
    vocabulary = "alpha bravo charlie delta echo foxtrot golf hotel india juliet".split()
    reference, t = [], 0.0
    for _ in range(40):
        speaker = f"spk{rng.integers(3)}"
        start = t + float(rng.uniform(-0.2, 0.3))  # words of two speakers may overlap
        end = start + float(rng.uniform(0.2, 0.5))
        reference.append(ReferenceWord(speaker, max(0.0, start), end,
                                       str(rng.choice(vocabulary))))
        t = end
    turns = []
    for k, w in enumerate(reference):
        u = rng.random()
        if u < 0.1:
            continue  # deletion
        text = str(rng.choice(vocabulary)) if u < 0.2 else w.text.upper() + ","
        label = {"spk0": "A", "spk1": "B", "spk2": "C"}[w.speaker]
        if rng.random() < 0.2:
            label = str(rng.choice(["A", "B", "C", "D"]))
        if rng.random() < 0.05:
            label = None
        start = round(w.start / 0.08) * 0.08
        end = start if rng.random() < 0.3 else round(w.end / 0.08) * 0.08  # zero-length words
        words = [Word(text, start, max(start, end),
                      speaker=str(rng.choice(["A", "B"])) if rng.random() < 0.1 else None)]
        if rng.random() < 0.08:
            words.append(Word("um", end, end + 0.1))  # insertion
        turns.append(Turn(turn_order=k, label=label, words=tuple(words), transcript=text,
                          t_audio=end, t_wall=end))
    return reference, turns


def meeteval_cli() -> str:
    beside = Path(sys.executable).parent / "meeteval-wer"
    found = str(beside) if beside.exists() else shutil.which("meeteval-wer")
    if found is None:
        pytest.skip("the meeteval-wer command is not installed")
    return found


def dump(seglst, path: Path) -> None:
    path.write_text(json.dumps([dict(s) for s in seglst]))


def run_cli(command: str, ref: Path, hyp: Path, out: Path, *options: str) -> dict:
    subprocess.run([meeteval_cli(), command, "-r", str(ref), "-h", str(hyp), "--per-reco-out",
                    str(out), "--average-out", str(out.with_suffix(".avg.json")), *options],
                   check=True, capture_output=True, text=True,
                   env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return json.loads(out.read_text())["s"]


@pytest.mark.parametrize("seed", [0, 1])
def test_python_api_equals_the_meeteval_command(tmp_path, seed):
    reference_words, turns = fixture_pair(seed)
    ref = prepare(reference_segments(reference_words, "s"))
    hyp = prepare(hypothesis_segments(turns, "s"))
    assert any(s["start_time"] == s["end_time"] for s in hyp)  # zero-length words are in
    dump(ref, tmp_path / "ref.json")
    dump(hyp, tmp_path / "hyp.json")
    api = meeteval_scores(ref, hyp, collar=5.0)
    cli = dict(cpwer=run_cli("cpwer", tmp_path / "ref.json", tmp_path / "hyp.json",
                             tmp_path / "cp.json"),
               tcpwer=run_cli("tcpwer", tmp_path / "ref.json", tmp_path / "hyp.json",
                              tmp_path / "tcp.json", "--collar", "5"),
               dicpwer=run_cli("greedy_dicpwer", tmp_path / "ref.json", tmp_path / "hyp.json",
                               tmp_path / "dicp.json"))
    for name, result in cli.items():
        for key in ("errors", "length", "insertions", "deletions", "substitutions"):
            assert getattr(api[name], key) == result[key], (name, key)
    assert 0 < api["cpwer"].error_rate < 1 and api["tcpwer"].errors >= api["cpwer"].errors
    # the speaker-agnostic WER is cpWER with one speaker on both sides (= the CLI on those)
    one = lambda s: s.map(lambda x: {**x, "speaker": "all"})  # noqa: E731
    dump(one(ref), tmp_path / "ref1.json")
    dump(one(hyp), tmp_path / "hyp1.json")
    wer = run_cli("cpwer", tmp_path / "ref1.json", tmp_path / "hyp1.json", tmp_path / "wer.json")
    assert (api["wer"].errors, api["wer"].length) == (wer["errors"], wer["length"])
    assert api["wer"].errors < api["cpwer"].errors  # the labels cost words here
    # the WDER alignment is MeetEval's time-constrained one on the one-speaker streams: its
    # errors are that tcpWER's, and its pairs point at the right words
    from meeteval.wer import api as meeteval_api

    from diareval.score.words import word_alignment
    alignment = word_alignment(ref, hyp, collar=5.0)
    ops = alignment["op"].value_counts()
    tc = meeteval_api.tcpwer(one(ref), one(hyp), collar=5.0)["s"]
    assert (ops.get("substitution", 0), ops.get("insertion", 0), ops.get("deletion", 0)) == \
        (tc.substitutions, tc.insertions, tc.deletions)
    assert ops.get("correct", 0) > 0.5 * len(ref)


# --- WDER, hand-worked --------------------------------------------------------------------

def test_perfect_labels_give_zero_wder_whatever_the_asr_errors():
    reference = words_of([("A", "one"), ("A", "two"), ("B", "three"), ("B", "four"),
                          ("A", "five")])
    turns = turns_of([("1", "One", 0.0, 0.5), ("1", "tu", 0.5, 1.0),  # substitution
                      ("2", "three", 1.0, 1.5),  # "four" deleted
                      ("1", "five", 2.0, 2.5), ("2", "extra", 10.0, 10.0)])  # insertion
    result, alignment = scores(reference, turns)
    # the time-constrained alignment: "extra" (10 s) cannot pair with "five" (2-2.5 s, collar
    # 5 s), so one, tu, three, five are aligned (3 correct + 1 substitution)
    assert result.wder == 0.0 and result.wder_aligned == 4
    assert list(alignment["op"]) == ["correct", "substitution", "correct", "deletion",
                                     "correct", "insertion"]
    assert result.wer == pytest.approx(3 / 5) and result.tcpwer == pytest.approx(3 / 5)
    # without the time constraint B's stream "three extra" pairs "extra" with "four"
    assert result.cpwer == pytest.approx(2 / 5)
    assert alignment.attrs["wder_mapping"] == {"1": "A", "2": "B"}


def test_swapping_two_speakers_labels_on_half_their_words():
    # A and B say 4 words each, C 2; half of A's words get B's label and half of B's A's.
    # Co-occurrence (label, speaker): (a,A)=2 (b,A)=2 (b,B)=2 (a,B)=2 (c,C)=2: any one-to-one
    # mapping gets 2 + 2 + 2 = 6 of 10 aligned words right, so WDER = 4/10.
    speakers = ["A", "A", "A", "A", "B", "B", "B", "B", "C", "C"]
    labels = ["b", "b", "a", "a", "a", "a", "b", "b", "c", "c"]
    reference = words_of([(s, f"w{i}") for i, s in enumerate(speakers)])
    turns = turns_of([(lab, f"w{i}", 0.5 * i, 0.5 * i + 0.5) for i, lab in enumerate(labels)])
    result, _ = scores(reference, turns)
    assert (result.wder_speaker_errors, result.wder_aligned) == (4, 10)
    assert result.wder == pytest.approx(0.4) and result.wer == 0.0
    # cpWER by hand: streams a = w2 w3 w4 w5, b = w0 w1 w6 w7, c = w8 w9. a->A costs 4
    # (w0 w1 deleted, w4 w5 inserted), b->B 2 (w4->w0, w5->w1); a->B 4 and b->A 2 as well:
    # 6 errors of 10 reference words either way
    assert result.cpwer == pytest.approx(0.6)


def test_an_unequal_split_and_a_wrongly_labelled_substitution():
    # A: 4 words, B: 2. Labels x x x y | y x, and B's last word misrecognised. Mapping x->A,
    # y->B: aligned 6 (one a substitution), right 3 + 1 = 4: WDER 2/6; the insertion does not count.
    reference = words_of([("A", "a0"), ("A", "a1"), ("A", "a2"), ("A", "a3"), ("B", "b0"),
                          ("B", "b1")])
    turns = turns_of([("x", "a0", 0.0, 0.5), ("x", "a1", 0.5, 1.0), ("x", "a2", 1.0, 1.5),
                      ("y", "a3", 1.5, 2.0), ("y", "b0", 2.0, 2.5), ("x", "zz", 2.5, 3.0),
                      ("x", "oops", 3.0, 3.0)])
    result, alignment = scores(reference, turns)
    assert (result.wder_speaker_errors, result.wder_aligned) == (2, 6)
    assert alignment.attrs["wder_mapping"] == {"x": "A", "y": "B"}
    assert (result.wer_substitutions, result.wer_insertions) == (1, 1)


def test_a_deleted_word_changes_wer_not_wder():
    reference = words_of([("A", "one"), ("B", "two"), ("A", "three"), ("B", "four")])
    full = [("1", "one", 0.0, 0.5), ("2", "two", 0.5, 1.0), ("1", "three", 1.0, 1.5),
            ("2", "four", 1.5, 2.0)]
    before, _ = scores(reference, turns_of(full))
    after, _ = scores(reference, turns_of(full[:2] + full[3:]))
    assert before.wer == 0.0 and after.wer == pytest.approx(1 / 4)
    assert before.wder == after.wder == 0.0


def test_unknown_words_are_speaker_errors_under_the_error_policy():
    reference = words_of([("A", "one"), ("A", "two"), ("B", "three")])
    turns = turns_of([("1", "one", 0.0, 0.5), ("UNKNOWN", "two", 0.5, 1.0),
                      ("2", "three", 1.0, 1.5)])
    result, _ = scores(reference, turns)
    assert (result.wder_speaker_errors, result.wder_unknown, result.wder_aligned) == (1, 1, 3)
    dropped, _ = scores(reference, turns, unknown="nonspeech")
    assert dropped.wder == 0.0 and dropped.wer_deletions == 1


def test_normalisation_is_stated_and_optional():
    reference = words_of([("A", "hello"), ("A", "world")])
    turns = turns_of([("1", "Hello,", 0.0, 0.5), ("1", "world.", 0.5, 1.0)])
    assert scores(reference, turns)[0].wer == 0.0
    assert scores(reference, turns, normalizer=None)[0].wer == 1.0
    with pytest.raises(ConfigError, match="wer_normalizer"):
        Conventions(wer_normalizer="shout")
    with pytest.raises(ConfigError, match="wer_collar"):
        Conventions(wer_collar=-1)


def test_results_add_and_cumulative_cpwer_over_prefixes():
    reference = words_of([("A", "one"), ("B", "two"), ("A", "three"), ("B", "four")])
    turns = turns_of([("1", "one", 0.0, 0.5), ("1", "two", 0.5, 1.0), ("1", "three", 1.0, 1.5),
                      ("2", "four", 1.5, 2.0)])
    first, _ = scores(reference, turns)
    total = sum([first, first])
    assert isinstance(total, WordScores) and total.cpwer_errors == 2 * first.cpwer_errors
    assert total.cpwer == first.cpwer and total.word_sessions == 2
    ref = prepare(reference_segments(reference, "s"))
    hyp = prepare(hypothesis_segments(turns, "s"))
    curve = cpwer_over_time(ref, hyp, prefix_ends(2.0, 1.0))
    assert list(curve["t"]) == [1.0, 2.0]
    assert list(curve["cpwer_length"]) == [2, 4]
    assert curve["cpwer"].iloc[-1] == pytest.approx(first.cpwer)
    assert prefix_ends(125.0) == [60.0, 120.0, 180.0]
    assert prefix_ends(1300.0)[8:] == [540.0, 600.0, 900.0, 1200.0, 1500.0]


# --- reference words from files -----------------------------------------------------------

def test_stm_words_with_character_based_times_and_errors_naming_the_line(tmp_path):
    text = ";; a comment\nrec 1 A 0.0 3.0 ab c\n\nrec 1 B 3.5 4.0\nrec 1 B 4.0 5.0 hi\n"
    words = parse_stm(text, "x.stm")["rec"]
    assert [(w.speaker, w.text) for w in words] == [("A", "ab"), ("A", "c"), ("B", "hi")]
    assert (words[0].start, words[0].end, words[1].start) == (0.0, 2.0, 2.0)  # 2 chars : 1
    with pytest.raises(DatasetError, match=r"x\.stm:2: end time 1\.0 before begin time 2\.0"):
        parse_stm("rec 1 A 0 1 ok\nrec 1 A 2 1 bad\n", "x.stm")
    with pytest.raises(DatasetError, match=r"x\.stm:1: begin time 'zero' is not a number"):
        parse_stm("rec 1 A zero 1 bad\n", "x.stm")
    with pytest.raises(DatasetError, match=r"x\.stm:1: expected"):
        parse_stm("rec 1 A 0\n", "x.stm")


def test_seglst_files_beside_the_audio_and_their_errors(tmp_path):
    good = [{"speaker": "A", "start_time": 0, "end_time": 1, "words": "hi there"}]
    (tmp_path / "r1.json").write_text(json.dumps(good))
    words = words_beside(tmp_path / "r1.wav", "r1")
    assert [w.text for w in words] == ["hi", "there"]
    assert words_beside(tmp_path / "r2.wav", "r2") is None
    (tmp_path / "r3.json").write_text(json.dumps([{"session_id": "other", **good[0]}]))
    with pytest.raises(DatasetError, match=r"r3\.json: entry 0: session_id 'other'"):
        words_beside(tmp_path / "r3.wav", "r3")
    (tmp_path / "r4.json").write_text(json.dumps([{"speaker": "A", "words": "x"}]))
    with pytest.raises(DatasetError, match=r"r4\.json: entry 0: missing start_time, end_time"):
        words_beside(tmp_path / "r4.wav", "r4")
    (tmp_path / "r5.json").write_text("[{")
    with pytest.raises(DatasetError, match=r"r5\.json:1: not JSON"):
        words_beside(tmp_path / "r5.wav", "r5")
    (tmp_path / "r1.stm").write_text("r1 1 A 0 1 hi\n")
    with pytest.raises(DatasetError, match="both r1.stm and r1.json"):
        words_beside(tmp_path / "r1.wav", "r1")
    folder = tmp_path / "many"
    folder.mkdir()
    (folder / "all.stm").write_text("a 1 A 0 1 x\nb 1 B 0 1 y z\n")
    assert {k: len(v) for k, v in load_words(folder).items()} == {"a": 1, "b": 2}


def test_a_folder_dataset_reads_words_beside_the_audio(tmp_path):
    from diareval.datasets import load_folder
    for uri in ("r1", "r2"):
        sf.write(tmp_path / f"{uri}.wav", np.zeros(16000, np.int16), 16000)
        (tmp_path / f"{uri}.rttm").write_text(
            f"SPEAKER {uri} 1 0.00 1.00 <NA> <NA> A <NA> <NA>\n")
    (tmp_path / "r1.stm").write_text("r1 1 A 0 1 hello world\n")
    recordings = {r.uri: r for r in load_folder(tmp_path)}
    assert [w.text for w in recordings["r1"].words] == ["hello", "world"]
    assert recordings["r2"].words is None


# --- sessions without reference words: absent, with a reason ------------------------------

def recording(tmp_path, words) -> Recording:
    reference = Annotation(uri="r")
    reference[Segment(0, 1)] = "A"
    reference[Segment(1, 2)] = "B"
    return Recording(uri="r", audio_path=tmp_path / "r.wav", reference=reference,
                     uem=Timeline([Segment(0, 2)], uri="r"), words=words)


def test_absent_without_reference_words_and_present_with(tmp_path):
    import pandas as pd
    turns = turns_of([("1", "one", 0.0, 0.5), ("2", "two", 1.0, 1.5)])
    row, tables = session_words(turns, recording(tmp_path, None))
    assert row["cpwer"] is None and row["wder"] is None and row["cpwer_length"] is None
    assert "no reference words" in row["words_note"] and tables == {}
    words = [ReferenceWord("A", 0.0, 0.5, "one"), ReferenceWord("B", 1.0, 1.5, "two")]
    row2, tables2 = session_words(turns, recording(tmp_path, words))
    assert row2["cpwer"] == 0.0 and row2["wder"] == 0.0 and row2["words_note"] == ""
    assert set(tables2) == {"word_alignment", "cpwer_over_time"}
    sessions = pd.DataFrame([dict(config="c", uri="r", **row), dict(config="c", uri="q", **row2)])
    out, _ = aggregate_words(sessions, {}, Conventions(), n_boot=50)
    dataset = out["wer_dataset"].iloc[0]
    assert (dataset["sessions"], dataset["sessions_without_words"]) == (1, 1)
    assert dataset["cpwer"] == 0.0 and dataset["cpwer_length"] == 2
    empty, _ = aggregate_words(sessions.iloc[:1], {}, Conventions(), n_boot=50)
    assert pd.isna(empty["wer_dataset"].iloc[0]["cpwer"])
    assert "no reference words" in empty["wer_dataset"].iloc[0]["note"]
    assert math.isnan(WordScores().cpwer) and "undefined" in WordScores().note


# --- score_run: columns, dataset rows, comparisons, --words -------------------------------

def with_words(rec: Recording, rng) -> Recording:
    """Reference words spread over every reference segment (2.5 words per second)."""
    from dataclasses import replace
    words = []
    for segment, _, speaker in rec.reference.itertracks(yield_label=True):
        n = max(1, int(round(segment.duration * 2.5)))
        edges = np.linspace(segment.start, segment.end, n + 1)
        words += [ReferenceWord(speaker, float(a), float(b), f"w{rng.integers(50)}")
                  for a, b in zip(edges[:-1], edges[1:])]
    return replace(rec, words=sorted(words, key=lambda w: w.start))


@pytest.fixture(scope="module")
def word_run(tmp_path_factory):
    from test_score_run import make_recording, stream_oracle

    from diareval.server.engines.base import SessionParams
    from diareval.server.engines.oracle import OracleConfig, make_oracle_factory
    root = tmp_path_factory.mktemp("wordrun")
    (root / "audio").mkdir()
    rng = np.random.default_rng(5)
    recordings = [with_words(make_recording(root / "audio", f"r{i}", 40.0, 10 + i), rng)
                  for i in range(3)]
    recordings.append(make_recording(root / "audio", "r3", 40.0, 13))  # no reference words
    # exact_words: reference word times (the 80 ms grid of Universal-Streaming, issue 13,
    # reorders words of overlapping speakers, which plain WER sees)
    configs = {"perfect": OracleConfig.uniform(0.0, p_unknown_short=0.0, seed=1,
                                               exact_words=True),
               "noisy": OracleConfig.uniform(0.3, seed=1, exact_words=True)}
    for config, oracle in configs.items():
        factory = make_oracle_factory(recordings, oracle)
        folder = root / "sessions" / config
        folder.mkdir(parents=True)
        for rec in recordings:
            stream_oracle(factory, rec, folder / f"{rec.uri}.jsonl",
                          SessionParams(speaker_labels=True))
            (folder / f"{rec.uri}.json").write_text(json.dumps({"status": "complete"}))
    (root / "run.json").write_text(json.dumps({"configurations": [{"name": c} for c in configs]}))
    # the same recordings as a folder dataset: RTTM beside the audio, words as <uri>.stm
    from diareval.datasets.rttm import format_rttm
    for rec in recordings:
        (root / "audio" / f"{rec.uri}.rttm").write_text(format_rttm(rec.reference, rec.uri))
        if rec.words is not None:
            (root / "audio" / f"{rec.uri}.stm").write_text("".join(
                f"{rec.uri} 1 {w.speaker} {w.start!r} {w.end!r} {w.text}\n" for w in rec.words))
    return root, recordings


def test_score_run_has_word_columns_dataset_rows_and_paired_differences(word_run, tmp_path):
    from diareval.score import score_run
    root, recordings = word_run
    scores = score_run(root, recordings=recordings, n_boot=100)
    sessions = scores.sessions.set_index(["config", "uri"])
    perfect = sessions.loc["perfect"]
    assert (perfect.loc[["r0", "r1", "r2"], ["wer", "cpwer", "wder"]] == 0).all().all()
    assert perfect.loc["r3", "words_note"].startswith("no reference words")
    assert math.isnan(perfect.loc["r3", "cpwer"])  # absent, with the reason beside it
    noisy = sessions.loc["noisy"].loc[["r0", "r1", "r2"]]
    assert (noisy["wder"] > 0).all() and (noisy["cpwer"] >= noisy["wer"]).all()
    dataset = scores.wer_dataset.set_index("config")
    assert dataset.loc["noisy", "sessions"] == 3
    assert dataset.loc["noisy", "sessions_without_words"] == 1
    pooled = noisy["cpwer_errors"].sum() / noisy["cpwer_length"].sum()
    assert dataset.loc["noisy", "cpwer"] == pytest.approx(pooled)
    assert dataset.loc["noisy", "cpwer_lo"] <= pooled <= dataset.loc["noisy", "cpwer_hi"]
    assert set(scores.wer_breakdowns["breakdown"]) == {"word_count", "overlap"}
    wder = scores.comparisons[scores.comparisons["measure"] == "wder"].iloc[0]
    assert (wder["a_config"], wder["b_config"]) == ("perfect", "noisy")
    assert wder["difference"] == pytest.approx(dataset.loc["noisy", "wder"])
    curve = scores.cpwer_over_time_dataset
    last = curve[curve["config"] == "noisy"].iloc[-1]
    assert last["cpwer_errors"] == noisy["cpwer_errors"].sum()
    assert (root / "scores" / "wer_dataset.parquet").exists()
    for name in ("word_alignment", "cpwer_over_time", "wer_dataset", "wer_breakdowns"):
        assert "conv_wer_normalizer" in getattr(scores, name).columns, name
    from diareval.report import write_figures
    assert "cpwer_over_time.png" in {p.name for p in write_figures(scores, tmp_path)}


def test_score_run_words_file_gives_words_to_a_recording_without(word_run, tmp_path):
    from diareval.score import score_run
    root, recordings = word_run
    text = "".join(f"r3 1 {w.speaker} {w.start} {w.end} {w.text}\n"
                   for w in with_words(recordings[3], np.random.default_rng(1)).words)
    (tmp_path / "r3.stm").write_text(text)
    scores = score_run(root, recordings=recordings, n_boot=20, write=False,
                       words=tmp_path / "r3.stm")
    row = scores.sessions.set_index(["config", "uri"]).loc[("perfect", "r3")]
    assert row["words_note"] == "" and row["wer"] > 0  # the oracle said other words
    (tmp_path / "x.stm").write_text("nobody 1 A 0 1 hi\n")
    with pytest.raises(DatasetError, match="name none of the recordings"):
        score_run(root, recordings=recordings, n_boot=20, write=False, words=tmp_path / "x.stm")


def test_score_command_prints_word_columns_or_why_not(word_run, capsys):
    from diareval.cli import main as cli_main
    root, _ = word_run
    assert cli_main(["score", str(root), "--dataset", str(root / "audio"), "--no-figures",
                     "--n-boot", "20"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"cpWER%\s+tcpWER%\s+WDER%\s+WER%\s+sessions", out), out
    assert "3 (+1 without words)" in out and "; cpWER " in out
    api = score_run_folder(root)
    noisy = api.wer_dataset.set_index("config").loc["noisy"]
    assert f"{100 * noisy['cpwer']:6.2f}" in out
    for path in (root / "audio").glob("*.stm"):
        path.rename(path.with_suffix(".stm.off"))
    try:
        assert cli_main(["score", str(root), "--dataset", str(root / "audio"), "--no-figures",
                         "--n-boot", "20"]) == 0
    finally:
        for path in (root / "audio").glob("*.stm.off"):
            path.rename(path.with_suffix(""))
    out = capsys.readouterr().out
    assert "word metrics absent: no reference words" in out and "cpWER%" not in out
    assert "; cpWER" not in out


def score_run_folder(root):
    from diareval.score import score_run
    return score_run(root, dataset=str(root / "audio"), n_boot=20, write=False)


def test_words_with_an_rttm_hypothesis_is_refused(tmp_path):
    import argparse

    from diareval.cli.score import add_parser, main
    (tmp_path / "r.rttm").write_text("SPEAKER r 1 0.00 1.00 <NA> <NA> A <NA> <NA>\n")
    args = add_parser(argparse.ArgumentParser().add_subparsers()).parse_args(
        ["--ref", str(tmp_path / "r.rttm"), "--hyp", str(tmp_path / "r.rttm"), "--words",
         str(tmp_path / "w.stm")])
    with pytest.raises(ConfigError, match="an RTTM hypothesis has none"):
        main(args)


def test_per_word_speakers_win_over_the_turn_label_and_zero_length_words_count():
    reference = words_of([("A", "one"), ("A", "two"), ("B", "three"), ("B", "four")])
    turn = Turn(turn_order=0, label="x", transcript="one two three four", t_audio=2, t_wall=2,
                words=(Word("one", 0.0, 0.5), Word("two", 0.5, 0.5),  # zero-length: a word
                       Word("three", 1.0, 1.5, speaker="y"), Word("four", 1.5, 1.5, speaker="y")))
    result, alignment = scores(reference, [turn])
    assert result.hypothesis_words == 4 and result.wer == 0.0
    assert result.wder == 0.0 and alignment.attrs["wder_mapping"] == {"x": "A", "y": "B"}
    assert result.cpwer == 0.0
    # the same words under the turn's label only: B's words are attributed to A's label
    plain = Turn(turn_order=0, label="x", transcript="", t_audio=2, t_wall=2,
                 words=tuple(Word(w.text, w.start, w.end) for w in turn.words))
    assert scores(reference, [plain])[0].wder == pytest.approx(0.5)


def test_the_unformatted_final_is_an_option(tmp_path):
    from diareval.score.hypothesis import session_turns
    from diareval.sessionlog import LogLine

    def turn(formatted: bool, words):
        return LogLine("recv", 1.0, 1.0, {
            "type": "Turn", "turn_order": 0, "end_of_turn": True, "speaker_label": "A",
            "turn_is_formatted": formatted, "transcript": "",
            "words": [{"text": t, "start": s, "end": e} for t, s, e in words]})
    plain = [("i", 0, 200), ("paid", 200, 500), ("twenty", 500, 800), ("four", 800, 1000)]
    log = [turn(False, plain), turn(True, [("I", 0, 200), ("paid", 200, 500), ("24.", 500, 1000)])]
    reference = [ReferenceWord("S", s / 1000, e / 1000, t) for t, s, e in plain]
    rec = recording(tmp_path, reference)
    turns = session_turns(log).turns
    final, _ = session_words(turns, rec)
    unformatted, _ = session_words(turns, rec, Conventions(wer_text="unformatted"), log=log)
    assert final["wer_errors"] == 2 and unformatted["wer_errors"] == 0  # "24" vs "twenty four"
    # same word count: the unformatted texts with the final's times and speakers
    log2 = [turn(False, plain[:3]), turn(True, [("I", 0, 200), ("paid", 200, 500),
                                                ("Twenty,", 500, 1000)])]
    row, _ = session_words(session_turns(log2).turns, rec, Conventions(wer_text="unformatted",
                                                                       wer_normalizer=None),
                           log=log2)
    assert row["wer_errors"] == 1  # only "four" missing: "i" and "twenty" as sent unformatted
    with pytest.raises(ConfigError, match="wer_text"):
        Conventions(wer_text="pretty")
