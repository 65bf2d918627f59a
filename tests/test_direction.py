"""Every evaluation declares whether higher is better, and everything downstream follows it: the summary
rows, the p-values against controls, the leaderboard's Borda rank and marks, `eegbench check` and the
compare verdicts. A lower-is-better toy metric (an error rate) registered here stands beside n-way top-1."""

import json
import sqlite3
from types import SimpleNamespace

import numpy as np
import pytest

from eegbench import config, registry
from eegbench.errors import UserError
from eegbench.evaluate.context import EvalContext, evaluation
from eegbench.evaluate.report import metric_record
from eegbench.registry import Entry
from eegbench.runner import execute, score
from eegbench.track import check, compare, leaderboard
from eegbench.track.store import Index, Run


@evaluation("logits", higher_is_better=False)
def error_rate(predictions: dict, ctx=None) -> dict:
    """Per-trial misclassification: lower is better."""
    logits = np.asarray(predictions["logits"])
    wrong = (logits.argmax(axis=1) != np.asarray(predictions["label"])).astype(float)
    return {"per_trial": wrong, "chance": 1 - 1 / logits.shape[1], "definition": "toy"}


def test_every_registered_evaluation_declares_a_direction():
    undeclared = [e.name for e in registry.evaluations
                  if not isinstance(getattr(registry.evaluations.get(e.name), "higher_is_better", None), bool)]
    assert undeclared == []


def test_a_run_refuses_an_evaluation_without_a_direction_before_anything(monkeypatch, tmp_path, cache_dir):
    @evaluation("logits")
    def undeclared(predictions, ctx=None):
        raise AssertionError("never scored")

    monkeypatch.setitem(registry.evaluations._entries, "undeclared", Entry("undeclared", obj=undeclared))
    cfg = config.resolve("smoke", scale="ci", overrides={"evaluate": ["undeclared"]})
    with pytest.raises(UserError, match=r"^evaluation 'undeclared' declares no direction; pass higher_is_better=True "
                                        r"or False to its @evaluation\(\.\.\.\) decorator$"):
        execute(cfg, out=tmp_path / "runs", cache_dir=cache_dir)
    assert not (tmp_path / "runs").exists()


@pytest.fixture()
def scored(tmp_path):
    """``runner.score`` on 200 trials whose first channels encode the label: top-1 and the error rate, each
    against shuffled EEG."""
    rng = np.random.default_rng(0)
    label = rng.integers(0, 4, 200)
    eeg = (rng.normal(0, 0.6, (200, 4, 1)) + np.eye(4)[label][:, :, None]).astype(np.float32)
    data = SimpleNamespace(eeg=eeg, label=label)
    stage = SimpleNamespace(predict=lambda model, x: {"logits": np.asarray(x)[:, :, 0]})
    cfg = SimpleNamespace(controls=["shuffled_eeg"], evaluation_args={}, probes=[], seed=0)
    ctx = EvalContext(data, np.arange(200), None, 0)
    evaluations = {"nway_top1": registry.evaluations.get("nway_top1"), "error_rate": error_rate}
    return {m["metric"]: m for m in score(cfg, stage, None, data, Run(tmp_path / "run"), ctx, evaluations)}


def test_rows_carry_direction_and_definition_and_p_values_follow_the_direction(scored):
    top1, error = scored["nway_top1"], scored["error_rate"]
    assert (top1["higher_is_better"], top1["definition"]) == (True, "top-1")
    assert (error["higher_is_better"], error["definition"]) == (False, "toy")
    assert error["value"] == pytest.approx(1 - top1["value"]) and error["value"] < 0.3
    for m in (top1, error):
        assert m["controls"][0]["p_vs_control"] < 0.001, m  # real decoding: above (top-1) / below (error) shuffled
    assert error["controls"][0]["gap"] < -0.4 and error["controls"][0]["gap_ci"][1] < 0  # real minus control


def test_the_p_value_of_a_lower_is_better_metric_flips_with_the_declared_direction():
    rng = np.random.default_rng(1)
    real = (rng.random(300) < 0.2).astype(float)  # errors
    control = (rng.random(300) < 0.7).astype(float)
    scored, ctrl = {"per_trial": real, "chance": 0.75}, {"shuffled": {"per_trial": control}}
    lower = metric_record("err", "test", scored, ctrl, seed=0, higher_is_better=False)["controls"][0]["p_vs_control"]
    as_if_higher = metric_record("err", "test", scored, ctrl, seed=0)["controls"][0]["p_vs_control"]
    assert lower < 0.001 and as_if_higher > 0.999


