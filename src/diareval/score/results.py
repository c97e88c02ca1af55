"""The results of scoring a run, by name: :class:`RunScores`.

``score_run`` returns one :class:`RunScores`; every field is a tidy DataFrame (possibly
empty), documented once in ``score/README.md`` ("Tables written by score_run"). The
tables are written as ``scores/<field>.parquet|csv`` under the same names, and
:meth:`RunScores.read` reads them back, so a report or a comparison needs no scoring.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Iterator, Mapping

import pandas as pd

from diareval.errors import DiarevalError
from diareval.rundir import CONVENTIONS, score_table_paths


def _empty() -> pd.DataFrame:
    return pd.DataFrame()


@dataclass(frozen=True, eq=False)
class RunScores:
    """Every table of a scored run, one named field each (see ``score/README.md``).

    Per session (one row per configuration x recording, or finer): ``sessions``,
    ``der_over_time``, ``der_seen``, ``der_windows``, ``der_by_region``, ``turns``,
    ``reference_segments``, ``latency``, ``speaker_counts``. Per configuration
    (pooled over sessions, bootstrap intervals): ``der_dataset``,
    ``der_over_time_dataset``, ``der_seen_dataset``, ``der_by_region_dataset``, ``breakdowns``,
    ``reference_breakdown``, ``speaker_count_by_setting``, ``comparisons``. Words (sessions
    with reference words): ``word_alignment``, ``cpwer_over_time`` per session;
    ``wer_dataset``, ``wer_breakdowns``, ``cpwer_over_time_dataset`` per configuration.
    ``conventions`` is the text every table and figure carries.
    """

    sessions: pd.DataFrame = field(default_factory=_empty)
    der_dataset: pd.DataFrame = field(default_factory=_empty)
    der_over_time: pd.DataFrame = field(default_factory=_empty)
    der_over_time_dataset: pd.DataFrame = field(default_factory=_empty)
    der_seen: pd.DataFrame = field(default_factory=_empty)
    der_seen_dataset: pd.DataFrame = field(default_factory=_empty)
    der_windows: pd.DataFrame = field(default_factory=_empty)
    der_by_region: pd.DataFrame = field(default_factory=_empty)
    der_by_region_dataset: pd.DataFrame = field(default_factory=_empty)
    turns: pd.DataFrame = field(default_factory=_empty)
    breakdowns: pd.DataFrame = field(default_factory=_empty)
    reference_segments: pd.DataFrame = field(default_factory=_empty)
    reference_breakdown: pd.DataFrame = field(default_factory=_empty)
    latency: pd.DataFrame = field(default_factory=_empty)
    speaker_counts: pd.DataFrame = field(default_factory=_empty)
    speaker_count_by_setting: pd.DataFrame = field(default_factory=_empty)
    comparisons: pd.DataFrame = field(default_factory=_empty)
    # who said what (score/words.py, score/word_tables.py): only sessions with reference words
    word_alignment: pd.DataFrame = field(default_factory=_empty)
    cpwer_over_time: pd.DataFrame = field(default_factory=_empty)
    wer_dataset: pd.DataFrame = field(default_factory=_empty)
    wer_breakdowns: pd.DataFrame = field(default_factory=_empty)
    cpwer_over_time_dataset: pd.DataFrame = field(default_factory=_empty)
    conventions: str = ""

    @classmethod
    def table_names(cls) -> tuple[str, ...]:
        """The names of the table fields, in order (= the file names under ``scores/``)."""
        return tuple(f.name for f in fields(cls) if f.name != "conventions")

    @classmethod
    def from_tables(cls, tables: Mapping[str, pd.DataFrame], conventions: str = "",
                    **named: pd.DataFrame) -> "RunScores":
        """Gather named tables (``tables`` and keyword tables); an unknown name is an error
        (a typo would vanish otherwise)."""
        given = {**tables, **named}
        unknown = set(given) - set(cls.table_names())
        if unknown:
            raise DiarevalError(f"RunScores has no table(s) {sorted(unknown)}; "
                                f"known: {', '.join(cls.table_names())}")
        return cls(**{name: table for name, table in given.items() if table is not None},
                   conventions=conventions)

    def tables(self) -> dict[str, pd.DataFrame]:
        """Name -> table for every field (empty tables included)."""
        return {name: getattr(self, name) for name in self.table_names()}

    def __iter__(self) -> Iterator[tuple[str, pd.DataFrame]]:
        return iter(self.tables().items())

    @classmethod
    def read(cls, scores_dir: str | Path) -> "RunScores":
        """Read the tables ``write_scores`` wrote (``<name>.parquet``; missing ones empty)."""
        scores_dir = Path(scores_dir)
        if not scores_dir.is_dir():
            raise DiarevalError(f"{scores_dir}: no scores folder (run `python -m diareval score`)")
        conventions = ""
        info = scores_dir / CONVENTIONS
        if info.exists():
            try:
                conventions = json.loads(info.read_text()).get("conventions", "")
            except (OSError, ValueError) as error:
                raise DiarevalError(f"{info}: not a conventions file ({error})") from error
        tables = {}
        for name in cls.table_names():
            path, _ = score_table_paths(scores_dir, name)
            if path.exists():
                try:
                    table = pd.read_parquet(path)
                except Exception as error:  # pyarrow raises several types for a broken file
                    raise DiarevalError(f"{path}: cannot read the table ({error})") from error
                table.attrs["conventions"] = conventions
                tables[name] = table
        return cls.from_tables(tables, conventions)
