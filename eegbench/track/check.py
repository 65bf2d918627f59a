"""Regression checks: run suites afresh and compare every metric and control with committed references.

``leaderboards/<suite>.<scale>.reference.json`` holds, for the suite's default variant run at several
seeds (``check --update``, seeds 0-2 by default), each test metric's and control's mean over the seeds,
its values per seed, their sample SD (the seed-to-seed spread), the trial-level standard error (the
root mean square over the seeds of CI half-width / 1.96) and the metric's direction. A fresh run
regresses on a metric when it moves the wrong way (down when higher is better, up when lower is) by
more than the tolerance, and on a control when the control moves towards a real decoding (up when
higher is better, down when lower is) by more than it: a leak. The tolerance is z times the standard
error of the difference between the fresh run and the reference mean, which sums three variances:
the reference's trial-level one, the fresh run's (from its CI) and the seed-to-seed one, the seeds'
SD squared times (1/K_ref + 1/K_new). The seeds' SD is taken as at least the trial-level error: three
seeds can agree by chance (smoke's seeds 0-2 scored 0.807, 0.807 and 0.798; seeds 3-7 spread from
0.647 to 0.790). z is the two-sided normal quantile at 5% Bonferroni-corrected over every comparison
of one check (all its suites at one seed). ``update`` rewrites the references.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from eegbench.errors import UserError

ALPHA = 0.05


def reference_path(folder: Path, suite: str, scale: str) -> Path:
    return Path(folder) / f"{suite}.{scale}.reference.json"


def _se(ci) -> float:
    return 0.0 if ci is None else (ci[1] - ci[0]) / (2 * 1.959964)


def _figure(points: list[dict]) -> dict:
    """Mean, per-seed values, seed SD and trial-level SE of one metric or control over runs (``value``, ``ci``)."""
    values = [p["value"] for p in points]
    return {"value": float(np.mean(values)), "seed_values": values,
            "seed_sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            "se": float(np.sqrt(np.mean([_se(p.get("ci")) ** 2 for p in points])))}


def reference(summaries: list[dict]) -> dict:
    """The figures of finished runs of one suite's variant at one or more seeds that a later check compares
    against: a metric or control missing from some run is summarised over the runs that have it."""
    first = summaries[0]
    tests = [{m["metric"]: m for m in s["metrics"] if m["split"] == "test"} for s in summaries]
    metrics = {}
    for name in dict.fromkeys(name for t in tests for name in t):
        runs = [t[name] for t in tests if name in t]
        controls = sorted({c["name"] for r in runs for c in r["controls"]})
        metrics[name] = {**_figure(runs), "higher_is_better": runs[0].get("higher_is_better", True),
                         "controls": {c: _figure([x for r in runs for x in r["controls"] if x["name"] == c])
                                      for c in controls}}
    return {"suite": first["suite"], "variant": first["variant"], "scale": first["scale"],
            "seeds": [s["seed"] for s in summaries], "runs": {str(s["seed"]): s["run_id"] for s in summaries},
            "metrics": metrics}


def comparisons(ref: dict, new: dict) -> list[dict]:
    """One row per reference metric and control: reference mean, new value, the standard error of their
    difference, and the direction that is ``bad`` (the fresh run's declaration, else the reference's)."""
    k_ref, k_new = len(ref["seeds"]), len(new.get("seeds", [None]))

    def se(r: dict, n: dict | None) -> float:
        seeds = max(r["seed_sd"], r["se"]) ** 2 * (1 / k_ref + 1 / k_new)  # a few seeds can agree by chance
        return math.sqrt(r["se"] ** 2 + (n["se"] ** 2 if n else 0.0) + seeds)

    rows = []
    for name, r in ref["metrics"].items():
        n = new["metrics"].get(name)
        higher = (n or r)["higher_is_better"]
        rows.append({"suite": ref["suite"], "what": name, "kind": "metric", "ref": r["value"],
                     "new": None if n is None else n["value"], "se": se(r, n), "bad": "lower" if higher else "higher"})
        for control, rc in r["controls"].items():
            nc = (n or {}).get("controls", {}).get(control)
            rows.append({"suite": ref["suite"], "what": f"{name} [{control}]", "kind": "control", "ref": rc["value"],
                         "new": None if nc is None else nc["value"], "se": se(rc, nc),
                         "bad": "higher" if higher else "lower"})
    return rows


def judge(rows: list[dict], alpha: float = ALPHA) -> list[dict]:
    """Mark each row ``ok`` / ``regressed`` / ``missing`` with its tolerance (z x se, Bonferroni over ``rows``)."""
    from scipy.stats import norm

    z = float(norm.ppf(1 - alpha / (2 * max(len(rows), 1))))
    for row in rows:
        row["tolerance"] = z * row["se"]
        if row["new"] is None:
            row["status"] = "missing"
            continue
        change = row["new"] - row["ref"]
        worse = -change if row["bad"] == "lower" else change
        row["status"] = "regressed" if worse > row["tolerance"] else "ok"
    return rows


def load_reference(folder: Path, suite: str, scale: str) -> dict:
    path = reference_path(folder, suite, scale)
    update = f"`eegbench check --suite {suite} --scale {scale} --update`"
    if not path.is_file():
        raise UserError(f"{path}: no reference figures for {suite} at {scale}; create them deliberately with {update}")
    try:
        ref = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg}); rewrite it with {update}") from None
    if "seeds" not in ref:
        raise UserError(f"{path}: a one-seed reference from before references held the seeds' spread; rewrite it "
                        f"with {update}")
    return ref