def summary(run_id, variant, values, root, controls=None):
    """A finished run's summary: ``values`` {metric: value}; the error rate is lower-is-better."""
    metrics = []
    for name, value in values.items():
        control = (controls or {}).get(name, 0.25 if name == "nway_top1" else 0.75)
        gap = value - control
        metrics.append({"metric": name, "split": "test", "n": 100, "value": value, "ci": [value - 0.03, value + 0.03],
                        "chance": 0.25 if name == "nway_top1" else 0.75, "chance_ci": [0.2, 0.3],
                        "higher_is_better": name != "error_rate", "definition": "top-1" if name == "nway_top1" else "toy",
                        "controls": [{"name": "shuffled_eeg", "value": control, "ci": [control - 0.03, control + 0.03],
                                      "gap": gap, "gap_ci": [gap - 0.02, gap + 0.02], "p_vs_control": 0.01}]})
    return {"run_id": run_id, "suite": "smoke", "variant": variant, "scale": "ci", "seed": 0,
            "path": str(root / run_id), "config": {**config.resolve("smoke", scale="ci").model_dump(), "variant": variant},
            "metrics": metrics}


def test_borda_ranks_and_control_marks_follow_each_metrics_direction(tmp_path):
    index = Index(tmp_path / "index.sqlite")
    for variant, top1, error in (("good", 0.9, 0.1), ("mid", 0.7, 0.3), ("bad", 0.4, 0.6)):
        controls = {"error_rate": 0.05} if variant == "bad" else None  # bad's control errs less than it: not beaten
        index.record(summary(variant, variant, {"nway_top1": top1, "error_rate": error}, tmp_path, controls))
    part = leaderboard.build(index, "smoke").scales["ci"]
    ranking = {r["variant"]: (r["rank"], r["borda"]) for r in part["ranking"]}
    assert ranking == {"good": (1, 4.0), "mid": (2, 2.0), "bad": (3, 0.0)}  # ignoring the direction would tie all three
    rows = {(r["variant"], r["metric"]): r for r in part["rows"]}
    assert rows[("good", "error_rate")]["not_beaten"] == [] and rows[("bad", "error_rate")]["not_beaten"] == ["shuffled_eeg"]
    cells = leaderboard._cells(rows[("good", "error_rate")])
    assert cells["metric"] == "error_rate (lower is better)" and cells["definition"] == "toy"
    assert leaderboard._cells(rows[("good", "nway_top1")])["metric"] == "nway_top1"


def test_an_index_from_before_directions_is_migrated_and_old_runs_read_higher_is_better(tmp_path):
    path = tmp_path / "index.sqlite"
    with sqlite3.connect(path) as db:  # the schema before scores had a direction and a definition
        db.executescript(Index.SCHEMA.replace(" higher_is_better INTEGER, definition TEXT,", ""))
    new, old = summary("new", "good", {"error_rate": 0.1}, tmp_path), summary("old", "mid", {"error_rate": 0.3}, tmp_path)
    for m in old["metrics"]:
        del m["higher_is_better"], m["definition"]
    for s in (new, old):
        Run(tmp_path / s["run_id"]).write_json("metrics.json", s)
        with sqlite3.connect(path) as db:
            db.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?)", (s["run_id"], "smoke", s["variant"], "ci", 0,
                                                                     s["path"], 1.0, json.dumps(s["config"])))
    scores = {s["run_id"]: s for s in Index(path).scores("smoke")}
    assert (scores["new"]["higher_is_better"], scores["new"]["definition"]) == (0, "toy")
    assert (scores["old"]["higher_is_better"], scores["old"]["definition"]) == (1, None)


def test_check_regresses_on_a_rise_of_a_lower_is_better_metric_and_on_its_falling_control(tmp_path):
    ref = check.reference([summary("r", "default", {"nway_top1": 0.8, "error_rate": 0.2}, tmp_path)])
    assert ref["metrics"]["error_rate"]["higher_is_better"] is False

    def statuses(top1, error, error_control):
        new = check.reference([summary("n", "default", {"nway_top1": top1, "error_rate": error}, tmp_path,
                                       {"error_rate": error_control})])
        return {r["what"]: r["status"] for r in check.judge(check.comparisons(ref, new))}

    assert set(statuses(0.8, 0.2, 0.75).values()) == {"ok"}
    assert statuses(0.8, 0.05, 0.75)["error_rate"] == "ok"  # fewer errors is not a regression
    assert statuses(0.8, 0.4, 0.75)["error_rate"] == "regressed"
    assert statuses(0.8, 0.2, 0.4)["error_rate [shuffled_eeg]"] == "regressed"  # the control's error fell: a leak
    assert statuses(0.6, 0.2, 0.75)["nway_top1"] == "regressed"  # higher-is-better unchanged
    assert statuses(0.8, 0.2, 0.9)["error_rate [shuffled_eeg]"] == "ok"


def test_compare_names_the_lower_side_the_winner_of_a_lower_is_better_metric(tmp_path):
    side = {"label": "A", "runs": [summary("a", "v", {"error_rate": 0.4, "nway_top1": 0.6}, tmp_path)], "by": "trial"}
    assert compare.higher_is_better(side, "error_rate") is False and compare.higher_is_better(side, "nway_top1") is True
    rng = np.random.default_rng(2)
    a, b = (rng.random(200) < 0.4).astype(float), (rng.random(200) < 0.1).astype(float)  # A errs more often
    result = compare.paired_test(a, b)
    assert compare.verdict("error_rate", result, "A", "B", "trials", False).startswith("error_rate: B beats A")
    assert compare.verdict("nway_top1", result, "A", "B", "trials").startswith("nway_top1: A beats B")
