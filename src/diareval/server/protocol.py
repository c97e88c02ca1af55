"""The v3 wire protocol as the local server speaks it: query parameters, frames, close codes.

Pure functions, no I/O: the server (``diareval.server.app``) calls them. What the messages
say and how (Turn, SpeakerRevision, Begin, ..., model families) is ``diareval.server.messages``.

How invalid input is rejected (sources, 2026):

* **Bad or missing API key.** AssemblyAI's "Common session errors and closures" page lists
  close code 1008 "Unauthorized Connection: Missing Authorization header" for a missing or
  invalid key, and says that a session ending in an error gets an ``Error`` text frame
  (``error_code`` = the close code) immediately before the close. AssemblyAI/assemblyai-node-sdk
  issue #97 shows the v3 endpoint completing the handshake and then closing with
  ``1008 "Unauthorized connection: ..."``. Default here: accept the upgrade, send
  ``Error{error_code: 1008}``, close 1008. ``auth_rejection="http"`` rejects the handshake
  with HTTP 401 instead (the SDK reports "WebSocket handshake rejected (HTTP 401)").
* **Invalid query parameters.** AssemblyAI's streaming error-handling page says credentials
  and parameters are checked *after* the upgrade and both fail as an ``Error`` frame followed
  by a close; the STT close-code table gives 3006 for invalid input. Default here: accept,
  ``Error{error_code: 3006, error: "Invalid query parameter: ..."}``, close 3006.
  ``param_rejection="http"`` answers HTTP 400 instead.

What the local server does where the sources are thin or disagree (issue 13; PROTOCOL.md
"Update 2026-12" collects the sources):

* **speaker_labels_revision_interval_ms.** The SDK 1.8.2 model declares it
  ``Optional[int] = Field(None, ge=0)`` and its ``SpeakerRevisionEvent`` docstring says
  revisions come "once per offline-recluster resolve"; the SpeakerRevision announcement
  describes one message at the end of the stream (the SDK itself refuses a negative value
  before connecting, and sends the field as a query parameter like the others). Neither
  says what 0 means nor gives a minimum; third-party code treats 0 as off and refuses values under 120000. The local
  server validates as the SDK does (an integer >= 0, else 3006), treats 0 (and absence) as
  "only the end-of-stream revision", accepts any positive value (no 120000 floor, so tests
  can use seconds) and, without ``speaker_labels``, ignores it. Time is audio time: a
  revision is due each time the audio received passes a multiple of the interval.
* **max_speakers without speaker_labels.** The parameter table says "only with
  speaker_labels"; no source says the service refuses it. Validated (1..10) and ignored.
* **Encodings.** The SDK's ``Encoding`` enum lists ``pcm_s16le``, ``pcm_mulaw``, ``opus``,
  ``ogg_opus`` and ``aac`` (the last three self-describing, ``sample_rate`` optional). The
  local server decodes only the two PCM ones: the others are an Error 3006 saying they are
  accepted by AssemblyAI but not supported by the local server; any other value is 3006
  naming the SDK's list.
* **speech_model.** Every model of the SDK's ``SpeechModel`` enum plus ``universal-3-5-pro``
  and ``whisper-rt`` (the docs' lists), each with its family in
  :data:`diareval.server.messages.MODEL_FAMILIES`; others are 3006 (the local engines must
  know a model's message style; against the real service the client passes unknown names
  through, ``diareval.stream.config``).
* **Begin ``configuration``.** The SDK's ``BeginEvent`` has an optional ``configuration``
  (``model``, ``mode``, ``api_version``; no docs page describes it). The local server sends
  ``{"model": speech_model}``, plus ``mode`` when the client sent one; ``api_version`` is
  left out (no source gives its values).
* **Session expiry.** The "Universal-Streaming messages" page says the server sends
  Termination when the session ends, and the close-code table lists 3008 "session
  expired". The local server sends Termination, then ``Error{3008}``, then closes 3008.
* **language_detection.** The SDK's ``TurnEvent`` has optional ``language_code`` and
  ``language_confidence`` and PROTOCOL.md lists them as optional Turn keys; which messages
  carry them is not settled. With ``language_detection`` on, the local engines send them
  on end-of-turn Turns only, as ``"en"`` and 1.0 (they speak English only).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import parse_qsl

import numpy as np

from diareval.errors import DiarevalError
from diareval.server.engines.base import SessionParams
# The messages themselves are said by the vocabulary (one place for every engine and the
# server); re-exported here for the server.
from diareval.server.messages import (OLD_MIN_TURN_SILENCE, SPEECH_MODELS,  # noqa: F401
                                      begin_message, error_message, session_configuration,
                                      termination_message)

PATH = "/v3/ws"

# Close codes (PROTOCOL.md).
NORMAL = 1000
UNAUTHORIZED = 1008
SERVER_ERROR = 3005
INVALID_MESSAGE = 3006
AUDIO_VIOLATION = 3007
SESSION_EXPIRED = 3008
TOO_MANY_SESSIONS = 3009

ENCODINGS = ("pcm_s16le", "pcm_mulaw")  # what the local server decodes
# Every value of the SDK 1.8.2 ``Encoding`` enum (the last three: self-describing streams).
SDK_ENCODINGS = ("pcm_s16le", "pcm_mulaw", "opus", "ogg_opus", "aac")
BOOLEANS = {"true": True, "True": True, "false": False, "False": False}

MIN_CHUNK_MS = 50
MAX_CHUNK_MS = 1000


class ParamError(DiarevalError):
    """An invalid query parameter; the message names the parameter and the valid values."""


@dataclass(frozen=True)
class ProtocolError(DiarevalError):
    """A protocol violation that ends the session: ``Error{code, message}`` then close ``code``."""

    code: int
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def _bool(name: str, value: str) -> bool:
    if value not in BOOLEANS:
        raise ParamError(f"{name} must be true or false, got {value!r}")
    return BOOLEANS[value]


def _int(name: str, value: str, low: int | None = None, high: int | None = None) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ParamError(f"{name} must be an integer, got {value!r}") from None
    if (low is not None and number < low) or (high is not None and number > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise ParamError(f"{name} must be in {bounds}, got {number}")
    return number


def _float(name: str, value: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ParamError(f"{name} must be a number, got {value!r}") from None
    if not low <= number <= high:
        raise ParamError(f"{name} must be in {low}..{high}, got {number}")
    return number


def parse_query(query: str) -> SessionParams:
    """Validate the query string of a ``/v3/ws`` request into :class:`SessionParams`.

    Booleans accept ``true``/``false``/``True``/``False`` (the SDK writes Python's
    spelling); lists are one JSON-encoded string (the SDK's ``keyterms_prompt``). The
    ``token`` parameter is authentication, never kept. Unknown parameters are accepted
    and kept, as sent, in ``SessionParams.extra``. Raises :class:`ParamError`.
    """
    values: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in values:
            raise ParamError(f"{name} given more than once")
        values[name] = value
    values.pop("token", None)
    fields: dict = {}
    if "sample_rate" in values:
        fields["sample_rate"] = _int("sample_rate", values.pop("sample_rate"), 1)
    if "encoding" in values:
        encoding = values.pop("encoding")
        if encoding in SDK_ENCODINGS and encoding not in ENCODINGS:
            raise ParamError(f"encoding {encoding!r} is accepted by AssemblyAI but not supported "
                             f"by the local server; it decodes: {', '.join(ENCODINGS)}")
        if encoding not in ENCODINGS:
            raise ParamError(f"encoding {encoding!r} is not valid; choose one of: "
                             f"{', '.join(SDK_ENCODINGS)} (the local server decodes "
                             f"{', '.join(ENCODINGS)})")
        fields["encoding"] = encoding
    if "speech_model" in values:
        model = values.pop("speech_model")
        if model not in SPEECH_MODELS:
            raise ParamError(f"speech_model {model!r} is not valid; choose one of: "
                             f"{', '.join(SPEECH_MODELS)}")
        fields["speech_model"] = model
    for name in ("speaker_labels", "format_turns", "language_detection"):
        if name in values:
            fields[name] = _bool(name, values.pop(name))
    if "max_speakers" in values:
        max_speakers = _int("max_speakers", values.pop("max_speakers"), 1, 10)
        if fields.get("speaker_labels", False):  # without speaker_labels: ignored
            fields["max_speakers"] = max_speakers
    if "speaker_labels_revision_interval_ms" in values:
        interval = _int("speaker_labels_revision_interval_ms",
                        values.pop("speaker_labels_revision_interval_ms"), 0)
        if fields.get("speaker_labels", False):  # without speaker_labels: ignored
            fields["speaker_labels_revision_interval_ms"] = interval
    if "end_of_turn_confidence_threshold" in values:
        fields["end_of_turn_confidence_threshold"] = _float(
            "end_of_turn_confidence_threshold", values.pop("end_of_turn_confidence_threshold"),
            0.0, 1.0)
    old_name = "min_end_of_turn_silence_when_confident"
    if "min_turn_silence" in values:
        fields["min_turn_silence"] = _int("min_turn_silence", values.pop("min_turn_silence"), 0)
        values.pop(old_name, None)
    elif old_name in values:
        fields["min_turn_silence"] = _int(old_name, values.pop(old_name), 0)
    if "max_turn_silence" in values:
        fields["max_turn_silence"] = _int("max_turn_silence", values.pop("max_turn_silence"), 0)
    if "inactivity_timeout" in values:
        fields["inactivity_timeout"] = _int("inactivity_timeout",
                                            values.pop("inactivity_timeout"), 5, 3600)
    if "keyterms_prompt" in values:
        raw = values.pop("keyterms_prompt")
        try:
            terms = json.loads(raw)
        except json.JSONDecodeError:
            raise ParamError(f"keyterms_prompt must be a JSON list of strings, got {raw!r}") \
                from None
        if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
            raise ParamError(f"keyterms_prompt must be a JSON list of strings, got {raw!r}")
        if len(terms) > 100:
            raise ParamError(f"keyterms_prompt has {len(terms)} terms, at most 100 allowed")
        fields["keyterms_prompt"] = tuple(terms)
    params = SessionParams(**fields, extra=dict(values))
    min_silence, max_silence = params.effective_min_turn_silence, params.effective_max_turn_silence
    if min_silence > max_silence:
        raise ParamError(f"min_turn_silence ({min_silence} ms) exceeds max_turn_silence "
                         f"({max_silence} ms)")
    return params


def check_update(message: dict) -> dict:
    """The changes an ``UpdateConfiguration`` message asks for (the message without ``type``),
    checked as the query parameters are: ``min_turn_silence``, ``max_turn_silence`` (and the
    old name ``min_end_of_turn_silence_when_confident``) integers >= 0,
    ``end_of_turn_confidence_threshold`` a number in 0..1, ``format_turns`` a boolean,
    ``keyterms_prompt`` a list of at most 100 strings; null means "unchanged". Other keys
    are kept as sent (engines ignore them). The engines apply the result with
    :func:`diareval.server.messages.apply_update`. Raises :class:`ProtocolError` 3006
    naming the key and the value."""
    changes = {key: value for key, value in message.items() if key != "type"}

    def bad(key: str, what: str):
        return ProtocolError(INVALID_MESSAGE, f"Invalid UpdateConfiguration: {key} must be "
                                              f"{what}, got {changes[key]!r}")

    for key in ("min_turn_silence", "max_turn_silence", OLD_MIN_TURN_SILENCE):
        value = changes.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 0):
            raise bad(key, "an integer >= 0 (ms)")
    value = changes.get("end_of_turn_confidence_threshold")
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or not 0.0 <= value <= 1.0):
        raise bad("end_of_turn_confidence_threshold", "a number in 0..1")
    value = changes.get("format_turns")
    if value is not None and not isinstance(value, bool):
        raise bad("format_turns", "true or false")
    value = changes.get("keyterms_prompt")
    if value is not None and (not isinstance(value, list) or len(value) > 100
                              or not all(isinstance(term, str) for term in value)):
        raise bad("keyterms_prompt", "a list of at most 100 strings")
    return changes


def bytes_per_sample(encoding: str) -> int:
    """Bytes per mono sample: 2 for pcm_s16le, 1 for pcm_mulaw."""
    return 2 if encoding == "pcm_s16le" else 1


def check_chunk(n_bytes: int, params: SessionParams) -> float:
    """Duration in seconds of an audio chunk of ``n_bytes``; raises :class:`ProtocolError` 3007
    when it is not 50..1000 ms at the declared rate and encoding (or not whole samples)."""
    width = bytes_per_sample(params.encoding)
    if n_bytes % width:
        raise ProtocolError(AUDIO_VIOLATION, f"Input duration violation: {n_bytes} bytes is not "
                                             f"a whole number of {params.encoding} samples")
    samples = n_bytes // width
    # Integer comparison: 800 samples at 16 kHz is exactly 50 ms.
    if not MIN_CHUNK_MS * params.sample_rate <= samples * 1000 <= MAX_CHUNK_MS * params.sample_rate:
        ms = samples * 1000 / params.sample_rate
        raise ProtocolError(AUDIO_VIOLATION, f"Input duration violation: {ms:g} ms. Expected "
                                             f"between {MIN_CHUNK_MS} and {MAX_CHUNK_MS} ms")
    return samples / params.sample_rate


def _mulaw_table() -> np.ndarray:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign, -magnitude, magnitude).astype(np.int16)


MULAW_TO_INT16 = _mulaw_table()


def decode_audio(data: bytes, encoding: str) -> np.ndarray:
    """Binary frame -> int16 mono samples (G.711 mu-law is expanded to 16-bit)."""
    if encoding == "pcm_mulaw":
        return MULAW_TO_INT16[np.frombuffer(data, dtype=np.uint8)]
    return np.frombuffer(data, dtype="<i2").astype(np.int16, copy=False)


def encode_mulaw(samples: np.ndarray) -> bytes:
    """int16 samples -> G.711 mu-law bytes (for tests and clients that send pcm_mulaw)."""
    x = samples.astype(np.int32)
    sign = np.where(x < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(x), 32635) + 0x84
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


# --- frames --------------------------------------------------------------------------------------

def _json_default(value):
    # Engines often compute with numpy; the SDK's models need plain ints/floats/bools.
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(message: dict) -> str:
    """A server message as the JSON text of one frame (numpy scalars become plain numbers)."""
    return json.dumps(message, separators=(",", ":"), default=_json_default)


def close_reason(text: str) -> str:
    """A close reason that fits the 123-byte limit (AssemblyAI then says: see Error message)."""
    return text if len(text.encode("utf-8")) <= 123 else "See Error message for details"
