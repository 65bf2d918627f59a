"""The judge: a small CNN classifier of the world's classes, trained on its train images."""

from __future__ import annotations

import json
from pathlib import Path

from eegbench.synthetic.foundation.recipe import JUDGE_CHANNELS, Progress, Recipe, optimise, schedule, world_images


def train_judge(world_root: Path, recipe: Recipe, out: Path, progress: Progress = None) -> dict:
    """Train the judge CNN on the world's train images (random flips, quarter turns, shifts, noise)."""
    import torch
    import torch.nn.functional as F
    from safetensors.torch import save_file

    from eegbench.models.pretrained.judge import JUDGE_CONFIG, JUDGE_WEIGHTS, Judge, judge_cnn

    data = world_images(world_root, ("train",), recipe.image_size)
    torch.manual_seed(recipe.seed)
    g = torch.Generator().manual_seed(recipe.seed)
    model = judge_cnn(len(data.wnids), JUDGE_CHANNELS)
    judge = Judge(model, data.wnids, data.class_names, recipe.image_size, (0.5,) * 3, (0.25,) * 3, center_crop=False)
    x, y = data.pixels.float() / 255, torch.tensor(data.labels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2 * recipe.lr, weight_decay=0.05)
    scheduler = schedule(optimizer, recipe.warmup, recipe.judge_steps)
    model.train()
    loss = float("nan")
    for step in range(recipe.judge_steps):
        idx = torch.randint(len(x), (recipe.judge_batch,), generator=g)
        batch = _augment(x[idx], g)
        loss = optimise(F.cross_entropy(model(judge.prepare(batch)), y[idx]), model, optimizer, scheduler)
        if progress:
            progress(step + 1, recipe.judge_steps)
    model.eval()
    Path(out).mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(Path(out) / JUDGE_WEIGHTS))
    config = {"architecture": "eegbench-judge-cnn", "channels": list(JUDGE_CHANNELS), "image_size": recipe.image_size,
              "classes": data.wnids, "class_names": data.class_names, "mean": judge.mean, "std": judge.std}
    (Path(out) / JUDGE_CONFIG).write_text(json.dumps(config, indent=1))
    return {"final_loss": loss, "train_images": len(x)}


def _augment(x, g):
    """Per image: one of the 8 flips/quarter turns, a shift of up to 2 px, Gaussian noise (sd <= 0.04)."""
    import torch
    import torch.nn.functional as F

    n, _, h, w = x.shape
    out = torch.empty_like(x)
    turns, flips = torch.randint(4, (n,), generator=g), torch.randint(2, (n,), generator=g)
    shifts = torch.randint(5, (n, 2), generator=g)
    padded = F.pad(x, (2, 2, 2, 2), mode="replicate")
    for i in range(n):
        img = padded[i, :, shifts[i, 0]: shifts[i, 0] + h, shifts[i, 1]: shifts[i, 1] + w]
        img = torch.rot90(img, int(turns[i]), dims=(1, 2))
        out[i] = img.flip(-1) if flips[i] else img
    noise = torch.randn(out.shape, generator=g) * torch.rand(n, 1, 1, 1, generator=g) * 0.04
    return (out + noise).clamp(0, 1)
