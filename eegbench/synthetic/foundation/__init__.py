"""Tiny pretrained models of a synthetic ImageNet-EEG world: text-to-image LDM, CLIP, judge, LM, captioner.

A real DreamDiffusion run loads Stable Diffusion v1.5, CLIP ViT-L/14 and a torchvision ViT-H/14
judge from local folders; text decoding loads a causal LM (e.g. GPT-2) and a BLIP captioner. For a
synthetic world, ``ensure_foundation`` builds tiny counterparts of the models asked for (and of
those they need) once, on the world's TRAIN-split images and captions only (validation and test
stimuli stay unseen), caches them under ``cache_dir/foundation/images-<image key>-<scale>-<version>/``
(worlds that differ only in their EEG share them) and writes them in the real formats, so that
they load through the same calls:

- ``clip/``: an open_clip model config ``<name>.json`` (the name is a hash of the config, so
  worlds never collide in open_clip's registry), ``open_clip_model.safetensors`` and
  ``tokenizer/``, a CLIP BPE tokenizer learned on the captions. Load with
  ``models.pretrained.clip.load_clip``.
- ``sd/``: a diffusers ``StableDiffusionPipeline`` folder: ``unet``, ``vae`` (AutoencoderKL),
  ``text_encoder`` (the tiny CLIP's text tower converted to ``CLIPTextModel`` and kept frozen, as
  SD v1.5 keeps OpenAI CLIP's), ``tokenizer`` (the CLIP one), ``scheduler`` (DDIM, SD v1.5 betas).
- ``judge/``: a small CNN classifier (``config.json`` + ``model.safetensors``). Load with
  ``models.pretrained.judge.load_judge``.
- ``lm/``: a tiny GPT-2 (``GPT2LMHeadModel``, ``model.safetensors``) and a byte-level BPE tokenizer
  learned on the captions, ``<|endoftext|>`` its bos, eos and pad token; it models
  ``<|endoftext|> caption <|endoftext|>``. Load with ``models.pretrained.lm.load_lm`` (or transformers' Auto classes).
- ``captioner/``: a CLIP-retrieval captioner, no training: ``captioner.json``, ``captions.json``
  (the caption bank: the train captions and their mirrors) and ``clip/`` (a copy of ``clip/``); an
  image's caption is the bank caption nearest it in CLIP space. Load with ``models.pretrained.captioner.load_captioner``.

``sd`` and ``captioner`` need ``clip``. Each model is built in a temporary sibling folder,
finished with ``done.json`` (seconds taken, final loss, recipe) and renamed into place; a folder
holding ``done.json`` is never rebuilt. Training is deterministic given the recipe's seed (same
torch version and thread count). Images are rendered at ``Recipe.image_size`` from the world's
files with a box filter; every training set is doubled by mirroring images left-right, with
"left" and "right" swapped in the captions.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Callable

from eegbench.errors import UserError
from eegbench.synthetic.foundation.captioner import build_captioner
from eegbench.synthetic.foundation.clip import build_tokenizer, clip_config, clip_text_encoder, train_clip
from eegbench.synthetic.foundation.judge import train_judge
from eegbench.synthetic.foundation.lm import build_lm_tokenizer, train_lm
from eegbench.synthetic.foundation.recipe import (CONTEXT_LENGTH, DONE, EOT, LM_WIDTH, RECIPES, SOT, TEXT_WIDTH,
                                                  Progress, Recipe, WorldImages, mirror_caption, world_images)
from eegbench.synthetic.foundation.sd import train_sd

__all__ = ["BUILD_ORDER", "CONTEXT_LENGTH", "DONE", "EOT", "FOUNDATION_VERSION", "LM_WIDTH", "NEEDS", "RECIPES", "SOT",
           "TEXT_WIDTH", "Recipe", "WorldImages", "build_captioner", "build_lm_tokenizer", "build_tokenizer",
           "clip_config", "clip_text_encoder", "ensure_foundation", "mirror_caption", "train_clip", "train_judge",
           "train_lm", "train_sd", "world_images"]

FOUNDATION_VERSION = "v2"  # v2: tokenizers learned by synthetic.bpe (deterministic)
BUILD_ORDER = ("judge", "clip", "sd", "lm", "captioner")  # each model after those it needs
NEEDS = {"sd": ("clip",), "captioner": ("clip",)}


def ensure_foundation(world_root: Path, cache_dir: Path, *, scale: str = "ci", progress: Progress = None,
                      names: tuple[str, ...] = ("sd", "clip", "judge")) -> dict[str, Path]:
    """Folders of the world's foundation models ``names`` (of judge, clip, sd, lm, captioner), building what is missing.

    A model's dependencies are built too (``sd`` and ``captioner`` need ``clip``); only ``names`` are returned.
    """
    unknown = [name for name in names if name not in BUILD_ORDER]
    if unknown:
        raise UserError(f"foundation model {unknown[0]!r}: unknown; pass names from {', '.join(BUILD_ORDER)}")
    if scale not in RECIPES:
        raise UserError(f"scale {scale!r}: no foundation recipe for it; pass one of {', '.join(RECIPES)}")
    recipe = RECIPES[scale]
    world_root = Path(world_root)
    if not (world_root / "world.json").is_file():
        raise UserError(f"{world_root / 'world.json'}: file not found; pass the folder returned by synthetic.imagenet_eeg.ensure")
    from eegbench.synthetic.imagenet_eeg import WorldSpec

    spec = WorldSpec.model_validate(json.loads((world_root / "world.json").read_text())["spec"])
    # keyed by the images alone: worlds that differ only in their EEG (snr, subjects, drift) share models
    root = Path(cache_dir) / "foundation" / f"images-{spec.image_key()}-{scale}-{FOUNDATION_VERSION}"
    folders = {name: root / name for name in BUILD_ORDER}
    wanted = set(names) | {dep for name in names for dep in NEEDS.get(name, ())}
    steps = {"judge": recipe.judge_steps, "clip": recipe.clip_steps, "sd": recipe.vae_steps + recipe.unet_steps,
             "lm": recipe.lm_steps, "captioner": 0}
    todo = [name for name in BUILD_ORDER if name in wanted and not (folders[name] / DONE).is_file()]
    total, offset = sum(steps[name] for name in todo), 0
    for name in todo:
        report = (lambda done, _, base=offset: progress(base + done, total)) if progress else None
        build = {"judge": train_judge, "clip": train_clip, "sd": partial(train_sd, clip_folder=folders["clip"]),
                 "lm": train_lm, "captioner": partial(build_captioner, clip_folder=folders["clip"])}[name]
        _build(folders[name], lambda tmp: build(world_root, recipe, tmp, progress=report),
               {"model": name, "world": world_root.name, "scale": scale, "version": FOUNDATION_VERSION,
                "recipe": recipe.model_dump()})
        offset += steps[name]
    return {name: folders[name] for name in names}


@contextmanager
def _quiet():
    """Silence what a user cannot act on while a world model is built: transformers' "Writing model shards" bars
    and warnings, and open_clip's "No pretrained weights loaded" (the world's CLIP starts from random weights)."""
    import logging

    import transformers

    class NoRandomInitWarning(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not record.getMessage().startswith("No pretrained weights loaded")

    quiet = NoRandomInitWarning()
    verbosity = transformers.utils.logging.get_verbosity()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    logging.getLogger().addFilter(quiet)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(quiet)
        transformers.utils.logging.enable_progress_bar()
        transformers.utils.logging.set_verbosity(verbosity)


def _build(folder: Path, build: Callable[[Path], dict], meta: dict) -> None:
    """Run ``build`` into a temp sibling folder, write ``done.json`` there, rename it to ``folder``."""
    from eegbench.io import atomic_folder, atomic_write_json

    with atomic_folder(folder, DONE) as tmp, _quiet():
        start = time.perf_counter()
        info = build(tmp)
        atomic_write_json(tmp / DONE, {**meta, "seconds": round(time.perf_counter() - start, 2), **info})
