"""Word metrics in the session and dataset tables (pure; the metrics are in :mod:`.words`).

- :func:`session_words`: one session's ``words`` columns of the sessions table (counts and
  rates of cpWER, tcpWER, DI-cpWER, WER, WDER, or every one absent with ``words_note``
  saying why) and its tables ``word_alignment`` (the word alignment, each hypothesis word with its
  turn's ``word_count_bin`` and ``overlap_bin``) and ``cpwer_over_time`` (cumulative cpWER
  on session-time prefixes).
- :func:`aggregate_words`: dataset-level ``wer_dataset`` (pooled counts per configuration,
  session-bootstrap intervals), ``wer_breakdowns`` (WDER by the turn's word count and
  overlap), ``cpwer_over_time_dataset`` (pooled prefixes) and the paired differences of
  every word metric against the first configuration (rows for the ``comparisons`` table).

Breakdowns are of WDER (whose speaker is wrong among aligned words) and of the hypothesis
words' substitutions and insertions, by the *hypothesis* turn: deletions belong to no turn.
"""

from __future__ import annotations

import pandas as pd

from dataclasses import replace

from diareval.errors import DatasetError, DiarevalError
from diareval.score.bootstrap import bootstrap_ratio, paired_bootstrap
from diareval.score.der import Conventions, with_conventions
from diareval.score.turns import BIN_ORDER
from diareval.score.words import (PREFIX_STEP, RATE_COLUMNS, absent_row, cpwer_over_time,
                                  hypothesis_segments, prefix_ends, prepare, reference_segments,
                                  word_scores)

NO_WORDS = "no reference words for this recording (the dataset has none: give <uri>.stm or " \
           "<uri>.json beside the audio, or --words)"
METRICS = (("cpwer", "cpwer_errors", "cpwer_length"), ("tcpwer", "tcpwer_errors", "tcpwer_length"),
           ("dicpwer", "dicpwer_errors", "dicpwer_length"), ("wer", "wer_errors", "wer_length"),
           ("wder", "wder_speaker_errors", "wder_aligned"))
WORD_BREAKDOWNS = ("word_count_bin", "overlap_bin")


def unformatted_words(log) -> dict:
    """``{turn_order: words}`` of the unformatted end-of-turn message (``turn_is_formatted``
    false) of every turn whose last end-of-turn message is formatted (``format_turns``: the
    service sends both). Turns finalised once (U3 Pro: formatted only) are not in it."""
    from diareval.score.hypothesis import _words
    plain, formatted_last = {}, {}
    for line in log:
        message = line.msg if line.dir == "recv" and isinstance(line.msg, dict) else {}
        if message.get("type") != "Turn" or not message.get("end_of_turn"):
            continue
        try:
            order = int(message["turn_order"])
        except (KeyError, TypeError, ValueError):
            continue
        formatted = bool(message.get("turn_is_formatted"))
        if not formatted and order not in plain:
            plain[order] = _words(message.get("words"))
        formatted_last[order] = formatted
    return {order: words for order, words in plain.items() if formatted_last.get(order)}


def with_unformatted_text(turns, unformatted: dict) -> list:
    """The final turns with the word texts of their unformatted end-of-turn message: word by
    word when both have as many words (times and speakers stay the final's, revisions
    included); else the unformatted words under the final turn's label."""
    out = []
    for turn in turns:
        words = unformatted.get(turn.turn_order)
        if words is None or not words:
            out.append(turn)
        elif len(words) == len(turn.words):
            out.append(replace(turn, words=tuple(replace(w, text=u.text)
                                                 for w, u in zip(turn.words, words))))
        else:
            out.append(replace(turn, words=tuple(replace(u, speaker=None) for u in words)))
    return out


def session_words(turns, recording, conventions: Conventions = Conventions(),
                  turn_table: pd.DataFrame | None = None, end: float = 0.0,
                  step: float = PREFIX_STEP, log=None) -> tuple[dict, dict[str, pd.DataFrame]]:
    """(sessions-table columns, tables) of one session's words; see the module docstring.

    ``turns`` are the final turns as scored (revisions per the conventions); ``end`` the
    session end (s) for the prefix grid (every ``step`` s); ``log`` the session log, needed
    for ``conventions.wer_text == "unformatted"``."""
    if recording.words is None:
        return absent_row(NO_WORDS), {}
    if conventions.wer_text == "unformatted":
        if log is None:
            raise DiarevalError('wer_text="unformatted" needs the session log (log=...)')
        turns = with_unformatted_text(turns, unformatted_words(log))
    uri = recording.uri
    reference = prepare(reference_segments(recording.words, uri, recording.uem),
                        conventions.wer_normalizer)
    hypothesis = prepare(hypothesis_segments(turns, uri, conventions.unknown, recording.uem),
                         conventions.wer_normalizer)
    scores, alignment = word_scores(reference, hypothesis, conventions.wer_collar)
    row = scores.as_row()
    row["wder_mapping"] = ", ".join(f"{h}->{r}" for h, r in
                                    sorted(alignment.attrs.get("wder_mapping", {}).items()))
    for column in WORD_BREAKDOWNS:
        bins = {} if turn_table is None or turn_table.empty else \
            dict(zip(turn_table["turn_order"], turn_table[column]))
        alignment[column] = [bins.get(int(t)) if pd.notna(t) else None
                             for t in alignment["turn_order"]]
    last = max([end] + [s["end_time"] for s in list(reference) + list(hypothesis)])
    curve = cpwer_over_time(reference, hypothesis, prefix_ends(last, step))
    tables = dict(word_alignment=alignment, cpwer_over_time=curve)
    for table in tables.values():
        with_conventions(table, conventions)
        table.attrs["conventions"] = conventions.describe_words()
    return row, tables


