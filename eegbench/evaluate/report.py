"""Turn per-trial scores into reported numbers: value, 95% CI, chance interval, controls, p-values."""

from __future__ import annotations

import numpy as np

from eegbench.evaluate.stats import bootstrap_ci, chance_interval, effective_n, paired_permutation_p, weighted_mean


def metric_record(name: str, split: str, scored: dict, controls: dict[str, dict], seed: int) -> dict:
    """One metric on one split, with its chance level and each control scored the same way.

    ``scored`` and each control are an evaluation's output: ``{"per_trial": array, "chance": float}`` (or,
    for continuous scores, ``"chance_per_trial"``: the score on mismatched pairs) and optionally per-trial ``"weights"`` (the value is then the weighted mean, e.g. balanced
    accuracy) and a ``"note"`` on how it was computed.
    Each control gets the gap (real minus control) with a paired bootstrap CI, and a p-value that the
    real predictions beat it (paired permutation test).
    """
    values = np.asarray(scored["per_trial"], dtype=float)
    weights = scored.get("weights")
    n = len(values)
    record = {"metric": name, "split": split, "n": n, "value": weighted_mean(values, weights),
              "ci": list(bootstrap_ci(values, weights=weights, seed=seed))}
    if "chance_per_trial" in scored:  # a continuous score: chance measured on mismatched pairs
        chance = np.asarray(scored["chance_per_trial"], dtype=float)
        record |= {"chance": weighted_mean(chance, weights), "chance_ci": list(bootstrap_ci(chance, weights=weights, seed=seed))}
    else:
        record |= {"chance": scored["chance"], "chance_ci": list(chance_interval(scored["chance"], effective_n(n, weights)))}
    record["controls"] = []
    if scored.get("note"):
        record["note"] = scored["note"]
    for control, out in controls.items():
        ctrl = np.asarray(out["per_trial"], dtype=float)
        entry = {
            "name": control, "value": weighted_mean(ctrl, weights),
            "ci": list(bootstrap_ci(ctrl, weights=weights, seed=seed)),
            "gap": weighted_mean(values - ctrl, weights),
            "gap_ci": list(bootstrap_ci(values - ctrl, weights=weights, seed=seed)),
            "p_vs_control": paired_permutation_p(values, ctrl, weights=weights, seed=seed),
        }
        if out.get("note"):
            entry["note"] = out["note"]
        record["controls"].append(entry)
    return record
