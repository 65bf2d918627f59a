"""Turn per-trial scores into reported numbers: value, 95% CI, chance interval, controls, p-values."""

from __future__ import annotations

import numpy as np

from eegbench.evaluate.stats import (bootstrap_ci, bootstrap_statistic_ci, chance_interval, effective_n,
                                     paired_permutation_p, statistic_permutation_p, statistic_ref, statistic_value,
                                     weighted_mean)


def metric_record(name: str, split: str, scored: dict, controls: dict[str, dict], seed: int,
                  higher_is_better: bool = True) -> dict:
    """One metric on one split, with its chance level and each control scored the same way.

    ``scored`` and each control are an evaluation's output: ``{"per_trial": array, "chance": float}`` (or,
    for continuous scores, ``"chance_per_trial"``: the score on mismatched pairs) and optionally per-trial ``"weights"`` (the value is then the weighted mean, e.g. balanced
    accuracy) and a ``"note"`` on how it was computed. A corpus metric (corpus BLEU) gives ``"statistic"``: its
    ``per_trial`` (and chance's, and each control's) are per-trial sufficient statistics ``[N, k]`` and the value is
    ``statistic`` of their column sums; its CIs resample trials and its p-values swap trials' rows, as for means.
    Per-trial ``"groups"`` (the dataset's independent units: subjects, repeated images, recordings) make CIs,
    p-values and the chance interval resample and count whole groups (``evaluate.stats``), for corpus
    statistics too; ``"unit"`` describes them, and the note says what was resampled. A ``"definition"``
    names the metric definition.
    Each control gets the gap (real minus control) with a paired bootstrap CI, and a p-value that the
    real predictions beat it in the metric's direction (paired permutation test): above the control
    when ``higher_is_better``, below it otherwise.
    """
    values = np.asarray(scored["per_trial"], dtype=float)
    weights, statistic, groups = scored.get("weights"), scored.get("statistic"), scored.get("groups")
    if statistic is None:
        def value(x):
            return weighted_mean(x, weights)
        def ci(x, minus=None):
            return bootstrap_ci(x if minus is None else x - minus, weights=weights, groups=groups, seed=seed)
        def p(x, y):
            return paired_permutation_p(x, y, weights=weights, groups=groups, seed=seed)
    else:
        def value(x):
            return statistic_value(x, statistic)
        def ci(x, minus=None):
            return bootstrap_statistic_ci(x, statistic, minus=minus, groups=groups, seed=seed)
        def p(x, y):
            return statistic_permutation_p(x, y, statistic, groups=groups, seed=seed)
    n = len(values)
    record = {"metric": name, "split": split, "n": n, "value": value(values), "ci": list(ci(values)),
              "higher_is_better": higher_is_better}
    if scored.get("definition"):
        record["definition"] = scored["definition"]
    if statistic is not None:
        record["statistic"] = statistic_ref(statistic)  # what compare recomputes from the stored rows
    if groups is not None:
        record["n_groups"] = len(np.unique(groups))  # the units the CI resamples
    if "chance_per_trial" in scored:  # a continuous score: chance measured on mismatched pairs
        chance = np.asarray(scored["chance_per_trial"], dtype=float)
        record |= {"chance": value(chance), "chance_ci": list(ci(chance))}
    else:
        chance_ci = chance_interval(scored["chance"], effective_n(n, weights, groups))
        record |= {"chance": scored["chance"], "chance_ci": list(chance_ci)}
    record["controls"] = []
    if scored.get("unit"):
        record["unit"] = scored["unit"]
    resampled = scored.get("unit") and f"CIs and p-values resample {scored['unit']}"
    note = "; ".join(filter(None, (scored.get("note"), resampled)))
    if note:
        record["note"] = note
    for control, out in controls.items():
        ctrl = np.asarray(out["per_trial"], dtype=float)
        entry = {"name": control, "value": value(ctrl), "ci": list(ci(ctrl)), "gap": value(values) - value(ctrl),
                 "gap_ci": list(ci(values, minus=ctrl)),
                 "p_vs_control": p(values, ctrl) if higher_is_better else p(ctrl, values)}
        if out.get("note"):
            entry["note"] = out["note"]
        record["controls"].append(entry)
    return record
