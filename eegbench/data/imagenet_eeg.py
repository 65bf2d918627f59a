"""Loader for the ImageNet-EEG file format (Spampinato et al. 2017): the real files and synthetic worlds.

Protocol, as in the reference loaders: keep the trials of ``subject`` (0 = all); split indices
index that subject-filtered list (the full list when subject == 0); drop trials whose length is
outside ``length_range`` (inclusive); keep samples ``crop[0]:crop[1]``; optionally resample time
linearly to ``interpolate`` samples (DreamDiffusion: 512).

The ``.pth`` is read once, with ``torch.load(weights_only=True)`` only, into an array cache
``cache_dir/arrays/<key>/`` (``eeg.npy``, opened memory-mapped, ``meta.npz``, ``lists.json``);
split files are cached as ``cache_dir/arrays/splits-<key>.json``. Later loads read the cache.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eegbench import progress
from eegbench.errors import UserError
from eegbench.track.store import atomic_folder, atomic_write_text

CACHE_VERSION = 1
N_CHANNELS = 128
SPLIT_NAMES = ("train", "val", "test")
_ITEM_KEYS = ("eeg", "image", "label", "subject")
_FIX_FILE = "pass an ImageNet-EEG file such as eeg_5_95_std.pth"
_FIX_SPLIT = "use the split file that matches the data file and subject"


@dataclass
class Trials:
    """Length-valid trials of the chosen subject, with split positions into them."""

    eeg: np.ndarray  # [n, 128, T'] float32 (may be a read-only np.memmap)
    label: np.ndarray  # [n] int64, 0..C-1
    image: np.ndarray  # [n] int64, index into image_names
    subject: np.ndarray  # [n] int64, 1-based
    wnids: list[str]
    image_names: list[str]
    splits: dict[str, np.ndarray]  # 'train'/'val'/'test' -> positions into the arrays above
    class_names: list[str]  # readable names from classes.json if present, else the wnids
    captions: dict[str, str]  # image name -> caption, from the captions file if present, else {}
    image_root: Path | None  # folder holding <wnid>/<name>.JPEG, if present
    captions_file: Path | None = None

    def captions_of(self, trials: np.ndarray) -> list[str]:
        """The caption of each trial's image; UserError naming the first image the captions file lacks."""
        names = [self.image_names[int(i)] for i in self.image[trials]]
        missing = sorted({n for n in names if n not in self.captions})
        if missing:
            where = self.captions_file or "captions.json"
            raise UserError(f"{where}: no caption for {len(missing)} image(s) of this run (first: {missing[0]}); "
                            "add them, or pass a complete file with dataset.captions")
        return [self.captions[n] for n in names]

    def image_path(self, i: int) -> Path:
        """Stimulus file of trial ``i``: ``image_root/<wnid>/<name>.JPEG``."""
        if self.image_root is None:
            raise UserError("no image folder for this dataset; pass images_root (the folder holding <wnid>/<name>.JPEG)")
        name = self.image_names[int(self.image[i])]
        return self.image_root / name.split("_")[0] / f"{name}.JPEG"


