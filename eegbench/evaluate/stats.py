"""Statistics printed beside every number: bootstrap CIs, chance intervals, permutation tests."""

from __future__ import annotations

import numpy as np

ALPHA = 0.05


def bootstrap_ci(values: np.ndarray, *, n_boot: int = 2000, seed: int = 0, alpha: float = ALPHA) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of per-trial ``values`` (resampling trials)."""
    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(axis=1)
    return float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))


def chance_interval(p: float, n: int, alpha: float = ALPHA) -> tuple[float, float]:
    """Central ``1 - alpha`` interval of the accuracy a chance-level guesser gets on ``n`` trials."""
    from scipy.stats import binom

    return float(binom.ppf(alpha / 2, n, p) / n), float(binom.ppf(1 - alpha / 2, n, p) / n)


def paired_permutation_p(a: np.ndarray, b: np.ndarray, *, n_perm: int = 10000, seed: int = 0) -> float:
    """One-sided p-value that mean(a - b) > 0, by random sign flips of the paired differences."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(n_perm, len(diff)))
    null = (signs * diff).mean(axis=1)
    return float((1 + np.sum(null >= diff.mean())) / (n_perm + 1))
