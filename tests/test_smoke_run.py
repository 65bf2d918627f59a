"""End to end: the smoke suite at ci scale trains, selects on val, and beats its control."""

import json

import numpy as np
import pytest

from eegbench.runner import execute
from eegbench.track.store import Index, Run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished(ci_smoke, cache_dir, ci_runs):
    return execute(ci_smoke, out=ci_runs, cache_dir=cache_dir, wandb="offline"), ci_runs


def test_decodes_far_above_chance_and_controls_sit_at_chance(finished):
    outcome, _ = finished
    metric, probe = outcome.metrics["metrics"]
    assert metric["metric"] == "nway_top1" and metric["split"] == "test"
    assert metric["ci"][0] > 2 * metric["chance"], metric          # far above chance, CI included
    assert metric["ci"][0] > metric["chance_ci"][1], metric
    assert [c["name"] for c in metric["controls"]] == ["shuffled_eeg", "noise_eeg"]
    for control in metric["controls"]:
        assert metric["chance_ci"][0] <= control["value"] <= metric["chance_ci"][1], metric
        assert control["p_vs_control"] < 0.01
    assert probe["metric"] == "probe:block_confound" and "warning" not in probe
    assert probe["chance_ci"][0] <= probe["value"] <= probe["chance_ci"][1], probe


def test_a_block_drift_world_makes_the_run_warn(cache_dir, tmp_path):
    from eegbench import config

    cfg = config.resolve("smoke", variant="block-drift", scale="ci", overrides={"stages.classify.epochs": 1})
    probe = execute(cfg, out=tmp_path, cache_dir=cache_dir).metrics["metrics"][-1]
    assert probe["metric"] == "probe:block_confound" and probe["value"] > 0.8
    assert "confound-only features" in probe["warning"]


def test_run_folder_holds_everything_a_reader_needs(finished):
    outcome, out = finished
    names = {p.relative_to(outcome.run_dir).as_posix() for p in outcome.run_dir.rglob("*")}
    assert {"config.yaml", "environment.json", "metrics.json", "run.json", "log.txt",
            "checkpoints/classify.safetensors", "predictions/test.npz"} <= names
    assert not any(n.endswith(".resume.safetensors") or ".tmp-" in n for n in names)
    env = json.loads((outcome.run_dir / "environment.json").read_text())
    assert env["packages"]["torch"].startswith("2.11.0") and env["device"] == "cpu"
    assert env["reproducibility"]["deterministic_algorithms"] is True and env["torch_threads"] >= 1
    _, meta = Run(outcome.run_dir).load_checkpoint("classify")
    assert meta["selected_on"] == "val"
    assert [r["run_id"] for r in Index(out / "index.sqlite").runs("smoke")] == [outcome.run_dir.name]
    assert len(list(outcome.run_dir.glob("wandb/offline-run-*/run-*.wandb"))) == 1  # W&B offline, in the run folder


def test_finished_run_is_reused(finished, ci_smoke, cache_dir):
    outcome, out = finished
    again = execute(ci_smoke, out=out, cache_dir=cache_dir)
    assert again.reused and again.metrics == outcome.metrics


def test_interrupted_run_resumes_to_the_same_metrics(finished, ci_smoke, cache_dir, tmp_path, monkeypatch):
    """Kill training after epoch 3 (before its checkpoint), rerun: it resumes and matches exactly."""
    outcome, _ = finished
    real_log = Run.log

    def dying_log(self, message):
        real_log(self, message)
        if "epoch 3 " in message:
            raise KeyboardInterrupt

    monkeypatch.setattr(Run, "log", dying_log)
    with pytest.raises(KeyboardInterrupt):
        execute(ci_smoke, out=tmp_path, cache_dir=cache_dir)
    monkeypatch.setattr(Run, "log", real_log)
    run_dir = tmp_path / "smoke" / "default" / ci_smoke.hash()
    assert Run(run_dir).status == "running" and Run(run_dir).checkpoint_path("classify", resume=True).exists()

    resumed = execute(ci_smoke, out=tmp_path, cache_dir=cache_dir)
    assert "resuming after epoch 2" in (run_dir / "log.txt").read_text()
    strip = lambda m: {k: v for k, v in m.items() if k != "path"}
    assert strip(resumed.metrics) == strip(outcome.metrics)
    with np.load(run_dir / "predictions" / "test.npz") as a, np.load(outcome.run_dir / "predictions" / "test.npz") as b:
        assert all(np.array_equal(a[k], b[k]) for k in a.files)


def test_a_run_killed_mid_training_resumes_and_records_exactly_one_result(cache_dir, tmp_path):
    """SIGKILL mid-training (no clean-up runs), then the same command again: it resumes from the last epoch
    and the index holds one run with one row per metric."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "eegbench.cli", "run", "--suite", "smoke", "--scale", "ci", "--out", str(out),
           "--no-wandb", "--set", 'dataset.world={"classes": 3, "images_per_class": 12, "subjects": 1}',
           "--set", "stages.classify.epochs=25", "--set", "stages.classify.batch_size=8"]
    env = {**os.environ, "EEGBENCH_CACHE": str(cache_dir)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while not any("classify: epoch 3 " in p.read_text() for p in out.glob("smoke/default/*/log.txt")):
        assert proc.poll() is None and time.time() < deadline, "the run ended or stalled before epoch 3"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    run_dir = next(out.glob("smoke/default/*"))
    assert Run(run_dir).status == "running" and not (run_dir / "metrics.json").exists()
    assert not (out / "index.sqlite").exists() or not Index(out / "index.sqlite").runs()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    log = (run_dir / "log.txt").read_text()
    assert "classify: resuming after epoch" in log and log.count("classify: selected epoch") == 1
    index = Index(out / "index.sqlite")
    assert [r["run_id"] for r in index.runs()] == [run_dir.name]
    names = [s["metric"] for s in index.scores("smoke")]
    assert sorted(names) == sorted(set(names)) == ["nway_top1", "probe:block_confound"]
