"""Regression checks: run suites afresh and compare every metric and control with committed references.

``leaderboards/<suite>.<scale>.reference.json`` holds, for the suite's default variant, each test
metric's value, 95% CI and direction, and each control's value and CI. A fresh run regresses on a
metric when it moves the wrong way (down when higher is better, up when lower is) by more than the
tolerance, and on a control when the control moves towards a real decoding (up when higher is better,
down when lower is) by more than it: a leak. References written before metrics named their direction
read as higher-is-better. The tolerance comes from the two CIs: each CI's half-width gives
a standard error (half-width / 1.96), the difference of two independent estimates has standard error
sqrt(se_ref^2 + se_new^2), and the tolerance is z times that, where z is the two-sided normal quantile
at 5% Bonferroni-corrected over every comparison of the check (so a clean check fails by chance in
fewer than 1 in 20 cases). ``update`` rewrites the references from the fresh runs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from eegbench.errors import UserError

ALPHA = 0.05


def reference_path(folder: Path, suite: str, scale: str) -> Path:
    return Path(folder) / f"{suite}.{scale}.reference.json"


def reference(summary: dict) -> dict:
    """The figures of a finished run that a later check compares against."""
    return {"suite": summary["suite"], "variant": summary["variant"], "scale": summary["scale"], "seed": summary["seed"],
            "run_id": summary["run_id"],
            "metrics": {m["metric"]: {"value": m["value"], "ci": m["ci"], "higher_is_better": m.get("higher_is_better", True),
                                      "controls": {c["name"]: {"value": c["value"], "ci": c.get("ci")} for c in m["controls"]}}
                        for m in summary["metrics"] if m["split"] == "test"}}


def _se(ci) -> float:
    return 0.0 if ci is None else (ci[1] - ci[0]) / (2 * 1.959964)


def comparisons(ref: dict, new: dict) -> list[dict]:
    """One row per reference metric and control: reference, new value, the pooled standard error, and the
    direction that is ``bad`` (the fresh run's declaration, else the reference's, else higher is better)."""
    rows = []
    for name, r in ref["metrics"].items():
        n = new["metrics"].get(name)
        higher = (n or r).get("higher_is_better", r.get("higher_is_better", True))
        rows.append({"suite": ref["suite"], "what": name, "kind": "metric", "ref": r["value"],
                     "new": None if n is None else n["value"],
                     "se": math.hypot(_se(r["ci"]), _se(n["ci"] if n else None)), "bad": "lower" if higher else "higher"})
        for control, rc in r["controls"].items():
            nc = (n or {}).get("controls", {}).get(control)
            rows.append({"suite": ref["suite"], "what": f"{name} [{control}]", "kind": "control", "ref": rc["value"],
                         "new": None if nc is None else nc["value"],
                         "se": math.hypot(_se(rc["ci"]), _se(nc["ci"] if nc else None)), "bad": "higher" if higher else "lower"})
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
    if not path.is_file():
        raise UserError(f"{path}: no reference figures for {suite} at {scale}; create them deliberately with "
                        f"`eegbench check --suite {suite} --scale {scale} --update`")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg}); rewrite it with `eegbench check --update`") from None
