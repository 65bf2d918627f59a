"""eegbench check: references written deliberately, a clean rerun passes, a broken metric or a leaking
control fails with a table, and the tolerance follows the CIs."""

import json

import numpy as np
import pytest

from eegbench import registry
from eegbench.track import check

pytestmark = pytest.mark.slow

TINY = ["--set", 'dataset.world={"classes": 4, "images_per_class": 36, "subjects": 2, "snr": 0.5}', "--set", "stages.classify.epochs=10"]


def test_tolerance_is_bonferroni_z_times_the_pooled_standard_error():
    ref = {"suite": "s", "metrics": {"m": {"value": 0.5, "ci": [0.4, 0.6], "controls": {"c": {"value": 0.1, "ci": [0.0, 0.2]}}}}}
    new = {"metrics": {"m": {"value": 0.3, "ci": [0.2, 0.4], "controls": {"c": {"value": 0.15, "ci": [0.05, 0.25]}}}}}
    rows = check.judge(check.comparisons(ref, new))
    se = np.hypot(0.1 / 1.959964, 0.1 / 1.959964)
    z = 2.241403  # two-sided 5% over 2 comparisons
    assert rows[0]["tolerance"] == pytest.approx(z * se, rel=1e-4)
    assert [r["status"] for r in rows] == ["regressed", "ok"]  # 0.2 lower > 0.16; the control rose 0.05 < 0.16
    rows = check.judge(check.comparisons(ref, {"metrics": {}}))
    assert [r["status"] for r in rows] == ["missing", "missing"]


def test_check_passes_when_clean_and_fails_on_a_broken_metric(tmp_path, cache_dir, monkeypatch, capsys):
    from test_cli import invoke

    refs = ["--suite", "smoke", "--scale", "ci", "--refs", str(tmp_path), *TINY]
    code, out, err = invoke(monkeypatch, capsys, "check", "--suite", "smoke", "--scale", "ci", "--refs", str(tmp_path / "none"))
    assert code == 2 and "no reference figures for smoke at ci" in err and "--update" in err  # before running anything
    store = ["--out", str(tmp_path / "runs")]
    code, out, _ = invoke(monkeypatch, capsys, "check", "--update", *refs, *store)
    saved = json.loads((tmp_path / "smoke.ci.reference.json").read_text())
    assert code == 0 and set(saved["metrics"]) == {"nway_top1", "probe:block_confound"}
    code, out, _ = invoke(monkeypatch, capsys, "check", *refs, *store, "--reuse")  # the finished run, not retrained
    assert code == 0 and "is compared" in out and "check passed" in out, out

    real = registry.evaluations.get("nway_top1")

    def broken(predictions, ctx=None):  # scores against the next class's label: a deliberately broken metric
        return real({**predictions, "label": (predictions["label"] + 1) % 4}, ctx)

    broken.reads, broken.higher_is_better = real.reads, real.higher_is_better
    monkeypatch.setattr(registry.evaluations._entries["nway_top1"], "obj", broken)
    code, out, _ = invoke(monkeypatch, capsys, "check", *refs)
    assert code == 1 and "regressions" in out and "nway_top1" in out and "regressed" in out, out