def load(root: Path, *, file: str = "eeg_5_95_std.pth", splits: str = "block_splits_by_image_all.pth",
         subject: int = 0, split_index: int = 0, crop: tuple[int, int] = (20, 460),
         length_range: tuple[int, int] = (450, 600), interpolate: int | None = None, cache_dir: Path,
         images_root: Path | None = None, captions: Path | None = None) -> Trials:
    """Trials of ``subject`` (0 = all) from ``root/file`` with split ``split_index`` of ``root/splits``.

    ``captions`` is a JSON object of image name -> caption (default ``root/captions.json``, optional).
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: data folder not found; --data-root must point at the folder holding {file}")
    data_path, split_path = root / file, root / splits
    for path in (data_path, split_path):
        if not path.is_file():
            raise UserError(f"{path}: file not found; --data-root must point at the folder holding {path.name}")
    if not 0 <= crop[0] < crop[1] or length_range[0] > length_range[1]:
        raise UserError(f"crop {tuple(crop)}, length_range {tuple(length_range)}: need 0 <= start < end and min <= max")
    if interpolate is not None and interpolate < 2:
        raise UserError(f"interpolate={interpolate}: pass at least 2 samples, or None to keep {crop[1] - crop[0]}")

    entry = _array_cache(data_path, tuple(crop), tuple(length_range), Path(cache_dir))
    with np.load(entry / "meta.npz") as npz:
        meta = dict(npz)
    lists = json.loads((entry / "lists.json").read_text())
    all_subject = meta["all_subject"]
    if subject and not (all_subject == subject).any():
        present = ", ".join(str(s) for s in np.unique(all_subject))
        raise UserError(f"{data_path}: subject {subject} is not in the data (subjects: {present}); "
                        "pass one of those, or 0 for all")
    chosen = np.flatnonzero(all_subject == subject) if subject else np.arange(len(all_subject))

    table = _split_cache(split_path, Path(cache_dir))
    if not 0 <= split_index < len(table):
        raise UserError(f"{split_path}: split_index {split_index} out of range, the file holds {len(table)} "
                        f"split(s); pass 0..{len(table) - 1}")
    row_of = np.full(len(all_subject), -1, dtype=np.int64)
    row_of[meta["index"]] = np.arange(len(meta["index"]))
    rows = row_of[chosen]
    rows = rows[rows >= 0]
    position_of = np.full(len(meta["index"]), -1, dtype=np.int64)
    position_of[rows] = np.arange(len(rows))
    positions = {}
    for name in SPLIT_NAMES:
        idx = np.asarray(table[split_index][name], dtype=np.int64)
        bad = idx[(idx < 0) | (idx >= len(chosen))]
        if len(bad):
            raise UserError(f"{split_path}: split {split_index} '{name}' has index {bad[0]}, outside the "
                            f"{len(chosen)}-trial list of subject {subject} (0 = all); {_FIX_SPLIT}")
        kept = row_of[chosen[idx]]
        positions[name] = position_of[kept[kept >= 0]]

    eeg = np.load(entry / "eeg.npy", mmap_mode="r")
    if len(rows) and rows[-1] - rows[0] + 1 == len(rows):
        eeg = eeg[rows[0]: rows[-1] + 1]
    else:
        eeg = eeg[rows]
    if interpolate is not None:
        eeg = _interpolate(eeg, interpolate)
    wnids = lists["labels"]
    class_names = _read_json(root / "classes.json")
    if images_root is not None and not Path(images_root).is_dir():
        raise UserError(f"{images_root}: image folder not found; pass the folder holding <wnid>/<name>.JPEG")
    images_root = Path(images_root) if images_root is not None else root / "images"
    captions_file = Path(captions) if captions is not None else root / "captions.json"
    if captions is not None and not captions_file.is_file():
        raise UserError(f"{captions_file}: captions file not found; fix dataset.captions")
    caption_map = _read_json(captions_file)
    unknown = sorted(set(caption_map) - set(lists["images"]))
    if unknown:
        raise UserError(f"{captions_file}: {len(unknown)} caption(s) name images not in {file} (first: {unknown[0]}); "
                        "fix the names or pass the captions file that belongs to this data")
    return Trials(
        eeg=eeg, label=meta["label"][rows], image=meta["image"][rows], subject=meta["subject"][rows],
        wnids=wnids, image_names=lists["images"], splits=positions,
        class_names=[str(class_names.get(w, w)) for w in wnids], captions=caption_map,
        image_root=images_root if images_root.is_dir() else None, captions_file=captions_file,
    )


def _read_json(path: Path) -> dict:
    """A JSON object from ``path``, or {} when the file is absent."""
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not valid JSON ({type(e).__name__}); fix or delete the file") from None
    if not isinstance(value, dict):
        raise UserError(f"{path}: expected a JSON object of name -> text; fix or delete the file")
    return value


def _key(path: Path, *extra) -> str:
    """Cache key of a file: its resolved path, size and mtime plus ``extra``."""
    st = path.stat()
    text = json.dumps([str(path.resolve()), st.st_size, st.st_mtime_ns, CACHE_VERSION, *extra])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _torch_load(path: Path):
    """``torch.load(weights_only=True)``, memory-mapped when the file is in the zip format."""
    import torch

    try:
        return torch.load(path, weights_only=True, map_location="cpu", mmap=zipfile.is_zipfile(path))
    except Exception as e:
        raise UserError(f"{path}: cannot be read with torch.load(weights_only=True) ({type(e).__name__}); {_FIX_FILE}") from None


def _array_cache(path: Path, crop: tuple[int, int], length_range: tuple[int, int], cache_dir: Path) -> Path:
    """The cache folder of ``path``'s length-valid, cropped trials, built first if absent."""
    key = _key(path, list(crop), list(length_range))
    entry = cache_dir / "arrays" / key
    if entry.is_dir():
        return entry
    with atomic_folder(entry, "lists.json") as tmp:  # lists.json is written last
        _build_arrays(path, tmp, crop, length_range)
    return entry


