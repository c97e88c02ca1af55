"""A session timeline: what the service said, when, against who really spoke.

Reference speakers are lanes. In each lane: the speaker's reference speech (light band at
the top), the final words of the turns whose true speaker it is, coloured by the label's
mapped reference speaker (same colour as the lane = right), the partial labels shown
while the turn was open (faint strip at the bottom, from each message's arrival to the
next), errors shaded behind (miss, confusion; false alarm in the "no reference speech"
lane) and SpeakerRevisions marked. Everything comes from the score package: turns and
revisions from :mod:`diareval.score.hypothesis`, the optimal mapping and the scored region
from :mod:`diareval.score.der`, true speakers from :func:`diareval.score.turns.turn_table`,
error regions from pyannote.metrics' ``IdentificationErrorAnalysis`` on the mapped
hypothesis (the same matcher the DER uses).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
from matplotlib.patches import Patch
from pyannote.core import Annotation, Segment

from diareval.errors import DiarevalError
from diareval.report import _common as c
from diareval.score.der import Conventions, der_and_mapping, map_hypothesis, prepare
from diareval.score.hypothesis import (hypothesis_from_turns, is_unknown, session_turns,
                                       turn_speech)
from diareval.score.turns import turn_table

#: lane of hypothesis speech under no reference speaker (phantom turns, false alarm)
NO_REFERENCE = "(no reference speech)"
_SPEAKER_COLOURS = [plt.get_cmap("tab10").colors[i] for i in (0, 2, 4, 5, 6, 8, 9)] + \
    list(plt.get_cmap("Dark2").colors)
_UNMAPPED = "0.45"  # a known label the mapping pairs with nobody
_UNKNOWN = "white"  # null / UNKNOWN labels (drawn with a black edge)
ERROR_STYLE = {"missed detection": dict(color="#d62728", alpha=0.22, label="miss"),
               "confusion": dict(color="#ff7f0e", alpha=0.30, label="confusion"),
               "false alarm": dict(color="none", alpha=0.6, label="false alarm", hatch="////")}
MIN_ERROR = 0.01  # s: shorter error regions (rounding at word edges) are not drawn


def error_regions(reference: Annotation, hypothesis: Annotation, uem,
                  conventions: Conventions = Conventions()):
    """(errors, mapping, DERResult): ``errors`` an Annotation whose labels are
    ``(status, reference_label, hypothesis_label)`` (status ``correct``, ``confusion``,
    ``missed detection``, ``false alarm``) over the scored region, computed by
    pyannote.metrics' IdentificationErrorAnalysis on the hypothesis mapped with the same
    optimal mapping :func:`diareval.score.der.der_and_mapping` uses; their durations add
    up to that function's components."""
    from pyannote.metrics.diarization import DiarizationErrorRate
    from pyannote.metrics.errors.identification import IdentificationErrorAnalysis
    result, mapping = der_and_mapping(reference, hypothesis, uem, conventions)
    ref, hyp, scored, _ = prepare(reference, hypothesis, uem, conventions)
    ref, hyp = DiarizationErrorRate().uemify(ref, hyp, uem=scored)
    mapped = map_hypothesis(ref, hyp, mapping)
    scored = scored.support() if scored else scored
    errors = IdentificationErrorAnalysis(collar=0.0, skip_overlap=False).difference(
        ref, mapped, uem=scored)
    return errors, mapping, result


def _in_range(start: float, end: float, xlim) -> bool:
    return xlim is None or (end >= xlim[0] and start <= xlim[1])


