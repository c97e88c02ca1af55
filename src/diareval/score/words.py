"""Who said what: cpWER, tcpWER, DI-cpWER (MeetEval), WDER and plain WER from the final Turns.

Both sides become MeetEval's canonical form (SegLST, one segment per word) at the edge:

- **Reference**: ``Recording.words`` (AMI manual words, generated conversations, a folder's
  ``<uri>.stm`` / SegLST ``<uri>.json``: :mod:`diareval.datasets.words`).
- **Hypothesis**: the words of the final Turns (revisions applied per the conventions), each
  word with its own ``speaker`` if the service sent one, else the Turn's ``speaker_label``;
  zero-length words included (they are words). Unknown labels follow the DER policy
  (:func:`diareval.score.hypothesis.hypothesis_label`): ``error`` gives every unknown turn
  its own label ``UNKNOWN#<turn_order>``, ``nonspeech`` drops its words (they become
  deletions), ``label`` makes ``UNKNOWN`` one ordinary speaker. cpWER/tcpWER use MeetEval's
  own optimal assignment, which can pair an unknown turn's label with a reference speaker no
  known label took; WDER (below) never maps unknown words.
- Only words whose midpoint lies inside the UEM are scored (both sides).
- **Text normalisation** (``Conventions.wer_normalizer``, the same on both sides): one of
  MeetEval's normalisers, default ``"lower,rm([^a-z0-9 ])"`` (case and every character but
  a-z, 0-9 and space removed, so a formatted final's "Hello," equals an unformatted "hello");
  ``None`` compares the text as sent. Numbers are not spelled out by these ("24" vs "twenty
  four" is an error); ``chime8`` does that but needs ``chime_utils``, which is not installed
  by default. The hypothesis is the last end-of-turn message's words (the formatted one when
  the service sends two), so ``format_turns`` output is compared after normalisation;
  ``Conventions.wer_text="unformatted"`` takes the unformatted end-of-turn message's words
  instead (:func:`diareval.score.word_tables.with_unformatted_text`).

Metrics (counts in :class:`WordScores`, which add over sessions with ``sum()``):

- **cpWER** (``meeteval.wer.api.cpwer``): concatenated minimum-permutation WER;
- **tcpWER** (``meeteval.wer.api.tcpwer``): time-constrained, ``Conventions.wer_collar``
  seconds (default 5 s, the value of MeetEval's README and the CHiME-8 / NOTSOFAR setups;
  MeetEval's CLI has no default), MeetEval's default pseudo-word timings (reference words as
  their interval, hypothesis words as their midpoint);
- **DI-cpWER** (``meeteval.wer.api.greedy_dicpwer``): diarization-invariant, i.e. each
  hypothesis *word* may go to any reference speaker (MeetEval's greedy algorithm: an upper
  bound of the optimum);
- **WER**: speaker-agnostic, = cpWER with every word given one speaker (the time-ordered
  concatenations of both sides), so ``cpWER - WER`` is the cost of the labels;
- **WDER** (Shafey et al., Interspeech 2019): the share of aligned words (substitutions and
  correct words) whose hypothesis speaker is wrong after the optimal speaker mapping.
  MeetEval has no WDER, so it is computed here: the speaker-agnostic alignment is MeetEval's
  time-constrained alignment (``meeteval.wer.wer.time_constrained.align``, the same collar
  and pseudo timings as tcpWER: a plain Levenshtein alignment of the two concatenations can
  pair words minutes apart when speakers overlap); the mapping is the one-to-one assignment
  (Hungarian) of known hypothesis labels to reference speakers that maximises the aligned
  words whose speakers agree; words with unknown labels are never mapped (always wrong
  under ``error``). Insertions and deletions do not enter WDER (they are WER's).
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import asdict, dataclass, fields
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from diareval.errors import ConfigError
from diareval.score.hypothesis import Turn, hypothesis_label, is_unknown_label

NORMALIZERS = (None, "lower,rm(.?!,)", "lower,rm([^a-z0-9 ])", "chime6", "chime7", "chime8")
DEFAULT_NORMALIZER = "lower,rm([^a-z0-9 ])"
DEFAULT_COLLAR = 5.0
ONE_SPEAKER = "all"  # the speaker of every word for the speaker-agnostic WER
PLACEHOLDER = "(no words)"  # MeetEval needs a session on both sides: an empty segment
PREFIX_STEP = 60.0  # s between the session-time prefixes of the cumulative cpWER ...
COARSE_AFTER, COARSE_STEP = 600.0, 300.0  # ... and every 5 min after the first 10 min


def reference_segments(words: Iterable, session_id: str, uem=None) -> list[dict]:
    """SegLST segments (one per word) of reference words (``ReferenceWord``: speaker, start,
    end, text), those with their midpoint inside ``uem`` (a pyannote Timeline) if given."""
    segments = [dict(session_id=session_id, speaker=str(w.speaker), start_time=float(w.start),
                     end_time=float(w.end), words=str(w.text)) for w in words]
    return _inside(segments, uem)


def hypothesis_segments(turns: Sequence[Turn], session_id: str, unknown: str = "error",
                        uem=None) -> list[dict]:
    """SegLST segments (one per word) of the final turns' words: the word's ``speaker`` if
    sent, else the turn's label, through the unknown policy (None = word dropped)."""
    segments = []
    for turn in turns:
        for word in turn.words:
            raw = word.speaker if word.speaker is not None else turn.label
            label = hypothesis_label(raw, turn.turn_order, unknown)
            if label is None:
                continue
            segments.append(dict(session_id=session_id, speaker=str(label),
                                 start_time=float(word.start), end_time=float(word.end),
                                 words=str(word.text), turn_order=int(turn.turn_order)))
    return _inside(segments, uem)


