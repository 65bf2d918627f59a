"""Controls scored by the same evaluation code as the real thing: altered test inputs, or a control model.

An input control is ``fn(eeg, seed) -> eeg``. A model control (``fn.model_control = True``) is
``fn(ctx) -> predictions`` for the scored trials, from a model the stage trains without EEG; its
``produces`` names the prediction keys it makes (the suite's last stage must make them too).
"""

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


def prior_only(ctx) -> dict:
    """The stage's text head trained and run on a constant input: what the language prior alone scores."""
    return ctx.stage.prior_predictions(ctx.model, ctx.data, ctx.run, ctx.pretrained, len(ctx.trials))


prior_only.model_control, prior_only.produces = True, ("text",)
