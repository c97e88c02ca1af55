"""The progress bar (tqdm) of a run: audio hours sent, sessions done, open, failed, skipped."""

from __future__ import annotations

import asyncio
import collections
import sys
from dataclasses import dataclass, field


@dataclass
class Counters:
    """What the bar shows, updated by the sessions of one run."""

    audio_done: float = 0.0     # audio seconds sent by finished attempts
    audio_live: dict = field(default_factory=dict)  # (config, uri) -> s sent by an open attempt
    finished: collections.Counter = field(default_factory=collections.Counter)  # by status
    running: int = 0            # attempts open now

    def audio_sent(self) -> float:
        """Audio seconds sent so far, open attempts included."""
        return self.audio_done + sum(self.audio_live.values())


async def show_progress(counters: Counters, total_sessions: int, total_audio: float,
                        skipped: int) -> None:
    """Draw the bar on stderr until cancelled (every 0.5 s on a terminal, 15 s in a log)."""
    from tqdm.auto import tqdm
    hours = total_audio / 3600
    interval = 0.5 if sys.stderr.isatty() else 15.0  # a log file gets a line per 15 s
    bar = tqdm(total=round(hours, 6), unit="h", file=sys.stderr, dynamic_ncols=True,
               desc="audio", bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.4f}/{total:.4f} h"
                                        " [{elapsed}<{remaining}{postfix}]")
    try:
        while True:
            bar.n = min(round(counters.audio_sent() / 3600, 6), bar.total)
            done = sum(counters.finished.values())
            bar.set_postfix_str(
                f"sessions {done}/{total_sessions} done ({counters.running} open"
                + (f", {counters.finished['failed']} failed" if counters.finished["failed"]
                   else "")
                + (f", {skipped} skipped" if skipped else "") + ")", refresh=False)
            bar.refresh()
            await asyncio.sleep(interval)
    finally:
        bar.n = min(round(counters.audio_sent() / 3600, 6), bar.total)
        bar.refresh()
        bar.close()
