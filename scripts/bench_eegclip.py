"""Time TUAB preprocessing (cold and warm) and ``eegbench run --suite eegclip --scale ci``.

Run: ``.venv/bin/python scripts/bench_eegclip.py [--scale ci]``. Also times a Deep4 training step
with dense and with strided outputs (why ci trains strided). The synthetic TUAB tree comes from
the cache folder (``$EEGBENCH_CACHE``, default ``.cache``); preprocessing is timed into an empty
temporary window cache (cold: braindecode reads the tree, recordings are preprocessed in parallel)
and then again from it (warm: no EDF opened). The run goes to a temporary store and is always fresh;
its wall time with world and windows cached (budget at ci: 3 minutes), phases from its log and
headline metrics are printed.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("EEGBENCH_CACHE", str(ROOT / ".cache"))
sys.path.insert(0, str(ROOT))

from bench_dreamdiffusion import phases  # noqa: E402  (scripts/ is on the path when run as a script)


def preprocessing(scale: str) -> None:
    """Recordings per second cold, and the warm run's speed-up."""
    import importlib

    warnings.filterwarnings("ignore", category=FutureWarning)  # braindecode's montage deprecations
    for module in ("braindecode.datasets", "mne"):  # imports are not preprocessing
        importlib.import_module(module)
    from eegbench import config, paths, registry
    from eegbench.data import tuab

    paths.configure_environment()
    cfg = config.resolve("eegclip", scale=scale)
    dataset = registry.datasets.get("tuab")(cfg.dataset, paths.cache_dir())
    root, c = dataset.prepare(), dataset.config
    with tempfile.TemporaryDirectory() as cache:
        seconds = []
        for _ in ("cold", "warm"):
            start = time.perf_counter()
            data = tuab.load(root, version=c.version, recipe=c.recipe, reports=root / "reports", sections=c.sections,
                             label_lines=c.label_lines, val_fraction=c.val_fraction, split_seed=c.split_seed,
                             on_bad_file=c.on_bad_file, cache_dir=Path(cache), n_jobs=c.n_jobs)
            seconds.append(time.perf_counter() - start)
    dataset.load()  # warm the real window cache, so the run below is timed with its data cached
    n = len(data.table)
    print(f"preprocessing {n} recordings ({len(data.eeg)} windows of {data.eeg.shape[1]} x {data.eeg.shape[2]}), "
          f"{os.cpu_count()} cores")
    print(f"  cold: {seconds[0]:6.2f} s = {n / seconds[0]:6.1f} recordings/s")
    print(f"  warm: {seconds[1]:6.2f} s = {n / seconds[1]:6.1f} recordings/s  ({seconds[0] / seconds[1]:.0f}x faster)")


def deep4_steps() -> None:
    """Seconds per training step (batch 64 of 21 x 1200): dense against strided Deep4 outputs."""
    import torch

    from eegbench.models.deep4 import Deep4Encoder

    ci_width = {"n_filters_time": 10, "n_filters_spat": 10, "n_filters_2": 20, "n_filters_3": 40, "n_filters_4": 80}
    x = torch.randn(64, 21, 1200)
    for label, width in (("paper width", {}), ("ci width", ci_width)):
        seconds = []
        for dense in (True, False):
            torch.manual_seed(0)
            model = Deep4Encoder(21, 1200, 128, final_conv_length=2, stride_before_pool=True, dense=dense, **width)
            opt = torch.optim.AdamW(model.parameters())
            for step in range(4):  # the first step warms up
                start = time.perf_counter()
                model(x).pow(2).mean().backward()
                opt.step()
                opt.zero_grad()
                elapsed = time.perf_counter() - start
            seconds.append(elapsed)
        print(f"Deep4 train step, {label}: dense {seconds[0]:.2f} s, strided {seconds[1]:.2f} s "
              f"({seconds[0] / seconds[1]:.1f}x)")


LANDMARKS = (("start", "run "), ("align (train)", "align: kept"),
             ("baselines (train)", "baseline_medication: selected"), ("evaluate", "finished"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="ci")
    args = parser.parse_args()
    preprocessing(args.scale)
    deep4_steps()
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "eegbench.cli", "run", "--suite", "eegclip", "--scale", args.scale,
                        "--out", out, "--no-wandb"], check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
        wall = time.perf_counter() - start
        run = next(Path(out).glob("eegclip/default/*/"))
        print(f"eegbench run --suite eegclip --scale {args.scale}: {wall:.1f} s wall (budget at ci: 180 s)")
        for label, seconds in phases(run / "log.txt", LANDMARKS):
            print(f"  {label:<18} {seconds:6.1f} s")
        metrics = {m["metric"]: m for m in json.loads((run / "metrics.json").read_text())["metrics"]}
        for name in ("zero_shot/pathological", "linear_probe/pathological", "baselines/task_deep4/pathological"):
            m = metrics[name]
            controls = ", ".join(f"{c['name']} {c['value']:.3f}" for c in m["controls"])
            print(f"  {name:<34} {m['value']:.3f} [{m['ci'][0]:.3f}, {m['ci'][1]:.3f}]  ({controls}; chance {m['chance']})")


if __name__ == "__main__":
    main()
