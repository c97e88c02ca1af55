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
