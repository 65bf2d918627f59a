"""Train the foundation models of the default synthetic world from scratch and print their figures.

Run: ``HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_foundation_models.py [--scale ci] [--cache DIR]``.
Without ``--cache`` everything goes to a temporary folder that is deleted afterwards; with it, models
already there are reused (their training times are then read from ``done.json``) and a grid of
generated images is written there. Held out = the world's val + test images, never used in training.
Prints training seconds per model, the judge's accuracy on held-out ground-truth images, the judge's
accuracy on images generated from held-out captions (DDIM 20 steps, guidance 3 and 1, 10 per class,
with empty captions as the control), the tiny CLIP's image->caption retrieval on held-out pairs, and
sampling speed. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def generate(pipe, prompts: list[str], guidance: float, size: int, batch: int = 50):
    """Images [N, 3, size, size] in [0, 1] from ``prompts`` (DDIM 20 steps, seed 0) and the seconds taken."""
    import torch

    generator = torch.Generator().manual_seed(0)
    start, out = time.perf_counter(), []
    for i in range(0, len(prompts), batch):
        images = pipe(prompt=prompts[i: i + batch], num_inference_steps=20, guidance_scale=guidance, height=size,
                      width=size, output_type="np", generator=generator).images
        out.append(torch.from_numpy(images).permute(0, 3, 1, 2))
    return torch.cat(out), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="ci")
    parser.add_argument("--cache", type=Path, default=None, help="cache folder to reuse (default: a temporary one)")
    parser.add_argument("--per-class", type=int, default=10, help="generated images per class")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(args.cache or Path(tmp), args.scale, args.per_class, keep=args.cache is not None)


def run(cache: Path, scale: str, per_class: int, keep: bool) -> None:
    import torch
    from diffusers import StableDiffusionPipeline

    from eegbench.models.pretrained.clip import clip_image_embeddings, load_clip
    from eegbench.models.pretrained.judge import load_judge
    from eegbench.synthetic.foundation import RECIPES, ensure_foundation, world_images
    from eegbench.synthetic.imagenet_eeg import WorldSpec, ensure

    recipe = RECIPES[scale]
    print(f"torch threads: {torch.get_num_threads()}, cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    world = ensure(WorldSpec(), cache)
    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if done % 100 == 0 or done == total:
            print(f"  training step {done}/{total}, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)

    folders = ensure_foundation(world, cache, scale=scale, progress=progress)
    total = time.perf_counter() - start
    print(f"world {world.name}, scale {scale}, recipe {recipe.model_dump()}")
    for name in ("judge", "clip", "sd"):
        info = json.loads((folders[name] / "done.json").read_text())
        extra = {k: v for k, v in info.items() if k not in ("model", "world", "scale", "version", "recipe", "seconds")}
        print(f"train {name:<5} {info['seconds']:7.1f} s  {extra}")
    print(f"ensure_foundation total {total:7.1f} s (this call; ~0 when every model was cached)")

    held = world_images(world, ("val", "test"), recipe.image_size)
    n_classes = len(held.wnids)
    chance = 100 / n_classes
    judge = load_judge(folders["judge"])
    probs = judge.probs(held.pixels.float() / 255)
    labels = torch.tensor(held.labels)
    acc = (probs.argmax(-1) == labels).float().mean() * 100
    print(f"judge, held-out GT images (val+test, n={len(labels)}): {acc:.1f}%  (chance {chance:.1f}%)")

    by_class = {c: [i for i, y in enumerate(held.labels) if y == c] for c in range(n_classes)}
    picks = [by_class[c][k % len(by_class[c])] for c in range(n_classes) for k in range(per_class)]
    prompts, targets = [held.captions[i] for i in picks], labels[picks]
    pipe = StableDiffusionPipeline.from_pretrained(folders["sd"], safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    grids = []
    for guidance, label in ((3.0, "held-out captions"), (1.0, "held-out captions"), (3.0, "empty captions (control)")):
        texts = prompts if label.startswith("held") else [""] * len(prompts)
        images, seconds = generate(pipe, texts, guidance, recipe.image_size)
        acc = (judge.probs(images).argmax(-1) == targets).float().mean() * 100
        print(f"judge, generated from {label}, guidance {guidance:g}, DDIM 20 (n={len(texts)}): {acc:.1f}%  "
              f"(chance {chance:.1f}%)  sampling {len(texts) / seconds:.1f} img/s")
        grids.append(images)

    model, preprocess, tokenizer = load_clip(folders["clip"])
    image_emb = torch.from_numpy(clip_image_embeddings(model, preprocess, held.paths, cache / "bench-clip-emb.npy"))
    with torch.no_grad():
        text_emb = torch.nn.functional.normalize(model.encode_text(tokenizer(held.captions)), dim=-1)
    best = (image_emb @ text_emb.T).argmax(-1)
    pair = (best == torch.arange(len(best))).float().mean() * 100
    same_class = (labels[best] == labels).float().mean() * 100
    print(f"CLIP image->caption top-1, held-out pairs (n={len(best)}): exact pair {pair:.1f}% (chance "
          f"{100 / len(best):.1f}%), caption of the right class {same_class:.1f}% (chance {chance:.1f}%)")

    if keep:
        from torchvision.utils import save_image

        rows = [torch.cat([held.pixels[picks].float() / 255, *grids])]
        save_image(torch.cat(rows), cache / "bench-grid.png", nrow=per_class * n_classes // 5, padding=1)
        print(f"grid (GT, guidance 3, guidance 1, control; {per_class} per class): {cache / 'bench-grid.png'}")


if __name__ == "__main__":
    main()