def with_reference_words(recordings: dict, words) -> dict:
    """``{uri: Recording}`` with the reference words of ``words`` (an STM / SegLST file or
    folder, :func:`diareval.datasets.words.load_words`) for every uri it has; the others keep
    theirs. A file that names none of the recordings is an error (the wrong file)."""
    from dataclasses import replace

    from diareval.datasets.words import load_words
    found = load_words(words)
    matched = set(found) & set(recordings)
    if not matched:
        raise DatasetError(f"{words}: its sessions ({', '.join(sorted(found)[:5])}) name none of "
                           f"the recordings ({', '.join(sorted(recordings)[:5])})")
    return {uri: replace(r, words=found[uri]) if uri in found else r
            for uri, r in recordings.items()}


def _with_words(sessions: pd.DataFrame) -> pd.DataFrame:
    if "cpwer_length" not in sessions:
        return sessions.iloc[0:0]
    return sessions[sessions["cpwer_length"].notna()]


def _metric_row(group: pd.DataFrame, n_boot: int, seed: int) -> dict:
    row = {}
    counts = group.copy()
    for name, num, den in METRICS:
        counts[num] = counts[num].astype(float)
        counts[den] = counts[den].astype(float)
        ci = bootstrap_ratio(counts, num, den, n_boot=n_boot, seed=seed)
        total_num, total_den = counts[num].sum(), counts[den].sum()
        row.update({num: int(total_num), den: int(total_den),
                    name: total_num / total_den if total_den > 0 else float("nan"),
                    f"{name}_lo": ci["lo"].iloc[0], f"{name}_hi": ci["hi"].iloc[0]})
    for column in ("cpwer_insertions", "cpwer_deletions", "cpwer_substitutions",
                   "wer_insertions", "wer_deletions", "wer_substitutions", "wder_unknown",
                   "hypothesis_words"):
        row[column] = int(group[column].astype(float).sum())
    row["labelling_cost"] = row["cpwer"] - row["wer"]  # cpWER - WER: what the labels cost
    return row


