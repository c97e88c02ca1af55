"""DER and JER with pyannote.metrics under explicit, recorded conventions.

Conventions (DESIGN.md, md-eval-22.pl semantics):

- ``collar`` is **per side** in seconds (md-eval ``-c``). pyannote.metrics' ``collar``
  is the total width, so it receives ``2 * collar`` (read in
  ``pyannote.metrics.utils.UEMSupportMixin.extrude``: it removes
  ``[t - collar/2, t + collar/2]`` around every reference segment boundary).
- ``skip_overlap`` removes every region where >= 2 reference speakers talk from the
  scored region (md-eval ``-1``).
- Same-speaker segments that overlap are counted once (md-eval merges them per speaker,
  with a warning; pyannote.metrics would count that speaker twice): reference and
  hypothesis are merged per label before scoring. Collars, though, are taken around the
  boundaries of the reference segments *as given*, adjacent ones included (md-eval does
  the same: checked with md-eval-22.pl, see tests/test_der.py).
- the UEM (scored region) comes from the Recording and is always passed explicitly.
- DER = (miss + false alarm + confusion) / reference speech, all in seconds; per
  elementary segment with ``NR`` reference and ``NH`` hypothesis speakers and ``C``
  correctly mapped pairs: miss = max(0, NR-NH), false alarm = max(0, NH-NR),
  confusion = min(NR, NH) - C (pyannote ``IdentificationErrorRate`` / md-eval).
- The optimal mapping is computed on the whole UEM, *before* collars and overlap are
  removed, then the scored region is scored with it: that is what md-eval-22.pl does
  (checked: every one of 30 random multi-file cases with collars, overlap skipped and
  same-speaker overlaps agrees with md-eval-22.pl to 0.01 s, see tests/test_der.py).
  pyannote.metrics instead maps on the scored region, which can pick another mapping
  when a collar or ``skip_overlap`` removes time (``Conventions(mapping_on="scored")``
  reproduces it). With collar 0 and overlap scored the two are the same. When several
  mappings tie on the mapping region (equal co-occurrence), md-eval and pyannote both take
  one arbitrarily; with a collar or skipped overlap the DER can then depend on that choice
  (the tests check diareval's mapping is optimal and scores as pyannote scores it).
- Unknown speech under the ``"error"`` policy never takes part in the optimal mapping
  (see :mod:`diareval.score.hypothesis`). Giving each unknown turn a unique label is
  *not* enough on its own: with fewer hypothesis labels than reference speakers, the
  Hungarian solver would pair a unique unknown label with a left-over reference
  speaker and count that speech correct. So the mapping is computed on the known
  labels only, then the whole hypothesis is scored with that mapping.

Results are frozen dataclasses that add (MeetEval style): ``sum(results)`` gives
the time-weighted dataset totals.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from pyannote.core import Annotation, Timeline
from pyannote.metrics.diarization import DiarizationErrorRate, JaccardErrorRate
from pyannote.metrics.identification import IdentificationErrorRate

from diareval.errors import ConfigError
from diareval.score.hypothesis import LEVELS, UNKNOWN_POLICIES, is_unknown_label


MAPPING_REGIONS = ("uem", "scored")


@dataclass(frozen=True)
class Conventions:
    """How a number was computed; every table carries these (``df.attrs`` and columns).

    ``collar``: seconds per side (md-eval ``-c``); ``skip_overlap``: overlap regions not
    scored; ``unknown``: policy for null/"UNKNOWN" labels; ``level``: word- or turn-level
    hypothesis; ``revisions``: SpeakerRevision messages applied; ``uem``: where the
    scored region came from (free text, e.g. "UEM file", "whole file").
    """

    collar: float = 0.0
    skip_overlap: bool = False
    unknown: str = "error"
    level: str = "word"
    revisions: bool = True
    uem: str = "from the recording"
    mapping_on: str = "uem"
    hypothesis: str = "session log"  # or "rttm": then unknown/level/revisions do not apply
    # word metrics (diareval.score.words): text normaliser on both sides, tcpWER collar (s)
    wer_normalizer: str | None = "lower,rm([^a-z0-9 ])"
    wer_collar: float = 5.0
    wer_text: str = "final"  # or "unformatted": the unformatted final's words (format_turns)

    def __post_init__(self):
        if self.mapping_on not in MAPPING_REGIONS:
            raise ConfigError(f"mapping_on must be one of {', '.join(MAPPING_REGIONS)}, "
                              f"got {self.mapping_on!r}")
        if not (isinstance(self.collar, (int, float)) and math.isfinite(self.collar)
                and self.collar >= 0):
            raise ConfigError(f"collar must be a finite number >= 0 (seconds per side), "
                              f"got {self.collar!r}")
        if self.unknown not in UNKNOWN_POLICIES:
            raise ConfigError(f"unknown policy must be one of {', '.join(UNKNOWN_POLICIES)}, "
                              f"got {self.unknown!r}")
        if self.level not in LEVELS:
            raise ConfigError(f"level must be one of {', '.join(LEVELS)}, got {self.level!r}")
        from diareval.score.words import NORMALIZERS
        if self.wer_normalizer not in NORMALIZERS:
            raise ConfigError(f"wer_normalizer must be one of {NORMALIZERS}, "
                              f"got {self.wer_normalizer!r}")
        if self.wer_text not in ("final", "unformatted"):
            raise ConfigError(f"wer_text must be 'final' or 'unformatted', got {self.wer_text!r}")
        if not (isinstance(self.wer_collar, (int, float)) and math.isfinite(self.wer_collar)
                and self.wer_collar >= 0):
            raise ConfigError(f"wer_collar must be a finite number >= 0 (seconds), "
                              f"got {self.wer_collar!r}")

    @property
    def pyannote_collar(self) -> float:
        """The ``collar`` argument pyannote.metrics needs: the total width, 2x per side."""
        return 2.0 * self.collar

    def describe(self) -> str:
        """One line for a table caption or figure title."""
        text = (f"collar {self.collar:g} s per side, overlap "
                f"{'skipped' if self.skip_overlap else 'scored'}, UEM {self.uem}, mapping on the "
                f"{'UEM (md-eval)' if self.mapping_on == 'uem' else 'scored region (pyannote)'}")
        if self.hypothesis == "session log":
            text += (f", unknown={self.unknown}, {self.level}-level, revisions "
                     f"{'applied' if self.revisions else 'ignored'}")
        else:
            text += f", hypothesis from {self.hypothesis}"
        return text

    def describe_words(self) -> str:
        """One line for word-metric tables: text normalisation and the tcpWER collar."""
        source = "last" if self.wer_text == "final" else "unformatted"
        return (f"words normalised {self.wer_normalizer or 'not at all'} (both sides), "
                f"hypothesis words of the {source} end-of-turn message, tcpWER "
                f"collar {self.wer_collar:g} s, unknown={self.unknown}, revisions "
                f"{'applied' if self.revisions else 'ignored'}")

    def as_columns(self) -> dict:
        """Column name -> value, prefixed ``conv_``, for tidy tables."""
        return {f"conv_{key}": value for key, value in asdict(self).items()}


def with_conventions(frame, conventions: Conventions):
    """Add the convention columns and ``attrs["conventions"]`` to a DataFrame (in place);
    return it."""
    for key, value in conventions.as_columns().items():
        frame[key] = value
    frame.attrs["conventions"] = conventions.describe()
    return frame


@dataclass(frozen=True)
class DERResult:
    """DER components in seconds. ``a + b`` adds them (time-weighted aggregation).

    ``reference_speech`` is pyannote's ``total`` (reference speaker-time in the scored
    region, overlap counted once per speaker); ``unknown_speech`` is the
    hypothesis speaker-time labelled unknown inside the scored region.
    """

    reference_speech: float = 0.0
    correct: float = 0.0
    miss: float = 0.0
    false_alarm: float = 0.0
    confusion: float = 0.0
    unknown_speech: float = 0.0
    sessions: int = 0

    def __add__(self, other: "DERResult") -> "DERResult":
        if not isinstance(other, DERResult):
            return NotImplemented
        return DERResult(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                            for f in fields(self)})

    def __radd__(self, other):
        if other == 0:  # sum() starts from 0
            return self
        return NotImplemented

    @property
    def errors(self) -> float:
        """miss + false alarm + confusion (s)."""
        return self.miss + self.false_alarm + self.confusion

    def _rate(self, value: float) -> float:
        # No reference speech: the rate is undefined. NaN here is never silent: rows that
        # carry it also carry `note` (see as_row) saying why.
        return value / self.reference_speech if self.reference_speech > 0 else math.nan

    @property
    def der(self) -> float:
        """Diarization error rate; NaN when there is no reference speech (see ``note``)."""
        return self._rate(self.errors)

    @property
    def note(self) -> str:
        """Empty, or why a rate is undefined."""
        if self.reference_speech > 0:
            return ""
        return ("no reference speech in the scored region: DER undefined "
                f"(false alarm {self.false_alarm:.3f} s)")

    def as_row(self) -> dict:
        """The components and rates as one table row."""
        row = asdict(self)
        row.update(der=self.der, miss_rate=self._rate(self.miss),
                   false_alarm_rate=self._rate(self.false_alarm),
                   confusion_rate=self._rate(self.confusion), note=self.note)
        return row


def _unmapped_label(label, reference_labels: set) -> str:
    """A label that matches no reference speaker (so the speech is confusion/false alarm)."""
    candidate = f"\x00hyp:{label}"
    while candidate in reference_labels:
        candidate += "'"
    return candidate


def scored_region(reference: Annotation, uem: Timeline, conventions: Conventions) -> Timeline:
    """The UEM minus collars around every reference segment boundary (pyannote's ``extrude``
    with the total width) and, with ``skip_overlap``, minus every region where two reference
    segments intersect (as given: two overlapping segments of one speaker count too, as in
    md-eval-22.pl)."""
    from pyannote.metrics.utils import UEMSupportMixin
    return UEMSupportMixin().extrude(uem, reference, collar=conventions.pyannote_collar,
                                     skip_overlap=conventions.skip_overlap)


def prepare(reference: Annotation, hypothesis: Annotation, uem: Timeline,
            conventions: Conventions) -> tuple[Annotation, Annotation, Timeline, Timeline]:
    """(reference, hypothesis, scored region, mapping region) as every DER computation here
    sees them: both annotations merged per label, the scored region from
    :func:`scored_region`, the mapping region per ``conventions.mapping_on``."""
    if uem is None:
        raise ConfigError("scoring needs the scored region (uem); use the Recording's uem")
    scored = scored_region(reference, uem, conventions)
    mapping_region = uem.support() if conventions.mapping_on == "uem" else scored
    return reference.support(), hypothesis.support(), scored, mapping_region


def _mapping(ref: Annotation, hyp: Annotation, region: Timeline) -> dict:
    """pyannote's Hungarian mapping of the known hypothesis labels on ``region``."""
    metric = DiarizationErrorRate()
    ref, hyp = metric.uemify(ref, hyp, uem=region)
    known = hyp.subset([label for label in hyp.labels() if not is_unknown_label(label)])
    return metric.optimal_mapping(ref, known)


