"""Image grids for the run folder: each row a stimulus beside the images generated from its EEG."""

from __future__ import annotations

import io

import numpy as np


def grid_rows(labels: np.ndarray, per_class: int = 1, max_rows: int = 10) -> np.ndarray:
    """Positions of up to ``max_rows`` trials, the first ``per_class`` of each label in label order."""
    rows = [np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)]
    return np.concatenate(rows)[:max_rows] if rows else np.zeros(0, dtype=int)


def image_grid_png(stimuli: np.ndarray, samples: np.ndarray, cell: int = 64, gap: int = 4) -> bytes:
    """PNG of ``stimuli`` uint8 [R, 3, H, W] (first column, set apart) beside ``samples`` [R, S, 3, h, w]."""
    from PIL import Image

    rows, n_samples = samples.shape[:2]
    width = cell * (n_samples + 1) + gap * (n_samples + 1)
    canvas = Image.new("RGB", (width, rows * (cell + gap) - gap), "white")
    for r in range(rows):
        cells = [stimuli[r], *samples[r]]
        for c, pixels in enumerate(cells):
            img = Image.fromarray(np.ascontiguousarray(pixels.transpose(1, 2, 0))).resize((cell, cell), Image.NEAREST)
            canvas.paste(img, (c * (cell + gap) + (gap if c else 0), r * (cell + gap)))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()
