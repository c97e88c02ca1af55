"""What one session asks the service for: the model, ``max_speakers`` and any other v3 parameter.

The query string and headers are built by the ``assemblyai`` SDK's own helpers
(``_build_uri``, ``_build_headers``) from its ``StreamingParameters`` model, so a
parameter the SDK learns is usable here without code: pass it in ``params``.
The API key only ever goes into the ``Authorization`` header, never the URL, so
the URL can be written to the status files as is.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from diareval.constants import PRICES_PER_HOUR, SPEECH_MODEL_TABLE
from diareval.datasets.audio import SAMPLE_RATE
from diareval.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_HOST = "streaming.assemblyai.com"
HOSTS = ("streaming.assemblyai.com", "streaming.us.assemblyai.com", "streaming.eu.assemblyai.com")

# The models diareval knows and their prices: one table, with its source and date
# (``diareval.constants.SPEECH_MODEL_TABLE``; USD per hour, billed by connection time).
MODELS: tuple[str, ...] = tuple(SPEECH_MODEL_TABLE)
DEFAULT_MODEL = "universal-streaming-english"
# The price assumed in cost estimates for a model without a known price (the highest known one).
FALLBACK_PRICE_PER_HOUR = max(p for p in PRICES_PER_HOUR.values() if p is not None)


def check_model(model: str, known_only: bool = False) -> str:
    """``model``; a name diareval does not know is passed through with a warning (the real
    service decides: the docs add models faster than the SDK does), or, with ``known_only``
    (the local server, whose engines must know a model's message style), a ConfigError
    naming the known ones. ConfigError for a non-name."""
    if not isinstance(model, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", model):
        raise ConfigError(f"speech model {model!r} is not a model name; known: "
                          f"{', '.join(MODELS)}")
    if model not in SPEECH_MODEL_TABLE and known_only:
        raise ConfigError(f"unknown model {model!r}; choose one of: {', '.join(MODELS)} "
                          "(the local server knows these; AssemblyAI gets any name)")
    if model not in SPEECH_MODEL_TABLE:
        message = (f"speech model {model!r} is not one diareval knows ({', '.join(MODELS)}); "
                   "passing it to the service as is")
        warnings.warn(message, stacklevel=2)
        logger.warning(message)
    return model


def parse_max_speakers(text: str | int | None | Iterable) -> list[int | None]:
    """``"none,2,4"`` (or ``[None, 2, 4]``) -> ``[None, 2, 4]``; ``none`` = parameter not sent."""
    if text is None:
        return [None]
    if isinstance(text, int):
        items: list[Any] = [text]
    elif isinstance(text, str):
        items = [item.strip() for item in text.split(",")]
    else:
        items = list(text)
    values: list[int | None] = []
    for item in items:
        if item is None or (isinstance(item, str) and item.lower() in ("none", "")):
            value = None
        else:
            try:
                value = int(item)
            except (TypeError, ValueError):
                raise ConfigError(f"max_speakers {item!r} is not 'none' or an integer 1..10") \
                    from None
            if not 1 <= value <= 10:
                raise ConfigError(f"max_speakers {value} is out of range 1..10 (or 'none')")
        if value not in values:
            values.append(value)
    return values


DEFAULT_NOISE = "pink"  # the noise of an SNR level when none is named


def check_snr(value: Any) -> float:
    """``value`` as a finite number of dB, else a ConfigError naming it."""
    import math
    try:
        level = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"SNR {value!r} is not a number of dB") from None
    if not math.isfinite(level):
        raise ConfigError(f"SNR {value!r} must be a finite number of dB")
    return level + 0.0  # -0.0 -> 0.0: one name per level


def parse_snr(text: str | float | None | Iterable) -> list[float | None]:
    """``"30,0"`` (or ``[30, 0]``, or ``10``) -> ``[30.0, 0.0]``; None -> ``[None]`` (clean)."""
    if text is None:
        return [None]
    if isinstance(text, (int, float)):
        items: list[Any] = [text]
    elif isinstance(text, str):
        items = [item.strip() for item in text.split(",") if item.strip()]
    else:
        items = list(text)
    if not items:
        raise ConfigError("snr needs at least one level (dB)")
    return list(dict.fromkeys(check_snr(item) for item in items))


def _streaming_parameters_class():
    from assemblyai.streaming.v3 import StreamingParameters
    return StreamingParameters


def _sdk_speech_models() -> set[str] | None:
    """The values of the installed SDK's ``SpeechModel`` enum (None without the SDK)."""
    try:
        from assemblyai.streaming.v3.models import SpeechModel
    except ImportError:
        return None
    return {m.value for m in SpeechModel}


def parameter_names() -> list[str]:
    """Every query parameter the installed SDK's ``StreamingParameters`` knows."""
    cls = _streaming_parameters_class()
    fields = getattr(cls, "model_fields", None) or getattr(cls, "__fields__", {})
    return sorted(fields)


def _slug(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    text = text.lower().replace("_", "-")
    return re.sub(r"[^a-z0-9.-]+", "-", text).strip("-") or "x"


@dataclass(frozen=True)
class StreamConfig:
    """One configuration: a model, a ``max_speakers`` (None = not sent) and extra v3 parameters.

    ``speaker_labels`` is always on (diarization is what diareval measures).
    ``name`` is filesystem-safe and readable, e.g.
    ``universal-streaming-english__max-speakers-none``. ``snr`` (dB; None = the clean
    recordings): the session streams the recording mixed with ``noise`` (white, pink,
    babble or a folder; default pink) at that SNR (``diareval.datasets.add_noise``); the
    name ends in ``__snr-<level>``. Neither is a v3 parameter: the URL is unchanged.
    """

    model: str
    max_speakers: int | None = None
    params: tuple[tuple[str, Any], ...] = field(default=())
    snr: float | None = None
    noise: str | None = None

    def __post_init__(self):
        check_model(self.model)
        if self.snr is not None:
            snr = check_snr(self.snr)
            object.__setattr__(self, "snr", snr)
            object.__setattr__(self, "noise", str(self.noise or DEFAULT_NOISE))
        elif self.noise is not None:
            raise ConfigError(f"noise {self.noise!r} without an SNR level")
        if self.max_speakers is not None and not 1 <= int(self.max_speakers) <= 10:
            raise ConfigError(f"max_speakers {self.max_speakers} is out of range 1..10")
        known = set(parameter_names())
        for key, _ in self.params:
            if key in ("speech_model", "max_speakers", "sample_rate", "encoding"):
                raise ConfigError(f"parameter {key!r} is set by diareval itself "
                                  "(use --model / --max-speakers)")
            if key not in known:
                # StreamingParameters silently drops unknown names: refuse them instead.
                raise ConfigError(f"unknown streaming parameter {key!r}; the SDK knows: "
                                  f"{', '.join(sorted(known))}")

    @property
    def name(self) -> str:
        """Directory name of this configuration's sessions."""
        speakers = "none" if self.max_speakers is None else str(self.max_speakers)
        parts = [self.model, f"max-speakers-{speakers}"]
        parts += [f"{_slug(key)}-{_slug(value)}" for key, value in self.params
                  if not (key == "speaker_labels" and value is True)]
        if self.snr is not None:
            parts.append(f"snr-{self.snr:g}")  # report.split_snr reads it back
        return "__".join(parts)

    @property
    def price_known(self) -> bool:
        """True when :data:`PRICES_PER_HOUR` has a price for this model."""
        return PRICES_PER_HOUR.get(self.model) is not None

    @property
    def price_per_hour(self) -> float:
        """USD per hour of streaming with this model (:data:`PRICES_PER_HOUR`); for a model
        without a known price, :data:`FALLBACK_PRICE_PER_HOUR` (an upper guess)."""
        price = PRICES_PER_HOUR.get(self.model)
        return FALLBACK_PRICE_PER_HOUR if price is None else price

    def streaming_parameters(self, sample_rate: int = SAMPLE_RATE):
        """The SDK's ``StreamingParameters`` of this configuration."""
        cls = _streaming_parameters_class()
        kwargs = {"speaker_labels": True, **dict(self.params)}
        kwargs.update(sample_rate=sample_rate, encoding="pcm_s16le", speech_model=self.model)
        if self.max_speakers is not None:
            kwargs["max_speakers"] = int(self.max_speakers)
        sdk_models = _sdk_speech_models()
        unknown_to_sdk = sdk_models is not None and self.model not in sdk_models
        if unknown_to_sdk:  # the SDK's enum would refuse it: url() adds it as is
            kwargs.pop("speech_model")
        try:
            parameters = cls(**kwargs)
        except Exception as exc:  # pydantic ValidationError: a bad value for a known parameter
            raise ConfigError(f"configuration {self.name}: invalid streaming parameters "
                              f"({exc})") from None
        return parameters

    def url(self, host: str = DEFAULT_HOST, sample_rate: int = SAMPLE_RATE) -> str:
        """The websocket URL (no key in it: the key goes in a header). A model the SDK's
        enum does not list is added to the query as is (the SDK would refuse it)."""
        url = build_url(host, self.streaming_parameters(sample_rate))
        if "speech_model=" not in url.split("?", 1)[-1]:
            from urllib.parse import urlencode
            url += ("&" if "?" in url else "?") + urlencode({"speech_model": self.model})
        return url

    def to_json(self) -> dict:
        """Name, model, max_speakers and params (and snr, noise if set), as run.json records
        them."""
        entry = {"name": self.name, "model": self.model, "max_speakers": self.max_speakers,
                 "params": dict(self.params)}
        if self.snr is not None:
            entry.update(snr=self.snr, noise=self.noise)
        return entry


class ParamGrid(tuple):
    """Several values of one v3 parameter (``params={"x": ParamGrid([a, b])}``):
    :func:`make_configs` makes one configuration per value (a plain list stays one value,
    e.g. ``keyterms_prompt``)."""


def make_configs(models: Iterable[str] | str, max_speakers: Any = None,
                 params: Mapping[str, Any] | None = None, snr: Any = None,
                 noise: str | None = None, known_only: bool = False) -> list[StreamConfig]:
    """The cross product models x max_speakers x the values of every :class:`ParamGrid`
    parameter x the ``snr`` levels (:func:`parse_snr`; None = clean audio only), in the
    order given, each with the other ``params`` (and ``noise``, default pink);
    ``known_only``: an unknown model is an error (:func:`check_model`)."""
    import itertools
    if isinstance(models, str):
        models = [models]
    models = list(models) or [DEFAULT_MODEL]
    for model in models:
        check_model(model, known_only)
    names = sorted(params or {})
    choices = [list(dict.fromkeys(params[n])) if isinstance(params[n], ParamGrid)
               else [params[n]] for n in names]
    levels = parse_snr(snr)
    if noise is not None and levels == [None]:
        raise ConfigError(f"noise {noise!r} without SNR levels (pass snr=, CLI --snr)")
    configs = []
    for model in dict.fromkeys(models):
        for speakers in parse_max_speakers(max_speakers):
            for values in itertools.product(*choices):
                for level in levels:
                    configs.append(StreamConfig(model, speakers, tuple(zip(names, values)),
                                                snr=level, noise=noise if level is not None
                                                else None))
    return configs


def build_url(host: str, parameters) -> str:
    """``wss://<host>/v3/ws?<query>`` (``ws://``/``wss://`` hosts kept), by the SDK's own logic."""
    host = host.rstrip("/")
    try:
        from assemblyai.streaming.v3._base import _build_uri
    except ImportError:  # a future SDK moved its private helper: the same logic, by hand
        from urllib.parse import urlencode
        values = parameters.model_dump(exclude_none=True, mode="json")
        values = {k: json.dumps(v) if isinstance(v, (list, dict)) else v
                  for k, v in values.items()}
        prefix = host if host.startswith(("ws://", "wss://")) else f"wss://{host}"
        return f"{prefix}/v3/ws?{urlencode(values)}"
    return _build_uri(host, parameters)


def build_headers(api_key: str) -> dict[str, str]:
    """The handshake headers the SDK sends (``Authorization`` = the raw key, no ``Bearer``)."""
    try:
        from assemblyai.streaming.v3 import StreamingClientOptions
        from assemblyai.streaming.v3._base import _build_headers
        headers = _build_headers(StreamingClientOptions(api_key=api_key))
    except ImportError:
        import assemblyai
        headers = {"Authorization": api_key,
                   "User-Agent": f"AssemblyAI/1.0 (sdk=Python/{assemblyai.__version__})",
                   "AssemblyAI-Version": "2025-05-12"}
    headers = {key: value for key, value in headers.items() if value is not None}
    headers["User-Agent"] = f"{headers.get('User-Agent', '')} diareval".strip()
    return headers
