"""Loading side of the pretrained evaluators: the judge classifier and CLIP, real or synthetic.

- ``load_judge(folder)``: a folder made by ``synthetic.foundation`` (``config.json`` +
  ``model.safetensors``: a small CNN over the world's classes) or a torchvision ViT-H/14 folder
  (``vit_h_14.pth``, a state dict read with ``torch.load(weights_only=True)``, + ``classes.json``,
  the wnids in output order). Both give a ``Judge`` with ``classes`` and ``probs(images)``.
- ``load_clip(folder)``: an open_clip model from a folder holding its model config
  (``<name>.json`` with embed_dim, vision_cfg, text_cfg), a checkpoint (``*.safetensors``, ``*.pt``,
  ``*.pth`` or ``*.bin``) and optionally ``tokenizer/`` (a Hugging Face tokenizer folder; without
  it the config's own open_clip tokenizer is used).
- ``clip_image_embeddings``: L2-normalised image embeddings, computed once and cached as ``.npy``.
- ``load_captioner(folder)``: an image captioner, ``caption(images) -> list[str]``: the synthetic
  CLIP-retrieval captioner made by ``synthetic.foundation`` (``captioner.json``, ``captions.json``,
  ``clip/``) or a transformers BLIP captioning folder (e.g. blip-image-captioning-base).
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from eegbench.errors import UserError

JUDGE_CONFIG = "config.json"
JUDGE_WEIGHTS = "model.safetensors"
VIT_H_WEIGHTS = "vit_h_14.pth"
CLASSES_FILE = "classes.json"
CLIP_WEIGHTS = "open_clip_model.safetensors"
CAPTIONER_CONFIG = "captioner.json"
CAPTION_BANK = "captions.json"
RETRIEVAL_CAPTIONER = "eegbench-clip-retrieval"
BLIP_FILES = {"config": ("config.json",), "image processor": ("preprocessor_config.json", "processor_config.json"),
              "weights": ("model.safetensors",), "tokenizer": ("tokenizer.json", "vocab.txt")}
_CLIP_KEYS = ("embed_dim", "vision_cfg", "text_cfg")
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_FIX_CLIP = "pass a folder holding an open_clip model config <name>.json and its checkpoint"
_FIX_CAPTIONER = ("pass a transformers BLIP captioning folder (config.json, preprocessor_config.json, model.safetensors, "
                  f"tokenizer), e.g. blip-image-captioning-base, or the synthetic captioner ({CAPTIONER_CONFIG})")
_FIX_JUDGE = (f"pass the judge folder made by synthetic.foundation.ensure_foundation ({JUDGE_CONFIG} + {JUDGE_WEIGHTS}) "
              f"or a folder holding {VIT_H_WEIGHTS} (torchvision vit_h_14 state dict) + {CLASSES_FILE}")


def judge_cnn(n_classes: int, channels: Sequence[int] = (32, 64, 128)):
    """The synthetic judge: per block a 3x3 conv, BN, ReLU and a 2x max-pool; global average; linear."""
    from torch import nn

    layers, c_in = [], 3
    for c in channels:
        layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
        c_in = c
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, n_classes))


class Judge:
    """A frozen image classifier: ``probs(images)`` over ``classes`` (wnids, in output order)."""

    def __init__(self, model, classes: list[str], class_names: list[str], image_size: int,
                 mean: Sequence[float], std: Sequence[float], center_crop: bool):
        self.model = model.eval()
        self.classes = classes
        self.class_names = class_names
        self.image_size = image_size
        self.mean, self.std = tuple(mean), tuple(std)
        self.center_crop = center_crop

    def prepare(self, images):
        """[B, 3, H, W] in [0, 1] -> the model's normalised input (resized; centre-cropped for ViT-H)."""
        import torch.nn.functional as F

        x = images.float()
        s = self.image_size
        if self.center_crop:  # torchvision's eval transform: shorter side to s, then centre crop
            h, w = x.shape[-2:]
            scale = s / min(h, w)
            size = (max(s, round(h * scale)), max(s, round(w * scale)))
            if size != (h, w):
                x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)
            top, left = (x.shape[-2] - s) // 2, (x.shape[-1] - s) // 2
            x = x[..., top: top + s, left: left + s]
        elif x.shape[-2:] != (s, s):  # area = the box filter the training images were rendered with
            mode = "area" if min(x.shape[-2:]) > s else "bilinear"
            x = F.interpolate(x, size=(s, s), mode=mode, **({} if mode == "area" else {"align_corners": False}))
        mean = x.new_tensor(self.mean)[:, None, None]
        std = x.new_tensor(self.std)[:, None, None]
        return (x.clamp(0, 1) - mean) / std

    def probs(self, images):
        """Class probabilities [B, n_classes] (on the CPU) of images [B, 3, H, W] with values in [0, 1]."""
        import torch

        device = next(self.model.parameters()).device
        with torch.no_grad():
            return self.model(self.prepare(images.to(device))).float().softmax(-1).cpu()


