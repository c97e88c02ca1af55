"""Scoring: pure functions from (session log, Recording) to tidy DataFrames.

- :mod:`~diareval.score.hypothesis`: final turns, partials, revisions, hypothesis speech
- :mod:`~diareval.score.der`: DER/JER with pyannote.metrics, :class:`Conventions`, results that add
- :mod:`~diareval.score.over_time`: exact DER over session time (prefixes, windows, regions)
- :mod:`~diareval.score.turns`: per-turn and per-reference-segment tables, breakdowns
- :mod:`~diareval.score.labelling_floor`: the DER with the same words and oracle speaker labels
- :mod:`~diareval.score.words`, :mod:`~diareval.score.word_tables`: cpWER, tcpWER, DI-cpWER
  (MeetEval), WDER and WER from the final Turns' words, and their tables
- :mod:`~diareval.score.stability`, :mod:`~diareval.score.latency`, :mod:`~diareval.score.bootstrap`
- :func:`score_session` (one session), :func:`score_run` (a run directory -> :class:`RunScores`,
  writes ``scores/``),
  :func:`score_rttm` (plain RTTM files)
"""

from diareval.score.bootstrap import bootstrap_ratio, breakdown_with_ci, paired_bootstrap
from diareval.score.der import (Conventions, DERResult, JERResult, der, der_and_mapping, jer,
                                optimal_mapping)
from diareval.score.hypothesis import (final_turns, hypothesis_from_log, hypothesis_from_turns,
                                       session_turns)
from diareval.score.labelling_floor import oracle_labelled
from diareval.score.over_time import der_by_region, der_over_time, der_windows
from diareval.score.rttm import format_rttm_scores, score_annotations, score_rttm
from diareval.score.results import RunScores
from diareval.score.logs import score_logs
from diareval.score.run import score_run
from diareval.score.seen import der_seen
from diareval.score.session import SessionScores, score_session
from diareval.score.turns import breakdown, reference_segment_table, turn_table

__all__ = ["Conventions", "DERResult", "JERResult", "RunScores", "SessionScores", "bootstrap_ratio",
           "breakdown", "breakdown_with_ci", "der", "der_and_mapping", "der_by_region", "der_over_time",
           "der_seen", "score_logs",
           "der_windows", "final_turns", "format_rttm_scores", "hypothesis_from_log",
           "hypothesis_from_turns", "jer", "optimal_mapping", "oracle_labelled", "paired_bootstrap",
           "reference_segment_table", "score_annotations", "score_rttm", "score_run",
           "score_session", "session_turns", "turn_table"]
