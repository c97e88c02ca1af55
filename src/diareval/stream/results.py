"""What a run did: a :class:`RunResult` with one :class:`SessionResult` per session."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from diareval.stream.config import StreamConfig

@dataclass(frozen=True)
class SessionResult:
    """One (configuration, recording) session after the run."""

    config: str
    uri: str
    status: str             # complete | failed | interrupted | pending (never started)
    attempts: int           # attempts so far, over all invocations
    audio_seconds: float
    log_path: Path
    status_path: Path
    error: str | None = None
    skipped: bool = False   # complete before this invocation (resume)


@dataclass
class RunResult:
    """What a run did. ``sessions`` has one entry per (configuration, recording)."""

    run_dir: Path
    backend: str
    configs: list[StreamConfig]
    sessions: list[SessionResult] = field(default_factory=list)
    wall_seconds: float = 0.0
    interrupted: bool = False
    error: str | None = None

    def count(self, status: str) -> int:
        """Sessions with this status (complete, failed, interrupted, pending)."""
        return sum(1 for s in self.sessions if s.status == status)

    @property
    def streamed(self) -> int:
        """Sessions streamed in this invocation (not skipped as already complete)."""
        return sum(1 for s in self.sessions if not s.skipped and s.status != "pending")

    @property
    def skipped(self) -> int:
        """Sessions complete before this invocation (resume), not streamed again."""
        return sum(1 for s in self.sessions if s.skipped)

    @property
    def ok(self) -> bool:
        """Every session complete."""
        return all(s.status == "complete" for s in self.sessions)

    def summary(self) -> str:
        """Counts by status, wall time, run directory and the first failures' errors."""
        parts = [f"{len(self.sessions)} sessions: {self.count('complete')} complete"]
        if self.skipped:
            parts.append(f"{self.skipped} of them already complete before (skipped)")
        for status in ("failed", "interrupted", "pending"):
            if self.count(status):
                parts.append(f"{self.count(status)} {status}")
        text = ", ".join(parts) + f"; {self.wall_seconds:.1f} s; run directory {self.run_dir}"
        failed = [s for s in self.sessions if s.status == "failed"]
        for s in failed[:10]:
            text += f"\n  failed: {s.config}/{s.uri}: {s.error}"
        if len(failed) > 10:
            text += f"\n  ... and {len(failed) - 10} more failed (see the status files)"
        return text
