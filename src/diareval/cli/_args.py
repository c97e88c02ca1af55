"""Argument helpers shared by the subcommands (not a command: the name starts with "_")."""

from __future__ import annotations

import argparse
import json
from typing import Callable

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


def at_least(cast: Callable[[str], float], minimum: float) -> Callable[[str], float]:
    """An argparse ``type``: ``cast(text)`` (int or float) that must be >= ``minimum``."""
    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            kind = "an integer" if cast is int else "a number"
            raise argparse.ArgumentTypeError(f"not {kind}: {text!r}") from None
        if not value >= minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum:g}, got {text}")
        return value
    parse.__name__ = cast.__name__  # argparse names the type in its messages
    return parse
