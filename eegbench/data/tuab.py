"""TUH Abnormal (TUAB): recordings through braindecode's ``TUHAbnormal``, the EEG-CLIP recipe, reports.

Labels per recording: ``pathological`` (the folder), ``age`` < 50 and ``gender`` (the EDF header, as
braindecode parses it), ``medication`` (the report mentions keppra, dilantin or depakote). Physician
reports are paired by (subject, session) from ``<subject>_s<NNN>.txt`` files found under a reports
folder, which fits both the flat v3.0.1 layout and v2.0.0's per-session folders. Real TUAB trees ship
no reports: ``dataset.reports`` points at them. ``survey`` pairs, labels and splits the recordings
without reading a window (what ``eegbench data check`` shows); ``load`` reads the windows.

Preprocessed windows are cached per recording under ``cache_dir/tuab/<recipe key>-v<CACHE_VERSION>/<file key>.npy``
(the file key is its name, size and mtime), written atomically and built in parallel; an index per
tree identity holds the labels, so a warm run opens no EDF file at all. braindecode reads a mirror
of links to the readable files inside the cache, so nothing is written into the user's tree.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from eegbench.config import StrictModel
from eegbench.data import MIN_UNITS
from eegbench.errors import UserError

VERSIONS = ("v3.0.1", "v2.0.0")
TASKS = ("pathological", "age", "gender", "medication")
TUH_CHANNELS = tuple(f"EEG {name}-REF" for name in (
    "A1", "A2", "FP1", "FP2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2",
    "F7", "F8", "T3", "T4", "T5", "T6", "FZ", "CZ", "PZ"))
MEDICATION = re.compile(r"keppra|dilantin|depakote", re.IGNORECASE)
SECTION = re.compile(r"^([A-Z][A-Z /&,()-]+):", re.MULTILINE)
EDF_NAME = re.compile(r"^(?P<subject>\w+?)_s(?P<session>\d+)_t(?P<segment>\d+)\.edf$")
REPORT_NAME = re.compile(r"^(?P<subject>\w+?)_s(?P<session>\d+)\.txt$")
CACHE_VERSION = 1  # bump when preprocessing changes what a cached window holds
TRANSIENT = "cannot preprocess"  # reasons that are not cached: the next run tries the file again
DEFAULT_SECTIONS = ("IMPRESSION", "DESCRIPTION OF THE RECORD", "CLINICAL HISTORY", "MEDICATIONS", "CLINICAL CORRELATION")


class Recipe(StrictModel):
    """EEG-CLIP preprocessing: pick channels by name, crop, microvolts, clip, average reference,
    divide, resample, then fixed windows between ``start_s`` and ``stop_s``."""

    channels: list[str] = list(TUH_CHANNELS)
    crop_s: float = Field(180.0, gt=0)  # keep the first crop_s seconds
    clip_uv: float = Field(800.0, gt=0)
    reference: Literal["average", "none"] = "average"
    divide: float = Field(30.0, gt=0)
    sfreq: float = Field(100.0, gt=0)
    window: int = Field(1200, ge=2)  # samples at sfreq
    stride: int = Field(519, ge=1)
    start_s: float = Field(60.0, ge=0)  # the first minute is dropped
    stop_s: float = Field(180.0, gt=0)

    @model_validator(mode="after")
    def _one_window_fits(self):
        if self.stop_s <= self.start_s or (self.stop_s - self.start_s) * self.sfreq < self.window:
            raise ValueError(f"start_s {self.start_s:g} .. stop_s {self.stop_s:g} must span at least one "
                             f"{self.window}-sample window at {self.sfreq:g} Hz")
        return self

    def key(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:12]


@dataclass
class Recordings:
    """TUAB windows with their recordings' labels and report texts."""

    eeg: np.ndarray  # [windows, channels, times] float32
    recording: np.ndarray  # [windows] row of ``table`` each window comes from
    table: "object"  # pandas DataFrame, one row per recording (path, subject, session, split, labels, report, text)
    splits: dict[str, np.ndarray]  # 'train'/'val'/'test' -> window positions (test = the official eval set)
    skipped: list[dict] = field(default_factory=list)  # {"path", "reason"} of recordings left out
    warnings: list[str] = field(default_factory=list)  # printed beside every metric of the run
    wnids: tuple[str, ...] = ("normal", "abnormal")  # classes of ``label``

    @property
    def label(self) -> np.ndarray:
        """Window-level pathology (0 normal, 1 abnormal)."""
        return self.task("pathological")[self.recording]

    def units(self, windows: np.ndarray) -> tuple[np.ndarray, str]:
        """``(groups, description)``: the units CIs and tests resample for ``windows``: subjects, every window of
        every recording of a subject together, when there are ``MIN_UNITS`` of them; else recordings."""
        return self.recording_units(self.recording[windows])

    def recording_units(self, rows: np.ndarray) -> tuple[np.ndarray, str]:
        """:meth:`units` of items that are recordings (rows of ``table``), e.g. per-recording scores."""
        subjects = self.table["subject"].to_numpy()[rows]
        n_subjects, n_recordings = len(np.unique(subjects)), len(np.unique(rows))
        if n_subjects >= MIN_UNITS:
            return subjects, f"{n_subjects} subjects, each with all its recordings"
        return rows, f"{n_recordings} recordings (the {n_subjects} subjects held fixed)"

    def task(self, name: str) -> np.ndarray:
        """Per-recording 0/1 labels of a task in ``TASKS``; -1 where unknown (age or gender missing)."""
        if name not in TASKS:
            raise UserError(f"unknown TUAB task {name!r}; use one of {', '.join(TASKS)}")
        return self.table[name].to_numpy(dtype=np.int64)

    def target(self, name: str | None) -> tuple[np.ndarray, int]:
        """Window labels and class count of task ``name`` (None: pathology)."""
        return self.task(name or "pathological")[self.recording], 2


