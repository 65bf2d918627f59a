"""eegbench check: references written deliberately, a clean rerun passes, a broken metric or a leaking
control fails with a table, and the tolerance follows the CIs."""

import json

import numpy as np
import pytest

from eegbench import registry
from eegbench.errors import UserError
from eegbench.track import check

TINY = ["--set", 'dataset.world={"classes": 4, "images_per_class": 36, "subjects": 2, "snr": 0.5}', "--set", "stages.classify.epochs=10"]


def test_a_reference_holds_the_mean_the_seed_spread_and_the_trial_level_error_of_its_seeds():
    def run(seed, value, half):
        return {"suite": "s", "variant": "default", "scale": "ci", "seed": seed, "run_id": f"r{seed}", "metrics": [
            {"metric": "m", "split": "test", "value": value, "ci": [value - half, value + half], "higher_is_better": True,
             "controls": [{"name": "c", "value": 0.1, "ci": None}]},
            {"metric": "m", "split": "val", "value": 9.0, "ci": [9.0, 9.0], "controls": []}]}

    ref = check.reference([run(0, 0.5, 0.1), run(1, 0.6, 0.2), run(2, 0.7, 0.1)])
    m = ref["metrics"]["m"]
    assert ref["seeds"] == [0, 1, 2] and ref["runs"] == {"0": "r0", "1": "r1", "2": "r2"}
    assert m["value"] == pytest.approx(0.6) and m["seed_values"] == [0.5, 0.6, 0.7]
    assert m["seed_sd"] == pytest.approx(0.1)  # sample SD over the seeds
    assert m["se"] == pytest.approx(np.sqrt((0.1**2 + 0.2**2 + 0.1**2) / 3) / 1.959964)
    c = m["controls"]["c"]
    assert c["value"] == pytest.approx(0.1) and c["seed_sd"] == pytest.approx(0.0) and c["se"] == 0.0  # no CI: 0


def test_tolerance_is_bonferroni_z_times_the_trial_and_seed_standard_error():
    ref = {"suite": "s", "seeds": [0, 1, 2], "metrics": {"m": {
        "value": 0.5, "se": 0.04, "seed_sd": 0.05, "higher_is_better": True,
        "controls": {"c": {"value": 0.1, "se": 0.04, "seed_sd": 0.0}}}}}
    new = {"seeds": [3], "metrics": {"m": {"value": 0.3, "se": 0.04, "higher_is_better": True,
                                           "controls": {"c": {"value": 0.15, "se": 0.04}}}}}
    rows = check.judge(check.comparisons(ref, new))
    z = 2.241403  # two-sided 5% over 2 comparisons
    assert rows[0]["tolerance"] == pytest.approx(z * np.sqrt(0.04**2 + 0.04**2 + 0.05**2 * (1 / 3 + 1)), rel=1e-4)
    # seeds that agree exactly still count the trial-level error as their spread
    assert rows[1]["tolerance"] == pytest.approx(z * np.sqrt(0.04**2 + 0.04**2 + 0.04**2 * (1 / 3 + 1)), rel=1e-4)
    assert [r["status"] for r in rows] == ["regressed", "ok"]  # 0.2 lower > 0.18; the control rose 0.05 < 0.16
    ref["metrics"]["m"]["seed_sd"] = 0.12  # seeds that spread this much cover the fall
    assert check.judge(check.comparisons(ref, new))[0]["status"] == "ok"
    rows = check.judge(check.comparisons(ref, {"metrics": {}}))
    assert [r["status"] for r in rows] == ["missing", "missing"]


def test_a_reference_without_seeds_is_refused_with_the_command_that_rewrites_it(tmp_path):
    (tmp_path / "smoke.ci.reference.json").write_text(json.dumps({"suite": "smoke", "run_id": "x", "metrics": {}}))
    with pytest.raises(UserError, match=r"smoke\.ci\.reference\.json: a one-seed reference .* rewrite it with "
                                        r"`eegbench check --suite smoke --scale ci --update`"):
        check.load_reference(tmp_path, "smoke", "ci")


@pytest.mark.slow
def test_check_passes_when_clean_and_fails_on_a_broken_metric(tmp_path, cache_dir, monkeypatch, capsys):
    from test_cli import invoke

    refs = ["--suite", "smoke", "--scale", "ci", "--refs", str(tmp_path), *TINY]
    code, out, err = invoke(monkeypatch, capsys, "check", "--suite", "smoke", "--scale", "ci", "--refs", str(tmp_path / "none"))
    assert code == 2 and "no reference figures for smoke at ci" in err and "--update" in err  # before running anything
    store = ["--out", str(tmp_path / "runs")]
    code, out, _ = invoke(monkeypatch, capsys, "check", "--update", "--seeds", "0,1", *refs, *store)
    saved = json.loads((tmp_path / "smoke.ci.reference.json").read_text())
    assert code == 0 and set(saved["metrics"]) == {"nway_top1", "probe:block_confound"} and saved["seeds"] == [0, 1]
    assert len(set(saved["metrics"]["nway_top1"]["seed_values"])) == 2  # two seeds, two trainings
    code, out, _ = invoke(monkeypatch, capsys, "check", *refs, *store, "--reuse")  # the finished run, not retrained
    assert code == 0 and "is compared" in out and "check passed" in out, out
    code, out, _ = invoke(monkeypatch, capsys, "check", *refs, *store, "--seeds", "2")  # a seed the reference never saw
    assert code == 0 and "check passed at seed 2" in out, out

    real = registry.evaluations.get("nway_top1")

    def broken(predictions, ctx=None):  # scores against the next class's label: a deliberately broken metric
        return real({**predictions, "label": (predictions["label"] + 1) % 4}, ctx)

    broken.reads, broken.higher_is_better = real.reads, real.higher_is_better
    monkeypatch.setattr(registry.evaluations._entries["nway_top1"], "obj", broken)
    code, out, _ = invoke(monkeypatch, capsys, "check", *refs)
    assert code == 1 and "regressions" in out and "nway_top1" in out and "regressed" in out, out
