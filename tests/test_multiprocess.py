"""Two processes on CPU (gloo, launched by torchrun) against one: gradients, runs, resume, bf16.

Every test first checks that two processes really ran (the count recorded by the process group
itself), so a launcher that silently started two independent runs fails here. Tolerances: gradients
agree to 1e-5 of each tensor's largest entry (all-reduce adds the two halves in another order than
one process does: float32 rounding, nothing else); a BatchNorm model is not expected to match
(each process normalises its own half-batch on CPU, where SyncBatchNorm does not run), so for the
smoke suite what is checked is the bookkeeping (one folder, one index row, one W&B run, every test
trial scored once) and that the score stays inside the one-process run's CI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from eegbench.track.store import Index, Run

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
def torchrun() -> list[str]:
    """torchrun with 2 processes on a free loopback port (its --standalone rendezvous can hang at exit)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
            "--master_port", str(port)]


SMOKE = ["--suite", "smoke", "--scale", "ci", "--set", "stages.classify.epochs=6"]  # the ci world, 119 test trials
DREAM = ["--suite", "dreamdiffusion", "--scale", "ci",
         "--set", 'dataset.world={"classes": 3, "images_per_class": 12, "subjects": 1, "image_size": 16}',
         "--set", "models.synthetic_recipe=tiny",
         "--set", 'stages.msm.encoder_args={"embed_dim": 16, "depth": 1, "heads": 2, "decoder_embed_dim": 16, '
                  '"decoder_depth": 1, "decoder_heads": 2}',
         "--set", "stages.msm.epochs=2", "--set", "stages.msm.batch_size=8", "--set", "stages.generate.epochs=3",
         "--set", "stages.generate.batch_size=8", "--set", "stages.generate.samples=2", "--set", "stages.generate.steps=2"]


