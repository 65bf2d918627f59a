"""Print the foundation's speed figures: CLI start-up, a ci smoke run, and array-cache loading.

Run with ``make bench``. Figures are wall-clock seconds on this machine; nothing is asserted.
The full-size synthetic ImageNet-EEG (40 classes x 50 images x 6 subjects, ~12,000 trials, ~3 GB)
is generated once into the cache folder and reused by later runs of this script.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EEGBENCH = [sys.executable, "-m", "eegbench.cli"]


def wall(cmd: list[str], env: dict | None = None, repeat: int = 1) -> float:
    """Best wall time of ``repeat`` runs of ``cmd`` (which must succeed)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=ROOT)
        best = min(best, time.perf_counter() - start)
    return best


def cli_startup() -> None:
    for args in (["--help"], ["list"]):
        probe = ("import sys; sys.argv=['eegbench', *%r]; from eegbench.cli import app\n"
                 "try: app()\nexcept SystemExit: pass\nprint('torch' in sys.modules)" % (args,))
        torch_loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT).stdout.split()[-1]
        print(f"eegbench {' '.join(args):<8} {wall(EEGBENCH + args, repeat=3):6.2f} s  (torch imported: {torch_loaded})")


def smoke_run() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "EEGBENCH_CACHE": f"{tmp}/cache"}
        cmd = EEGBENCH + ["run", "--suite", "smoke", "--scale", "ci", "--out", f"{tmp}/runs"]
        cold = wall(cmd, env)
        warm = wall(cmd + ["--force"], env)
    print(f"smoke --scale ci   {cold:6.1f} s  from nothing (world generation included); "
          f"{warm:5.1f} s with the world cached (budget 60 s)")


def array_cache() -> None:
    import numpy as np
    import torch

    from eegbench import paths
    from eegbench.data.imagenet_eeg import load
    from eegbench.synthetic.imagenet_eeg import WorldSpec, ensure

    paths.configure_environment()
    cache = paths.cache_dir()
    spec = WorldSpec(classes=40, images_per_class=50, subjects=6)
    start = time.perf_counter()
    root = ensure(spec, cache)
    print(f"full-size world    {time.perf_counter() - start:6.1f} s to generate or find ({root.name})")

    start = time.perf_counter()
    raw = torch.load(root / "eeg_5_95_std.pth", weights_only=True)
    n = len(raw["dataset"])
    plain = time.perf_counter() - start
    del raw
    load(root, cache_dir=cache)  # builds the array cache on first use
    start = time.perf_counter()
    trials = load(root, cache_dir=cache)
    total = float(np.asarray(trials.eeg).sum())  # read every sample, not just map the file
    cached = time.perf_counter() - start
    assert np.isfinite(total)
    print(f"plain torch.load   {plain:6.2f} s  {n / plain:9.0f} trials/s  ({n} trials)")
    speedup = (len(trials.label) / cached) / (n / plain)
    print(f"array cache load   {cached:6.2f} s  {len(trials.label) / cached:9.0f} trials/s  "
          f"({len(trials.label)} trials after the length filter, all samples read; {speedup:.1f}x)")


if __name__ == "__main__":
    cli_startup()
    smoke_run()
    array_cache()
