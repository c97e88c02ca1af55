"""benchmarks/voice_pairs.py: its equal error rate, on hand-worked scores."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "voice_pairs.py"
_spec = importlib.util.spec_from_file_location("voice_pairs", _PATH)
voice_pairs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(voice_pairs)


def test_eer_of_separable_scores_is_zero():
    assert voice_pairs.equal_error_rate([0.9, 0.8, 0.7], [0.3, 0.2]) == 0.0


def test_eer_one_swap_in_three():
    # same 0.9 0.8 0.4, different 0.5 0.3 0.2: any threshold in (0.4, 0.5] rejects one same
    # score of three and accepts one different score of three
    assert voice_pairs.equal_error_rate([0.9, 0.8, 0.4], [0.5, 0.3, 0.2]) == pytest.approx(1 / 3)


def test_eer_of_reversed_scores_is_one():
    assert voice_pairs.equal_error_rate([0.1, 0.2], [0.8, 0.9]) == pytest.approx(1.0)


def test_eer_needs_both_kinds():
    with pytest.raises(ValueError):
        voice_pairs.equal_error_rate([0.5], [])


def test_pair_eer_by_hand():
    # unit rows: speaker a at angles 0 and 0.2 rad, b at 1.0 and 1.3 rad. Same-speaker
    # similarities cos 0.2 and cos 0.3; across: cos 1.0, 1.3, 0.8, 1.1, all lower: EER 0
    def unit(angle):
        return np.array([np.cos(angle), np.sin(angle)])
    a = np.stack([unit(0.0), unit(0.2)])
    b = np.stack([unit(1.0), unit(1.3)])
    assert voice_pairs.pair_eer(a, b) == 0.0
    # b's second chunk sits next to a (0.1 rad): across now includes cos 0.1 and cos 0.1,
    # above both same-speaker scores (cos 0.2 = 0.980, cos 0.9 = 0.622 for b)
    # (same: cos 0.2, cos 0.9; different: cos 1.0, cos 0.1, cos 0.8, cos 0.1)
    b = np.stack([unit(1.0), unit(0.1)])
    # by hand: thresholds: > cos 0.1 rejects both same (FR 1, FA 0); in (cos 0.2, cos 0.1]
    # FR 1, FA 2/4; in (cos 0.8, cos 0.2]: FR 1/2, FA 2/4 -> EER 1/2
    assert voice_pairs.pair_eer(a, b) == pytest.approx(0.5)