def _inside(segments: list[dict], uem) -> list[dict]:
    if uem is None:
        return segments
    spans = [(s.start, s.end) for s in uem.support()]
    return [s for s in segments if any(a <= (s["start_time"] + s["end_time"]) / 2 <= b
                                       for a, b in spans)]


def prepare(segments: list[dict], normalizer: str | None = DEFAULT_NORMALIZER):
    """A MeetEval SegLST: normalised, one segment per word (a segment the normaliser split
    keeps MeetEval's character-based times; an emptied word is dropped), sorted by start
    (stable: equal starts keep their order)."""
    import meeteval
    from meeteval.wer.normalizer import normalize
    from meeteval.wer.wer.time_constrained import get_pseudo_word_level_timings
    if normalizer not in NORMALIZERS:
        raise ConfigError(f"wer_normalizer must be one of {NORMALIZERS}, got {normalizer!r}")
    seglst = meeteval.io.SegLST([dict(s) for s in segments])
    if normalizer is not None and len(seglst):
        seglst = normalize(seglst, normalizer=normalizer)
    if len(seglst):
        seglst = get_pseudo_word_level_timings(seglst, "character_based")
    kept = [s for s in seglst if s["words"].strip()]
    order = sorted(range(len(kept)), key=lambda i: (kept[i]["start_time"], i))
    return meeteval.io.SegLST([kept[i] for i in order])


