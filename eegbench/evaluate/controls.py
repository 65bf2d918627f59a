"""Controls: altered test inputs scored by the same evaluation code as the real thing."""

from __future__ import annotations

import numpy as np


def shuffled_eeg(eeg: np.ndarray, seed: int) -> np.ndarray:
    """Test EEG permuted across trials, so each label meets another trial's signal."""
    return eeg[np.random.default_rng(seed).permutation(len(eeg))]
