"""Statistics printed beside every number: bootstrap CIs, chance intervals, permutation tests.

Trials are independent unless ``groups`` say otherwise: with ``groups`` (the units a dataset names as
independent: subjects, images shown to several subjects, recordings; ``data.MIN_UNITS``) the bootstrap
resamples whole groups, the permutation test flips the sign (or swaps the rows) of a whole group's
trials at once, and the effective sample size counts groups, so trials of one subject or windows of
one recording never pass for independent evidence. Without groups every trial is its own group (the
same draws).
"""

from __future__ import annotations

import importlib
from functools import partial

import numpy as np

ALPHA = 0.05


def weighted_mean(values: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Mean of per-trial ``values``, weighted when ``weights`` are given (e.g. 1/class size: balanced accuracy)."""
    return float(np.average(np.asarray(values, dtype=float), weights=weights))


def group_sums(values: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Per-group sums of per-trial ``values`` ``[N, ...]`` (groups in sorted order); ``values`` itself without groups."""
    values = np.asarray(values, dtype=float)
    if groups is None:
        return values
    _, inverse = np.unique(np.asarray(groups), return_inverse=True)
    sums = np.zeros((inverse.max() + 1, *values.shape[1:]))
    np.add.at(sums, inverse, values)
    return sums


def effective_n(n: int, weights: np.ndarray | None = None, groups: np.ndarray | None = None) -> float:
    """Kish's effective sample size of ``n`` weighted trials; with ``groups``, of the groups (each weighing
    its trials' total weight): trials of one group count as one (fully dependent), the conservative reading."""
    if groups is None and weights is None:
        return float(n)
    totals = group_sums(np.ones(n) if weights is None else weights, groups)
    return float(np.sum(totals) ** 2 / np.sum(np.square(totals)))


def bootstrap_ci(values: np.ndarray, *, weights: np.ndarray | None = None, groups: np.ndarray | None = None,
                 n_boot: int = 2000, seed: int = 0, alpha: float = ALPHA) -> tuple[float, float]:
    """Percentile bootstrap CI of the (weighted) mean of per-trial ``values``, resampling trials, or with
    ``groups`` whole groups (every trial of a drawn group, with its weight)."""
    values = np.asarray(values, dtype=float)
    weights = np.ones_like(values) if weights is None else np.asarray(weights, dtype=float)
    sums, totals = group_sums(values * weights, groups), group_sums(weights, groups)
    idx = np.random.default_rng(seed).integers(0, len(sums), size=(n_boot, len(sums)))
    means = sums[idx].sum(axis=1) / totals[idx].sum(axis=1)
    return float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))


def chance_interval(p: float, n: float, alpha: float = ALPHA) -> tuple[float, float]:
    """Central ``1 - alpha`` interval of the accuracy a chance-level guesser gets on ``n`` trials
    (an effective, possibly fractional ``n`` for weighted means, rounded down: the wider interval)."""
    from scipy.stats import binom

    n = max(1, int(n + 1e-9))
    return float(binom.ppf(alpha / 2, n, p) / n), float(binom.ppf(1 - alpha / 2, n, p) / n)


def paired_permutation_p(a: np.ndarray, b: np.ndarray, *, weights: np.ndarray | None = None,
                         groups: np.ndarray | None = None, n_perm: int = 10000, seed: int = 0) -> float:
    """One-sided p-value that the (weighted) mean of a - b is > 0, by random sign flips of the paired
    differences (with ``groups``: one sign per group, for all of its trials)."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if weights is not None:
        diff = diff * np.asarray(weights, dtype=float) * len(diff) / np.sum(weights)
    diff = group_sums(diff, groups)
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(n_perm, len(diff)))
    null = (signs * diff).mean(axis=1)
    return float((1 + np.sum(null >= diff.mean())) / (n_perm + 1))


def statistic_ref(statistic) -> dict:
    """A JSON-able name of a corpus statistic (an eegbench function, or a ``functools.partial`` of one), so a
    later ``compare`` of two runs can recompute it from their stored per-trial rows (:func:`statistic_of`)."""
    fn, kwargs = (statistic.func, dict(statistic.keywords)) if isinstance(statistic, partial) else (statistic, {})
    return {"function": f"{fn.__module__}:{fn.__qualname__}", "kwargs": kwargs}


def statistic_of(ref: dict):
    """The statistic :func:`statistic_ref` named; only eegbench's own functions are looked up."""
    module, _, name = ref["function"].partition(":")
    if module.split(".")[0] != "eegbench":
        raise ValueError(f"statistic {ref['function']!r} is not an eegbench function")
    return partial(getattr(importlib.import_module(module), name), **ref.get("kwargs", {}))


def statistic_value(rows: np.ndarray, statistic) -> float:
    """A corpus metric: ``statistic`` of the column sums of per-trial sufficient statistics ``rows`` ``[N, k]``."""
    return float(statistic(np.asarray(rows, dtype=float).sum(axis=0)))


def bootstrap_statistic_ci(rows: np.ndarray, statistic, *, minus: np.ndarray | None = None,
                           groups: np.ndarray | None = None, n_boot: int = 2000, seed: int = 0,
                           alpha: float = ALPHA) -> tuple[float, float]:
    """Percentile bootstrap CI of a corpus metric (:func:`statistic_value`), resampling trials (with ``groups``,
    whole groups): the same resamples as :func:`bootstrap_ci`. With ``minus``, of the paired gap
    statistic(rows) - statistic(minus)."""
    rows = group_sums(rows, groups)
    idx = np.random.default_rng(seed).integers(0, len(rows), size=(n_boot, len(rows)))

    def resampled(x):
        return np.array([statistic(x[i].sum(axis=0)) for i in idx])

    values = resampled(rows) - (0.0 if minus is None else resampled(group_sums(minus, groups)))
    return float(np.quantile(values, alpha / 2)), float(np.quantile(values, 1 - alpha / 2))


def statistic_permutation_p(a: np.ndarray, b: np.ndarray, statistic, *, groups: np.ndarray | None = None,
                            n_perm: int = 10000, seed: int = 0) -> float:
    """One-sided p-value that statistic(a) > statistic(b) for paired per-trial rows ``[N, k]``, swapping each
    trial's rows (with ``groups``, each group's) between a and b at random (the draws of
    :func:`paired_permutation_p`, whose sign flips these are)."""
    a, b = group_sums(a, groups), group_sums(b, groups)
    swap = np.random.default_rng(seed).choice([-1.0, 1.0], size=(n_perm, len(a))) < 0
    observed = statistic(a.sum(axis=0)) - statistic(b.sum(axis=0))
    null = []
    for block in np.array_split(swap, max(1, n_perm // 1000)):
        moved = block.astype(float) @ (b - a)  # column sums that change hands
        null += [statistic(x) - statistic(y) for x, y in zip(a.sum(axis=0) + moved, b.sum(axis=0) - moved)]
    return float((1 + np.sum(np.array(null) >= observed)) / (n_perm + 1))
