"""Wall time of each suite's ci run on one CPU process, before and after a change, side by side.

The base revision (default: the last commit before the one training loop) is checked out into a
temporary git worktree and run from there with this checkout's virtualenv; both sides share the
cache, so the worlds and their foundation models are built once (a first run builds them before
timing). Runs alternate base / head per suite so that load on the machine hits both alike.

    .venv/bin/python scripts/bench_loop.py [--base REV] [--suites smoke,thought2text]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE = "6932078"  # main before train/loop.py
SUITES = ("smoke", "dreamdiffusion", "eegclip", "multitask", "thought2text")


def timed_run(source: Path, suite: str, out: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(source), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "eegbench.cli", "run", "--suite", suite, "--scale", "ci", "--out", str(out),
           "--no-wandb", "--force"]
    start = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=source, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=BASE)
    parser.add_argument("--suites", default=",".join(SUITES))
    args = parser.parse_args()
    os.environ.setdefault("EEGBENCH_CACHE", str(ROOT / ".cache"))
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.base], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            print(f"{'suite (ci, 1 process)':<24} {'base ' + args.base:>14} {'head':>10} {'head / base':>12}")
            for suite in args.suites.split(","):
                timed_run(ROOT, suite, Path(tmp) / "warm")  # builds the world and its models outside the timing
                before = timed_run(base, suite, Path(tmp) / "base-runs")
                after = timed_run(ROOT, suite, Path(tmp) / "head-runs")
                print(f"{suite:<24} {before:>12.1f} s {after:>8.1f} s {after / before:>11.3f}", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=True)


if __name__ == "__main__":
    main()