@dataclass
class Survey:
    """What a TUAB tree gives a run before any window is read: usable recordings, skipped files, reports."""

    table: "object"  # pandas DataFrame of the usable recordings, with split and labels (empty when none)
    arrays: list[Path]  # the cached windows of each row of ``table``
    skipped: list[dict]  # {"path", "reason"} of recordings left out
    reports_folder: Path
    reports_found: int  # <subject>_s<NNN>.txt files under ``reports_folder``
    matched: int  # readable recordings paired with a report
    readable: int  # recordings braindecode read and the recipe could window
    problems: list[str]  # what stops the load, one UserError message each; ``load`` raises the first
    notes: list[str]  # printed beside every metric of the run


def survey(root: Path, *, version: str, recipe: Recipe, reports: Path | None, sections: list[str],
           label_lines: bool, val_fraction: float, split_seed: int, on_bad_file: str, cache_dir: Path,
           n_jobs: int = 0, report_encoding: str = "utf-8") -> Survey:
    """Every recording under ``root/version`` with its labels, report and split, windows cached but not read."""
    import pandas as pd

    root = Path(root)
    edfs = _edf_files(root, version)
    reports_folder = Path(reports) if reports else root
    reports_by_session = _reports(reports_folder)
    folder = Path(cache_dir) / "tuab" / f"{recipe.key()}-v{CACHE_VERSION}"
    identity = {str(p.relative_to(root)): _file_key(p) for p in edfs}
    index_path = folder / f"index-{_digest(sorted(identity.items()))}.json"
    index = json.loads(index_path.read_text()) if index_path.is_file() else None
    if index is None or any(not (folder / f"{e['key']}.npy").is_file() for e in index if not e.get("reason")):
        index = _build(root, version, edfs, identity, recipe, folder, n_jobs)
        if not any(e.get("transient") for e in index):  # a full disk is not a property of the file
            _atomic_write(index_path, json.dumps(index).encode())

    rows, skipped, no_report, arrays, found = [], [], [], [], set()
    for entry in index:
        if entry.get("reason"):
            skipped.append({"path": entry["path"], "reason": entry["reason"]})
            continue
        expected = report_name(entry["subject"], int(entry["session"]))
        report_path = reports_by_session.get((entry["subject"], int(entry["session"])))
        if report_path is None:
            skipped.append({"path": entry["path"], "reason": f"no report {expected} under {reports_folder}"})
            no_report.append(expected)
            continue
        report = _read_report(report_path, report_encoding)
        medication = int(bool(MEDICATION.search(report)))
        parts = report_sections(report)
        found.update(parts)
        if not any(parts.get(name) for name in sections):
            skipped.append({"path": entry["path"], "reason": f"its report {report_path.name} has none of the chosen "
                                                            f"sections ({', '.join(sections)})"})
            continue
        rows.append({**entry, "report_path": str(report_path), "report": report, "medication": medication,
                     "text": _text(parts, entry, medication, sections, label_lines)})
        arrays.append(folder / f"{entry['key']}.npy")
    readable = sum(not e.get("reason") for e in index)
    report_fix = (f"set dataset.reports to the folder holding the physician reports, one <subject>_s<NNN>.txt per "
                  f"session (here e.g. {no_report[0]}; TUAB trees ship none)") if no_report else ""
    problems = []
    if skipped and on_bad_file == "fail":
        first = skipped[0]
        more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
        if first["reason"].startswith("no report "):
            problems.append(f"{first['path']}: {first['reason']}{more}; {len(no_report)} of {readable} readable "
                            f"recording(s) have no report: {report_fix}, or pass --on-bad-file skip to leave them out")
        else:
            problems.append(f"{first['path']}: {first['reason']}{more}; fix or remove it, or pass --on-bad-file skip")
    if not rows:
        other = len(skipped) - len(no_report)
        if no_report:
            problems.append(f"{root / version}: no usable recording: {len(no_report)} of {readable} readable recording(s) "
                            f"have no report under {reports_folder}" + (f", {other} other(s) skipped" if other else "")
                            + f"; {report_fix}")
        else:
            problems.append(f"{root / version}: no usable recording ({len(skipped)} skipped, first: {skipped[0]['path']}: "
                            f"{skipped[0]['reason']}); fix the files (`eegbench data check tuab` lists every one)")
    unknown = [name for name in sections if name not in found]
    if rows and unknown:  # a typo, not a property of single reports
        problems.append(f"dataset.sections: {', '.join(unknown)} appear(s) in no report; sections found: "
                        f"{', '.join(sorted(found)) or 'none'}")

    table = pd.DataFrame(rows)
    if rows:
        table["age_years"] = table["age"]
        table["age"] = np.where(table["age_years"] < 0, -1, (table["age_years"] < 50).astype(int))
        table["gender"] = table["gender_code"].map({"M": 0, "F": 1}).fillna(-1).astype(int)
        table["split"] = _splits(table, val_fraction, split_seed)
        empty = [s for s in ("train", "val", "test") if not (table["split"] == s).any()]
        if empty:
            problems.append(f"{root / version}: no usable recording in the {', '.join(empty)} split(s) "
                            f"({len(table)} recordings, val_fraction {val_fraction}); the tree needs edf/train and "
                            "edf/eval with at least two training subjects")
    notes = ["label lines (age, gender, pathology, medication) are written into the training text: every "
             "result of this run is label-leaking"] if label_lines else []
    return Survey(table=table, arrays=arrays, skipped=skipped, reports_folder=reports_folder,
                  reports_found=len(reports_by_session), matched=readable - len(no_report), readable=readable,
                  problems=problems, notes=notes)


