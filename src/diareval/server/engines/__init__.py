"""Engines behind the local server. ``make_engine_factory(name, **options)`` builds one by name.

Engines are imported lazily: the baseline pulls in torch and models, the oracle does not.
"""

from __future__ import annotations

import importlib

from diareval.errors import ConfigError
from diareval.server.engines.base import Engine, EngineFactory, SessionParams

# name -> "module:function"; the function takes **options and returns an EngineFactory.
ENGINES = {
    "oracle": "diareval.server.engines.oracle:make_oracle_factory",
    "baseline": "diareval.server.engines.baseline:make_baseline_factory",
}


def make_engine_factory(name: str, **options) -> EngineFactory:
    """The factory of engine ``name`` ("oracle" needs ``recordings=[...]``), configured by ``options``."""
    if name not in ENGINES:
        raise ConfigError(f"unknown engine {name!r}; choose one of: {', '.join(sorted(ENGINES))}")
    module_name, function = ENGINES[name].split(":")
    module = importlib.import_module(module_name)
    return getattr(module, function)(**options)


__all__ = ["ENGINES", "Engine", "EngineFactory", "SessionParams", "make_engine_factory"]
