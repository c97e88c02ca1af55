"""Shared fixtures. Data from ../shared is optional: tests that need it skip with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def shared_data(name: str) -> Path:
    """Path of ``../shared/data/<name>``, or skip the test when it is absent."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared data folder sits beside the repository in CI)")
    return path


@pytest.fixture
def ami_excerpts() -> Path:
    """The eleven 30 s AMI excerpts with RTTM and UEM (../shared/data/ami-excerpts)."""
    return shared_data("ami-excerpts")
