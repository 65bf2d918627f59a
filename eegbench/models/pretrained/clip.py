"""CLIP from open_clip: the model, its image embeddings (computed once and cached) and text embeddings.

``load_clip(folder)`` reads a folder holding an open_clip model config (``<name>.json`` with
embed_dim, vision_cfg, text_cfg), a checkpoint (``*.safetensors``, ``*.pt``, ``*.pth`` or ``*.bin``)
and optionally ``tokenizer/`` (a Hugging Face tokenizer folder; without it the config's own
open_clip tokenizer is used).
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from eegbench.errors import UserError
from eegbench.io import atomic_write_bytes, atomic_write_text

CLIP_WEIGHTS = "open_clip_model.safetensors"
_CLIP_KEYS = ("embed_dim", "vision_cfg", "text_cfg")
_FIX_CLIP = "pass a folder holding an open_clip model config <name>.json and its checkpoint"


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
