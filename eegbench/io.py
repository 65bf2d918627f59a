"""Files written whole or not at all (a temporary name in the same folder, then a rename) and figures as
PNG bytes: what every layer that writes to disk uses."""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from eegbench.errors import UserError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=json_default) + "\n")


@contextmanager
def atomic_folder(folder: Path, marker: str) -> Iterator[Path]:
    """Build ``folder`` in a temp sibling (yielded) and rename it into place when the block succeeds.

    The build must write ``marker`` (a file name) into the folder; a folder without it is an
    interrupted leftover and is replaced. When another process finished ``folder`` first, its copy
    is kept. On failure the temp folder is removed and nothing changes.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".tmp-{folder.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if folder.exists() and not (folder / marker).is_file():
            shutil.rmtree(folder)
        try:
            os.replace(tmp, folder)
        except OSError:
            if not (folder / marker).is_file():
                raise
            shutil.rmtree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def json_default(obj: Any):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_json(path: Path, fix: str):
    """The JSON in ``path``; a UserError naming the file and ``fix`` when it is missing or not JSON."""
    if not path.is_file():
        raise UserError(f"{path}: file not found; {fix}")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not valid JSON ({type(e).__name__}); {fix}") from None


def figure_png(fig, dpi: int = 90) -> bytes:
    """PNG bytes of a matplotlib figure, which is then closed."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
