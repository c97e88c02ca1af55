"""The limit on new sessions per minute (AssemblyAI caps session starts: Free 5, Paid 100+)."""

from __future__ import annotations

import asyncio
import collections
import time


class StartLimiter:
    """At most ``per_minute`` session starts in any 60 s window (None = no limit)."""

    def __init__(self, per_minute: float | None, window: float = 60.0):
        self.per_minute, self.window = per_minute, window
        self._starts: collections.deque[float] = collections.deque()
        self._lock = asyncio.Lock()
        self._hold_until = 0.0

    def hold(self, seconds: float) -> None:
        """No new starts for ``seconds`` (the service said "too many sessions": every other
        session waiting to start would be rejected too)."""
        self._hold_until = max(self._hold_until, time.monotonic() + seconds)

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait for a free start; False if ``stop`` was set meanwhile."""
        async with self._lock:
            while True:
                if stop.is_set():
                    return False
                now = time.monotonic()
                if now < self._hold_until:
                    await sleep_unless(stop, self._hold_until - now)
                    continue
                if not self.per_minute:
                    return True
                while self._starts and self._starts[0] <= now - self.window:
                    self._starts.popleft()
                if len(self._starts) < self.per_minute:
                    self._starts.append(now)
                    return True
                wait = self._starts[0] + self.window - now
                await sleep_unless(stop, min(wait, 1.0))


async def sleep_unless(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``stop`` is set first; True if stopped."""
    if seconds <= 0:
        return stop.is_set()
    try:
        await asyncio.wait_for(stop.wait(), seconds)
        return True
    except asyncio.TimeoutError:
        return False
