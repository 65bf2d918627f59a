"""The foundation models' recipe (training budget per scale), their shared sizes, the world's images and
the optimisation helpers every trainer uses."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from pydantic import BaseModel, ConfigDict, Field

from eegbench.errors import UserError

if TYPE_CHECKING:
    import torch

DONE = "done.json"
TEXT_WIDTH = 64  # text encoder width = CLIP embedding size = UNet cross_attention_dim
CONTEXT_LENGTH = 32  # tokens per caption: the text encoder's context is [B, 32, 64]
TEXT_LAYERS, TEXT_HEADS = 2, 4
VISION_LAYERS, VISION_HEADS = 3, 4
JUDGE_CHANNELS = (32, 64, 128)
UNET_CHANNELS = (32, 64, 64)
LATENT_CHANNELS = 4
SOT, EOT = "<|startoftext|>", "<|endoftext|>"
LM_WIDTH, LM_LAYERS, LM_HEADS, LM_POSITIONS = 64, 2, 4, 64
LM_VOCAB = 1000  # target size of the LM's byte-level BPE vocabulary (captions may saturate it earlier)
Progress = Callable[[int, int], None] | None


class Recipe(BaseModel):
    """Training budget of the foundation models at one scale (optimisation steps, not seconds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image_size: int = Field(16, description="side of the images all three models are trained on, px")
    seed: int = 0
    judge_steps: int = 300
    judge_batch: int = 64
    clip_steps: int = 300
    clip_batch: int = 64
    lm_steps: int = 600
    lm_batch: int = 64
    vae_steps: int = 800
    vae_lr: float = 2e-3
    unet_steps: int = 2400
    batch: int = Field(32, description="batch of the VAE and UNet")
    lr: float = Field(1e-3, description="learning rate of the UNet and CLIP; the judge uses twice this")
    warmup: int = Field(50, description="linear warm-up steps, then cosine decay to zero")
    cfg_drop: float = Field(0.1, description="fraction of captions replaced by the empty caption (CFG)")
    vae_channels: tuple[int, ...] = Field((16, 32), description="AutoencoderKL block widths; each after the first halves the side")


# ci, measured on 2 idle cores for the default 10-class world: judge 4 s, CLIP 13 s, VAE + UNet 271 s
# (8x8x4 latent, 0.09 s/UNet step); the judge scores 62% on images generated from held-out captions
# with guidance 3 (45% with guidance 1; chance 10%). tiny: a few steps, for tests. small: unmeasured.
RECIPES: dict[str, Recipe] = {
    "tiny": Recipe(judge_steps=2, judge_batch=8, clip_steps=2, clip_batch=8, lm_steps=2, lm_batch=8, vae_steps=2,
                   unet_steps=2, batch=4, warmup=1),
    "ci": Recipe(),
    "small": Recipe(vae_steps=1600, unet_steps=8000),
}


@dataclass
class WorldImages:
    """Images of some splits of a world, rendered at one size, with their captions and classes."""

    pixels: torch.Tensor  # [N, 3, s, s] uint8
    labels: list[int]  # class index into wnids
    captions: list[str]
    paths: list[Path]
    wnids: list[str]
    class_names: list[str]


def world_images(world_root: Path, splits: tuple[str, ...] = ("train",), size: int = 16) -> WorldImages:
    """The images of ``splits`` (of ``block_splits_by_image_all.pth``, split 0), box-filtered to ``size`` px."""
    import torch

    from eegbench.data.stimuli import load_pixels

    root = Path(world_root)
    for name in ("world.json", "eeg_5_95_std.pth", "block_splits_by_image_all.pth", "captions.json", "classes.json"):
        if not (root / name).is_file():
            raise UserError(f"{root / name}: file not found; pass the folder returned by synthetic.imagenet_eeg.ensure")
    data = torch.load(root / "eeg_5_95_std.pth", weights_only=True, mmap=True)
    table = torch.load(root / "block_splits_by_image_all.pth", weights_only=True)["splits"][0]
    dataset, names, wnids = data["dataset"], data["images"], data["labels"]
    chosen = sorted({int(dataset[i]["image"]) for split in splits for i in table[split]})
    captions = json.loads((root / "captions.json").read_text())
    classes = json.loads((root / "classes.json").read_text())
    paths = [root / "images" / names[i].split("_")[0] / f"{names[i]}.JPEG" for i in chosen]
    return WorldImages(
        pixels=torch.from_numpy(load_pixels(paths, size)),
        labels=[wnids.index(names[i].split("_")[0]) for i in chosen], captions=[captions[names[i]] for i in chosen],
        paths=paths, wnids=list(wnids), class_names=[classes[w] for w in wnids])


def mirror_caption(caption: str) -> str:
    """The caption of the left-right mirrored image."""
    return re.sub(r"\b(left|right)\b", lambda m: "right" if m.group(1) == "left" else "left", caption)


def schedule(optimizer, warmup: int, steps: int):
    """Linear warm-up over ``warmup`` steps, then cosine decay to zero at ``steps``."""
    import torch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def optimise(loss, model, optimizer, scheduler) -> float:
    """One optimisation step, gradients clipped to norm 1.0; returns the loss."""
    import torch

    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    return loss.item()