@contextlib.contextmanager
def _quiet_meeteval():
    # MeetEval logs warnings on every call (same-speaker words that overlap in time; word
    # midpoints out of start order, which zero-length and point words cause): informational
    # for word-level input, and once per session they would drown the output
    loggers = [logging.getLogger(name) for name in ("error_rate", "preprocess", "meeteval")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _with_placeholder(seglst, session_id: str):
    import meeteval
    if len(seglst):
        return seglst
    return meeteval.io.SegLST([dict(session_id=session_id, speaker=PLACEHOLDER, start_time=0.0,
                                    end_time=0.0, words="")])


def _one_speaker(seglst):
    return seglst.map(lambda s: {**s, "speaker": ONE_SPEAKER})


@dataclass(frozen=True)
class WordScores:
    """Word error counts of one session (or, added with ``sum()``, of many).

    ``cpwer_*``/``tcpwer_*``/``dicpwer_*``/``wer_*``: errors, length (reference words),
    insertions, deletions, substitutions; ``cpwer_missed_speakers`` etc. MeetEval's speaker
    counts; ``wder_speaker_errors`` of ``wder_aligned`` aligned words (of them
    ``wder_unknown`` with an unknown label); ``hypothesis_words`` after normalisation.
    """

    cpwer_errors: int = 0
    cpwer_length: int = 0
    cpwer_insertions: int = 0
    cpwer_deletions: int = 0
    cpwer_substitutions: int = 0
    cpwer_missed_speakers: int = 0
    cpwer_falarm_speakers: int = 0
    cpwer_scored_speakers: int = 0
    tcpwer_errors: int = 0
    tcpwer_length: int = 0
    tcpwer_insertions: int = 0
    tcpwer_deletions: int = 0
    tcpwer_substitutions: int = 0
    dicpwer_errors: int = 0
    dicpwer_length: int = 0
    wer_errors: int = 0
    wer_length: int = 0
    wer_insertions: int = 0
    wer_deletions: int = 0
    wer_substitutions: int = 0
    wder_speaker_errors: int = 0
    wder_aligned: int = 0
    wder_unknown: int = 0
    hypothesis_words: int = 0
    word_sessions: int = 0

    def __add__(self, other: "WordScores") -> "WordScores":
        if not isinstance(other, WordScores):
            return NotImplemented
        return WordScores(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                             for f in fields(self)})

    def __radd__(self, other):
        if other == 0:
            return self
        return NotImplemented

    @staticmethod
    def _rate(num: int, den: int) -> float:
        # undefined without reference words; rows say why in `words_note`
        return num / den if den > 0 else math.nan

    @property
    def cpwer(self) -> float:
        """Concatenated minimum-permutation WER."""
        return self._rate(self.cpwer_errors, self.cpwer_length)

    @property
    def tcpwer(self) -> float:
        """Time-constrained cpWER."""
        return self._rate(self.tcpwer_errors, self.tcpwer_length)

    @property
    def dicpwer(self) -> float:
        """Diarization-invariant cpWER (greedy)."""
        return self._rate(self.dicpwer_errors, self.dicpwer_length)

    @property
    def wer(self) -> float:
        """Speaker-agnostic WER."""
        return self._rate(self.wer_errors, self.wer_length)

    @property
    def wder(self) -> float:
        """Word diarization error rate (Shafey et al. 2019)."""
        return self._rate(self.wder_speaker_errors, self.wder_aligned)

    @property
    def note(self) -> str:
        """Empty, or why the rates are undefined."""
        notes = []
        if self.cpwer_length == 0:
            notes.append("no reference words in the scored region: word error rates undefined")
        elif self.wder_aligned == 0:
            notes.append("no aligned words: WDER undefined")
        return "; ".join(notes)

    def as_row(self) -> dict:
        """The counts, the rates and ``words_note`` as one table row."""
        row = asdict(self)
        row.update(cpwer=self.cpwer, tcpwer=self.tcpwer, dicpwer=self.dicpwer, wer=self.wer,
                   wder=self.wder, words_note=self.note)
        return row


RATE_COLUMNS = ("cpwer", "tcpwer", "dicpwer", "wer", "wder")


def absent_row(reason: str) -> dict:
    """The sessions-table columns of a session that has no reference words: every count
    and rate missing (None: NaN in a table, never 0) and ``words_note`` the reason."""
    row = {f.name: None for f in fields(WordScores)}
    row.update({name: None for name in RATE_COLUMNS}, words_note=reason)
    return row


def _counts(result, prefix: str) -> dict:
    return {f"{prefix}_errors": int(result.errors), f"{prefix}_length": int(result.length),
            f"{prefix}_insertions": int(result.insertions),
            f"{prefix}_deletions": int(result.deletions),
            f"{prefix}_substitutions": int(result.substitutions)}


