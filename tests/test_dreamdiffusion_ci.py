"""The dreamdiffusion suite at ci scale on the synthetic world: it decodes, and its controls do not.

Trains the world's foundation models once (about 5 minutes on 2 cores, cached for the session),
then the full model and the no-pretraining, no-CLIP ablation (about 2 minutes each).
"""

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from eegbench import config  # noqa: E402
from eegbench.runner import execute  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(cache_dir, ci_runs):
    return {v: execute(config.resolve("dreamdiffusion", variant=v, scale="ci"), out=ci_runs, cache_dir=cache_dir)
            for v in ("default", "no-msm-no-clip")}


def metric(outcome, name):
    return next(m for m in outcome.metrics["metrics"] if m["metric"] == name)


def test_generated_images_are_judged_at_least_three_times_chance(runs):
    nway = metric(runs["default"], "image_nway_top1")
    assert nway["chance"] == pytest.approx(0.1) and nway["n"] >= 100
    assert nway["value"] >= 3 * nway["chance"] and nway["ci"][0] > nway["chance_ci"][1], nway


def test_shuffled_and_noise_eeg_fall_inside_chance(runs):
    nway = metric(runs["default"], "image_nway_top1")
    assert [c["name"] for c in nway["controls"]] == ["shuffled_eeg", "noise_eeg"]
    for control in nway["controls"]:
        assert nway["chance_ci"][0] <= control["value"] <= nway["chance_ci"][1], nway
        assert control["p_vs_control"] < 0.01


def test_full_model_is_ahead_of_no_pretraining_no_clip(runs):
    """Ahead on the same trials. Runs are bit-reproducible now (the same on every fresh clone); with the v2 world
    models the gap is +0.029 [-0.046, +0.102] paired over the 60 test images (Wilcoxon p = 0.29), so the
    ordering is asserted and no significance threshold: at ci the diffusion loss alone learns much of it."""
    per_trial = {v: np.load(o.run_dir / "predictions" / "test.npz")["image_nway_top1/real"] for v, o in runs.items()}
    assert per_trial["default"].mean() > per_trial["no-msm-no-clip"].mean()


def test_block_confound_probe_sits_at_chance_without_drift(runs):
    probe = metric(runs["default"], "probe:block_confound")
    assert probe["chance_ci"][0] <= probe["value"] <= probe["chance_ci"][1] and "warning" not in probe
