"""Turn per-trial scores into reported numbers: value, 95% CI, chance interval, controls, p-values."""

from __future__ import annotations

import numpy as np

from eegbench.evaluate.stats import bootstrap_ci, chance_interval, paired_permutation_p


def metric_record(name: str, split: str, scored: dict, controls: dict[str, dict], seed: int) -> dict:
    """One metric on one split, with its chance level and each control scored the same way.

    ``scored`` and each control are an evaluation's output: ``{"per_trial": array, "chance": float}``
    and optionally a ``"note"`` on how it was computed.
    The p-value tests that the real predictions beat the control, pairing trials.
    """
    values = np.asarray(scored["per_trial"], dtype=float)
    n = len(values)
    record = {
        "metric": name, "split": split, "n": n, "value": float(values.mean()),
        "ci": list(bootstrap_ci(values, seed=seed)),
        "chance": scored["chance"], "chance_ci": list(chance_interval(scored["chance"], n)),
        "controls": [],
    }
    if scored.get("note"):
        record["note"] = scored["note"]
    for control, out in controls.items():
        ctrl = np.asarray(out["per_trial"], dtype=float)
        record["controls"].append({
            "name": control, "value": float(ctrl.mean()), "ci": list(bootstrap_ci(ctrl, seed=seed)),
            "p_vs_control": paired_permutation_p(values, ctrl, seed=seed),
        })
    return record
