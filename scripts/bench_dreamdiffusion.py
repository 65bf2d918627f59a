"""Time ``eegbench run --suite dreamdiffusion --scale ci`` with the world's models cached, and their one-off cost.

Run: ``.venv/bin/python scripts/bench_dreamdiffusion.py [--scale ci] [--variant default]``. Uses the
cache folder (``$EEGBENCH_CACHE``, default ``.cache``) so the synthetic world and its foundation
models are built at most once; the run itself goes to a temporary store and is always fresh.
Prints the one-off seconds of each foundation model (from their ``done.json``), the run's wall
time (budget at ci: 5 minutes), the seconds of each phase read from the run's log, and the
headline metric beside its controls. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("EEGBENCH_CACHE", str(ROOT / ".cache"))
sys.path.insert(0, str(ROOT))


def prepare(scale: str, variant: str) -> None:
    """Build (or find) the world and its foundation models; print their one-off training seconds."""
    from eegbench import config, paths, registry
    from eegbench.models.pretrained import resolve_folders

    paths.configure_environment()
    cfg = config.resolve("dreamdiffusion", scale=scale, variant=variant)
    dataset = registry.datasets.get("imagenet-eeg")(cfg.dataset, paths.cache_dir())
    folders = resolve_folders(cfg, dataset.prepare, {"sd", "clip", "judge"}, paths.cache_dir())
    for name, folder in sorted(folders.items()):
        done = json.loads((folder / "done.json").read_text())
        print(f"one-off: synthetic {name:<5} trained in {done['seconds']:7.1f} s  ({folder})")


LANDMARKS = (("start", "run "), ("msm", "msm: selected"), ("msm", "msm: 0 epochs"),
             ("generate (train)", "generate: selected"), ("sample + score", "finished"))


def phases(log: Path, landmarks=LANDMARKS) -> list[tuple[str, float]]:
    """Seconds between a run log's ``(label, line prefix)`` landmarks (default: start, msm done,
    generate trained, finished)."""
    stamps = []
    for line in log.read_text().splitlines():
        try:
            when, message = datetime.strptime(line[:19], "%Y-%m-%d %H:%M:%S"), line[20:]
        except ValueError:  # a continuation line
            continue
        for label, prefix in landmarks:
            if message.startswith(prefix):
                stamps.append((label, when))
    return [(label, (when - stamps[i][1]).total_seconds()) for i, (label, when) in enumerate(stamps[1:])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="ci")
    parser.add_argument("--variant", default="default")
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    prepare(args.scale, args.variant)
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "eegbench.cli", "run", "--suite", "dreamdiffusion", "--scale", args.scale,
               "--variant", args.variant, "--out", out, "--no-wandb"]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
        seconds = time.perf_counter() - start
        run_dir = next(Path(out).glob(f"dreamdiffusion/{args.variant}/*"))
        print(f"eegbench run --suite dreamdiffusion --scale {args.scale} --variant {args.variant}: {seconds:.1f} s "
              "(world and foundation models cached)")
        for label, secs in phases(run_dir / "log.txt"):
            print(f"  {label:<17} {secs:6.0f} s")
        metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
        for m in metrics:
            controls = ", ".join(f"{c['name']} {c['value']:.3f}" for c in m["controls"]) or "-"
            print(f"  {m['metric']:<24} {m['value']:.3f} [{m['ci'][0]:.3f}, {m['ci'][1]:.3f}]  "
                  f"controls: {controls}  chance {m['chance']:.3f}")


if __name__ == "__main__":
    main()