def check_judge_folder(folder: Path) -> str:
    """``"cnn"`` or ``"vit_h"``: which judge ``folder`` holds; UserError naming the missing file otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: judge folder not found; {_FIX_JUDGE}")
    if (folder / JUDGE_CONFIG).is_file():
        return "cnn"
    if (folder / VIT_H_WEIGHTS).is_file():
        return "vit_h"
    raise UserError(f"{folder / JUDGE_CONFIG}: file not found (nor {VIT_H_WEIGHTS}); {_FIX_JUDGE}")


def load_judge(folder: Path) -> Judge:
    """The judge in ``folder``: the synthetic CNN (``config.json``) or torchvision ViT-H/14 (``vit_h_14.pth``)."""
    kind = check_judge_folder(folder)
    return _load_cnn_judge(Path(folder)) if kind == "cnn" else _load_vit_h(Path(folder))


def _read_json(path: Path, fix: str):
    if not path.is_file():
        raise UserError(f"{path}: file not found; {fix}")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not valid JSON ({type(e).__name__}); {fix}") from None


def _load_cnn_judge(folder: Path) -> Judge:
    from safetensors.torch import load_file

    fix = f"delete {folder} and rerun ensure_foundation to retrain the synthetic judge"
    config = _read_json(folder / JUDGE_CONFIG, fix)
    keys = ("classes", "class_names", "image_size", "channels", "mean", "std")
    missing = [k for k in keys if not isinstance(config, dict) or k not in config]
    if missing:
        raise UserError(f"{folder / JUDGE_CONFIG}: missing key(s) {', '.join(missing)}; {fix}")
    weights = folder / JUDGE_WEIGHTS
    if not weights.is_file():
        raise UserError(f"{weights}: file not found; {fix}")
    model = judge_cnn(len(config["classes"]), config["channels"])
    try:
        model.load_state_dict(load_file(weights))
    except Exception as e:
        raise UserError(f"{weights}: does not match {JUDGE_CONFIG} ({type(e).__name__}); {fix}") from None
    return Judge(model, list(config["classes"]), list(config["class_names"]), int(config["image_size"]),
                 config["mean"], config["std"], center_crop=False)


def _load_vit_h(folder: Path) -> Judge:
    import torch
    from torchvision.models import vit_h_14

    weights = folder / VIT_H_WEIGHTS
    fix = f"pass the state dict of torchvision's vit_h_14 (e.g. ViT_H_14_Weights.IMAGENET1K_SWAG_E2E_V1) as {VIT_H_WEIGHTS}"
    classes = _read_json(folder / CLASSES_FILE, "write the model's output classes as a JSON list of wnids "
                         "(or an object wnid -> name) in output order")
    names = list(classes.values()) if isinstance(classes, dict) else list(classes)
    classes = list(classes)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True, mmap=True)
        pos = state["encoder.pos_embedding"]
    except Exception as e:
        raise UserError(f"{weights}: not a vit_h_14 state dict ({type(e).__name__}); {fix}") from None
    image_size = 14 * round((pos.shape[1] - 1) ** 0.5)
    n_out = state["heads.head.weight"].shape[0] if "heads.head.weight" in state else -1
    if n_out != len(classes):
        raise UserError(f"{folder / CLASSES_FILE}: lists {len(classes)} classes but {weights.name} has {n_out} outputs; "
                        "list one wnid per output, in output order")
    model = vit_h_14(weights=None, image_size=image_size, num_classes=n_out)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(f"{weights}: does not fit torchvision's vit_h_14 ({str(e).splitlines()[0]}); {fix}") from None
    return Judge(model, classes, [str(n) for n in names], image_size, _IMAGENET_MEAN, _IMAGENET_STD, center_crop=True)


def check_clip_folder(folder: Path) -> tuple[list[Path], list[Path]]:
    """The open_clip model config and checkpoint in ``folder`` (one each); UserError naming what is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: CLIP folder not found; {_FIX_CLIP}")
    configs = [p for p in sorted(folder.glob("*.json")) if _is_clip_config(p)]
    if len(configs) != 1:
        found = "none" if not configs else ", ".join(p.name for p in configs)
        raise UserError(f"{folder}/<name>.json: need exactly one open_clip model config (keys embed_dim, vision_cfg, "
                        f"text_cfg), found {found}; {_FIX_CLIP}")
    checkpoints = [folder / CLIP_WEIGHTS] if (folder / CLIP_WEIGHTS).is_file() else \
        sorted(p for ext in ("safetensors", "pt", "pth", "bin") for p in folder.glob(f"*.{ext}"))
    if len(checkpoints) != 1:
        raise UserError(f"{folder / CLIP_WEIGHTS}: file not found ({len(checkpoints)} other checkpoints); "
                        f"put exactly one open_clip checkpoint (*.safetensors, *.pt, *.pth, *.bin) in the folder")
    return configs, checkpoints


