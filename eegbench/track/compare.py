"""Paired comparison of two runs (per test trial) or two variants (per seed): test, effect size, verdict.

A side is a run folder, a run id from the index, or ``suite/variant`` (all its seeds). Two runs are
paired trial by trial when they scored the same test trials (the same dataset section of the config);
their per-trial scores come from ``predictions/test.npz``. Two ``suite/variant`` sides are paired by
seed. A corpus metric (corpus BLEU, (max)) stores per-trial rows of counts: two runs are compared on the
statistic it names in metrics.json, recomputed from both runs' rows, with a paired bootstrap CI and a
permutation test that swaps whole trials between the runs.
With more than 20 pairs the test is Wilcoxon's signed-rank test and the effect size its matched-pairs
rank-biserial correlation; with 20 or fewer, a two-sided paired permutation test (sign
flips) and Cohen's d_z. Every difference comes with a bootstrap 95% CI. A metric whose trials come in
groups (``<metric>/groups`` in the predictions: windows of a recording, the trials of a subject or an
image) is paired per group, on its trials' mean, since trials of one group are not independent; the
verdict names the unit the run recorded (subjects, images, recordings). The verdict follows each metric's direction
(``higher_is_better`` in the runs' metrics, higher when absent).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from eegbench.errors import UserError
from eegbench.evaluate.stats import group_sums, statistic_of
from eegbench.track.store import Index

ALPHA = 0.05
WILCOXON_ABOVE = 20  # pairs; MOABB's switch from permutation to Wilcoxon


def side(ref: str, index: Index | None) -> dict:
    """``{"label", "runs": [run rows or summaries], "by": "trial" | "seed"}`` for one side of a comparison."""
    path = Path(ref)
    if (path / "metrics.json").is_file():
        summary = json.loads((path / "metrics.json").read_text())
        return {"label": ref, "runs": [{**summary, "path": str(path)}], "by": "trial"}
    if index is None:
        raise UserError(f"{ref}: not a run folder (no metrics.json) and no run index to look it up in; pass --out")
    runs = index.runs()
    by_id = [r for r in runs if r["run_id"] == ref]
    if by_id:
        return side(by_id[0]["path"], None) | {"label": ref}
    suite, _, variant = ref.partition("/")
    mine = [r for r in runs if r["suite"] == suite and r["variant"] == variant]
    if not variant or not mine:
        raise UserError(f"{ref}: not a run folder, a run id or a suite/variant with runs in {index.path}; "
                        "`eegbench leaderboard` lists what has run")
    latest = {r["seed"]: r for r in mine}  # oldest first: the newest run of each seed wins
    return {"label": ref, "runs": [json.loads((Path(r["path"]) / "metrics.json").read_text()) | {"path": r["path"]}
                                   for r in latest.values()], "by": "seed"}


def pairs(a: dict, b: dict) -> tuple[dict[str, tuple], dict[str, str]]:
    """``{metric: (a values, b values, statistic)}`` paired per trial (two runs) or per seed (two variants), and
    ``{metric: unit}``, what a pair is: trials, the metric's grouped units (subjects, images, recordings) or
    seeds; ``statistic`` is None except for a corpus metric, whose values are per-trial rows."""
    if a["by"] == b["by"] == "trial":
        ra, rb = a["runs"][0], b["runs"][0]
        if ra["config"]["dataset"] != rb["config"]["dataset"]:
            raise UserError(f"{a['label']} and {b['label']} scored different test trials (their dataset sections differ); "
                            "compare runs of one dataset and split, or compare suite/variant pairs by seed")
        with np.load(Path(ra["path"]) / "predictions" / "test.npz") as pa, np.load(Path(rb["path"]) / "predictions" / "test.npz") as pb:
            tests = [m for m in ra["metrics"] if m["split"] == "test"]
            statistics = {m["metric"]: m["statistic"] for m in tests if "statistic" in m}
            named = {m["metric"]: m["unit"].split()[1] for m in tests if m.get("unit")}  # "60 images, each ..."
            out = {}
            for key in (k for k in pa.files if k.endswith("/real") and k in pb.files):
                metric = key[: -len("/real")]
                if pa[key].ndim == 1:
                    out[metric] = (*_per_group(pa, pb, metric), None)
                elif metric in statistics:  # sufficient statistics: a group's rows add up to one row
                    groups = pa[f"{metric}/groups"] if f"{metric}/groups" in pa.files else None
                    out[metric] = (group_sums(pa[key], groups), group_sums(pb[key], groups),
                                   statistic_of(statistics[metric]))
            return out, {m: named.get(m, "groups") if f"{m}/groups" in pa.files else "trials" for m in out}
    if a["by"] == b["by"] == "seed":
        va = {r["seed"]: {m["metric"]: m["value"] for m in r["metrics"]} for r in a["runs"]}
        vb = {r["seed"]: {m["metric"]: m["value"] for m in r["metrics"]} for r in b["runs"]}
        seeds = sorted(set(va) & set(vb))
        if not seeds:
            raise UserError(f"{a['label']} and {b['label']} share no seed; run both with the same --seed values")
        metrics = [m for m in va[seeds[0]] if all(m in va[s] and m in vb[s] for s in seeds)]
        return ({m: (np.array([va[s][m] for s in seeds]), np.array([vb[s][m] for s in seeds]), None) for m in metrics},
                dict.fromkeys(metrics, "seeds"))
    raise UserError("compare two runs (folders or run ids) or two suite/variant pairs, not one of each")


def _per_group(pa, pb, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Both runs' per-trial scores of ``metric``, or per-group means where the trials come in groups."""
    x, y = pa[f"{metric}/real"].astype(float), pb[f"{metric}/real"].astype(float)
    if f"{metric}/groups" not in pa.files:
        return x, y
    groups = pa[f"{metric}/groups"]
    sizes = group_sums(np.ones(len(x)), groups)
    return group_sums(x, groups) / sizes, group_sums(y, groups) / sizes