def _as_int(value, path: Path, i: int, key: str) -> int:
    import torch

    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        return int(value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    raise UserError(f"{path}: trial {i} has {key}={value!r}, expected an integer; {_FIX_FILE}")


def _build_arrays(path: Path, out: Path, crop: tuple[int, int], length_range: tuple[int, int]) -> None:
    """Validate the ``.pth`` and write ``eeg.npy``, ``meta.npz`` and ``lists.json`` into ``out``."""
    import torch

    obj = _torch_load(path)
    if not isinstance(obj, dict):
        raise UserError(f"{path}: holds a {type(obj).__name__}, expected a dict with keys dataset, labels, images; {_FIX_FILE}")
    for key in ("dataset", "labels", "images"):
        if key not in obj:
            raise UserError(f"{path}: missing key '{key}'; {_FIX_FILE}")
        if not isinstance(obj[key], (list, tuple)):
            raise UserError(f"{path}: '{key}' is a {type(obj[key]).__name__}, expected a list; {_FIX_FILE}")
    dataset, labels, images = obj["dataset"], [str(x) for x in obj["labels"]], [str(x) for x in obj["images"]]
    n = len(dataset)
    lengths, label, image, subject = (np.empty(n, dtype=np.int64) for _ in range(4))
    for i, item in enumerate(dataset):
        missing = [k for k in _ITEM_KEYS if not isinstance(item, dict) or k not in item]
        if missing:
            raise UserError(f"{path}: trial {i} lacks key(s) {', '.join(missing)}; {_FIX_FILE}")
        eeg = item["eeg"]
        shape = list(eeg.shape) if isinstance(eeg, torch.Tensor) else type(eeg).__name__
        if not isinstance(eeg, torch.Tensor) or eeg.ndim != 2 or eeg.shape[0] != N_CHANNELS:
            raise UserError(f"{path}: trial {i} has eeg of shape {shape}, expected [128, T]; pass the 128-channel ImageNet-EEG file")
        lengths[i] = eeg.shape[1]
        label[i], image[i], subject[i] = (_as_int(item[k], path, i, k) for k in ("label", "image", "subject"))
        if not 0 <= label[i] < len(labels):
            raise UserError(f"{path}: trial {i} has label {label[i]}, outside 0..{len(labels) - 1} "
                            f"({len(labels)} labels listed); {_FIX_FILE}")
        if not 0 <= image[i] < len(images):
            raise UserError(f"{path}: trial {i} has image {image[i]}, outside 0..{len(images) - 1} "
                            f"({len(images)} images listed); {_FIX_FILE}")
        if subject[i] < 1:
            raise UserError(f"{path}: trial {i} has subject {subject[i]}, expected 1 or more; {_FIX_FILE}")

    keep = np.flatnonzero((lengths >= length_range[0]) & (lengths <= length_range[1]))
    short = keep[lengths[keep] < crop[1]]
    if len(short):
        raise UserError(f"{path}: trial {short[0]} has {lengths[short[0]]} samples, fewer than the crop end {crop[1]}; "
                        f"raise length_range's minimum to {crop[1]} or end the crop earlier")
    with open(out / "eeg.npy", "wb") as f:  # streamed: no second in-memory copy of the data
        header = {"descr": "<f4", "fortran_order": False, "shape": (len(keep), N_CHANNELS, crop[1] - crop[0])}
        np.lib.format.write_array_header_1_0(f, header)
        for i in progress.track(keep, f"caching {path.name} as arrays", total=len(keep)):
            segment = np.ascontiguousarray(dataset[i]["eeg"][:, crop[0]: crop[1]].float().numpy(), dtype="<f4")
            if not np.isfinite(segment).all():
                raise UserError(f"{path}: trial {i} has NaN/Inf samples in [{crop[0]}:{crop[1]}]; repair or re-export the file")
            f.write(segment.data)
    np.savez(out / "meta.npz", label=label[keep], image=image[keep], subject=subject[keep], index=keep,
             all_subject=subject)
    (out / "lists.json").write_text(json.dumps({"labels": labels, "images": images}))


def _split_cache(path: Path, cache_dir: Path) -> list[dict[str, list[int]]]:
    """The validated ``splits`` list of a split file, read from a JSON cache after the first time."""
    cached = cache_dir / "arrays" / f"splits-{_key(path)}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    obj = _torch_load(path)
    if not isinstance(obj, dict) or "splits" not in obj:
        raise UserError(f"{path}: missing key 'splits'; pass a split file such as block_splits_by_image_all.pth")
    if not isinstance(obj["splits"], (list, tuple)):
        raise UserError(f"{path}: 'splits' is a {type(obj['splits']).__name__}, expected a list; {_FIX_SPLIT}")
    table = []
    for k, split in enumerate(obj["splits"]):
        missing = [n for n in SPLIT_NAMES if not isinstance(split, dict) or n not in split]
        if missing:
            raise UserError(f"{path}: split {k} lacks {', '.join(missing)}; pass a split file such as block_splits_by_image_all.pth")
        try:
            table.append({n: [int(i) for i in split[n]] for n in SPLIT_NAMES})
        except (TypeError, ValueError):
            raise UserError(f"{path}: split {k} holds non-integer indices; {_FIX_SPLIT}") from None
    atomic_write_text(cached, json.dumps(table))
    return table


def _interpolate(eeg: np.ndarray, n: int) -> np.ndarray:
    """Linear resampling of the last axis to ``n`` samples, end points kept (as scipy interp1d on [0, 1])."""
    length = eeg.shape[-1]
    pos = np.linspace(0, length - 1, n)
    left = np.minimum(pos.astype(np.int64), length - 2)
    w = (pos - left).astype(np.float32)
    out = np.empty(eeg.shape[:-1] + (n,), dtype=np.float32)
    for s in range(0, len(eeg), 256):
        chunk = np.asarray(eeg[s: s + 256])
        out[s: s + 256] = chunk[..., left] * (1 - w) + chunk[..., left + 1] * w
    return out