def session_timeline_figure(log: Sequence, recording, conventions: Conventions = Conventions(),
                            xlim: tuple[float, float] | None = None, title: str | None = None,
                            show_labels: bool | None = None, context: str = ""):
    """The timeline of one session (see the module docstring).

    ``log``: the session log lines (``diareval.sessionlog.read_session_log``);
    ``recording``: its Recording (reference and UEM); ``conventions``: how to score (the
    run's); ``xlim``: ``(start, end)`` in seconds to zoom; ``show_labels``: write the
    service's own label at each turn (default: when at most 40 turns are in view);
    ``context``: a first title line (e.g. the configuration)."""
    if recording is None or recording.reference is None:
        raise DiarevalError("session_timeline_figure needs the Recording (reference and UEM)")
    reference, uem = recording.reference, recording.uem
    session = session_turns(log, revisions=conventions.revisions)
    hypothesis = hypothesis_from_turns(session.turns, conventions.level, conventions.unknown,
                                       uri=recording.uri)
    errors, mapping, result = error_regions(reference, hypothesis, uem, conventions)
    turns = turn_table(session.turns, reference, uem, mapping, conventions)
    speakers = sorted(reference.labels())
    lanes = list(speakers)
    phantom = bool(turns["phantom"].any()) if len(turns) else False
    has_fa = any(label[0] == "false alarm" and segment.duration >= MIN_ERROR
                 for segment, _, label in errors.itertracks(yield_label=True))
    if phantom or has_fa:
        lanes.append(NO_REFERENCE)
    lane_of = {name: i for i, name in enumerate(lanes)}
    colour = {s: _SPEAKER_COLOURS[i % len(_SPEAKER_COLOURS)] for i, s in enumerate(speakers)}

    def label_colour(label):
        if is_unknown(label) or (isinstance(label, str) and label.startswith("UNKNOWN#")):
            return _UNKNOWN
        return colour.get(mapping.get(label), _UNMAPPED)

    end = max([s.end for s in uem.support()] + [0.0]) if uem else \
        reference.get_timeline().extent().end
    xlim = (max(0.0, xlim[0]), min(end, xlim[1])) if xlim is not None else (0.0, end)
    height = 1.5 + 0.62 * len(lanes)
    figure, axis = plt.subplots(figsize=(c.WIDTH, height))

    # errors behind everything, in the lane of the reference speaker they concern
    for segment, _, (status, ref_label, _) in errors.itertracks(yield_label=True):
        if status not in ERROR_STYLE or segment.duration < MIN_ERROR or \
                not _in_range(segment.start, segment.end, xlim):
            continue
        lane = lane_of[ref_label] if ref_label in lane_of else lane_of.get(NO_REFERENCE)
        style = ERROR_STYLE[status]
        axis.broken_barh([(segment.start, segment.duration)], (lane + 0.02, 0.96),
                         facecolors=style["color"], alpha=style["alpha"], zorder=1,
                         linewidth=0, hatch=style.get("hatch"), edgecolor="0.35")
    # reference speech
    for segment, _, label in reference.crop(Segment(*xlim)).itertracks(yield_label=True):
        axis.broken_barh([(segment.start, segment.duration)], (lane_of[label] + 0.08, 0.24),
                         facecolors=colour[label], alpha=0.45, zorder=2, linewidth=0)
    # final words, in the lane of the turn's true speaker
    lane_of_turn = {}
    for row in turns.itertuples():
        speaker = row.true_speaker if isinstance(row.true_speaker, str) else NO_REFERENCE
        lane_of_turn[row.turn_order] = lane_of.get(speaker, lane_of.get(NO_REFERENCE, 0))
    for start, stop, label, order in turn_speech(session.turns, "word", "label"):
        if order not in lane_of_turn or not _in_range(start, stop, xlim):
            continue
        fill = label_colour(label)
        axis.broken_barh([(start, stop - start)], (lane_of_turn[order] + 0.38, 0.34),
                         facecolors=fill, edgecolors="black" if fill == _UNKNOWN else "none",
                         linewidth=0.4, zorder=3)
    by_order = {turn.turn_order: turn for turn in session.turns}
    in_view = [o for o in lane_of_turn if by_order[o].words and
               _in_range(by_order[o].start, by_order[o].end, xlim)]
    show_labels = len(in_view) <= 40 if show_labels is None else show_labels
    revised_any = partial_any = False
    for order in in_view:
        turn, lane = by_order[order], lane_of_turn[order]
        # partial labels: shown from each message's arrival until the next message
        times = [t for t, _ in turn.partial_labels] + [turn.t_audio]
        for (t, label), t_next in zip(turn.partial_labels, times[1:]):
            if t_next > t:
                axis.broken_barh([(t, t_next - t)], (lane + 0.78, 0.14),
                                 facecolors=label_colour(label), alpha=0.4, zorder=3,
                                 linewidth=0)
                partial_any = True
        if turn.revised:
            revised_any = True
            axis.plot([turn.end], [lane + 0.36], marker="v", color="black", markersize=5,
                      zorder=5)
        if show_labels:
            shown = "?" if is_unknown(turn.label) else str(turn.label)
            if turn.revised:
                before = "?" if is_unknown(turn.original_label) else str(turn.original_label)
                shown = f"{before}>{shown}"
            axis.text(turn.start, lane + 0.55, shown, fontsize=6, va="center", ha="left",
                      zorder=6, color="black", clip_on=True)

    axis.set_yticks([i + 0.5 for i in range(len(lanes))], lanes, fontsize=8)
    axis.set_ylim(len(lanes), 0)
    axis.set_xlim(*xlim)
    axis.set_xlabel("audio time (s)")
    axis.grid(axis="x", alpha=0.3)
    for i in range(1, len(lanes)):
        axis.axhline(i, color="0.75", linewidth=0.6)
    row = result.as_row()
    axis.set_title(title or (f"{context}\n" if context else "") + f"{recording.uri}: DER "
                   f"{100 * row['der']:.1f}% (miss {100 * row['miss_rate']:.1f}%, false alarm "
                   f"{100 * row['false_alarm_rate']:.1f}%, confusion "
                   f"{100 * row['confusion_rate']:.1f}%; whole session)", fontsize=9)
    handles = [Patch(facecolor=colour[s], label=s) for s in speakers]  # reference and mapped
    handles += [Patch(facecolor=_UNMAPPED, label="unmapped label"),
                Patch(facecolor=_UNKNOWN, edgecolor="black", label="unknown label")]
    handles += [Patch(facecolor=s["color"], alpha=s["alpha"] + 0.2, label=s["label"],
                      hatch=s.get("hatch"), edgecolor="0.35" if s.get("hatch") else "none")
                for s in ERROR_STYLE.values()]
    if partial_any:
        handles.append(Patch(facecolor="0.5", alpha=0.4, label="partial labels (faint)"))
    if revised_any:
        handles.append(plt.Line2D([], [], marker="v", color="black", linestyle="none",
                                  label="SpeakerRevision (old>new)"))
    extra = ("lane = true speaker: reference speech (top), final words in the colour of "
             "the speaker their label maps to (middle), partial labels while the turn was "
             "open (bottom)")
    return c.finish(figure, turns, extra=extra,
                    legend=(handles, [h.get_label() for h in handles], 5))


