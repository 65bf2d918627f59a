"""Stand-ins for EEG with the same shape and statistics and none of its information: the input controls
(test EEG swapped for them) and the trained-on-noise control (training EEG swapped for noise)."""

from __future__ import annotations

import numpy as np


def shuffled_eeg(eeg: np.ndarray, seed: int) -> np.ndarray:
    """Test EEG permuted across trials, so each label meets another trial's signal."""
    return eeg[np.random.default_rng(seed).permutation(len(eeg))]


def noise_eeg(eeg: np.ndarray, seed: int) -> np.ndarray:
    """Gaussian noise with each channel's test-set mean and standard deviation, in place of EEG."""
    eeg = np.asarray(eeg, dtype=np.float32)
    mean, std = eeg.mean(axis=(0, 2), keepdims=True), eeg.std(axis=(0, 2), keepdims=True)
    rng = np.random.default_rng(seed)
    return (mean + std * rng.standard_normal(eeg.shape, dtype=np.float32)).astype(np.float32)
