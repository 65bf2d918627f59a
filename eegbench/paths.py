"""Where eegbench keeps its caches, and the environment that keeps third-party caches there too."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$EEGBENCH_CACHE``, else ``.cache`` in the working directory."""
    return Path(os.environ.get("EEGBENCH_CACHE", ".cache")).resolve()


def configure_environment() -> None:
    """Point HF, W&B, matplotlib and torch caches into the cache folder; never reach the hub."""
    root = cache_dir()
    defaults = {
        "HF_HOME": root / "huggingface",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "WANDB_DIR": root / "wandb",
        "WANDB_CACHE_DIR": root / "wandb-cache",
        "WANDB_CONFIG_DIR": root / "wandb-config",
        "MPLCONFIGDIR": root / "matplotlib",
        "TORCH_HOME": root / "torch",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, str(value))
