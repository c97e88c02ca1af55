"""Datasets: every corpus becomes a list of :class:`Recording` (audio out as 16 kHz mono int16).

``load(name_or_path)`` is the registry: a folder path, or a registered name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from diareval.datasets.audio import SAMPLE_RATE, load_audio
from diareval.datasets.folder import load_folder
from diareval.datasets.recording import Recording, ReferenceWord
from diareval.datasets.rttm import (format_rttm, format_uem, load_rttm, load_uem, parse_rttm,
                                    parse_uem)
from diareval.errors import DatasetError

# name -> loader(**options) -> list[Recording]; other modules register their corpora here.
REGISTRY: dict[str, Callable[..., list[Recording]]] = {}


def register(name: str, loader: Callable[..., list[Recording]]) -> None:
    """Make ``load(name)`` call ``loader``."""
    REGISTRY[name] = loader


def load(name_or_path: str | Path, **options) -> list[Recording]:
    """Load a dataset by registered name (``"ami"``, ``"synthetic"``, ...) or folder path."""
    name = str(name_or_path)
    if name in REGISTRY:
        return REGISTRY[name](**options)
    path = Path(name).expanduser()
    if path.exists():
        return load_folder(path, **options)
    choices = ", ".join(sorted(REGISTRY)) or "(none registered)"
    raise DatasetError(f"unknown dataset {name!r}: not a folder, and not one of: {choices}")


__all__ = ["SAMPLE_RATE", "Recording", "ReferenceWord", "load", "load_audio", "load_folder",
           "load_rttm", "load_uem", "parse_rttm", "parse_uem", "format_rttm", "format_uem",
           "register", "REGISTRY", "DatasetError"]

# Corpora (each module keeps its download_* + load_* pair).
from diareval.datasets.ami import download_ami, load_ami, load_ami_on_first_use  # noqa: E402

register("ami", load_ami_on_first_use)
__all__ += ["download_ami", "load_ami"]
from diareval.datasets.noise import (add_noise, load_noise_levels, load_noisy,  # noqa: E402
                                     noise_sweep)
from diareval.datasets.synthetic import ConversationSpec, load_synthetic  # noqa: E402

register("synthetic", load_synthetic)
register("noisy", load_noisy)
register("noise-levels", load_noise_levels)
__all__ += ["ConversationSpec", "load_synthetic", "add_noise", "load_noisy", "noise_sweep"]
from diareval.datasets.mixtures import load_mixtures  # noqa: E402

register("mixtures", load_mixtures)
__all__ += ["load_mixtures"]
from diareval.datasets.telephone import (TelephoneChannel, add_telephone,  # noqa: E402
                                        load_calls, load_telephone)

register("telephone", load_telephone)
register("calls", load_calls)
__all__ += ["TelephoneChannel", "add_telephone", "load_calls", "load_telephone"]

# What `python -m diareval run` streams when no dataset is named: the small embedded
# generated dataset (3 conversations x 1 min, 2/3/4 speakers; needs the synth extra).
DEFAULT_DATASET = "synthetic"
__all__ += ["DEFAULT_DATASET"]