def meeteval_scores(reference, hypothesis, collar: float = DEFAULT_COLLAR) -> dict:
    """cpWER, tcpWER, DI-cpWER and WER of one session through ``meeteval.wer.api`` (prepared
    SegLSTs of one session id; an empty side gets one empty placeholder segment):
    ``{"cpwer": CPErrorRate, "tcpwer": ..., "dicpwer": ..., "wer": ...}``."""
    from meeteval.wer import api
    session_ids = {s["session_id"] for s in reference} | {s["session_id"] for s in hypothesis}
    if len(session_ids) != 1:
        raise ConfigError(f"meeteval_scores scores one session, got {sorted(session_ids)}")
    session_id = session_ids.pop()
    reference = _with_placeholder(reference, session_id)
    hypothesis = _with_placeholder(hypothesis, session_id)
    with _quiet_meeteval():
        return dict(
            cpwer=api.cpwer(reference, hypothesis)[session_id],
            tcpwer=api.tcpwer(reference, hypothesis, collar=collar)[session_id],
            dicpwer=api.greedy_dicpwer(reference, hypothesis)[session_id],
            wer=api.cpwer(_one_speaker(reference), _one_speaker(hypothesis))[session_id])


def word_alignment(reference, hypothesis, collar: float = DEFAULT_COLLAR) -> pd.DataFrame:
    """The speaker-agnostic time-constrained alignment of two prepared SegLSTs, one row per
    pair: ``op`` (correct, substitution, insertion, deletion), ``ref_speaker``, ``hyp_label``,
    ``mapped_label`` (the WDER mapping), ``speaker_correct`` (aligned pairs only),
    ``turn_order`` (of the hypothesis word), ``ref_text``, ``hyp_text``, ``t`` (the midpoint
    of the reference word, else of the hypothesis word)."""
    from meeteval.wer.wer.time_constrained import align
    columns = ["op", "ref_speaker", "hyp_label", "mapped_label", "speaker_correct",
               "turn_order", "ref_text", "hyp_text", "t"]
    ref, hyp = list(reference), list(hypothesis)
    if not ref and not hyp:
        return pd.DataFrame(columns=columns)
    with _quiet_meeteval():
        pairs = align(_one_speaker(reference), _one_speaker(hypothesis), collar=collar,
                      style="index") if ref and hyp else \
            [(i, None) for i in range(len(ref))] + [(None, j) for j in range(len(hyp))]
    rows = []
    for i, j in pairs:
        r = ref[i] if i is not None else None
        h = hyp[j] if j is not None else None
        op = ("insertion" if r is None else "deletion" if h is None else
              "correct" if r["words"] == h["words"] else "substitution")
        word = r if r is not None else h
        rows.append(dict(op=op, ref_speaker=r["speaker"] if r else None,
                         hyp_label=h["speaker"] if h else None,
                         turn_order=h.get("turn_order") if h else None,
                         ref_text=r["words"] if r else None, hyp_text=h["words"] if h else None,
                         t=(word["start_time"] + word["end_time"]) / 2))
    frame = pd.DataFrame(rows, columns=[c for c in columns
                                        if c not in ("mapped_label", "speaker_correct")])
    mapping = wder_mapping(frame)
    frame["mapped_label"] = frame["hyp_label"].map(mapping)
    aligned = frame["op"].isin(["correct", "substitution"])
    frame["speaker_correct"] = pd.array(
        np.where(aligned, frame["mapped_label"] == frame["ref_speaker"], False), "boolean")
    frame.loc[~aligned, "speaker_correct"] = pd.NA
    frame["turn_order"] = frame["turn_order"].astype("Int64")
    frame.attrs["wder_mapping"] = mapping
    return frame[columns]


def wder_mapping(alignment: pd.DataFrame) -> dict:
    """The one-to-one map hypothesis label -> reference speaker that maximises the aligned
    words (correct or substituted) whose speakers agree; unknown labels left out."""
    from scipy.optimize import linear_sum_assignment
    aligned = alignment[alignment["op"].isin(["correct", "substitution"])]
    aligned = aligned[~aligned["hyp_label"].map(is_unknown_label)]
    if aligned.empty:
        return {}
    table = pd.crosstab(aligned["hyp_label"], aligned["ref_speaker"])
    rows, cols = linear_sum_assignment(-table.to_numpy())
    return {table.index[r]: table.columns[c] for r, c in zip(rows, cols)
            if table.iat[r, c] > 0}