def load(root: Path, **survey_args) -> Recordings:
    """Windows of every usable recording under ``root/version`` plus their labels and texts (``survey``'s arguments)."""
    found = survey(root, **survey_args)
    if found.problems:
        raise UserError(found.problems[0])
    table = found.table
    windows = [np.load(p, mmap_mode="r") for p in found.arrays]
    eeg = np.concatenate(windows).astype(np.float32, copy=False)
    recording = np.repeat(np.arange(len(windows)), [len(w) for w in windows])
    split_of_window = table["split"].to_numpy()[recording]
    return Recordings(eeg=eeg, recording=recording, table=table,
                      splits={s: np.flatnonzero(split_of_window == s) for s in ("train", "val", "test")},
                      skipped=found.skipped, warnings=found.notes)


def report_name(subject: str, session: int) -> str:
    """The file name a recording's physician report must have: ``<subject>_s<NNN>.txt``."""
    return f"{subject}_s{session:03d}.txt"


def _edf_files(root: Path, version: str) -> list[Path]:
    if version not in VERSIONS:
        raise UserError(f"dataset.version: {version!r} is not a TUAB version; use one of {', '.join(VERSIONS)}")
    expected = root / version / "edf" / "train"
    if not root.is_dir() or not expected.is_dir():
        raise UserError(f"{root}: not a TUAB tree; expected {expected} (pass the folder above {version}/ "
                        "with --data-root)")
    import glob

    # the glob braindecode uses, sorted: the file system's listing order differs from one copy to the next
    files = sorted(Path(p) for p in glob.glob(os.path.join(root, f"{version}/**/*.edf"), recursive=True))
    if not files:
        raise UserError(f"{root / version}: no .edf files found; expected edf/{{train,eval}}/{{normal,abnormal}}/...")
    return files


def _file_key(path: Path) -> str:
    stat = path.stat()
    return _digest([path.name, stat.st_size, stat.st_mtime_ns])


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, default=str).encode()).hexdigest()[:16]


