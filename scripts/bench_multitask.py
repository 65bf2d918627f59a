"""Time ``eegbench run --suite multitask`` and ``--suite thought2text`` at ci, and the generation throughput.

Run: ``.venv/bin/python scripts/bench_multitask.py [--scale ci]``. Uses the cache folder
(``$EEGBENCH_CACHE``, default ``.cache``) so the synthetic world and its foundation models (SD, CLIP,
judge, tiny GPT-2, captioner) are built at most once; their one-off seconds are printed from their
``done.json``. Each run goes to a temporary store and is always fresh: its wall time (budget for
multitask at ci: 6 minutes), the seconds of each phase from its log and the headline text metrics
beside their controls are printed. Then the finished multitask model is reloaded from its run folder
and timed generating images (images/s, the suite's sampler) and captions (captions/s, greedy and beam)
for test trials. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("EEGBENCH_CACHE", str(ROOT / ".cache"))
sys.path.insert(0, str(ROOT))

from bench_dreamdiffusion import phases  # noqa: E402  (scripts/ is on the path when run as a script)

LANDMARKS = {
    "multitask": (("start", "run "), ("msm", "msm: selected"), ("joint (train)", "joint: selected"),
                  ("predict + prior-only", "joint-prior: selected"), ("score", "finished")),
    "thought2text": (("start", "run "), ("encode (train)", "encode: selected"), ("projector (train)", "describe (eeg): selected"),
                     ("predict + prior-only", "describe-prior: selected"), ("score", "finished")),
}
HEADLINE = ("text_bleu/bleu1", "text_similarity", "clipscore_stimulus", "image_nway_top1", "nway_top1")


def foundation(scale: str) -> None:
    """Build (or find) the world and every foundation model the text suites use; print their one-off seconds."""
    from eegbench import config, paths, registry
    from eegbench.models.pretrained import resolve_folders

    paths.configure_environment()
    cfg = config.resolve("multitask", scale=scale)
    dataset = registry.datasets.get("imagenet-eeg")(cfg.dataset, paths.cache_dir())
    for name, folder in sorted(resolve_folders(cfg, dataset.prepare, {"sd", "clip", "judge", "lm", "captioner"},
                                               paths.cache_dir()).items()):
        done = json.loads((folder / "done.json").read_text())
        print(f"one-off: synthetic {name:<9} built in {done['seconds']:7.1f} s  ({folder})")


def timed_run(suite: str, scale: str, out: str) -> Path:
    """Run ``suite`` through the CLI into ``out``; print wall time, phases and headline metrics; return the run folder."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "eegbench.cli", "run", "--suite", suite, "--scale", scale, "--out", out,
                    "--no-wandb"], check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    wall = time.perf_counter() - start
    run = next(Path(out).glob(f"{suite}/default/*/"))
    budget = " (budget at ci: 360 s)" if suite == "multitask" else ""
    print(f"eegbench run --suite {suite} --scale {scale}: {wall:.1f} s wall{budget}")
    for label, seconds in phases(run / "log.txt", LANDMARKS[suite]):
        print(f"  {label:<19} {seconds:6.1f} s")
    metrics = {m["metric"]: m for m in json.loads((run / "metrics.json").read_text())["metrics"]}
    for name in HEADLINE:
        if name in metrics:
            m = metrics[name]
            controls = ", ".join(f"{c['name']} {c['value']:.3f} (p {c['p_vs_control']:.4f})" for c in m["controls"])
            print(f"  {name:<18} {m['value']:.3f} [{m['ci'][0]:.3f}, {m['ci'][1]:.3f}]  {controls}; chance {m['chance']:.3f}")
    return run


def throughput(run_dir: Path, scale: str, trials: int = 64) -> None:
    """Images/s and captions/s of the finished multitask model, reloaded from ``run_dir``'s checkpoints."""
    import numpy as np
    import torch

    from eegbench import config, paths, registry
    from eegbench.models.pretrained import Pretrained, resolve_folders
    from eegbench.track.store import Run
    from eegbench.train.text_head import generate_text

    cfg = config.resolve("multitask", scale=scale)
    dataset = registry.datasets.get("imagenet-eeg")(cfg.dataset, paths.cache_dir())
    stages = [registry.stages.get(s["kind"])(name, s, cfg.seed) for name, s in cfg.stages.items()]
    needed = {m for stage in stages for m in stage.needs}
    pretrained = Pretrained(resolve_folders(cfg, dataset.prepare, needed, paths.cache_dir()), paths.cache_dir())
    data = dataset.load()
    model = None
    for stage in stages:  # every stage finds its checkpoint in the run folder and loads it
        model = stage.run(data, Run(run_dir), model, pretrained)
    joint = stages[-1]
    eeg = data.eeg[data.splits["test"][:trials]]
    start = time.perf_counter()
    images = joint.sample_images(model, eeg)
    seconds = time.perf_counter() - start
    c = joint.config
    print(f"images: {images.shape[0] * images.shape[1] / seconds:.1f} images/s ({c.scheduler}, {c.steps} steps, "
          f"guidance {c.guidance_scale}, {images.shape[-1]} px, {len(eeg)} trials x {c.samples} samples)")
    with torch.no_grad():
        features = model.features(model.tokens(torch.from_numpy(np.ascontiguousarray(eeg, dtype=np.float32))))
    for decoding, beams in (("greedy", 1), ("beam", c.text.num_beams)):
        model.text.num_beams = beams
        start = time.perf_counter()
        captions = generate_text(model.text, features)
        seconds = time.perf_counter() - start
        print(f"captions ({decoding}{f', {beams} beams' if beams > 1 else ''}): {len(captions) / seconds:.1f} captions/s "
              f"(at most {c.text.max_new_tokens} new tokens)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="ci")
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    foundation(args.scale)
    with tempfile.TemporaryDirectory() as out:
        run = timed_run("multitask", args.scale, out)
        timed_run("thought2text", args.scale, out)
        throughput(run, args.scale)


if __name__ == "__main__":
    main()