def word_scores(reference, hypothesis, collar: float = DEFAULT_COLLAR
                ) -> tuple[WordScores, pd.DataFrame]:
    """The :class:`WordScores` of one session and its word alignment (prepared SegLSTs)."""
    results = meeteval_scores(reference, hypothesis, collar)
    alignment = word_alignment(reference, hypothesis, collar)
    aligned = alignment[alignment["op"].isin(["correct", "substitution"])]
    cp = results["cpwer"]
    counts = dict(**_counts(cp, "cpwer"), **_counts(results["tcpwer"], "tcpwer"),
                  **_counts(results["wer"], "wer"),
                  dicpwer_errors=int(results["dicpwer"].errors),
                  dicpwer_length=int(results["dicpwer"].length),
                  cpwer_missed_speakers=int(cp.missed_speaker),
                  cpwer_falarm_speakers=int(cp.falarm_speaker),
                  cpwer_scored_speakers=int(cp.scored_speaker),
                  wder_speaker_errors=int((~aligned["speaker_correct"].astype(bool)).sum()),
                  wder_aligned=len(aligned),
                  wder_unknown=int(aligned["hyp_label"].map(is_unknown_label).sum()),
                  hypothesis_words=len(hypothesis), word_sessions=1)
    return WordScores(**counts), alignment


def cpwer_over_time(reference, hypothesis, ends: Sequence[float]) -> pd.DataFrame:
    """Cumulative cpWER on session-time prefixes ``[0, t]`` for every ``t`` in ``ends``: the
    words (both sides) whose midpoint is <= t, each prefix with its own permutation.
    Columns ``t``, ``cpwer_errors``, ``cpwer_length``, ``cpwer`` (NaN while no reference
    word has been said, with ``note``)."""
    import meeteval
    from meeteval.wer import api
    ref, hyp = list(reference), list(hypothesis)
    session_ids = {s["session_id"] for s in ref + hyp}
    session_id = session_ids.pop() if session_ids else "session"
    mid = lambda s: (s["start_time"] + s["end_time"]) / 2  # noqa: E731
    rows = []
    for t in ends:
        r = _with_placeholder(meeteval.io.SegLST([s for s in ref if mid(s) <= t]), session_id)
        h = _with_placeholder(meeteval.io.SegLST([s for s in hyp if mid(s) <= t]), session_id)
        with _quiet_meeteval():
            result = api.cpwer(r, h)[session_id]
        rows.append(dict(t=float(t), cpwer_errors=int(result.errors),
                         cpwer_length=int(result.length)))
    frame = pd.DataFrame(rows, columns=["t", "cpwer_errors", "cpwer_length"])
    length = frame["cpwer_length"].where(frame["cpwer_length"] > 0)
    frame["cpwer"] = frame["cpwer_errors"] / length
    frame["note"] = np.where(frame["cpwer_length"] > 0, "",
                             "no reference word yet: cpWER undefined")
    return frame


def prefix_ends(end: float, step: float = PREFIX_STEP, coarse_after: float = COARSE_AFTER,
                coarse_step: float = COARSE_STEP) -> list[float]:
    """Prefix ends ``step``, ``2 step``, ... up to ``coarse_after``, then every
    ``coarse_step``, up to the first one >= ``end`` (the last prefix holds every word). The
    grid is the same for every session, so prefixes pool; it is coarse late in long sessions
    because each prefix costs a full cpWER (about 0.2 s for 3000 words)."""
    if step <= 0 or coarse_step <= 0:
        raise ConfigError(f"prefix steps must be > 0, got {step}, {coarse_step}")
    ends, t = [], 0.0
    while True:
        t = round(t + (step if t < coarse_after - 1e-9 else coarse_step), 9)
        ends.append(float(t))
        if t >= end - 1e-9:
            return ends
