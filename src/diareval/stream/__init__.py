"""The simulator: stream recordings through a v3 streaming service in real time, log everything.

    from diareval import stream
    result = stream.run("../shared/data/ami-excerpts", models=["universal-streaming-english"],
                        max_speakers=[None, 2], backend="local")

``run`` (and its asyncio twin ``run_async``) is the whole job; ``python -m diareval run``
mirrors it. ``stream_attempt`` is one websocket session (the pacer and the logger).
Modules: ``plan`` (validate, RunPlan), ``retry`` (one session's attempts), ``limiter``,
``cost``, ``progress``, ``results``, ``runner`` (orchestration), ``session``, ``audio``,
``config``.
"""

from diareval.stream.audio import ArrayAudio, AudioSource, FileAudio, SilenceAudio, chunks
from diareval.stream.config import (DEFAULT_HOST, DEFAULT_MODEL, HOSTS, MODELS, PRICES_PER_HOUR,
                                    StreamConfig, build_headers, build_url, make_configs,
                                    parse_max_speakers)
from diareval.stream.cost import estimate_cost
from diareval.stream.limiter import StartLimiter
from diareval.stream.plan import API_KEY_ENV, BACKENDS, RunPlan, plan_run
from diareval.stream.results import RunResult, SessionResult
from diareval.stream.runner import RunHandle, run, run_async
from diareval.stream.session import (AttemptResult, AuthenticationError, Outcome, PacingError,
                                     stream_attempt)

__all__ = [
    "API_KEY_ENV", "ArrayAudio", "AttemptResult", "AudioSource", "AuthenticationError",
    "BACKENDS", "DEFAULT_HOST", "DEFAULT_MODEL", "FileAudio", "HOSTS", "MODELS", "Outcome",
    "PRICES_PER_HOUR", "PacingError", "RunHandle", "RunPlan", "RunResult", "SessionResult",
    "SilenceAudio", "StartLimiter", "StreamConfig", "build_headers", "build_url", "chunks",
    "estimate_cost", "make_configs", "parse_max_speakers", "plan_run", "run", "run_async",
    "stream_attempt",
]
