"""Loader for the ImageNet-EEG file format (Spampinato et al. 2017): the real files and synthetic worlds.

Protocol, as DreamDiffusion's loader: keep the trials of ``subject`` (0 = all); split indices
index that subject-filtered list (the full list when subject == 0); drop split trials whose length
is outside ``length_range`` (inclusive, 450..600); keep samples ``crop[0]:crop[1]`` (``[20:460]``).
With ``interpolate`` (DreamDiffusion: 512) what a trial has of the crop (430 samples for a
450-sample trial) is resampled linearly to that many samples; without it, a kept trial shorter
than the crop end stops the load. ``select`` applies these rules and ``load`` reads the EEG of
what it keeps, so ``eegbench data check`` counts exactly what a run loads.

The raw variant (``eeg_signals_raw_with_mean_std.pth``) loads like the others; its ``means`` and
``stddevs`` are not applied (the published protocols use the standardised ``*_std.pth`` files, and
the scope of those statistics is undocumented), and the run's notes say so.

The ``.pth`` is read once, with ``torch.load(weights_only=True)`` only: its per-trial fields into
``cache_dir/arrays/meta-<key>.npz`` and the kept trials' EEG into ``cache_dir/arrays/<key>/``
(``eeg.npy``, opened memory-mapped, and ``index.npy``); split files are cached as
``cache_dir/arrays/splits-<key>.json``. Later loads read the cache.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from eegbench import progress
from eegbench.data import MIN_UNITS
from eegbench.errors import UserError
from eegbench.io import atomic_folder, atomic_write_bytes, atomic_write_text

CACHE_VERSION = 2
N_CHANNELS = 128
SPLIT_NAMES = ("train", "val", "test")
_ITEM_KEYS = ("eeg", "image", "label", "subject")
_FIX_FILE = "pass an ImageNet-EEG file such as eeg_5_95_std.pth"
_FIX_SPLIT = "use the split file that matches the data file and subject"
DROP_REASONS = ("subject", "split", "length")  # in the order the protocol applies them
CROP = (20, 460)  # samples kept of each trial
LENGTH_RANGE = (450, 600)  # trial lengths kept, inclusive


@dataclass
class Trials:
    """The kept trials (the chosen subject's, in a split, length-valid), with split positions into them."""

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
    warnings: list[str] = field(default_factory=list)  # printed beside every metric of the run

    def captions_of(self, trials: np.ndarray) -> list[str]:
        """The caption of each trial's image; UserError naming the first image the captions file lacks."""
        names = [self.image_names[int(i)] for i in self.image[trials]]
        missing = missing_captions(names, self.captions)
        if missing:
            where = self.captions_file or "captions.json"
            raise UserError(f"{where}: no caption for {len(missing)} image(s) of this run (first: {missing[0]}); "
                            "add them, or pass a complete file with dataset.captions")
        return [self.captions[n] for n in names]

    def units(self, trials: np.ndarray) -> tuple[np.ndarray | None, str]:
        """``(groups, description)``: the units CIs and tests resample for ``trials``. Subjects, all of a subject's
        trials together, when there are ``MIN_UNITS`` of them; else, where an image repeats (one trial per
        subject), images, all of an image's trials together, the subjects held fixed; else the trials."""
        subjects, images = self.subject[trials], self.image[trials]
        n_subjects, n_images = len(np.unique(subjects)), len(np.unique(images))
        if n_subjects >= MIN_UNITS:
            return subjects, f"{n_subjects} subjects, each with all its trials"
        held = f"the {n_subjects} subject{'s' if n_subjects > 1 else ''} held fixed"
        if n_images < len(trials):
            return images, f"{n_images} images, each with all its trials ({held})"
        return None, f"{len(trials)} trials, one per image ({held})"

    def image_path(self, i: int) -> Path:
        """Stimulus file of trial ``i``: ``image_root/<wnid>/<name>.JPEG``."""
        if self.image_root is None:
            raise UserError("no image folder for this dataset; pass images_root (the folder holding <wnid>/<name>.JPEG)")
        return image_file(self.image_root, self.image_names[int(self.image[i])])


def image_file(image_root: Path, name: str) -> Path:
    """Where the stimulus ``name`` (``<wnid>_<n>``) lies: ``image_root/<wnid>/<name>.JPEG``."""
    return Path(image_root) / name.split("_")[0] / f"{name}.JPEG"


def missing_captions(names, captions: dict[str, str]) -> list[str]:
    """The distinct image names (sorted) that ``captions`` has no caption for."""
    return sorted({n for n in names if n not in captions})


@dataclass
class Meta:
    """Per-trial fields of every trial in a data file, validated, before any filter."""

    length: np.ndarray  # [N] int64 samples per trial
    label: np.ndarray
    image: np.ndarray
    subject: np.ndarray
    labels: list[str]  # wnids
    images: list[str]  # image names
    extras: list[str]  # top-level keys beyond dataset, labels, images (the raw variant: means, stddevs)


@dataclass
class Selection:
    """What a run takes from the files, and why it leaves the rest: everything ``load`` does but read the EEG."""

    data_path: Path
    split_path: Path
    meta: Meta
    chosen: np.ndarray  # full-list indices of the subject's trials (every trial for subject 0)
    rows: np.ndarray  # full-list indices of the kept trials: the subject's, in a split, length-valid (ascending)
    splits: dict[str, np.ndarray]  # positions into ``rows`` per split
    dropped: dict[str, int]  # DROP_REASONS -> trials left out for that reason (each counted once, in that order)
    problems: list[str]  # what stops the load, one UserError message each; ``load`` raises the first
    notes: list[str]  # what a run should know about the data (raised beside every metric)
    class_names: list[str]
    image_root: Path | None
    captions_file: Path
    captions: dict[str, str]
    source: Callable[[], Any] = field(repr=False, default=None)  # the loaded .pth, read at most once


def length_ok(length: np.ndarray, length_range: tuple[int, int]) -> np.ndarray:
    """The protocol's length filter: ``length_range[0] <= T <= length_range[1]``."""
    return (length >= length_range[0]) & (length <= length_range[1])


def crop_fits(length: np.ndarray, crop: tuple[int, int], interpolate: int | None) -> np.ndarray:
    """Whether a trial gives a crop: the whole ``[start:end]``, or with ``interpolate`` at least 2 samples of it."""
    return length >= crop[1] if interpolate is None else length - crop[0] >= 2


def select(root: Path, *, file: str = "eeg_5_95_std.pth", splits: str = "block_splits_by_image_all.pth",
           subject: int = 0, split_index: int = 0, crop: tuple[int, int] = CROP,
           length_range: tuple[int, int] = LENGTH_RANGE, interpolate: int | None = None, cache_dir: Path,
           images_root: Path | None = None, captions: Path | None = None) -> Selection:
    """The trials ``load`` keeps and why it drops the others; raises UserError only where nothing can be counted."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: data folder not found; --data-root must point at the folder holding {file}")
    data_path, split_path = root / file, root / splits
    for path in (data_path, split_path):
        if not path.is_file():
            raise UserError(f"{path}: file not found; --data-root must point at the folder holding {path.name}")
    if not 0 <= crop[0] < crop[1] or length_range[0] > length_range[1]:
        raise UserError(f"crop {tuple(crop)}, length_range {tuple(length_range)}: need 0 <= start < end and min <= max; "
                        "fix dataset.length_range")
    if interpolate is not None and interpolate < 2:
        raise UserError(f"interpolate={interpolate}: pass at least 2 samples, or None to keep {crop[1] - crop[0]}")

    source = _Lazy(data_path)
    meta = _meta_cache(data_path, Path(cache_dir), source)
    if subject and not (meta.subject == subject).any():
        present = ", ".join(str(s) for s in np.unique(meta.subject))
        raise UserError(f"{data_path}: subject {subject} is not in the data (subjects: {present}); "
                        "set dataset.subject to one of those, or 0 for all")
    chosen = np.flatnonzero(meta.subject == subject) if subject else np.arange(len(meta.subject))
    problems = []
    if not subject and "_single" in split_path.name:
        problems.append(f"{split_path}: a _single split indexes one subject's trials, but dataset.subject is 0 (all "
                        f"subjects); set dataset.subject to one of {', '.join(str(s) for s in np.unique(meta.subject))} "
                        "(DreamDiffusion: 4), or use block_splits_by_image_all.pth")

    table = _split_cache(split_path, Path(cache_dir))
    if not 0 <= split_index < len(table):
        raise UserError(f"{split_path}: split_index {split_index} out of range, the file holds {len(table)} "
                        f"split(s); pass 0..{len(table) - 1}")
    listed, members = np.zeros(len(meta.length), dtype=bool), {}
    for name in SPLIT_NAMES:
        idx = np.asarray(table[split_index][name], dtype=np.int64)
        bad = idx[(idx < 0) | (idx >= len(chosen))]
        if len(bad):
            raise UserError(f"{split_path}: split {split_index} '{name}' has index {bad[0]}, outside the "
                            f"{len(chosen)}-trial list of subject {subject} (0 = all); {_FIX_SPLIT}")
        members[name] = chosen[idx]
        listed[members[name]] = True
    ok = length_ok(meta.length, length_range)
    rows = np.flatnonzero(listed & ok)
    position_of = np.full(len(meta.length), -1, dtype=np.int64)
    position_of[rows] = np.arange(len(rows))
    positions = {name: position_of[m][position_of[m] >= 0] for name, m in members.items()}
    dropped = {"subject": len(meta.length) - len(chosen), "split": int((~listed[chosen]).sum()),
               "length": int((listed & ~ok).sum())}

    short = rows[~crop_fits(meta.length[rows], crop, interpolate)]
    if len(short):
        first = f"first: trial {short[0]}, {meta.length[short[0]]} samples"
        if interpolate is None:
            problems.append(f"{data_path}: {len(short)} kept trial(s) end before the crop end {crop[1]} ({first}); set "
                            f"dataset.interpolate=512 to resample what they have of [{crop[0]}:{crop[1]}] (DreamDiffusion), "
                            f"or dataset.length_range=[{crop[1]},{length_range[1]}] to drop them")
        else:
            problems.append(f"{data_path}: {len(short)} kept trial(s) have fewer than 2 samples after the crop start "
                            f"{crop[0]} ({first}); set dataset.length_range=[{crop[0] + 2},{length_range[1]}] to drop them")
    notes = []
    if {"means", "stddevs"} & set(meta.extras):
        notes.append(f"{file}: its means/stddevs are not applied; trials are used as stored (the published protocols "
                     "use the standardised *_std.pth files)")
    try:
        image_root, captions_file, caption_map = _stimuli(root, file, meta.images, images_root, captions)
    except UserError as exc:
        problems.append(str(exc))
        image_root, captions_file, caption_map = None, Path(captions or root / "captions.json"), {}
    class_names = _read_json(root / "classes.json")
    return Selection(data_path=data_path, split_path=split_path, meta=meta, chosen=chosen, rows=rows, splits=positions,
                     dropped=dropped, problems=problems, notes=notes,
                     class_names=[str(class_names.get(w, w)) for w in meta.labels], image_root=image_root,
                     captions_file=captions_file, captions=caption_map, source=source)


def load(root: Path, *, crop: tuple[int, int] = CROP, length_range: tuple[int, int] = LENGTH_RANGE,
         interpolate: int | None = None, cache_dir: Path, **selection) -> Trials:
    """Trials of ``subject`` (0 = all) from ``root/file`` with split ``split_index`` of ``root/splits``.

    Takes ``select``'s arguments; ``captions`` is a JSON object of image name -> caption (default
    ``root/captions.json``, optional).
    """
    sel = select(root, crop=crop, length_range=length_range, interpolate=interpolate, cache_dir=cache_dir, **selection)
    if sel.problems:
        raise UserError(sel.problems[0])
    entry = _array_cache(sel, tuple(crop), tuple(length_range), interpolate, Path(cache_dir))
    row_of = np.full(len(sel.meta.length), -1, dtype=np.int64)
    stored = np.load(entry / "index.npy")
    row_of[stored] = np.arange(len(stored))
    rows = row_of[sel.rows]
    eeg = np.load(entry / "eeg.npy", mmap_mode="r")
    if len(rows) and rows[-1] - rows[0] + 1 == len(rows):
        eeg = eeg[rows[0]: rows[-1] + 1]
    else:
        eeg = eeg[rows]
    meta = sel.meta
    return Trials(
        eeg=eeg, label=meta.label[sel.rows], image=meta.image[sel.rows], subject=meta.subject[sel.rows],
        wnids=meta.labels, image_names=meta.images, splits=sel.splits, class_names=sel.class_names,
        captions=sel.captions, image_root=sel.image_root, captions_file=sel.captions_file, warnings=sel.notes,
    )


def _stimuli(root: Path, file: str, image_names: list[str], images_root: Path | None,
             captions: Path | None) -> tuple[Path | None, Path, dict[str, str]]:
    """The image folder (None if absent), the captions file and its image name -> caption map, validated."""
    if images_root is not None and not Path(images_root).is_dir():
        raise UserError(f"{images_root}: image folder not found; set dataset.images_root to the folder holding "
                        "<wnid>/<name>.JPEG")
    images_root = Path(images_root) if images_root is not None else root / "images"
    captions_file = Path(captions) if captions is not None else root / "captions.json"
    if captions is not None and not captions_file.is_file():
        raise UserError(f"{captions_file}: captions file not found; fix dataset.captions")
    caption_map = _read_json(captions_file)
    unknown = sorted(set(caption_map) - set(image_names))
    if unknown:
        raise UserError(f"{captions_file}: {len(unknown)} caption(s) name images not in {file} (first: {unknown[0]}); "
                        "fix the names or pass the captions file that belongs to this data")
    return (images_root if images_root.is_dir() else None), captions_file, caption_map


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


class _Lazy:
    """The data file as ``torch.load`` gives it, read on the first call only (the caches usually spare it)."""

    def __init__(self, path: Path):
        self.path, self.obj = path, None

    def __call__(self):
        if self.obj is None:
            self.obj = _torch_load(self.path)
        return self.obj


def _meta_cache(path: Path, cache_dir: Path, source: Callable[[], Any]) -> Meta:
    """The validated per-trial fields of ``path``, from ``cache_dir/arrays/meta-<key>.npz`` after the first time."""
    cached = cache_dir / "arrays" / f"meta-{_key(path)}.npz"
    if not cached.is_file():
        meta = _read_meta(path, source())
        blob = io.BytesIO()
        lists = json.dumps({"labels": meta.labels, "images": meta.images, "extras": meta.extras})
        np.savez(blob, length=meta.length, label=meta.label, image=meta.image, subject=meta.subject,
                 lists=np.array(lists))
        atomic_write_bytes(cached, blob.getvalue())
        return meta
    with np.load(cached) as npz:
        arrays = {k: npz[k] for k in ("length", "label", "image", "subject")}
        lists = json.loads(str(npz["lists"]))
    return Meta(**arrays, **lists)


def _as_int(value, path: Path, i: int, key: str) -> int:
    import torch

    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        return int(value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    raise UserError(f"{path}: trial {i} has {key}={value!r}, expected an integer; {_FIX_FILE}")


def _read_meta(path: Path, obj) -> Meta:
    """Validate the loaded ``.pth`` and return its per-trial fields."""
    import torch

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
    extras = sorted(str(k) for k in obj if k not in ("dataset", "labels", "images"))
    return Meta(length=lengths, label=label, image=image, subject=subject, labels=labels, images=images, extras=extras)


def _array_cache(sel: Selection, crop: tuple[int, int], length_range: tuple[int, int], interpolate: int | None,
                 cache_dir: Path) -> Path:
    """The cache folder of the file's usable trials (every subject's) as arrays, built first if absent."""
    key = _key(sel.data_path, list(crop), list(length_range), interpolate)
    entry = cache_dir / "arrays" / key
    if (entry / "index.npy").is_file():
        return entry
    length = sel.meta.length
    keep = np.flatnonzero(length_ok(length, length_range) & crop_fits(length, crop, interpolate))
    with atomic_folder(entry, "index.npy") as tmp:  # index.npy is written last
        _build_arrays(sel.data_path, sel.source()["dataset"], keep, tmp, crop, interpolate)
    return entry


def _build_arrays(path: Path, dataset: list, keep: np.ndarray, out: Path, crop: tuple[int, int],
                  interpolate: int | None) -> None:
    """Write trials ``keep`` of ``dataset``, cropped (and resampled), as ``out/eeg.npy``, then ``out/index.npy``."""
    width = interpolate or crop[1] - crop[0]
    with open(out / "eeg.npy", "wb") as f:  # streamed: no second in-memory copy of the data
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
                                                 "shape": (len(keep), N_CHANNELS, width)})
        for i in progress.track(keep, f"caching {path.name} as arrays", total=len(keep)):
            segment = np.ascontiguousarray(dataset[i]["eeg"][:, crop[0]: crop[1]].float().numpy(), dtype="<f4")
            if not np.isfinite(segment).all():
                raise UserError(f"{path}: trial {i} has NaN/Inf samples in [{crop[0]}:{crop[1]}]; repair or re-export the file")
            if interpolate is not None:
                segment = _interpolate(segment[None], interpolate)[0]
            f.write(segment.data)
    np.save(out / "index.npy", keep)


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
