"""Property test: fuzzed RTTM/UEM input never crashes the readers: it loads or raises DatasetError."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from diareval.datasets import DatasetError, load_rttm, load_uem, parse_rttm, parse_uem

NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(min_value=-5, max_value=1e4).map(lambda x: f"{x:.3f}"),
    st.integers(-10, 10 ** 6).map(str),
    st.sampled_from(["nan", "inf", "-inf", "1e309", "-0", "0x10", "1_000", "١٢", "", "+.5",
                     "1e-300", "0.0000001", "½"]),
)
TOKENS = st.one_of(
    NUMBERS,
    st.sampled_from(["SPEAKER", "SPKR-INFO", "LEXEME", "speaker", "<NA>", "NA", "1", "A",
                     "file_1", "#", ";", "\t", "\u00a0", "\u2028", "\x00", "é", "🙂"]),
    st.text(max_size=6),
)


@st.composite
def rttm_lines(draw):
    """Mostly well-formed SPEAKER lines with fields replaced, dropped or added at random."""
    fields = ["SPEAKER", draw(st.sampled_from(["f1", "f2", "ES2004a"])), "1",
              draw(NUMBERS), draw(NUMBERS), "<NA>", "<NA>", draw(st.sampled_from(["A", "B"])),
              "<NA>", "<NA>"]
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["replace", "drop", "add"]))
        index = draw(st.integers(0, len(fields) - 1)) if fields else 0
        if action == "replace" and fields:
            fields[index] = draw(TOKENS)
        elif action == "drop" and fields:
            fields.pop(index)
        else:
            fields.insert(index, draw(TOKENS))
    separator = draw(st.sampled_from([" ", "\t", "  "]))
    return separator.join(fields)


@st.composite
def uem_lines(draw):
    fields = [draw(st.sampled_from(["f1", "f2"])), "1", draw(NUMBERS), draw(NUMBERS)]
    for _ in range(draw(st.integers(0, 2))):
        index = draw(st.integers(0, len(fields)))
        if draw(st.booleans()) and index < len(fields):
            fields[index] = draw(TOKENS)
        else:
            fields.insert(index, draw(TOKENS))
    return " ".join(fields)


def _check_rttm(result):
    for uri, annotation in result.items():
        for segment, _, label in annotation.itertracks(yield_label=True):
            assert math.isfinite(segment.start) and math.isfinite(segment.end)
            assert 0 <= segment.start < segment.end
            assert label not in ("", "<NA>")


def _check_uem(result):
    for uri, timeline in result.items():
        for segment in timeline:
            assert math.isfinite(segment.start) and math.isfinite(segment.end)
            assert 0 <= segment.start < segment.end


FAST = settings(max_examples=400, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FAST
@given(st.lists(st.one_of(rttm_lines(), st.text(max_size=40)), max_size=8))
@example(["SPEAKER f1 1 1e308 1e308 <NA> <NA> A <NA> <NA>"])  # end overflows to inf
@example(["SPEAKER f1 1 nan 1 <NA> <NA> A"])
def test_fuzzed_rttm_loads_or_raises_dataset_error(lines):
    try:
        result = parse_rttm("\n".join(lines), source="fuzz.rttm")
    except DatasetError as exc:
        assert "fuzz.rttm:" in str(exc)  # names the file and the line
        return
    _check_rttm(result)


@FAST
@given(st.lists(st.one_of(uem_lines(), st.text(max_size=30)), max_size=8))
def test_fuzzed_uem_loads_or_raises_dataset_error(lines):
    try:
        result = parse_uem("\n".join(lines), source="fuzz.uem")
    except DatasetError as exc:
        assert "fuzz.uem:" in str(exc)
        return
    _check_uem(result)


@FAST
@given(data=st.binary(max_size=200))
@example(data=b"\x80 1 0 1")  # not UTF-8
def test_fuzzed_bytes_in_files(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("fuzz")
    for name, reader in (("x.rttm", load_rttm), ("x.uem", load_uem)):
        path = folder / name
        path.write_bytes(data)
        try:
            reader(path)
        except DatasetError as exc:
            assert name in str(exc)


def test_valid_lines_still_load():
    refs = parse_rttm("SPEAKER f1 1 0.5 1.0 <NA> <NA> A <NA> <NA>")
    assert refs["f1"].label_duration("A") == pytest.approx(1.0)
    assert parse_uem("f1 1 0 2")["f1"].duration() == pytest.approx(2.0)