def _build(root: Path, version: str, edfs: list[Path], identity: dict, recipe: Recipe, folder: Path,
           n_jobs: int) -> list[dict]:
    """Read the tree with braindecode, preprocess every new recording in parallel; the index rows
    (files that cannot be read carry a ``reason`` instead of labels)."""
    from braindecode.datasets import TUHAbnormal
    from joblib import Parallel, delayed

    from eegbench import progress

    jobs = n_jobs or os.cpu_count() or 1
    bad = {i: reason for i, p in enumerate(edfs) if (reason := edf_problem(p) or _layout_problem(p.relative_to(root)))}
    # braindecode opens every .edf it globs, so it reads a mirror of links to the readable files;
    # its _date.txt files land in that mirror, never in the user's tree
    mirror = Path(os.path.normpath(folder / "trees" / _digest([str(root.resolve()), sorted(identity.items())])))
    for i, path in enumerate(edfs):
        link = mirror / path.relative_to(root)
        if i not in bad and not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            try:
                link.symlink_to(path.resolve())
            except FileExistsError:  # another process building the same tree
                pass
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Expected .* files but found")  # subsets and synthetic trees
        warnings.filterwarnings("ignore", message="Could not verify that the number of files")  # v2.0.0
        dataset = TUHAbnormal(str(mirror), version=version, preload=False, on_missing_files="warn",
                              n_jobs=min(jobs, 4)) if len(bad) < len(edfs) else None
    folder.mkdir(parents=True, exist_ok=True)
    todo = []
    rows = []
    for ds in dataset.datasets if dataset else []:
        path = Path(os.path.normpath(ds.description["path"]))
        name = EDF_NAME.match(path.name)
        rel = path.relative_to(mirror)
        # split and pathology from the path below the version folder (braindecode searches the whole
        # absolute path, so a cache under a folder named 'train' or 'abnormal' would fool it)
        row = {"path": str(rel), "key": identity[str(rel)], "split": {"train": "train", "eval": "test"}[rel.parts[2]],
               "pathological": int(rel.parts[3] == "abnormal"), "age": int(ds.description["age"]),
               "gender_code": str(ds.description["gender"]),
               "subject": name["subject"] if name else path.stem, "session": int(name["session"]) if name else 0}
        rows.append(row)
        if not (folder / f"{row['key']}.npy").is_file():
            todo.append((ds.raw, folder / f"{row['key']}.npy"))
    reasons = Parallel(n_jobs=min(jobs, max(1, len(todo))))(
        delayed(_cache_windows)(raw, recipe, out) for raw, out in progress.track(todo, "preprocessing TUAB recordings"))
    failed = {str(out): reason for (_, out), reason in zip(todo, reasons) if reason}
    for row in rows:
        row["reason"] = failed.get(str(folder / f"{row['key']}.npy"))
        row["transient"] = (row["reason"] or "").startswith(TRANSIENT)
    rows += [{"path": str(edfs[i].relative_to(root)), "reason": reason} for i, reason in bad.items()]
    return sorted(rows, key=lambda r: r["path"])


def edf_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a complete EDF file, or None; reads the header only."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            head = f.read(256)
            n_signals = int(head[252:256])
            header_bytes, n_records = int(head[184:192]), int(head[236:244])
            if size < 256 * (n_signals + 1):
                return f"truncated EDF ({size} bytes, inside its {256 * (n_signals + 1)}-byte header)"
            f.seek(256 + n_signals * 216)
            samples = [int(f.read(8)) for _ in range(n_signals)]
        head[8:88].decode("ascii")  # braindecode reads age and gender from it as ASCII
    except (OSError, ValueError):
        return "unreadable EDF header"
    if n_signals < 1:
        return "unreadable EDF header (no signals)"
    expected = header_bytes + n_records * sum(samples) * 2
    if n_records < 1 or size < expected:
        return f"truncated EDF ({size} of {expected} bytes)"
    import mne

    try:
        mne.io.read_raw_edf(path, preload=False, verbose="error")
    except Exception as exc:  # mne raises many types for a malformed header
        return f"unreadable EDF header ({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__})"
    return None


def _layout_problem(rel: Path) -> str | None:
    """Why a file's place in the tree gives no split or pathology label, or None."""
    parts = rel.parts
    if len(parts) < 5 or parts[2] not in ("train", "eval") or parts[3] not in ("normal", "abnormal"):
        return "not under edf/{train,eval}/{normal,abnormal}/ (no split or pathology label)"
    return None


def _cache_windows(raw, recipe: Recipe, out: Path) -> str | None:
    """Preprocess one recording into ``out`` (atomically); the reason when it cannot be used."""
    tmp = out.with_suffix(f".tmp{os.getpid()}.npy")
    try:
        np.save(tmp, preprocess(raw, recipe))
        os.replace(tmp, out)
    except ValueError as exc:
        return str(exc)
    except Exception as exc:  # unreadable data blocks, a full disk: the file, not a traceback
        return f"{TRANSIENT} ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})"
    finally:
        tmp.unlink(missing_ok=True)
    return None