def higher_is_better(side: dict, metric: str) -> bool:
    """``metric``'s direction as the side's newest run recorded it (higher when the run predates directions)."""
    rows = [m for m in side["runs"][-1]["metrics"] if m["metric"] == metric]
    return bool(rows[0].get("higher_is_better", True)) if rows else True


def paired_test(x: np.ndarray, y: np.ndarray, statistic=None, seed: int = 0) -> dict:
    """Two-sided paired test of x against y, its effect size and a bootstrap CI of the mean difference (with a
    corpus ``statistic``: of the statistic's difference, its effect the difference over its bootstrap SE)."""
    from scipy.stats import wilcoxon

    from eegbench.evaluate.stats import bootstrap_ci, paired_permutation_p

    if statistic is not None:
        return _corpus_test(x, y, statistic, seed)
    diff = x - y
    out = {"n": len(diff), "difference": float(diff.mean()), "ci": bootstrap_ci(diff, seed=seed)}
    if not np.any(diff):
        return out | {"test": "none (identical)", "p": 1.0, "effect": 0.0, "effect_name": "-"}
    if len(diff) > WILCOXON_ABOVE:
        p = float(wilcoxon(x, y, zero_method="zsplit").pvalue)
        ranks = np.argsort(np.argsort(np.abs(diff))) + 1.0  # ranks of |d| (ties broken by order)
        effect = float((ranks[diff > 0].sum() - ranks[diff < 0].sum()) / ranks.sum())
        return out | {"test": "Wilcoxon signed-rank", "p": p, "effect": effect, "effect_name": "rank-biserial r"}
    p = min(1.0, 2 * min(paired_permutation_p(x, y, seed=seed), paired_permutation_p(y, x, seed=seed)))
    sd = diff.std(ddof=1) if len(diff) > 1 else 0.0
    return out | {"test": "paired permutation", "p": p, "effect": float(diff.mean() / sd) if sd else np.inf * np.sign(diff.mean()),
                  "effect_name": "Cohen's d_z"}


def _corpus_test(x: np.ndarray, y: np.ndarray, statistic, seed: int) -> dict:
    from eegbench.evaluate.stats import bootstrap_statistic_ci, statistic_permutation_p, statistic_value

    difference = statistic_value(x, statistic) - statistic_value(y, statistic)
    lo, hi = bootstrap_statistic_ci(x, statistic, minus=y, seed=seed)
    p = min(1.0, 2 * min(statistic_permutation_p(x, y, statistic, seed=seed),
                         statistic_permutation_p(y, x, statistic, seed=seed)))
    se = (hi - lo) / (2 * 1.959964)
    return {"n": len(x), "difference": difference, "ci": (lo, hi), "test": "paired permutation (corpus)", "p": p,
            "effect": difference / se if se else 0.0, "effect_name": "difference / bootstrap SE"}


def verdict(metric: str, result: dict, a: str, b: str, unit: str, higher_is_better: bool = True) -> str:
    """One line: who is ahead on ``metric`` (the higher side, or the lower when lower is better), by how
    much, and how sure."""
    lo, hi = result["ci"]
    p = f"p = {result['p']:.4f}" if result["p"] >= 1e-4 else "p < 0.0001"
    detail = (f"{result['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}], {p} ({result['test']}, "
              f"{result['n']} {unit}), {result['effect_name']} = {result['effect']:.2f}")
    if result["p"] < ALPHA:
        winner, loser = (a, b) if (result["difference"] > 0) == higher_is_better else (b, a)
        return f"{metric}: {winner} beats {loser}: {detail}"
    return f"{metric}: no significant difference between {a} and {b}: {detail}"
