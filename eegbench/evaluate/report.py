"""Turn per-trial scores into reported numbers: value, 95% CI, chance interval, controls, p-values."""

from __future__ import annotations

import numpy as np

from eegbench.evaluate.stats import bootstrap_ci, chance_interval, effective_n, paired_permutation_p, weighted_mean


def metric_record(name: str, split: str, scored: dict, controls: dict[str, dict], seed: int) -> dict:
    """One metric on one split, with its chance level and each control scored the same way.

    ``scored`` and each control are an evaluation's output: ``{"per_trial": array, "chance": float}``
    and optionally per-trial ``"weights"`` (the value is then the weighted mean, e.g. balanced
    accuracy) and a ``"note"`` on how it was computed.
    The p-value tests that the real predictions beat the control, pairing trials.
    """
    values = np.asarray(scored["per_trial"], dtype=float)
    weights = scored.get("weights")
    n = len(values)
    record = {
        "metric": name, "split": split, "n": n, "value": weighted_mean(values, weights),
        "ci": list(bootstrap_ci(values, weights=weights, seed=seed)),
        "chance": scored["chance"], "chance_ci": list(chance_interval(scored["chance"], effective_n(n, weights))),
        "controls": [],
    }
    if scored.get("note"):
        record["note"] = scored["note"]
    for control, out in controls.items():
        ctrl = np.asarray(out["per_trial"], dtype=float)
        record["controls"].append({
            "name": control, "value": weighted_mean(ctrl, weights),
            "ci": list(bootstrap_ci(ctrl, weights=weights, seed=seed)),
            "p_vs_control": paired_permutation_p(values, ctrl, weights=weights, seed=seed),
        })
    return record
