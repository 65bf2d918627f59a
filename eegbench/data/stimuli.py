"""Stimulus images as pixel arrays at the size a model works at."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from eegbench.errors import UserError


def load_pixels(paths: Sequence[Path], size: int) -> np.ndarray:
    """uint8 ``[N, 3, size, size]``: each image RGB, centre-cropped to a square, resized to ``size``.

    Shrinking uses a box filter (each output pixel is the mean of the input pixels it covers, the
    way the synthetic world's models were trained); enlarging uses bicubic interpolation.
    """
    from PIL import Image, UnidentifiedImageError

    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
        except FileNotFoundError:
            raise UserError(f"{path}: stimulus image not found; pass images_root, the folder holding <wnid>/<name>.JPEG") from None
        except (UnidentifiedImageError, OSError) as exc:
            raise UserError(f"{path}: not a readable image ({type(exc).__name__}); replace the file") from None
        side = min(img.size)
        left, top = (img.width - side) // 2, (img.height - side) // 2
        img = img.crop((left, top, left + side, top + side))
        if side != size:
            img = img.resize((size, size), Image.BOX if side > size else Image.BICUBIC)
        out[i] = np.asarray(img)
    return out.transpose(0, 3, 1, 2)


def check_stimuli(data, trials) -> None:
    """Raise UserError naming the first missing stimulus image of ``trials`` (positions into ``data``)."""
    for i in np.unique(data.image[trials]):
        path = data.image_path(int(np.flatnonzero(data.image == i)[0]))
        if not path.is_file():
            raise UserError(f"{path}: stimulus image not found; pass images_root, the folder holding <wnid>/<name>.JPEG")
