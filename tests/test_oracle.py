"""The oracle engine: identification, timing, labels, and the seeded error model."""

from __future__ import annotations

import asyncio
import json
import math

import numpy as np
import pytest
import websockets
from pyannote.core import Annotation, Segment, Timeline

from diareval.constants import WORD_COUNT_BINS
from diareval.datasets import Recording, ReferenceWord, load_folder
from diareval.errors import ConfigError
from diareval.server import LocalServer
from diareval.server.engines import make_engine_factory
from diareval.server.engines.base import EngineError, SessionParams
from diareval.server.engines.oracle import (OracleConfig, PlannedTurn, PlannedWord,
                                            assign_labels, draws, p_wrong, plan_turns,
                                            word_count_bucket)
from fixtures import write_synthetic_dataset

LABELS = SessionParams(speaker_labels=True)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    folder = write_synthetic_dataset(tmp_path_factory.mktemp("syn"), n_recordings=3,
                                     duration=60.0, n_speakers=4, seed=11)
    return load_folder(folder)


def stream(engine, audio: np.ndarray, chunk: int = 1600, stop_at: int | None = None):
    """Feed ``audio`` in ``chunk``-sample pieces, then finish; messages with the number of
    samples received when each was emitted."""
    out = []
    end = len(audio) if stop_at is None else stop_at
    for i in range(0, end, chunk):
        piece = audio[i:min(i + chunk, end)]
        received = min(i + chunk, end)
        out += [(received, m) for m in engine.feed(piece)]
    out += [(end, m) for m in engine.finish()]
    return out


def finals(messages):
    """Final (unformatted) Turns, in order."""
    return [m for m in messages if m["type"] == "Turn" and m["end_of_turn"]
            and not m["turn_is_formatted"]]


# --- the pure error model ----------------------------------------------------------------------

