"""Optuna sweeps: validation-only objectives, two workers sharing one SQLite or PostgreSQL study with every
trial finished once, resuming a study, and the best trial exported as a runnable variant."""

import os
import subprocess
import sys
import uuid

import pytest
import yaml

from eegbench import config, sweeps
from eegbench.errors import UserError

pytestmark = pytest.mark.slow

TINY = {"dataset.world": {"classes": 3, "images_per_class": 6, "subjects": 1, "image_size": 16},
        "stages.classify.epochs": 4, "stages.classify.batch_size": 8, "probes": []}


def sweep_file(tmp_path, name="tiny", trials=10, **extra):
    spec = {"sweep": name, "suite": "smoke", "scale": "ci", "trials": trials, "set": TINY,
            "space": {"stages.classify.lr": {"float": [1.0e-4, 1.0e-2], "log": True},
                      "stages.classify.embed_dim": {"choices": [16, 32]}},
            "objective": {"stage": "classify", "key": "val_bacc"},
            "pruner": {"kind": "median", "startup_trials": 2, "warmup_epochs": 1}, **extra}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def workers(path, out, cache_dir, storage=None, count=2):
    """``count`` concurrent ``eegbench sweep`` processes on one study; their exit codes."""
    cmd = [sys.executable, "-m", "eegbench.cli", "sweep", str(path), "--out", str(out)] + (["--storage", storage] if storage else [])
    env = {**os.environ, "EEGBENCH_CACHE": str(cache_dir)}
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(count)]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * count, outputs
    return outputs


def check_study(spec_path, out, storage=None):
    import optuna
    from optuna.trial import TrialState

    from eegbench.track.store import TRAINED, Run

    spec = sweeps.load(spec_path)
    folder = out / "sweeps" / spec.sweep
    study = optuna.load_study(study_name=spec.sweep, storage=sweeps.storage(storage, folder))
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(done) == spec.trials, [t.state for t in trials]  # every trial finished once, none lost
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    for t in done:
        assert t.intermediate_values, t.number  # each epoch's validation score reached the pruner
        run = next((folder / "trials").glob(f"smoke/default/{t.user_attrs['run_id']}"))
        assert not (run / "predictions").exists() and not (run / "metrics.json").exists()  # test never scored
        if t.state == TrialState.COMPLETE:
            assert Run(run).status == TRAINED
    best = folder / "best.yaml"
    variant = f"sweep-{spec.sweep}"
    cfg = config.resolve(str(best), variant=variant, scale="ci")
    assert cfg.stages["classify"]["lr"] == pytest.approx(study.best_trial.params["stages.classify.lr"])
    assert (folder / "optimization_history.png").is_file() and (folder / "param_importances.png").is_file()
    return study


def test_two_workers_share_one_sqlite_study(tmp_path, cache_dir):
    path = sweep_file(tmp_path)
    outputs = workers(path, tmp_path / "runs", cache_dir)
    assert all("best trial" in o for o in outputs)
    check_study(path, tmp_path / "runs")


def test_two_workers_share_one_postgresql_study(tmp_path, cache_dir):
    url = os.environ.get("EEGBENCH_TEST_POSTGRES")
    if not url:
        if os.environ.get("EEGBENCH_REQUIRE_POSTGRES"):  # .ci/run starts a server: missing there is a failure
            pytest.fail("EEGBENCH_TEST_POSTGRES is not set")
        pytest.skip("no PostgreSQL server (set EEGBENCH_TEST_POSTGRES=postgresql://USER:PASSWORD@HOST/DB)")
    path = sweep_file(tmp_path, name=f"pg-{uuid.uuid4().hex[:8]}")  # a fresh study in a shared database
    workers(path, tmp_path / "runs", cache_dir, storage=url)
    check_study(path, tmp_path / "runs", storage=url)


def test_a_stopped_sweep_resumes_its_study(tmp_path, cache_dir):
    path = sweep_file(tmp_path, name="resume", trials=2, pruner={"kind": "none"})
    spec = sweeps.load(path)
    first = sweeps.run(spec, out=tmp_path / "runs", cache_dir=cache_dir)
    assert first["states"] == {"COMPLETE": 2}
    spec.trials = 3
    second = sweeps.run(spec, out=tmp_path / "runs", cache_dir=cache_dir)
    assert second["states"] == {"COMPLETE": 3}


@pytest.mark.parametrize("change, message", [
    ({"objective": {"stage": "classify", "key": "test_acc"}}, r"objective\.key: String should match pattern '\^val_'"),
    ({"objective": {"stage": "pretrain", "key": "val_bacc"}}, r"objective\.stage 'pretrain' is not a stage of smoke"),
    ({"space": {"stages.classify.lr": {"float": [1e-4, 1e-2], "choices": [1]}}}, r"space\.stages\.classify\.lr: .*exactly one"),
    ({"space": {"stages.classify.lrr": {"float": [1e-4, 1e-2]}}}, r"stages\.classify\.lrr: unknown key; did you mean 'lr'"),
    ({"trails": 3}, r"trails: Extra inputs are not permitted"),
])
def test_a_bad_sweep_file_is_one_line_naming_the_key(tmp_path, change, message):
    with pytest.raises(UserError, match=message):
        sweeps.load(sweep_file(tmp_path, **change))
