"""Class balance: per-trial weights 1 / (size of the trial's class), whose weighted mean of correctness is
balanced accuracy (the mean over classes of each class's fraction predicted right)."""

from __future__ import annotations

import numpy as np


def class_balance_weights(y: np.ndarray) -> np.ndarray:
    """Per-sample weights 1 / (size of the sample's class): their weighted mean of correctness is balanced accuracy."""
    y = np.asarray(y)
    return 1.0 / np.bincount(y)[y]


def balanced_accuracy(y: np.ndarray, predicted: np.ndarray) -> float:
    """Mean over the classes present in ``y`` of the fraction of their samples predicted right."""
    correct = np.asarray(np.asarray(predicted) == np.asarray(y), dtype=float)
    return float(np.average(correct, weights=class_balance_weights(y)))