def load_clip(folder: Path):
    """``(model, preprocess, tokenizer)`` of the open_clip model in ``folder``, in eval mode on the CPU."""
    import open_clip

    folder = Path(folder)
    configs, checkpoints = check_clip_folder(folder)
    name = configs[0].stem
    open_clip.add_model_config(configs[0])
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=str(checkpoints[0]))
    except Exception as e:
        raise UserError(f"{checkpoints[0]}: cannot be loaded into {configs[0].name} ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:200]}); {_FIX_CLIP}") from None
    context = json.loads(configs[0].read_text())["text_cfg"].get("context_length", 77)
    tok_dir = folder / "tokenizer"
    if tok_dir.is_dir():
        if not (tok_dir / "tokenizer_config.json").is_file():
            raise UserError(f"{tok_dir / 'tokenizer_config.json'}: file not found; save the tokenizer there with "
                            "save_pretrained, or delete the tokenizer folder to use open_clip's own")
        tokenizer = open_clip.tokenizer.HFTokenizer(str(tok_dir), context_length=context)
    else:
        tokenizer = open_clip.get_tokenizer(name, context_length=context)
    st = checkpoints[0].stat()
    model.eegbench_key = f"{checkpoints[0].resolve()}:{st.st_size}:{st.st_mtime_ns}"
    return model.eval(), preprocess, tokenizer


def _is_clip_config(path: Path) -> bool:
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(cfg, dict) and all(k in cfg for k in _CLIP_KEYS)


def _model_key(model) -> str:
    """Identity of a CLIP model: its folder and checkpoint (set by ``load_clip``), else a hash of its weights."""
    key = getattr(model, "eegbench_key", None)
    if key is not None:
        return key
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


def clip_image_embeddings(model, preprocess, image_paths: Sequence[Path], cache_file: Path,
                          batch_size: int = 256) -> np.ndarray:
    """[N, D] float32 unit-norm image embeddings of ``image_paths``, cached in ``cache_file`` (.npy).

    The cache is reused when its sidecar ``<cache_file>.key`` matches the model (folder and
    checkpoint) and the image list (paths, sizes, mtimes); otherwise it is recomputed.
    """
    import torch
    from PIL import Image

    from eegbench.io import atomic_write_bytes, atomic_write_text

    cache_file = Path(cache_file)
    listing = []
    for p in image_paths:
        if not Path(p).is_file():
            raise UserError(f"{p}: image file not found; regenerate the world or pass the folder holding <wnid>/<name>.JPEG")
        st = Path(p).stat()
        listing.append([str(Path(p).resolve()), st.st_size, st.st_mtime_ns])
    key = hashlib.sha256(json.dumps([_model_key(model), listing]).encode()).hexdigest()
    key_file = cache_file.with_name(cache_file.name + ".key")
    if cache_file.is_file() and key_file.is_file() and key_file.read_text() == key:
        return np.load(cache_file)
    device = next(model.parameters()).device
    chunks = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(listing), batch_size):
            batch = []
            for p in image_paths[start: start + batch_size]:
                with Image.open(p) as img:
                    batch.append(preprocess(img.convert("RGB")))
            emb = model.encode_image(torch.stack(batch).to(device))
            chunks.append(torch.nn.functional.normalize(emb.float(), dim=-1).cpu().numpy())
    out = np.concatenate(chunks) if chunks else np.zeros((0, model.visual.output_dim), np.float32)
    buf = io.BytesIO()
    np.save(buf, out.astype(np.float32))
    key_file.unlink(missing_ok=True)
    atomic_write_bytes(cache_file, buf.getvalue())
    atomic_write_text(key_file, key)
    return out


def clip_text_embeddings(model, tokenizer, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
    """[N, D] float32 unit-norm CLIP text embeddings of ``texts``."""
    import torch

    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        chunks = [torch.nn.functional.normalize(model.encode_text(tokenizer(list(texts[i:i + batch_size])).to(device))
                                                .float(), dim=-1).cpu() for i in range(0, len(texts), batch_size)]
    return torch.cat(chunks).numpy() if chunks else np.zeros((0, model.text_projection.shape[1]), np.float32)


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
    if _read_json(folder / "config.json", _FIX_CAPTIONER).get("model_type") != "blip":
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
        config = _read_json(folder / CAPTIONER_CONFIG, rebuild)
        if not isinstance(config, dict) or config.get("architecture") != RETRIEVAL_CAPTIONER:
            raise UserError(f"{folder / CAPTIONER_CONFIG}: architecture is not {RETRIEVAL_CAPTIONER!r}; {rebuild}")
        self.bank = _read_json(folder / CAPTION_BANK, rebuild)
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
