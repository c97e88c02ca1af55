"""Score plain RTTM files (the ``score --ref --hyp`` form): DER/JER per file and in total.

Labels are all ordinary here (an RTTM has no "unknown"). Without a UEM, each file is
scored on the union of its reference and hypothesis extents (what pyannote.metrics and
dscore do without one); the conventions line says which.
"""

from __future__ import annotations

import math

import pandas as pd
from pyannote.core import Annotation, Timeline

from diareval.datasets.rttm import load_rttm, load_uem
from diareval.errors import DatasetError
from diareval.score.der import Conventions, DERResult, JERResult, der, jer, with_conventions


def _extent(reference: Annotation, hypothesis: Annotation, uri: str) -> Timeline:
    segments = []
    for annotation in (reference, hypothesis):
        if annotation:
            segments.append(annotation.get_timeline().extent())
    if not segments:
        return Timeline(uri=uri)
    extent = segments[0]
    for segment in segments[1:]:
        extent = extent | segment
    return Timeline([extent], uri=uri)


def score_annotations(references: dict[str, Annotation], hypotheses: dict[str, Annotation],
                      uems: dict[str, Timeline] | None,
                      conventions: Conventions = Conventions(unknown="label")) -> pd.DataFrame:
    """One row per reference file plus a ``TOTAL`` row (components summed: DER time-weighted,
    JER the mean over every reference speaker of every file, as the run tables pool it)."""
    extra = sorted(set(hypotheses) - set(references))
    if extra:
        raise DatasetError(f"hypothesis file(s) without a reference: {', '.join(extra)}")
    rows, results, jers = [], [], []
    for uri in sorted(references):
        reference = references[uri]
        hypothesis = hypotheses.get(uri, Annotation(uri=uri))
        if uems is not None:
            if uri not in uems:
                raise DatasetError(f"the UEM has no entry for {uri!r}")
            uem = uems[uri]
        else:
            uem = _extent(reference, hypothesis, uri)
        result = der(reference, hypothesis, uem, conventions)
        jer_result = jer(reference, hypothesis, uem, conventions)
        row = dict(uri=uri, **result.as_row(), jer=jer_result.jer)
        if uri not in hypotheses:
            row["note"] = "; ".join(filter(None, [row["note"], "no hypothesis for this file"]))
        rows.append(row)
        results.append(result)
        jers.append(jer_result)
    total = sum(results, DERResult())
    rows.append(dict(uri="TOTAL", **total.as_row(), jer=sum(jers, JERResult()).jer))
    return with_conventions(pd.DataFrame(rows), conventions)


def score_rttm(reference_path, hypothesis_path, uem_path=None,
               conventions: Conventions = Conventions(unknown="label")) -> pd.DataFrame:
    """Read the RTTM (and UEM) files and :func:`score_annotations` them."""
    references = load_rttm(reference_path)
    hypotheses = load_rttm(hypothesis_path)
    uems = load_uem(uem_path) if uem_path else None
    return score_annotations(references, hypotheses, uems, conventions)


def format_rttm_scores(table: pd.DataFrame) -> str:
    """A plain-text table (percentages) with the conventions line on top."""
    lines = [f"# {table.attrs.get('conventions', '')}",
             f"{'file':<24} {'DER%':>7} {'miss%':>7} {'FA%':>7} {'conf%':>7} {'JER%':>7} "
             f"{'ref speech s':>12}"]
    for row in table.itertuples():
        def pct(x):
            return f"{100 * x:7.2f}" if not math.isnan(x) else f"{'n/a':>7}"
        lines.append(f"{row.uri:<24} {pct(row.der)} {pct(row.miss_rate)} "
                     f"{pct(row.false_alarm_rate)} {pct(row.confusion_rate)} {pct(row.jer)} "
                     f"{row.reference_speech:12.3f}" + (f"  ({row.note})" if row.note else ""))
    return "\n".join(lines)
