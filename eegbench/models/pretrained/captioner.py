"""Image captioners, ``caption(images) -> list[str]``: the synthetic world's CLIP-retrieval captioner made
by ``synthetic.foundation`` (``captioner.json``, ``captions.json``, ``clip/``) or a transformers BLIP
captioning folder (e.g. blip-image-captioning-base).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eegbench.errors import UserError
from eegbench.io import read_json
from eegbench.models.pretrained.clip import check_clip_folder, clip_text_embeddings, load_clip

CAPTIONER_CONFIG = "captioner.json"
CAPTION_BANK = "captions.json"
RETRIEVAL_CAPTIONER = "eegbench-clip-retrieval"
BLIP_FILES = {"config": ("config.json",), "image processor": ("preprocessor_config.json", "processor_config.json"),
              "weights": ("model.safetensors",), "tokenizer": ("tokenizer.json", "vocab.txt")}
_FIX_CAPTIONER = ("pass a transformers BLIP captioning folder (config.json, preprocessor_config.json, model.safetensors, "
                  f"tokenizer), e.g. blip-image-captioning-base, or the synthetic captioner ({CAPTIONER_CONFIG})")


def check_captioner_folder(folder: Path) -> str:
    """``"retrieval"`` or ``"blip"``: which captioner ``folder`` holds; UserError naming the first missing file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: captioner folder not found; {_FIX_CAPTIONER}")
    if (folder / CAPTIONER_CONFIG).is_file():
        if not (folder / CAPTION_BANK).is_file():
            raise UserError(f"{folder / CAPTION_BANK}: file not found; delete {folder} and rerun ensure_foundation")
        check_clip_folder(folder / "clip")
        return "retrieval"
    for what, options in BLIP_FILES.items():
        if not any((folder / o).is_file() for o in options):
            nor = f" (nor {CAPTIONER_CONFIG})" if what == "config" else f" ({what})"
            raise UserError(f"{folder / options[0]}: file not found{nor}; {_FIX_CAPTIONER}")
    if read_json(folder / "config.json", _FIX_CAPTIONER).get("model_type") != "blip":
        raise UserError(f"{folder / 'config.json'}: model_type is not \"blip\"; {_FIX_CAPTIONER}")
    return "blip"


def load_captioner(folder: Path):
    """The captioner in ``folder`` (``ClipRetrievalCaptioner`` or ``BlipCaptioner``), frozen, on the CPU (move
    its ``model`` to place it elsewhere)."""
    kind = check_captioner_folder(folder)
    return ClipRetrievalCaptioner(Path(folder)) if kind == "retrieval" else BlipCaptioner(Path(folder))


def _pil_images(images: np.ndarray) -> list:
    """PIL RGB images of a uint8 array [N, 3, H, W]."""
    from PIL import Image

    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images: expected a uint8 array [N, 3, H, W], got {images.dtype} {images.shape}")
    return [Image.fromarray(np.ascontiguousarray(img.transpose(1, 2, 0))) for img in images]


class Captioner:
    """Base of the captioners: ``caption(images)`` batches a uint8 array [N, 3, H, W] through ``_batch``."""

    batch_size: int

    def caption(self, images: np.ndarray) -> list[str]:
        """One caption per image of the uint8 array [N, 3, H, W]."""
        import torch

        pil = _pil_images(images)
        with torch.no_grad():
            return [text for start in range(0, len(pil), self.batch_size)
                    for text in self._batch(pil[start: start + self.batch_size])]

    def _batch(self, images: list) -> list[str]:
        raise NotImplementedError


class ClipRetrievalCaptioner(Captioner):
    """Captions an image with the bank caption whose CLIP text embedding is nearest its CLIP image embedding."""

    def __init__(self, folder: Path, batch_size: int = 256):
        folder = self.folder = Path(folder)
        self.batch_size = batch_size
        rebuild = f"delete {folder} and rerun ensure_foundation"
        config = read_json(folder / CAPTIONER_CONFIG, rebuild)
        if not isinstance(config, dict) or config.get("architecture") != RETRIEVAL_CAPTIONER:
            raise UserError(f"{folder / CAPTIONER_CONFIG}: architecture is not {RETRIEVAL_CAPTIONER!r}; {rebuild}")
        self.bank = read_json(folder / CAPTION_BANK, rebuild)
        if not isinstance(self.bank, list) or not self.bank or not all(isinstance(c, str) for c in self.bank):
            raise UserError(f"{folder / CAPTION_BANK}: expected a non-empty JSON list of captions; {rebuild}")
        self.model, self.preprocess, tokenizer = load_clip(folder / "clip")
        self.model.requires_grad_(False)
        self.bank_embeddings = clip_text_embeddings(self.model, tokenizer, self.bank)

    def _batch(self, images: list) -> list[str]:
        import torch

        x = torch.stack([self.preprocess(img) for img in images]).to(next(self.model.parameters()).device)
        emb = torch.nn.functional.normalize(self.model.encode_image(x).float(), dim=-1).cpu().numpy()
        return [self.bank[i] for i in (emb @ self.bank_embeddings.T).argmax(1)]


class BlipCaptioner(Captioner):
    """A transformers BLIP captioning model: greedy captions of at most ``max_new_tokens`` tokens."""

    def __init__(self, folder: Path, batch_size: int = 16, max_new_tokens: int = 30):
        import torch
        import transformers
        from transformers import BlipForConditionalGeneration, BlipProcessor

        transformers.utils.logging.set_verbosity_error()  # loading bars would bury eegbench's output
        transformers.utils.logging.disable_progress_bar()
        self.folder, self.batch_size, self.max_new_tokens = Path(folder), batch_size, max_new_tokens
        try:
            self.processor = BlipProcessor.from_pretrained(folder, local_files_only=True)
            self.model = BlipForConditionalGeneration.from_pretrained(folder, local_files_only=True, use_safetensors=True,
                                                                      dtype=torch.float32)
        except Exception as e:  # transformers raises many types for a damaged folder
            detail = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            raise UserError(f"{folder}: cannot load as a BLIP captioner ({detail}); {_FIX_CAPTIONER}") from None
        self.model.eval().requires_grad_(False)

    def _batch(self, images: list) -> list[str]:
        inputs = self.processor(images=images, return_tensors="pt").to(next(self.model.parameters()).device)
        ids = self.model.generate(pixel_values=inputs.pixel_values, max_new_tokens=self.max_new_tokens)
        return [text.strip() for text in self.processor.batch_decode(ids, skip_special_tokens=True)]
