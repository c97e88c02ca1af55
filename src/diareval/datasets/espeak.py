"""Speech synthesis with espeak-ng through ctypes (the ``espeakng-loader`` wheel; no system package).

espeak-ng is GPL-3.0: it is an optional extra (``pip install diareval[synth]``), imported
only when a generated conversation needs voices. One synthesis at a time per process
(the library is global), guarded by a lock. Facts this relies on (../shared/NOTES.md):
``espeak_Initialize(SYNCHRONOUS, ..., 0x8000)`` returns the sample rate (22050) or 0 if
the data is missing; word events carry the exact start sample; rate and pitch persist
between calls, so they are set before every synthesis.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diareval.errors import DatasetError

# Variants that sound clearly different (checked by ear and by embedding distance).
# `en-gb+X` silently ignores the variant, so English voices use en / en-us / en-029 / en-gb-*.
DISTINCT_VOICES = ("en+m1", "en+f3", "en-us+f2", "en+klatt4", "en+whisper", "en-us+Andy",
                   "en-gb-scotland+m7", "en-029+f5")
# More, for sessions with more than eight speakers (less distinct from each other).
EXTRA_VOICES = ("en+m3", "en+f4", "en-us+m5", "en+klatt2", "en-us+f1", "en-gb-x-rp+m2",
                "en+Alex", "en-us+Gene", "en+f5", "en-029+m4", "en-us+linda", "en+m6")

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EVENT_WORD = 1
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p),
                ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_LOCK = threading.Lock()  # one synthesis at a time per process (libc rand is shared)
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Synthesis:
    """One synthesised utterance: int16 samples at ``sample_rate`` and the word starts.

    ``word_starts[i]`` is the sample where word ``i`` of the text begins, and
    ``word_positions[i]`` its 1-based character offset in the text (espeak's event data).
    """

    samples: np.ndarray
    sample_rate: int
    word_starts: tuple[int, ...]
    word_positions: tuple[int, ...]


class Espeak:
    """A private instance of the espeak-ng library (use as a context manager).

    espeak-ng keeps state between syntheses (pitch flutter phase, noise generators), so
    the samples of an utterance depend on what was synthesised before it in the same
    library instance, even with a fixed random seed. Each ``Espeak`` therefore loads its
    own copy of the shared library (a temporary copy, so the dynamic loader gives it
    fresh static state): a fixed sequence of calls on a new instance gives the same
    bytes in any process, whatever ran before.
    """

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:
            raise DatasetError("generated conversations need espeak-ng voices: "
                               "pip install 'diareval[synth]' (espeakng-loader, GPL-3.0)") from exc
        source = espeakng_loader.get_library_path()
        folder = tempfile.mkdtemp(prefix="diareval-espeak-")
        private = os.path.join(folder, os.path.basename(source))
        try:
            shutil.copyfile(source, private)
            self.lib = ctypes.CDLL(private)
        finally:  # the mapping stays valid after the file is gone (POSIX); Windows keeps it
            try:
                os.unlink(private)
                os.rmdir(folder)
            except OSError:
                pass
        data_parent = os.path.dirname(espeakng_loader.get_data_path())
        if len(data_parent.encode()) > 120:  # espeak copies the path into a 160-byte buffer
            uid = getattr(os, "getuid", lambda: 0)()
            link = Path(tempfile.gettempdir()) / f"diareval-espeak-{uid}"
            if not link.exists():
                link.symlink_to(data_parent)
            data_parent = str(link)
        self.lib.espeak_Initialize.restype = ctypes.c_int
        rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 200, data_parent.encode(),
                                          _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise DatasetError(f"espeak-ng could not load its data from {data_parent}")
        self.sample_rate = rate
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint,
                                          ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                          ctypes.c_void_p, ctypes.c_void_p]
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int]] = []
        self._callback = _CALLBACK(self._on_audio)  # keep a reference: C holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)
        self._set_seed = getattr(self.lib, "espeak_ng_SetRandSeed", None)
        try:  # espeak-ng also calls the C library's rand()
            self._libc_srand = ctypes.CDLL(None).srand
        except (OSError, AttributeError, TypeError):
            self._libc_srand = lambda seed: None

    def _on_audio(self, wav, count, events) -> int:
        if count > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        index = 0
        while events[index].type != 0:  # 0 = end of the event list
            if events[index].type == _EVENT_WORD:
                self._events.append((events[index].sample, events[index].text_position))
            index += 1
        return 0

    def synthesize(self, text: str, voice: str, rate: int = 175, pitch: int = 50,
                   pitch_range: int = 50, seed: int = 0) -> Synthesis:
        """Synthesise ``text`` with ``voice`` (e.g. ``"en+f3"``) at ``rate`` words/min."""
        with _LOCK:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise DatasetError(f"espeak-ng has no voice {voice!r}")
            self.lib.espeak_SetParameter(_RATE, int(rate), 0)
            self.lib.espeak_SetParameter(_PITCH, int(pitch), 0)
            self.lib.espeak_SetParameter(_RANGE, int(pitch_range), 0)
            self.lib.espeak_SetParameter(_VOLUME, 100, 0)
            # espeak-ng draws random pitch jitter and noise: seed it per utterance so the
            # same (text, voice, settings, seed) always gives the same samples.
            if self._set_seed is not None:
                self._set_seed(ctypes.c_long(seed))
            self._libc_srand(ctypes.c_uint(seed & 0xFFFFFFFF))
            self._chunks, self._events = [], []
            data = text.encode("utf-8") + b"\0"
            buffer = ctypes.create_string_buffer(data)
            result = self.lib.espeak_Synth(buffer, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8,
                                           None, None)
            if result != 0:
                raise DatasetError(f"espeak-ng failed ({result}) on {text!r}")
            self.lib.espeak_Synchronize()
            samples = (np.concatenate(self._chunks) if self._chunks
                       else np.zeros(0, dtype=np.int16))
            events = list(self._events)
        return Synthesis(samples.astype(np.int16, copy=False), self.sample_rate,
                         tuple(s for s, _ in events), tuple(p for _, p in events))


    def close(self) -> None:
        """Terminate and unload this library instance."""
        if getattr(self, "lib", None) is not None:
            self.lib.espeak_Terminate()
            try:
                import _ctypes
                (getattr(_ctypes, "dlclose", None) or _ctypes.FreeLibrary)(self.lib._handle)
            except (AttributeError, OSError):
                pass
            self.lib = None

    def __enter__(self) -> "Espeak":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def available() -> bool:
    """True if the optional espeak-ng extra is installed."""
    try:
        import espeakng_loader  # noqa: F401
    except ImportError:
        return False
    return True
