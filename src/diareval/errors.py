"""Exceptions shared across diareval: one clear message, naming the file/line or the valid choices."""


class DiarevalError(Exception):
    """Base class of every error diareval raises on purpose (the CLI prints it without a traceback)."""


class DatasetError(DiarevalError):
    """Bad or missing dataset input: a broken RTTM/UEM line, unreadable audio, an unknown dataset."""


class ConfigError(DiarevalError):
    """A bad configuration: unknown model, max_speakers out of range, bad option combination."""