def optimal_mapping(reference: Annotation, hypothesis: Annotation, uem: Timeline,
                    conventions: Conventions = Conventions()) -> dict:
    """The optimal one-to-one map hypothesis label -> reference label on the scored region.

    Unknown labels (:func:`is_unknown_label`) are left out; only pairs that co-occur
    are mapped (pyannote ``HungarianMapper``).
    """
    ref, hyp, _, region = prepare(reference, hypothesis, uem, conventions)
    return _mapping(ref, hyp, region)


def map_hypothesis(reference: Annotation, hypothesis: Annotation, mapping: dict) -> Annotation:
    """``hypothesis`` relabelled: mapped labels become reference labels, all others labels
    that match no reference speaker."""
    reference_labels = set(reference.labels())
    full = {label: mapping[label] if label in mapping else _unmapped_label(label, reference_labels)
            for label in hypothesis.labels()}
    return hypothesis.rename_labels(mapping=full)


def der(reference: Annotation, hypothesis: Annotation, uem: Timeline,
        conventions: Conventions = Conventions()) -> DERResult:
    """DER components of one session with pyannote.metrics (see the module docstring).

    ``uem`` is required: pyannote's fallback (the union of both extents) silently
    changes the false alarm.
    """
    return der_and_mapping(reference, hypothesis, uem, conventions)[0]


