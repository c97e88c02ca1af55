"""Constants shared by every part of diareval (datasets, stream, score, server), defined once.

A neutral module: it imports nothing from diareval, so ``score/`` and ``server/`` both use it
without depending on each other.
"""

from __future__ import annotations

import math

# Audio inside diareval: 16 kHz mono int16 (datasets load to it, engines and the oracle need it).
SAMPLE_RATE = 16_000

# The speaker label of a turn the service could not assign (newer docs; older ones send null).
UNKNOWN = "UNKNOWN"

# Word-count buckets of DESIGN.md, as (lowest, highest, name): 1, 2, 3-5, 6-10, 11-20, 21+.
# The oracle's error table has one probability per bucket; the scorer breaks results down by them.
WORD_COUNT_BINS = ((1, 1, "1"), (2, 2, "2"), (3, 5, "3-5"), (6, 10, "6-10"), (11, 20, "11-20"),
                   (21, math.inf, "21+"))


def word_count_bin_index(count: int) -> int | None:
    """Index into :data:`WORD_COUNT_BINS` of the bucket holding ``count``; None for 0 words."""
    for index, (low, high, _) in enumerate(WORD_COUNT_BINS):
        if low <= count <= high:
            return index
    return None


# --- speech models ------------------------------------------------------------------------------
# Every speech model diareval knows, with its family and its price: the SDK 1.8.2 ``SpeechModel``
# enum plus the names the docs list ("Streaming Diarization and Multichannel": universal-3-5-pro,
# u3-rt-pro, the two universal-streaming models; one version also whisper-rt). The family decides
# the message style (``diareval.server.messages.MODEL_FAMILIES`` reads it from here).
# Prices: USD per hour of streaming, billed by connection time. Source: AssemblyAI's pricing as
# collected in PROTOCOL.md ("Limits and billing"), dated 2026-03: Universal-3 Pro $0.45/h,
# Universal-Streaming English / Multilingual $0.15/h. The other U3 Pro family names are priced as
# U3 Pro (no separate price published); whisper-rt has no published price (None).
PRICES_SOURCE = "AssemblyAI pricing via PROTOCOL.md, 2026-03"
SPEECH_MODEL_TABLE: dict[str, tuple[str, float | None]] = {
    "u3-rt-pro": ("u3-pro", 0.45),
    "universal-streaming-english": ("universal-streaming", 0.15),
    "universal-streaming-multilingual": ("universal-streaming", 0.15),
    "whisper-rt": ("whisper-rt", None),
    "universal-3-5-pro": ("u3-pro", 0.45),
    "universal-3-6": ("u3-pro", 0.45),
    "universal-3-6-pro": ("u3-pro", 0.45),
    "u3-rt-pro-beta-1": ("u3-pro", 0.45),
    "u3-pro": ("u3-pro", 0.45),  # the SDK's deprecated alias of u3-rt-pro
}
PRICES_PER_HOUR: dict[str, float | None] = {model: price for model, (_, price)
                                            in SPEECH_MODEL_TABLE.items()}
