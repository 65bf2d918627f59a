"""Statistics printed beside every number: bootstrap CIs, chance intervals, permutation tests."""

from __future__ import annotations

import numpy as np

ALPHA = 0.05


def weighted_mean(values: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Mean of per-trial ``values``, weighted when ``weights`` are given (e.g. 1/class size: balanced accuracy)."""
    return float(np.average(np.asarray(values, dtype=float), weights=weights))


def class_balance_weights(y: np.ndarray) -> np.ndarray:
    """Per-sample weights 1 / (size of the sample's class): their weighted mean of correctness is balanced accuracy."""
    y = np.asarray(y)
    return 1.0 / np.bincount(y)[y]


def effective_n(n: int, weights: np.ndarray | None = None) -> float:
    """Kish's effective sample size of ``n`` weighted trials."""
    return float(n if weights is None else np.sum(weights) ** 2 / np.sum(np.square(weights)))


def bootstrap_ci(values: np.ndarray, *, weights: np.ndarray | None = None, n_boot: int = 2000, seed: int = 0,
                 alpha: float = ALPHA) -> tuple[float, float]:
    """Percentile bootstrap CI of the (weighted) mean of per-trial ``values`` (resampling trials)."""
    values = np.asarray(values, dtype=float)
    weights = np.ones_like(values) if weights is None else np.asarray(weights, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(values), size=(n_boot, len(values)))
    means = (values[idx] * weights[idx]).sum(axis=1) / weights[idx].sum(axis=1)
    return float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))


def chance_interval(p: float, n: float, alpha: float = ALPHA) -> tuple[float, float]:
    """Central ``1 - alpha`` interval of the accuracy a chance-level guesser gets on ``n`` trials
    (an effective, possibly fractional ``n`` for weighted means, rounded down: the wider interval)."""
    from scipy.stats import binom

    n = max(1, int(n + 1e-9))
    return float(binom.ppf(alpha / 2, n, p) / n), float(binom.ppf(1 - alpha / 2, n, p) / n)


def paired_permutation_p(a: np.ndarray, b: np.ndarray, *, weights: np.ndarray | None = None, n_perm: int = 10000,
                         seed: int = 0) -> float:
    """One-sided p-value that the (weighted) mean of a - b is > 0, by random sign flips of the paired differences."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if weights is not None:
        diff = diff * np.asarray(weights, dtype=float) * len(diff) / np.sum(weights)
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(n_perm, len(diff)))
    null = (signs * diff).mean(axis=1)
    return float((1 + np.sum(null >= diff.mean())) / (n_perm + 1))