def preprocess(raw, recipe: Recipe) -> np.ndarray:
    """``[windows, channels, window]`` float32 of an mne Raw by ``recipe``; ValueError if unusable."""
    from mne.filter import resample

    picks = [_find(c, raw.ch_names) for c in recipe.channels]
    missing = [c for c, p in zip(recipe.channels, picks) if p is None]
    if missing:
        raise ValueError(f"missing channel(s) {', '.join(missing)}")
    sfreq = raw.info["sfreq"]
    duration = min(recipe.crop_s, raw.n_times / sfreq)
    x = raw.get_data(picks=picks, start=0, stop=int(round(duration * sfreq))) * 1e6
    if not np.isfinite(x).all():
        raise ValueError("non-finite samples")
    x = np.clip(x, -recipe.clip_uv, recipe.clip_uv)
    if recipe.reference == "average":
        x = x - x.mean(axis=0, keepdims=True)
    x = resample(x / recipe.divide, up=recipe.sfreq, down=sfreq, axis=-1, verbose="error")
    start, stop = int(round(recipe.start_s * recipe.sfreq)), min(x.shape[1], int(round(recipe.stop_s * recipe.sfreq)))
    starts = range(start, stop - recipe.window + 1, recipe.stride)
    if not starts:
        raise ValueError(f"too short for one {recipe.window / recipe.sfreq:g}-s window between "
                         f"{recipe.start_s:g} s and {recipe.stop_s:g} s ({raw.n_times / sfreq:.1f} s)")
    return np.stack([x[:, s:s + recipe.window] for s in starts]).astype(np.float32)


def _find(channel: str, names: list[str]) -> str | None:
    """``channel`` among ``names``, also without its type prefix (mne's ``infer_types`` strips 'EEG ')."""
    for name in (channel, channel.split(" ", 1)[-1]):
        if name in names:
            return name
    return None


def _reports(folder: Path) -> dict[tuple[str, int], Path]:
    """``(subject, session) -> report file`` for every ``<subject>_s<NNN>.txt`` under ``folder``."""
    if not folder.is_dir():
        raise UserError(f"{folder}: reports folder not found; set dataset.reports to the folder holding "
                        "the physician reports, one <subject>_s<NNN>.txt per session")
    found = {}
    for path in sorted(folder.rglob("*.txt")):
        match = REPORT_NAME.match(path.name)
        if match:
            found[(match["subject"], int(match["session"]))] = path
    return found


def _read_report(path: Path, encoding: str) -> str:
    try:
        return path.read_text(encoding=encoding)
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: cannot decode the report as {encoding} (byte {exc.start}); re-encode it or "
                        "set dataset.report_encoding (e.g. latin-1)") from None


def report_sections(report: str) -> dict[str, str]:
    """A report's sections, ``{"IMPRESSION": "...", ...}``, by the capitalised headings at line starts."""
    marks = list(SECTION.finditer(report))
    return {m[1].strip(): report[m.end():nxt.start() if nxt else None].strip()
            for m, nxt in zip(marks, marks[1:] + [None])}


def _text(parts: dict[str, str], entry: dict, medication: int, chosen: list[str], label_lines: bool) -> str:
    """The chosen sections in order; with ``label_lines``, the authors' label prefix first."""
    text = " ".join(f"{name}: {parts[name]}" for name in chosen if parts.get(name))
    if label_lines:
        gender = entry["gender_code"] if entry["gender_code"] in ("M", "F") else "X"
        text = (f"age: {entry['age']}, gender: {gender}, pathological: {bool(entry['pathological'])}, "
                f"medication: {bool(medication)}, " + text)
    return text


def _splits(table, val_fraction: float, seed: int) -> np.ndarray:
    """Official train/eval ('test'), with ``val_fraction`` of the training subjects (at least one) moved to 'val'."""
    split = table["split"].to_numpy().copy()
    subjects = np.array(sorted(set(table.loc[split == "train", "subject"])))
    rng = np.random.default_rng(seed)
    n_val = min(len(subjects) - 1, max(1, int(round(val_fraction * len(subjects))))) if val_fraction > 0 else 0
    val = set(subjects[rng.permutation(len(subjects))[:n_val]])
    split[(split == "train") & table["subject"].isin(val).to_numpy()] = "val"
    return split


def _atomic_write(path: Path, blob: bytes) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(blob)
    os.replace(tmp, path)
