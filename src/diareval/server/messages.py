"""The message vocabulary of the local server: how every v3 server message is said.

Engines decide *what* happened (a turn grew, ended, was revised; which speaker said it);
this module decides *how it is said*: the keys and types of each message, speaker letters,
and which model family speaks which way. Both engines (``engines/oracle.py``,
``engines/baseline/``) and the server (``app.py``, through ``protocol.py``) build every
message here, so a rule of the protocol changes in one place.

Sources: PROTOCOL.md (the API spec, the docs and the ``assemblyai`` SDK 1.8.x models).

- **Turn** (:func:`turn_message`): ``type, turn_order, turn_is_formatted, end_of_turn,
  transcript, end_of_turn_confidence, words``; ``utterance`` (the transcript) on end-of-turn
  messages, and ``""`` on the others where the family says so; ``speaker_label`` on every
  Turn of a session with ``speaker_labels`` (a letter, ``"UNKNOWN"`` or null).
  :func:`turn_keys` is that rule as a key set.
- **Word** (:func:`word_message`): ``text, start, end`` (integer ms from the stream start),
  ``confidence, word_is_final``, and ``speaker`` when the engine gives one and the word is
  final. Times on the family's word grid (:meth:`ModelFamily.on_grid`).
- **SpeakerRevision** (:func:`speaker_revision`, :func:`revision_entry`):
  ``{"type": "SpeakerRevision", "revisions": [{"turn_order", "speaker_label", "words"}]}``.
- **SpeechStarted** (:func:`speech_started`), **Begin** (with ``configuration``:
  :func:`session_configuration`), **Termination**, **Error**.
- **Speaker letters** (:func:`label`, :class:`SpeakerLetters`): "A" .. "Z", "AA", "AB", ...
  in order of first use.
- **Model families** (:data:`MODEL_FAMILIES`, :func:`model_family`): every model the SDK's
  ``SpeechModel`` enum lists belongs to one :class:`ModelFamily`, which holds its turn
  defaults and its message style (decided by the table, never by a prefix of the name).
- **UpdateConfiguration** (:func:`apply_update`): the session parameters after the client's
  changes.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from diareval.constants import SPEECH_MODEL_TABLE
from diareval.errors import ConfigError

if TYPE_CHECKING:  # engines.base imports this module; the type only matters to readers
    from diareval.server.engines.base import SessionParams


# --- model families ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelFamily:
    """How the models of one family behave and speak.

    ``min_turn_silence`` / ``max_turn_silence``: defaults in ms (PROTOCOL.md's parameter
    table). ``speech_started``: a SpeechStarted message when speech begins.
    ``partial_per_pause``: at most one partial Turn per silence inside a turn.
    ``one_formatted_final``: the end of a turn is one Turn with ``turn_is_formatted`` true
    and ``end_of_turn_confidence`` 1.0 (``format_turns`` does not apply).
    ``partial_words_final``: partial Turns may hold final words (Universal-Streaming: words
    become final as the turn grows); False: every word of a partial is non-final (the U3 Pro
    message sequence). ``utterance_on_partials``: partial Turns carry ``utterance: ""`` (the
    U3 Pro message sequence in the api-spec says so). ``word_grid_ms``: word start/end times
    are multiples of it (Universal-Streaming: 80 ms, the spec's example "my" 2560-2560;
    1 = any ms). ``zero_length_words``: some words are sent with ``start == end`` (the
    spec's "my" 2560-2560 and "is" 2720-2720).
    """

    name: str
    min_turn_silence: int
    max_turn_silence: int
    speech_started: bool = False
    partial_per_pause: bool = False
    one_formatted_final: bool = False
    partial_words_final: bool = True
    utterance_on_partials: bool = False
    word_grid_ms: int = 1
    zero_length_words: bool = False

    def on_grid(self, ms: int) -> int:
        """``ms`` rounded to the family's word-time grid (half a step rounds up)."""
        grid = self.word_grid_ms
        return int(ms) if grid <= 1 else (int(ms) + grid // 2) // grid * grid

    @property
    def is_u3_pro(self) -> bool:
        """True for the Universal-3 Pro family."""
        return self is U3_PRO


UNIVERSAL_STREAMING = ModelFamily("universal-streaming", min_turn_silence=400,
                                  max_turn_silence=1280, word_grid_ms=80, zero_length_words=True)
U3_PRO = ModelFamily("u3-pro", min_turn_silence=100, max_turn_silence=1000, speech_started=True,
                     partial_per_pause=True, one_formatted_final=True, partial_words_final=False,
                     utterance_on_partials=True)
# whisper-rt: in the SDK's enum and on one version of the docs page, with no documented
# defaults or message style; spoken as Universal-Streaming until a source says otherwise.
WHISPER_RT = ModelFamily("whisper-rt", min_turn_silence=400, max_turn_silence=1280)

FAMILIES: dict[str, ModelFamily] = {f.name: f for f in (UNIVERSAL_STREAMING, U3_PRO, WHISPER_RT)}
# Every model the SDK 1.8.2 ``SpeechModel`` enum knows plus the docs' names ("u3-pro" is the
# SDK's deprecated alias): the one table ``diareval.constants.SPEECH_MODEL_TABLE`` (family, price).
MODEL_FAMILIES: dict[str, ModelFamily] = {model: FAMILIES[family] for model, (family, _)
                                          in SPEECH_MODEL_TABLE.items()}
SPEECH_MODELS: tuple[str, ...] = tuple(MODEL_FAMILIES)


def model_family(model: str) -> ModelFamily:
    """The :class:`ModelFamily` of speech model ``model``; ConfigError naming the known ones."""
    try:
        return MODEL_FAMILIES[model]
    except KeyError:
        raise ConfigError(f"speech_model {model!r} is not known; known: "
                          f"{', '.join(SPEECH_MODELS)}") from None


# --- speaker letters ----------------------------------------------------------------------------

def label(index: int) -> str:
    """The speaker letter of the ``index``-th speaker (0-based): "A" .. "Z", "AA", "AB", ..."""
    if index < 0:
        raise ValueError(f"a speaker index is >= 0, got {index}")
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(ord("A") + rest) + name
    return name


class SpeakerLetters:
    """Letters for an engine's internal speaker identities (any hashable), given in order of
    first use: the first identity asked for is "A", the next new one "B", ..."""

    def __init__(self) -> None:
        self._names: dict = {}

    def __call__(self, identity) -> str:
        """The letter of ``identity``, giving it the next free one on first use."""
        name = self._names.get(identity)
        if name is None:
            name = self._names[identity] = label(len(self._names))
        return name

    def get(self, identity) -> str | None:
        """The letter ``identity`` was given, or None if it never was."""
        return self._names.get(identity)

    def __len__(self) -> int:
        return len(self._names)


# --- Turn, words, SpeakerRevision ----------------------------------------------------------------

NO_SPEAKER = object()  # word_message(speaker=...) default: the word carries no "speaker" key


def to_ms(seconds: float) -> int:
    """A time in seconds as the integer milliseconds the wire carries."""
    return int(round(seconds * 1000))


def word_message(text: str, start: int, end: int, confidence: float, final: bool,
                 speaker=NO_SPEAKER) -> dict:
    """One word of a Turn: ``start``/``end`` integer ms, ``confidence`` rounded to 4 places;
    ``speaker`` (a letter, "UNKNOWN" or None) when given and the word is final (the docs:
    per-word ``speaker`` only on words with ``word_is_final`` true)."""
    word = {"text": text, "start": int(start), "end": int(end),
            "confidence": round(float(confidence), 4), "word_is_final": bool(final)}
    if speaker is not NO_SPEAKER and final:
        word["speaker"] = speaker
    return word


def turn_keys(params: "SessionParams", end_of_turn: bool) -> frozenset[str]:
    """The keys of a Turn message in a session with ``params`` (see :func:`turn_message`)."""
    keys = {"type", "turn_order", "turn_is_formatted", "end_of_turn", "transcript",
            "end_of_turn_confidence", "words"}
    if end_of_turn or model_family(params.speech_model).utterance_on_partials:
        keys.add("utterance")
    if end_of_turn and params.language_detection:
        keys |= {"language_code", "language_confidence"}
    if params.speaker_labels:
        keys.add("speaker_label")
    return frozenset(keys)


def turn_message(params: "SessionParams", *, turn_order: int, words: Sequence[dict],
                 end_of_turn: bool, formatted: bool = False, end_of_turn_confidence: float = 0.0,
                 speaker_label: str | None = None, transcript: str | None = None,
                 language_code: str = "en", language_confidence: float = 1.0) -> dict:
    """A Turn message of a session with ``params``.

    ``words``: :func:`word_message` dicts. ``transcript`` defaults to the texts of the final
    words joined by spaces (pass it for a formatted transcript). In a family with
    ``one_formatted_final`` an end-of-turn message is always formatted, with
    ``end_of_turn_confidence`` 1.0. ``utterance`` (= the
    transcript) is added on end-of-turn messages, ``""`` on partials of families with
    ``utterance_on_partials``; ``speaker_label`` when ``params.speaker_labels`` (None is
    sent as null); ``language_code`` / ``language_confidence`` on end-of-turn messages
    when ``params.language_detection`` (the local engines speak English: "en", 1.0).
    """
    family = model_family(params.speech_model)
    if end_of_turn and family.one_formatted_final:  # U3 Pro: one formatted final, confidence 1
        formatted, end_of_turn_confidence = True, 1.0
    if transcript is None:
        transcript = " ".join(w["text"] for w in words if w["word_is_final"])
    message = {"type": "Turn", "turn_order": int(turn_order), "turn_is_formatted": bool(formatted),
               "end_of_turn": bool(end_of_turn), "transcript": transcript,
               "end_of_turn_confidence": float(end_of_turn_confidence), "words": list(words)}
    if end_of_turn:
        message["utterance"] = transcript
    elif family.utterance_on_partials:
        message["utterance"] = ""
    if end_of_turn and params.language_detection:
        message["language_code"] = language_code
        message["language_confidence"] = float(language_confidence)
    if params.speaker_labels:
        message["speaker_label"] = speaker_label
    return message


def revision_entry(turn_order: int, speaker_label: str | None, words: Sequence[dict]) -> dict:
    """One entry of a SpeakerRevision: the turn's new ``speaker_label`` and its words (with
    their new ``speaker``; text and times as first sent)."""
    return {"turn_order": int(turn_order), "speaker_label": speaker_label, "words": list(words)}


def speaker_revision(entries: Iterable[dict]) -> dict:
    """A SpeakerRevision message listing :func:`revision_entry` dicts (only turns that changed)."""
    return {"type": "SpeakerRevision", "revisions": list(entries)}


def speech_started(timestamp: int, confidence: float) -> dict:
    """SpeechStarted (families with ``speech_started``): ``timestamp`` in integer ms."""
    return {"type": "SpeechStarted", "timestamp": int(timestamp),
            "confidence": round(float(confidence), 3)}


# --- session messages ---------------------------------------------------------------------------

def begin_message(expires_at: int, session_id: str | None = None,
                  configuration: Mapping | None = None) -> dict:
    """``Begin``: session id (uuid4 string) and expiry as integer unix seconds; with
    ``configuration`` (the SDK's ``SessionConfiguration``: ``model``, ``mode``,
    ``api_version``, None values left out) a ``configuration`` object too."""
    message = {"type": "Begin", "id": session_id or str(uuid.uuid4()),
               "expires_at": int(expires_at)}
    if configuration is not None:
        message["configuration"] = {key: value for key, value in configuration.items()
                                    if value is not None}
    return message


def session_configuration(params: "SessionParams") -> dict:
    """The Begin ``configuration`` of a session: its ``model``, and ``mode`` when the client
    sent one (``api_version`` is not sent: no source gives its values)."""
    configuration = {"model": params.speech_model}
    if params.extra.get("mode"):
        configuration["mode"] = str(params.extra["mode"])
    return configuration


def termination_message(audio_seconds: float, session_seconds: float) -> dict:
    """``Termination`` with integer durations (the SDK's model declares ints)."""
    return {"type": "Termination", "audio_duration_seconds": int(round(audio_seconds)),
            "session_duration_seconds": int(round(session_seconds))}


def error_message(code: int, text: str) -> dict:
    """``Error`` sent just before the server closes with ``code``."""
    return {"type": "Error", "error_code": int(code), "error": text}


# --- UpdateConfiguration --------------------------------------------------------------------------

# The UpdateConfiguration keys the local engines act on (the SDK's model has more: they are
# accepted and ignored). The old name of min_turn_silence is read too; the new one wins.
OLD_MIN_TURN_SILENCE = "min_end_of_turn_silence_when_confident"
UPDATABLE = ("min_turn_silence", "max_turn_silence", "end_of_turn_confidence_threshold",
             "format_turns", "keyterms_prompt")


def apply_update(params: "SessionParams", changes: Mapping) -> "SessionParams":
    """``params`` after an UpdateConfiguration carrying ``changes`` (the message without its
    ``type``; values as :func:`diareval.server.protocol.check_update` leaves them). Keys in
    :data:`UPDATABLE` (and ``min_end_of_turn_silence_when_confident``) with a non-null value
    are applied; others are ignored. Returns ``params`` itself when nothing applies."""
    update: dict = {}
    if changes.get(OLD_MIN_TURN_SILENCE) is not None:
        update["min_turn_silence"] = int(changes[OLD_MIN_TURN_SILENCE])
    for key in ("min_turn_silence", "max_turn_silence"):
        if changes.get(key) is not None:
            update[key] = int(changes[key])
    if changes.get("end_of_turn_confidence_threshold") is not None:
        update["end_of_turn_confidence_threshold"] = float(changes["end_of_turn_confidence_threshold"])
    if changes.get("format_turns") is not None:
        update["format_turns"] = bool(changes["format_turns"])
    if changes.get("keyterms_prompt") is not None:
        update["keyterms_prompt"] = tuple(changes["keyterms_prompt"])
    return dataclasses.replace(params, **update) if update else params
