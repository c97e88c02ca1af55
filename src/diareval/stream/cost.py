"""The cost estimate shown (and confirmed) before streaming to AssemblyAI."""

from __future__ import annotations

import sys
from typing import Any, Sequence

from diareval.errors import ConfigError
from diareval.stream.config import StreamConfig


def estimate_cost(plan, todo: Sequence[tuple[StreamConfig, Any]]) -> tuple[float, str]:
    """(USD, text) for streaming ``todo`` ((configuration, recording) pairs of the
    :class:`~diareval.stream.plan.RunPlan` ``plan``) to AssemblyAI: model price x audio hours."""
    lines, total, total_hours = [], 0.0, 0.0
    for config in plan.configs:
        hours = sum(plan.durations[r.uri] for c, r in todo if c is config) / 3600
        sessions = sum(1 for c, _ in todo if c is config)
        if not sessions:
            continue
        cost = hours * config.price_per_hour
        total += cost
        total_hours += hours
        assumed = "" if config.price_known else " (no known price for this model: assumed)"
        lines.append(f"  {config.name}: {sessions} sessions, {hours:.3f} h x "
                     f"${config.price_per_hour:.2f}/h{assumed} = ${cost:.2f}")
    text = (f"Streaming to AssemblyAI ({plan.host}): {len(todo)} sessions, "
            f"{total_hours:.3f} h of audio\n" + "\n".join(lines) +
            f"\nEstimated cost: ${total:.2f} (billed by connection time, a little more than the "
            "audio; an unclosed session is billed 3 h)")
    return total, text


def ask(question: str) -> bool:
    """Ask on the terminal (y/N); a ConfigError when there is no terminal to ask on."""
    if not sys.stdin or not sys.stdin.isatty():
        raise ConfigError("streaming to AssemblyAI costs money and there is no terminal to "
                          "confirm it: pass --yes (yes=True)")
    return input(question + " [y/N] ").strip().lower() in ("y", "yes")
