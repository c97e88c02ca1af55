"""Argument helpers shared by the subcommands (not a command: the name starts with "_")."""

from __future__ import annotations

import json

from diareval.errors import ConfigError


def json_object(text: str | None, flag: str) -> dict:
    """``text`` parsed as a JSON object (``{}`` for None/empty); a clear error naming ``flag``."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{flag} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{flag} must be a JSON object, got {text!r}")
    return value
