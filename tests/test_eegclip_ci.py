"""The EEG-CLIP suite's done-when at ci scale on synthetic TUAB (about 4 minutes on 2 cores).

Zero-shot pathology well above chance, the linear probe above zero-shot, the shuffled-pairing
control inside chance's interval, and the few-shot learning curve in the run folder.
"""

from __future__ import annotations

import numpy as np
import pytest

from eegbench import config
from eegbench.runner import execute

pytestmark = pytest.mark.slow

TASKS = ("pathological", "age", "gender", "medication")


@pytest.fixture(scope="module")
def runs(cache_dir, ci_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    default = execute(config.resolve("eegclip", scale="ci"), out=ci_runs, cache_dir=cache_dir)
    # the control needs only the alignment-based numbers; the baselines do not depend on the pairing
    shuffled = execute(config.resolve("eegclip", scale="ci", variant="shuffled-pairs", overrides={
        "evaluate": ["zero_shot", "retrieval"], "evaluation_args.baselines": None,
        "evaluation_args.zero_shot_window": None}), out=out, cache_dir=cache_dir)
    return ({m["metric"]: m for m in default.metrics["metrics"]}, {m["metric"]: m for m in shuffled.metrics["metrics"]},
            default.run_dir)


def test_zero_shot_pathology_is_well_above_chance(runs):
    metrics, _, _ = runs
    zero_shot = metrics["zero_shot/pathological"]
    assert zero_shot["ci"][0] > zero_shot["chance_ci"][1], zero_shot
    assert all(c["p_vs_control"] < 0.01 for c in zero_shot["controls"]), zero_shot["controls"]


def test_linear_probe_is_above_zero_shot(runs):
    metrics, _, _ = runs
    probe = np.mean([metrics[f"linear_probe/{t}"]["value"] for t in TASKS])
    zero_shot = np.mean([metrics[f"zero_shot/{t}"]["value"] for t in TASKS])
    assert probe > zero_shot, (probe, zero_shot)
    pathology = metrics["linear_probe/pathological"]
    assert pathology["ci"][0] > pathology["chance_ci"][1]
    permuted = next(c for c in pathology["controls"] if c["name"] == "label_permutation")
    assert permuted["p_vs_control"] < 0.01


def test_shuffled_pairing_falls_inside_chance(runs):
    _, shuffled, _ = runs
    zero_shot = shuffled["zero_shot/pathological"]
    assert zero_shot["chance_ci"][0] <= zero_shot["value"] <= zero_shot["chance_ci"][1], zero_shot
    for k in (1, 5, 10):
        recall = shuffled[f"retrieval/recall@{k}"]
        assert recall["value"] <= recall["chance_ci"][1], recall


def test_few_shot_learning_curve_is_plotted(runs):
    metrics, _, run_dir = runs
    assert (run_dir / "figures" / "few_shot.png").stat().st_size > 10_000
    curve = [metrics[f"few_shot/pathological@{p}%"]["value"] for p in (1, 2, 5, 10, 20, 50)]
    assert curve[-1] > curve[0], curve