def test_word_count_buckets_and_p_wrong_precedence():
    assert [word_count_bucket(n) for n in (1, 2, 3, 5, 6, 10, 11, 20, 21, 500)] == \
        [0, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    config = OracleConfig(p_wrong_by_words=(0.6, 0.5, 0.4, 0.3, 0.2, 0.1), first_turns=2,
                          p_wrong_first=0.9, overlap_threshold=0.3, p_wrong_overlap=0.7)
    assert p_wrong(1, 0.0, 0, config) == 0.9  # first-turns rule first
    assert p_wrong(30, 0.9, 1, config) == 0.9  # ... even with overlap
    assert p_wrong(30, 0.31, 2, config) == 0.7  # then the overlap rule
    assert p_wrong(30, 0.3, 2, config) == 0.1  # threshold is strict
    assert [p_wrong(n, 0.0, 5, config) for n in (1, 2, 4, 8, 15, 40)] == \
        [0.6, 0.5, 0.4, 0.3, 0.2, 0.1]


def test_config_validation_names_the_problem():
    with pytest.raises(ConfigError, match="needs 6 values"):
        OracleConfig(p_wrong_by_words=(0.1, 0.2))
    with pytest.raises(ConfigError, match="probability"):
        OracleConfig(p_wrong_first=1.5)
    with pytest.raises(ConfigError, match="unknown oracle option.*bogus"):
        OracleConfig.from_options(bogus=1)


def _synthetic_plan(n_turns: int, n_speakers: int, seed: int = 0) -> list[PlannedTurn]:
    rng = np.random.default_rng(seed)
    turns, t = [], 0
    for k in range(n_turns):
        n_words = int(rng.integers(1, 30))
        words = tuple(PlannedWord(t + 400 * i, t + 400 * (i + 1), f"w{i + 1}")
                      for i in range(n_words))
        turns.append(PlannedTurn(f"s{k % n_speakers}", words, float(rng.random() * 0.5)))
        t = words[-1].end + 300
    return turns


def test_injected_rates_per_bucket_are_recovered_from_decisions():
    table = (0.5, 0.35, 0.25, 0.15, 0.1, 0.05)
    config = OracleConfig(p_wrong_by_words=table, first_turns=0, overlap_threshold=1.0,
                          unknown_below_seconds=0.0)
    turns = _synthetic_plan(6000, 3)
    decisions = assign_labels(turns, LABELS, config, draws(3, "plan", len(turns)))
    for bucket, p in enumerate(table):
        chosen = [d for d in decisions if word_count_bucket(d.word_count) == bucket]
        rate = np.mean([d.wrong for d in chosen])
        tolerance = 4 * math.sqrt(p * (1 - p) / len(chosen))
        assert abs(rate - p) < tolerance, (WORD_COUNT_BINS[bucket], rate, p, len(chosen))


def test_max_speakers_cap_holds_in_the_label_model():
    turns = _synthetic_plan(500, 6)
    config = OracleConfig.uniform(0.5, p_wrong_new=1.0)
    for cap in (1, 2, 4):
        params = SessionParams(speaker_labels=True, max_speakers=cap)
        decisions = assign_labels(turns, params, config, draws(0, "cap", len(turns)))
        identities = {d.identity for d in decisions if d.identity is not None}
        assert identities == set(range(cap))
        # Wrong labels may take slots under the cap, so at least 6 - cap speakers merge.
        assert 6 - cap <= sum(d.merged for d in decisions) <= 5
        homes = {d.reference_speaker: d.home_identity for d in decisions if not d.wrong}
        assert len(homes) == 6 and set(homes.values()) <= set(range(cap))


def test_draws_depend_on_seed_and_uri_only():
    assert np.array_equal(draws(1, "a", 5), draws(1, "a", 5))
    assert not np.array_equal(draws(1, "a", 5), draws(2, "a", 5))
    assert not np.array_equal(draws(1, "a", 5), draws(1, "b", 5))


# --- through the engine ------------------------------------------------------------------------

def test_labels_in_order_of_appearance_never_reference_names(recordings):
    factory = make_engine_factory("oracle", recordings=recordings, seed=5,
                                  uniform_p_wrong=0.3, p_wrong_new=0.5)
    for recording in recordings:
        engine = factory(LABELS)
        messages = [m for _, m in stream(engine, recording.load_audio())]
        assert engine.recording.uri == recording.uri
        order = []
        for m in messages:
            label = m["speaker_label"]
            assert label not in recording.speakers
            if label != "UNKNOWN" and label not in order:
                order.append(label)
        assert order == [chr(ord("A") + i) for i in range(len(order))]
        assert len(order) >= 3
        for m in finals(messages):
            assert all(w["speaker"] == m["speaker_label"] for w in m["words"])


def test_max_speakers_cap_through_the_engine(recordings):
    recording = recordings[0]
    assert len(recording.speakers) == 4
    factory = make_engine_factory("oracle", recordings=recordings, uniform_p_wrong=0.3,
                                  p_wrong_new=1.0)
    engine = factory(SessionParams(speaker_labels=True, max_speakers=2))
    labels = {m["speaker_label"] for _, m in stream(engine, recording.load_audio())}
    assert labels - {"UNKNOWN"} == {"A", "B"}


def test_same_seed_same_messages_whatever_the_chunk_size(recordings):
    recording = recordings[1]
    audio = recording.load_audio()
    factory = make_engine_factory("oracle", recordings=recordings, seed=9, uniform_p_wrong=0.3,
                                  p_partial_label_change=0.3, p_revision=0.5)
    params = SessionParams(speaker_labels=True, format_turns=True)
    small = [m for _, m in stream(factory(params), audio, chunk=800)]  # 50 ms
    large = [m for _, m in stream(factory(params), audio, chunk=3200)]  # 200 ms
    odd = [m for _, m in stream(factory(params), audio, chunk=1337)]
    assert small == large == odd
    other_seed = make_engine_factory("oracle", recordings=recordings, seed=10,
                                     uniform_p_wrong=0.3)
    assert [m for _, m in stream(other_seed(params), audio)] != small


def test_same_messages_through_the_server_at_50_and_200_ms(recordings):
    recording = recordings[2]
    audio = recording.load_audio()
    factory = make_engine_factory("oracle", recordings=recordings, seed=4, uniform_p_wrong=0.3)

    async def session(server, samples):
        url = f"{server.url}/v3/ws?sample_rate=16000&speaker_labels=true&max_speakers=3"
        async with websockets.connect(url, additional_headers={"Authorization": "k"}) as ws:
            for i in range(0, len(audio) - 800 + 1, samples):
                await ws.send(audio[i:i + samples].tobytes())
            await ws.send(json.dumps({"type": "Terminate"}))
            return [json.loads(m) async for m in ws]

    async def main():
        async with LocalServer(factory, api_keys=None, lookahead_seconds=None) as server:
            return await session(server, 800), await session(server, 3200)

    small, large = asyncio.run(main())
    strip = [m for m in small if m["type"] not in ("Begin", "Termination")]
    assert strip == [m for m in large if m["type"] not in ("Begin", "Termination")]
    assert len(finals(strip)) > 5


def test_injected_rate_is_recovered_from_messages_and_decisions(tmp_path):
    folder = write_synthetic_dataset(tmp_path, n_recordings=1, duration=600.0, n_speakers=3,
                                     seed=3, max_turn=2.5)
    recording = load_folder(folder)[0]
    factory = make_engine_factory("oracle", recordings=[recording], seed=1,
                                  uniform_p_wrong=0.4, p_unknown_short=0.0)
    engine = factory(LABELS)
    messages = [m for _, m in stream(engine, recording.load_audio(), chunk=16000)]
    decisions = engine.decisions
    n = len(decisions)
    assert n > 150
    rate = np.mean([d.wrong for d in decisions])
    assert abs(rate - 0.4) < 3 * math.sqrt(0.4 * 0.6 / n)
    # The messages show exactly those decisions: a final's label differs from the speaker's
    # own label iff the turn was drawn wrong (no cap, no unknowns: always realisable).
    final_messages = finals(messages)
    assert len(final_messages) == n
    homes = {d.reference_speaker: engine.label_of(d.home_identity) for d in decisions}
    observed = [m["speaker_label"] != homes[d.reference_speaker]
                for m, d in zip(final_messages, decisions)]
    assert observed == [d.wrong for d in decisions]


def test_unknown_for_short_turns(recordings):
    recording = recordings[0]
    for style, expected in (("UNKNOWN", "UNKNOWN"), ("null", None)):
        factory = make_engine_factory("oracle", recordings=recordings, p_unknown_short=1.0,
                                      unknown_style=style)
        engine = factory(LABELS)
        messages = finals([m for _, m in stream(engine, recording.load_audio())])
        short = [m for m in messages if (m["words"][-1]["end"] - m["words"][0]["start"]) < 1000]
        long = [m for m in messages if (m["words"][-1]["end"] - m["words"][0]["start"]) >= 1000]
        assert short and long
        assert all(m["speaker_label"] == expected for m in short)
        assert all(w["speaker"] == expected for m in short for w in m["words"])
        assert all(m["speaker_label"] not in ("UNKNOWN", None) for m in long)
        assert sum(d.unknown for d in engine.decisions) == len(short)


def test_without_speaker_labels_no_label_fields(recordings):
    engine = make_engine_factory("oracle", recordings=recordings)(SessionParams())
    messages = [m for _, m in stream(engine, recordings[0].load_audio())]
    assert messages and all("speaker_label" not in m for m in messages)
    assert all("speaker" not in w for m in messages for w in m["words"])


def test_timing_is_audio_time_sequential_with_drawn_finalisation_delay(recordings):
    recording = recordings[1]
    params = SessionParams(speaker_labels=True, min_turn_silence=200, max_turn_silence=900)
    engine = make_engine_factory("oracle", recordings=recordings, seed=2)(params)
    chunk = 800
    emitted = stream(engine, recording.load_audio(), chunk=chunk)
    orders = [m["turn_order"] for _, m in emitted]
    assert orders == sorted(orders)  # sequential turns
    delays = set()
    for received, m in emitted:
        last_end = m["words"][-1]["end"]
        if m["end_of_turn"]:
            decision = engine.decisions[m["turn_order"]]
            assert 200 <= decision.final_delay_ms <= 900
            delays.add(decision.final_delay_ms)
            due = (last_end + decision.final_delay_ms) * 16
            assert due <= received  # never before its time
        else:
            assert last_end * 16 <= received
            assert m["words"][-1]["word_is_final"] is False
            assert all(w["word_is_final"] for w in m["words"][:-1])
    assert len(delays) > 3  # drawn per turn
    # Each message is emitted within one chunk of its due time, where due = its own time
    # (word end, or last word end + delay) but never before the previous message's due time.
    previous_due, waited, total = 0, 0, len(recording.load_audio())
    for received, m in emitted:
        own = m["words"][-1]["end"] * 16
        if m["end_of_turn"]:
            own += engine.decisions[m["turn_order"]].final_delay_ms * 16
        due = max(own, previous_due)
        waited += due > own  # held back by the previous turn (overlapping speech)
        if due <= total:
            assert due <= received < due + chunk
        previous_due = due
    assert waited > 0


def test_finish_finalises_words_ended_within_received_audio(recordings):
    recording = recordings[0]
    audio = recording.load_audio()
    engine = make_engine_factory("oracle", recordings=recordings)(LABELS)
    stop = len(audio) // 2
    messages = finals([m for _, m in stream(engine, audio, stop_at=stop)])
    assert messages
    assert all(w["end"] * 16 <= stop for m in messages for w in m["words"])
    complete = finals([m for _, m in stream(
        make_engine_factory("oracle", recordings=recordings)(LABELS), audio)])
    assert len(complete) > len(messages)


def test_format_turns_adds_a_formatted_final(recordings):
    engine = make_engine_factory("oracle", recordings=recordings)(
        SessionParams(speaker_labels=True, format_turns=True))
    messages = [m for _, m in stream(engine, recordings[0].load_audio())]
    for i, m in enumerate(messages):
        if m["end_of_turn"] and not m["turn_is_formatted"]:
            formatted = messages[i + 1]
            assert formatted["turn_is_formatted"] and formatted["end_of_turn"]
            assert formatted["turn_order"] == m["turn_order"]
            assert formatted["transcript"].endswith(".") and formatted["transcript"][0].isupper()


def test_force_endpoint_splits_the_turn(recordings):
    recording = recordings[0]
    audio = recording.load_audio()
    engine = make_engine_factory("oracle", recordings=recordings)(LABELS)
    first = engine.turns if engine.turns else None
    assert first is None  # nothing planned before the audio identifies the recording
    messages = []
    position = 0
    while not [m for m in messages if not m["end_of_turn"] and len(m["words"]) >= 2]:
        messages += engine.feed(audio[position:position + 800])
        position += 800
    forced = engine.force_endpoint()
    assert forced[0]["end_of_turn"] and len(forced[0]["words"]) >= 2
    rest = messages + forced + [m for _, m in stream(engine, audio[position:])]
    orders = [m["turn_order"] for m in finals(rest)]
    assert orders == list(range(len(orders)))


def test_reference_words_are_used_when_present():
    reference = Annotation(uri="words")
    reference[Segment(0.5, 2.0)] = "alice"
    reference[Segment(2.5, 4.0)] = "bob"
    words = [ReferenceWord("alice", 0.5, 0.9, "hello"), ReferenceWord("alice", 1.0, 1.9, "there"),
             ReferenceWord("bob", 2.6, 3.9, "hi")]
    recording = Recording(uri="words", audio_path=None, reference=reference,
                          uem=Timeline([Segment(0, 4)]), words=words)
    turns = plan_turns(recording, OracleConfig())
    assert [[w.text for w in t.words] for t in turns] == [["hello", "there"], ["hi"]]
    assert turns[0].words[0] == PlannedWord(500, 900, "hello")


def test_overlap_ratio_is_the_overlapped_share_of_word_time():
    reference = Annotation(uri="ov")
    reference[Segment(0.0, 4.0)] = "a"
    reference[Segment(3.0, 5.0)] = "b"
    recording = Recording(uri="ov", audio_path=None, reference=reference,
                          uem=Timeline([Segment(0, 5)]))
    turns = plan_turns(recording, OracleConfig(words_per_second=1.0))
    assert [t.speaker for t in turns] == ["a", "b"]
    assert turns[0].overlap_ratio == pytest.approx(0.25)
    assert turns[1].overlap_ratio == pytest.approx(0.5)


def test_unmatched_audio_and_wrong_format_are_engine_errors(recordings):
    factory = make_engine_factory("oracle", recordings=recordings)
    engine = factory(LABELS)
    noise = np.random.default_rng(0).integers(-3000, 3000, 1600).astype(np.int16)
    with pytest.raises(EngineError, match="matches no known recording") as info:
        engine.feed(noise)
    assert info.value.code == 3005
    with pytest.raises(EngineError, match="sample_rate=16000") as info:
        factory(SessionParams(sample_rate=8000))
    assert info.value.code == 3006


def test_unmatched_audio_through_the_server_is_error_3005(recordings):
    factory = make_engine_factory("oracle", recordings=recordings)

    async def main():
        async with LocalServer(factory, api_keys=None) as server:
            url = f"{server.url}/v3/ws?sample_rate=16000"
            async with websockets.connect(url, additional_headers={"Authorization": "k"}) as ws:
                await ws.recv()
                await ws.send(np.full(1600, 123, np.int16).tobytes())
                messages = []
                with pytest.raises(websockets.ConnectionClosedError):
                    async for m in ws:
                        messages.append(json.loads(m))
                return messages, ws.close_code

    messages, code = asyncio.run(main())
    assert code == 3005
    assert messages[-1] == {"type": "Error", "error_code": 3005,
                            "error": "oracle: audio matches no known recording"}


def test_shared_prefix_takes_the_first_with_a_warning(tmp_path, recordings):
    twin = Recording(uri="twin", audio_path=recordings[0].audio_path,
                     reference=recordings[1].reference, uem=recordings[0].uem)
    factory = make_engine_factory("oracle", recordings=[recordings[0], twin],
                                  identify_seconds=1.0)
    engine = factory(LABELS)
    audio = recordings[0].load_audio()
    with pytest.warns(UserWarning, match="share the first"):
        for i in range(0, 32000, 1600):
            engine.feed(audio[i:i + 1600])
    assert engine.recording.uri == recordings[0].uri


def test_oracle_on_ami_excerpts_reproduces_the_reference(ami_excerpts):
    recordings = load_folder(ami_excerpts)
    # exact_words: reference word times to the ms (Universal-Streaming's 80 ms grid moves
    # word edges by up to 40 ms; issue 13)
    factory = make_engine_factory("oracle", recordings=recordings, uniform_p_wrong=0.0,
                                  p_unknown_short=0.0, exact_words=True)
    recording = recordings[0]
    engine = factory(LABELS)
    messages = finals([m for _, m in stream(engine, recording.load_audio())])
    assert engine.recording.uri == recording.uri
    label_to_speaker = {}
    for m, d in zip(messages, engine.decisions):
        label_to_speaker.setdefault(m["speaker_label"], d.reference_speaker)
        assert label_to_speaker[m["speaker_label"]] == d.reference_speaker
        speech = recording.reference.label_timeline(d.reference_speaker).support()
        for w in m["words"]:
            assert speech.covers(Timeline([Segment(w["start"] / 1000 + 1e-3,
                                                   w["end"] / 1000 - 1e-3)]))
    assert len(label_to_speaker) == len(recording.speakers)


def test_audio_prefix_equals_the_start_of_load_audio(tmp_path, recordings):
    from diareval.server.engines.oracle import audio_prefix
    import soundfile as sf
    for recording in recordings[:1]:
        assert np.array_equal(audio_prefix(recording, 2.0), recording.load_audio()[:32000])
    # A file at another rate goes through load_audio (resampled), then is cut.
    path = tmp_path / "r8k.wav"
    sf.write(path, np.random.default_rng(1).normal(0, 0.1, 8000 * 3), 8000, subtype="PCM_16")
    other = Recording(uri="r8k", audio_path=path, reference=Annotation(uri="r8k"),
                      uem=Timeline([Segment(0, 3)]))
    assert np.array_equal(audio_prefix(other, 1.0), other.load_audio()[:16000])


def test_audio_prefix_on_ami(ami_excerpts):
    from diareval.server.engines.oracle import audio_prefix
    recording = load_folder(ami_excerpts)[0]
    assert np.array_equal(audio_prefix(recording, 10.0), recording.load_audio()[:160000])


def test_u3_pro_style_messages(recordings):
    engine = make_engine_factory("oracle", recordings=recordings)(
        SessionParams(speaker_labels=True, speech_model="u3-rt-pro", format_turns=False))
    messages = [m for _, m in stream(engine, recordings[0].load_audio())]
    turns = [m for m in messages if m["type"] == "Turn"]
    final_turns = [m for m in turns if m["end_of_turn"]]
    assert final_turns and all(m["turn_is_formatted"] for m in final_turns)
    orders = [m["turn_order"] for m in final_turns]
    assert orders == list(range(len(orders)))  # exactly one final per turn
    # Pseudo-words leave no pauses inside a turn: no partials at all.
    assert len(turns) == len(final_turns)
    # A SpeechStarted precedes each turn's first message (not for turns only flushed at finish).
    started = [i for i, m in enumerate(messages) if m["type"] == "SpeechStarted"]
    assert len(started) >= len(final_turns) - 1
    assert all(messages[i + 1]["type"] == "Turn" for i in started if i + 1 < len(messages))
    assert all(isinstance(messages[i]["timestamp"], int) for i in started)


def test_update_configuration_redraws_pending_delays(recordings):
    factory = make_engine_factory("oracle", recordings=recordings, seed=6)
    audio = recordings[1].load_audio()
    engine = factory(LABELS)
    engine.feed(audio[:16000])
    before = [d.final_delay_ms for d in engine.decisions]
    engine.update_configuration({"min_turn_silence": 2000, "max_turn_silence": 3000})
    after = [d.final_delay_ms for d in engine.decisions]
    pending = engine._cursor
    assert after[:pending] == before[:pending]
    assert all(2000 <= d <= 3000 for d in after[pending:])
    assert engine.update_configuration({"vad_threshold": 0.3}) == []


def test_merged_turns_keep_gaps_so_error_free_oracle_has_zero_der(tmp_path):
    from pyannote.metrics.diarization import DiarizationErrorRate
    reference = Annotation(uri="gap")
    reference[Segment(0.0, 1.0)] = "a"
    reference[Segment(1.2, 2.0)] = "a"  # 0.2 s gap: merged into one turn
    reference[Segment(1.9, 2.5)] = "a"  # overlaps the previous piece: one piece
    reference[Segment(3.0, 4.0)] = "b"
    recording = Recording(uri="gap", audio_path=None, reference=reference,
                          uem=Timeline([Segment(0, 4)]))
    turns = plan_turns(recording, OracleConfig())
    assert [t.speaker for t in turns] == ["a", "b"]
    assert all(w.start >= 1200 or w.end <= 1000 for w in turns[0].words)  # nothing in the gap
    folder = write_synthetic_dataset(tmp_path, n_recordings=1, duration=60, n_speakers=3, seed=5)
    synthetic = load_folder(folder)[0]
    # exact_words: reference word times to the ms (Universal-Streaming's 80 ms grid moves
    # word edges by up to 40 ms; issue 13)
    engine = make_engine_factory("oracle", recordings=[synthetic], uniform_p_wrong=0.0,
                                 p_unknown_short=0.0, exact_words=True)(LABELS)
    hypothesis = Annotation(uri=synthetic.uri)
    for m in finals([m for _, m in stream(engine, synthetic.load_audio())]):
        for w in m["words"]:
            hypothesis[Segment(w["start"] / 1000, w["end"] / 1000)] = w["speaker"]
    der = DiarizationErrorRate()(synthetic.reference, hypothesis, uem=synthetic.uem)
    assert der < 0.001


def test_partial_to_final_label_changes_follow_the_decisions(recordings):
    engine = make_engine_factory("oracle", recordings=recordings, seed=8,
                                 p_partial_label_change=0.5, uniform_p_wrong=0.0,
                                 p_unknown_short=0.0)(LABELS)
    messages = [m for _, m in stream(engine, recordings[0].load_audio())]
    changed = set()
    for order in {m["turn_order"] for m in messages}:
        turn = [m for m in messages if m["turn_order"] == order]
        partial_labels = {m["speaker_label"] for m in turn if not m["end_of_turn"]}
        final_label = [m["speaker_label"] for m in turn if m["end_of_turn"]][0]
        if partial_labels and partial_labels != {final_label}:
            changed.add(order)
    expected = {d.index for d in engine.decisions if d.partial_identity is not None}
    assert changed == expected and len(expected) >= 3


def test_oracle_decisions_offline_match_a_streamed_session(recordings):
    from diareval.server.engines.oracle import oracle_decisions
    config = OracleConfig.uniform(0.3, seed=12, p_partial_label_change=0.3)
    params = SessionParams(speaker_labels=True, max_speakers=3)
    engine = make_engine_factory("oracle", recordings=recordings, config=config)(params)
    messages = finals([m for _, m in stream(engine, recordings[2].load_audio())])
    offline = oracle_decisions(recordings[2], params, config)
    assert [d.label for d in offline] == [d.label for d in engine.decisions] == \
        [m["speaker_label"] for m in messages]
    assert [d.wrong for d in offline] == [d.wrong for d in engine.decisions]


def test_candidates_narrow_as_audio_arrives(tmp_path, recordings):
    import soundfile as sf
    rng = np.random.default_rng(2)
    common = rng.normal(0, 0.1, 16000)
    uris = []
    for name in ("first", "second"):
        audio = np.concatenate([common, rng.normal(0, 0.1, 32000)])
        sf.write(tmp_path / f"{name}.wav", audio, 16000, subtype="PCM_16")
        uris.append(name)
    catalog = [Recording(uri=u, audio_path=tmp_path / f"{u}.wav",
                         reference=recordings[0].reference, uem=recordings[0].uem)
               for u in uris]
    factory = make_engine_factory("oracle", recordings=catalog)
    engine = factory(LABELS)
    audio = catalog[1].load_audio()
    for i in range(0, 16000, 1600):
        engine.feed(audio[i:i + 1600])
    assert engine.recording is None and len(engine._candidates) == 2  # still ambiguous
    engine.feed(audio[16000:17600])
    assert engine.recording.uri == "second"