def aggregate_words(sessions: pd.DataFrame, tables: dict[str, pd.DataFrame],
                    conventions: Conventions, n_boot: int = 1000, seed: int = 0
                    ) -> tuple[dict[str, pd.DataFrame], list[pd.DataFrame]]:
    """(dataset tables, comparison rows) of the word metrics; see the module docstring.

    ``sessions`` are the scored sessions; those without reference words are counted in
    ``sessions_without_words`` with their reason, never pooled as 0."""
    out: dict[str, pd.DataFrame] = {}
    rows = []
    worded = _with_words(sessions)
    for config, group in sessions.groupby("config", sort=False):
        have = _with_words(group)
        row = dict(config=config, sessions=len(have), sessions_without_words=len(group) - len(have))
        if len(have):
            row.update(_metric_row(have, n_boot, seed), note="")
        else:
            reasons = sorted(set(group.get("words_note", pd.Series(dtype=object)).dropna()))
            row.update({name: None for name in RATE_COLUMNS},
                       note="; ".join(reasons) or "no reference words")
        rows.append(row)
    out["wer_dataset"] = with_conventions(pd.DataFrame(rows), conventions)

    words = tables.get("word_alignment")
    parts = []
    if words is not None and not words.empty:
        hyp = words[words["hyp_label"].notna()].assign(
            n_words=1, aligned=lambda f: f["speaker_correct"].notna().astype(int),
            speaker_errors=lambda f: (f["speaker_correct"] == False).fillna(False).astype(int),  # noqa: E712
            substitutions=lambda f: (f["op"] == "substitution").astype(int),
            insertions=lambda f: (f["op"] == "insertion").astype(int))
        for config, group in hyp.groupby("config", sort=False):
            for by in WORD_BREAKDOWNS:
                group_by = group[group[by].notna()]
                if group_by.empty:
                    continue
                ci = bootstrap_ratio(group_by, "speaker_errors", "aligned", by=by,
                                     n_boot=n_boot, seed=seed, wilson=True)
                sums = group_by.groupby(by)[["n_words", "aligned", "speaker_errors",
                                             "substitutions", "insertions"]].sum()
                table = sums.reindex(ci[by]).reset_index().rename(columns={by: "bucket"})
                table["wder"] = ci["estimate"].to_numpy()
                table["wder_lo"], table["wder_hi"] = ci["lo"].to_numpy(), ci["hi"].to_numpy()
                table["n_sessions"] = ci["n_sessions"].to_numpy()
                order = BIN_ORDER[by]
                table = table.iloc[sorted(range(len(table)),
                                          key=lambda i: order.index(table["bucket"].iat[i])
                                          if table["bucket"].iat[i] in order else len(order))]
                table.insert(0, "breakdown", by.removesuffix("_bin"))
                table.insert(0, "config", config)
                parts.append(table)
    out["wer_breakdowns"] = with_conventions(pd.concat(parts, ignore_index=True), conventions) \
        if parts else pd.DataFrame()

    curve = tables.get("cpwer_over_time")
    if curve is not None and not curve.empty:
        pooled = curve.groupby(["config", "t"], sort=True)[["cpwer_errors", "cpwer_length"]] \
            .sum().reset_index()
        pooled["sessions"] = curve.groupby(["config", "t"], sort=True).size().to_numpy()
        length = pooled["cpwer_length"].where(pooled["cpwer_length"] > 0)
        pooled["cpwer"] = pooled["cpwer_errors"] / length
        pooled["note"] = ["" if n > 0 else "no reference word yet: cpWER undefined"
                          for n in pooled["cpwer_length"]]
        out["cpwer_over_time_dataset"] = with_conventions(pooled, conventions)
    else:
        out["cpwer_over_time_dataset"] = pd.DataFrame()

    comparisons = []
    configs = list(dict.fromkeys(worded["config"])) if len(worded) else []
    for other in configs[1:]:
        a = worded[worded["config"] == configs[0]]
        b = worded[worded["config"] == other]
        for name, num, den in METRICS:
            try:
                d = paired_bootstrap(a.astype({num: float, den: float}),
                                     b.astype({num: float, den: float}), num, den,
                                     n_boot=n_boot, seed=seed)
            except DiarevalError:
                continue
            d.insert(0, "measure", name)
            d.insert(0, "b_config", other)
            d.insert(0, "a_config", configs[0])
            comparisons.append(d)
    for table in out.values():
        table.attrs["conventions"] = conventions.describe_words()
    return out, comparisons


def cpwer_by_config(wer_dataset: pd.DataFrame) -> dict[str, str]:
    """``{config: "; cpWER 21.54%"}`` for the configurations whose cpWER is defined (the DER
    line of ``score`` and ``run`` ends with it)."""
    if wer_dataset is None or wer_dataset.empty or "cpwer" not in wer_dataset:
        return {}
    return {row["config"]: f"; cpWER {100 * row['cpwer']:.2f}%"
            for row in wer_dataset.to_dict("records")
            if row.get("cpwer") is not None and not pd.isna(row["cpwer"])}


def format_word_scores(wer_dataset: pd.DataFrame) -> str:
    """The word metrics per configuration as printed by ``score`` and ``run``: columns
    cpWER%, tcpWER%, WDER%, WER% with intervals; a configuration without reference words
    gets its reason, never a number. Empty string for an empty table."""
    if wer_dataset is None or wer_dataset.empty:
        return ""
    names = [("cpwer", "cpWER%"), ("tcpwer", "tcpWER%"), ("wder", "WDER%"), ("wer", "WER%")]
    width = max(len(str(c)) for c in wer_dataset["config"])
    lines = [f"{'words':<{width}}  " + "  ".join(f"{label:>21}" for _, label in names)
             + "  sessions"] if (wer_dataset["sessions"] > 0).any() else []
    for row in wer_dataset.to_dict("records"):
        if not row.get("sessions"):
            lines.append(f"{row['config']:<{width}}  word metrics absent: {row.get('note')}")
            continue
        cells = []
        for name, _ in names:
            value, lo, hi = (row.get(k) for k in (name, f"{name}_lo", f"{name}_hi"))
            cells.append("—" if value is None or pd.isna(value) else
                         f"{100 * value:6.2f} [{100 * lo:5.1f}, {100 * hi:5.1f}]")
        without = int(row.get("sessions_without_words") or 0)
        lines.append(f"{row['config']:<{width}}  " + "  ".join(f"{c:>21}" for c in cells)
                     + f"  {int(row['sessions'])}" + (f" (+{without} without words)" if without else ""))
    return "\n".join(lines)