def der_and_mapping(reference: Annotation, hypothesis: Annotation, uem: Timeline,
                    conventions: Conventions = Conventions()) -> tuple[DERResult, dict]:
    """:func:`der` and the optimal mapping (hypothesis label -> reference label) it used."""
    ref, hyp, scored, region = prepare(reference, hypothesis, uem, conventions)
    mapping = _mapping(ref, hyp, region)
    ref, hyp = DiarizationErrorRate().uemify(ref, hyp, uem=scored)
    mapped = map_hypothesis(ref, hyp, mapping)
    # collar and overlap are already removed from `scored` (as pyannote's own DER does)
    scored = scored.support() if scored else scored
    detail = IdentificationErrorRate(collar=0.0, skip_overlap=False).compute_components(
        ref, mapped, uem=scored)
    unknown = hyp.subset([label for label in hyp.labels() if is_unknown_label(label)])
    unknown_speech = sum(segment.duration for segment, _ in unknown.itertracks())
    return DERResult(reference_speech=detail["total"], correct=detail["correct"],
                     miss=detail["missed detection"], false_alarm=detail["false alarm"],
                     confusion=detail["confusion"], unknown_speech=float(unknown_speech),
                     sessions=1), mapping


@dataclass(frozen=True)
class JERResult:
    """JER components (pyannote ``JaccardErrorRate``): summed speaker error and speaker count.

    Adds like :class:`DERResult`; the dataset JER is the mean over all reference speakers.
    """

    speaker_error: float = 0.0
    speaker_count: float = 0.0

    def __add__(self, other: "JERResult") -> "JERResult":
        if not isinstance(other, JERResult):
            return NotImplemented
        return JERResult(self.speaker_error + other.speaker_error,
                         self.speaker_count + other.speaker_count)

    def __radd__(self, other):
        if other == 0:
            return self
        return NotImplemented

    @property
    def jer(self) -> float:
        """Mean per-speaker Jaccard error; NaN when no reference speaker (nothing to average)."""
        return self.speaker_error / self.speaker_count if self.speaker_count > 0 else math.nan


def jer(reference: Annotation, hypothesis: Annotation, uem: Timeline,
        conventions: Conventions = Conventions()) -> JERResult:
    """JER with pyannote.metrics.

    JER never penalises hypothesis speakers left unpaired, so unknown speech under the
    "error" policy (never paired) contributes nothing: it is removed before scoring,
    which keeps the solver from pairing it with a left-over reference speaker.
    """
    ref, hyp, scored, _ = prepare(reference, hypothesis, uem, conventions)
    known = hyp.subset([label for label in hyp.labels() if not is_unknown_label(label)])
    detail = JaccardErrorRate().compute_components(ref, known, uem=scored)
    return JERResult(speaker_error=detail["speaker error"], speaker_count=detail["speaker count"])