def _conventions(scores_dir: Path, scores) -> Conventions:
    """The run's scoring conventions: from the RunScores' sessions columns, else
    ``scores/conventions.json``, else the defaults."""
    columns = {}
    sessions = getattr(scores, "sessions", None)
    if sessions is not None and len(sessions):
        columns = {k: sessions[k].iloc[0] for k in sessions.columns if k.startswith("conv_")}
    elif (scores_dir / "conventions.json").exists():
        columns = json.loads((scores_dir / "conventions.json").read_text())
    fields = Conventions.__dataclass_fields__
    values = {k[5:]: v for k, v in columns.items() if k.startswith("conv_") and k[5:] in fields}
    for key in ("skip_overlap", "revisions"):
        if key in values:
            values[key] = bool(values[key])
    if "collar" in values:
        values["collar"] = float(values["collar"])
    return Conventions(**values)


def run_recording(run_dir: str | Path, uri: str):
    """The Recording ``uri`` of the run's dataset (run.json's dataset and options, loaded
    as ``score_run`` loads them)."""
    from diareval.rundir import RunDir, RunManifest
    from diareval.score.run import _load_recordings
    rundir = RunDir(run_dir)
    run = rundir.read_manifest() or RunManifest()
    catalog = _load_recordings(run, None, None, rundir)
    if uri not in catalog:
        raise DiarevalError(f"recording {uri!r} is not in the run's dataset ({run.dataset})")
    return catalog[uri]


def timeline_from_run(run_dir: str | Path, uri: str, config: str | None = None, scores=None,
                      recording=None, xlim: tuple[float, float] | None = None, **options):
    """:func:`session_timeline_figure` for ``runs/<run>/sessions/<config>/<uri>.jsonl``
    (``config`` default: the first configuration that has the session), scored under the
    run's conventions; ``recording`` default: loaded from the run's dataset."""
    from diareval.rundir import RunDir
    from diareval.sessionlog import read_session_log
    rundir = RunDir(run_dir)
    if config is None:
        found = sorted(s.config for s in rundir.sessions() if s.uri == uri and s.log.exists())
        if not found:
            raise DiarevalError(f"{rundir.sessions_dir}: no session log of {uri!r} in any "
                                "configuration")
        config = found[0]
    path = rundir.log_path(config, uri)
    if not path.exists():
        raise DiarevalError(f"{path}: no such session log")
    if recording is None:
        recording = run_recording(run_dir, uri)
    options.setdefault("context", config)
    return session_timeline_figure(read_session_log(path), recording,
                                   _conventions(rundir.scores_dir, scores), xlim=xlim,
                                   **options)