def env(cache_dir) -> dict:
    return {**os.environ, "EEGBENCH_CACHE": str(cache_dir), "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}


def eegbench(args: list[str], out: Path, cache_dir, processes: int = 1, **kwargs):
    launcher = torchrun() if processes == 2 else [sys.executable]
    return subprocess.run([*launcher, "-m", "eegbench", "run", *args, "--out", str(out), "--device", "cpu"],
                          env=env(cache_dir), cwd=ROOT, capture_output=True, text=True, timeout=900, **kwargs)


def only_run(out: Path) -> Path:
    runs = sorted(p for p in out.glob("*/*/*") if p.is_dir())
    assert len(runs) == 1, runs
    return runs[0]


def processes_of(run_dir: Path) -> int:
    return json.loads((run_dir / "environment.json").read_text())["runtime"]["processes"]


def scores(run_dir: Path) -> dict:
    return {m["metric"]: m for m in json.loads((run_dir / "metrics.json").read_text())["metrics"]}


def test_one_step_gradients_match_across_processes_and_micro_batches(cache_dir, tmp_path):
    """MAE, diffusion, prefix-LM and gathered InfoNCE: one process at B, two at B/2 each, one at 2 x B/2."""
    from safetensors.torch import load_file

    script = str(ROOT / "tests" / "multiprocess_grads.py")
    for name, cmd in (("one", [sys.executable, script, str(tmp_path / "one")]),
                      ("accum", [sys.executable, script, str(tmp_path / "accum"), "2"]),
                      ("two", [*torchrun(), script, str(tmp_path / "two")])):
        done = subprocess.run(cmd, env=env(cache_dir), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    for case in ("mae", "diffusion", "text", "infonce"):
        meta = {k: json.loads((tmp_path / k / f"{case}.json").read_text()) for k in ("one", "accum", "two")}
        assert meta["two"]["processes"] == 2 and meta["one"]["processes"] == meta["accum"]["processes"] == 1
        reference = load_file(tmp_path / "one" / f"{case}.safetensors")
        assert len(reference) == meta["one"]["trainable"] > 0  # every trainable tensor got a gradient
        # in-batch negatives come from the micro-batch under accumulation: only processes are compared for InfoNCE
        for other in ("two",) if case == "infonce" else ("two", "accum"):
            grads = load_file(tmp_path / other / f"{case}.safetensors")
            for key, g in reference.items():
                scale = float(g.abs().max()) or 1.0
                assert float((grads[key] - g).abs().max()) <= 1e-5 * scale, (case, other, key)
            assert meta[other]["loss"] == pytest.approx(meta["one"]["loss"], rel=1e-5)


def test_msm_and_joint_on_two_processes_match_one(cache_dir, tmp_path):
    """A BatchNorm-free suite: the same selected epochs, checkpoints and metrics as one process."""
    one = eegbench(DREAM, tmp_path / "one", cache_dir)
    assert one.returncode == 0, one.stderr[-3000:]
    two = eegbench(DREAM, tmp_path / "two", cache_dir, processes=2)
    assert two.returncode == 0, two.stderr[-3000:]
    run_one, run_two = only_run(tmp_path / "one"), only_run(tmp_path / "two")
    assert processes_of(run_two) == 2 and processes_of(run_one) == 1
    assert run_one.name == run_two.name  # the same config, the same run id
    for stage in ("msm", "generate"):
        (t1, m1), (t2, m2) = Run(run_one).load_checkpoint(stage), Run(run_two).load_checkpoint(stage)
        assert m1["best_epoch"] == m2["best_epoch"]
        assert [h["epoch"] for h in m1["history"]] == [h["epoch"] for h in m2["history"]]
        for key in t1:
            assert np.allclose(t1[key].numpy(), t2[key].numpy(), rtol=1e-3, atol=1e-4), (stage, key)
    s1, s2 = scores(run_one), scores(run_two)
    assert s1.keys() == s2.keys()
    for name in s1:
        assert s2[name]["n"] == s1[name]["n"]  # every test trial scored exactly once
        assert s2[name]["value"] == pytest.approx(s1[name]["value"], abs=0.02), name
    log = (run_two / "log.txt").read_text()
    assert log.count("generate: epoch 0 ") == 1 and log.count("finished") == 1  # one writer


def test_smoke_suite_on_two_processes_writes_one_run(cache_dir, tmp_path):
    one = eegbench([*SMOKE, "--no-wandb"], tmp_path / "one", cache_dir)
    assert one.returncode == 0, one.stderr[-3000:]
    two = eegbench(SMOKE, tmp_path / "two", cache_dir, processes=2)
    assert two.returncode == 0, two.stderr[-3000:]
    run_dir = only_run(tmp_path / "two")
    assert processes_of(run_dir) == 2
    assert [r["run_id"] for r in Index(tmp_path / "two" / "index.sqlite").runs()] == [run_dir.name]
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1
    assert two.stdout.count("run folder:") == 1  # only the main process prints
    s1, s2 = scores(only_run(tmp_path / "one")), scores(run_dir)
    assert s1.keys() == s2.keys()
    for name in s1:
        assert s2[name]["n"] == s1[name]["n"]
    real = s1["nway_top1"]
    assert real["ci"][0] - 0.05 <= s2["nway_top1"]["value"] <= real["ci"][1] + 0.05
    predictions = np.load(run_dir / "predictions" / "test.npz")
    assert len(predictions["nway_top1/real"]) == s2["nway_top1"]["n"]


def test_a_two_process_run_killed_mid_stage_resumes_to_the_same_result(cache_dir, tmp_path):
    args = [*SMOKE, "--set", "stages.classify.epochs=8", "--no-wandb"]
    whole = eegbench(args, tmp_path / "whole", cache_dir, processes=2)
    assert whole.returncode == 0, whole.stderr[-3000:]
    out = tmp_path / "killed"
    cmd = [*torchrun(), "-m", "eegbench", "run", *args, "--out", str(out), "--device", "cpu"]
    proc = subprocess.Popen(cmd, env=env(cache_dir), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not any("classify: epoch 3 " in p.read_text() for p in out.glob("smoke/default/*/log.txt")):
        assert proc.poll() is None and time.time() < deadline, "the run ended or stalled before epoch 3"
        time.sleep(0.05)
    import psutil

    for victim in [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]:
        victim.send_signal(signal.SIGKILL)  # the launcher and both workers, with no clean-up
    proc.wait()
    psutil.wait_procs(psutil.Process().children(recursive=True), timeout=0)
    assert Run(only_run(out)).status == "running"
    resumed = eegbench(args, out, cache_dir, processes=2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    run_dir = only_run(out)
    assert processes_of(run_dir) == 2
    log = (run_dir / "log.txt").read_text()
    assert "classify: resuming after epoch" in log and log.count("classify: selected epoch") == 1
    a, b = Run(only_run(tmp_path / "whole")).load_checkpoint("classify"), Run(run_dir).load_checkpoint("classify")
    assert a[1]["best_epoch"] == b[1]["best_epoch"] and a[1]["history"] == b[1]["history"]
    assert all(np.array_equal(a[0][k].numpy(), b[0][k].numpy()) for k in a[0])


def test_bf16_runs_end_to_end_on_cpu(cache_dir, tmp_path):
    """A smoke check of the bf16 path (autocast, fp32 master weights) through msm and joint, not an accuracy claim."""
    done = eegbench([*DREAM, "--precision", "bf16", "--no-wandb"], tmp_path, cache_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = only_run(tmp_path)
    assert json.loads((run_dir / "environment.json").read_text())["runtime"]["precision"] == "bf16"
    assert all(np.isfinite(m["value"]) for m in scores(run_dir).values())
