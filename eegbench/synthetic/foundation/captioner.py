"""The CLIP-retrieval captioner: the world's CLIP and a bank of the train captions; nothing to train."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from eegbench.synthetic.foundation.recipe import DONE, Progress, Recipe, mirror_caption, world_images


def build_captioner(world_root: Path, recipe: Recipe, out: Path, clip_folder: Path, progress: Progress = None) -> dict:
    """The CLIP-retrieval captioner: ``clip_folder``'s CLIP and a bank of the unique train captions and their mirrors."""
    from eegbench.models.pretrained.captioner import CAPTIONER_CONFIG, CAPTION_BANK, RETRIEVAL_CAPTIONER

    out = Path(out)
    data = world_images(world_root, ("train",), recipe.image_size)
    bank = sorted(set(data.captions) | {mirror_caption(c) for c in data.captions})
    shutil.copytree(clip_folder, out / "clip", ignore=shutil.ignore_patterns(DONE), dirs_exist_ok=True)
    (out / CAPTION_BANK).write_text(json.dumps(bank, indent=0))
    (out / CAPTIONER_CONFIG).write_text(json.dumps({"architecture": RETRIEVAL_CAPTIONER, "bank_size": len(bank)}))
    return {"bank_size": len(bank)}
