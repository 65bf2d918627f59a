"""What ``eegbench data check`` reports: what a dataset's loader sees, before any training.

The counts come from the loaders' own functions (``imagenet_eeg.select``, ``tuab.survey``), so a
check and a run cannot disagree; ``problem`` is the first thing that would stop the load, in the
loader's own words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eegbench import config, registry
from eegbench.errors import UserError

SHOWN_SKIPPED = 20  # skipped recordings listed one by one; the rest are counted


@dataclass
class Section:
    """One table of the report."""

    title: str
    columns: list[str]
    rows: list[list[str]]


@dataclass
class Report:
    """Everything ``data check`` prints, and the first blocking problem (None: a run can load this data)."""

    name: str
    root: Path
    synthetic: bool
    sections: list[Section] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problem: str | None = None

    def section(self, title: str) -> Section:
        return next(s for s in self.sections if s.title == title)


def check(name: str, data_root: Path | None, overrides: dict, cache_dir: Path) -> Report:
    """The report of dataset ``name`` (a registry name) on ``data_root`` (None: the synthetic world a run uses).

    ``overrides`` are dotted dataset keys, with or without the ``dataset.`` prefix a run's ``--set`` takes.
    """
    from eegbench.data.datasets import TUAB, ImageNetEEG

    dataset_cls = registry.datasets.get(name)
    settings = config.dotted_to_tree({k.removeprefix("dataset."): v for k, v in overrides.items()})
    if data_root is not None:
        settings["root"] = str(Path(data_root).resolve())
    config.validate_component([("--set", {"dataset": settings})], ("dataset",), dataset_cls.Config, settings)
    dataset = dataset_cls(settings, cache_dir)
    checks = {ImageNetEEG: _imagenet_eeg, TUAB: _tuab}
    if dataset_cls not in checks:
        raise UserError(f"dataset {name!r} has no data check; `eegbench data check` knows imagenet-eeg and tuab")
    report = Report(name=name, root=dataset.prepare(), synthetic=dataset.config.root is None)
    checks[dataset_cls](dataset, report)
    return report


def _imagenet_eeg(dataset, report: Report) -> None:
    from eegbench.data import imagenet_eeg as ie

    c = dataset.config
    sel = dataset.select()
    meta = sel.meta
    subjects = sorted({int(s) for s in meta.subject[sel.rows]})
    rows = []
    for s in subjects:
        counts = [int((meta.subject[sel.rows[sel.splits[n]]] == s).sum()) for n in ie.SPLIT_NAMES]
        rows.append([str(s), *map(str, counts), str(sum(counts))])
    totals = [len(sel.splits[n]) for n in ie.SPLIT_NAMES]
    rows.append(["all", *map(str, totals), str(sum(totals))])
    report.sections.append(Section(f"trials kept per subject and split ({sel.split_path.name}, split {c.split_index})",
                                   ["subject", *ie.SPLIT_NAMES, "total"], rows))
    lo, hi = c.length_range
    reasons = {"subject": f"another subject (dataset.subject={c.subject})" if c.subject else "another subject (none: all)",
               "split": f"in no split of {sel.split_path.name} (split {c.split_index})",
               "length": f"length outside {lo}..{hi} samples (dataset.length_range)"}
    report.sections.append(Section("trials dropped", ["reason", "trials"],
                                   [[reasons[r], str(sel.dropped[r])] for r in ie.DROP_REASONS]))
    report.sections.append(Section(f"trial lengths of {'subject ' + str(c.subject) if c.subject else 'all subjects'}",
                                   ["samples", "trials", "what the loader does"],
                                   _length_rows(meta.length[sel.chosen], ie.CROP, c.length_range, c.interpolate)))
    used = np.concatenate([sel.rows[sel.splits[n]] for n in ie.SPLIT_NAMES])
    names = sorted({meta.images[int(i)] for i in meta.image[used]})
    if sel.image_root is None:
        images = ["-", "no image folder: set dataset.images_root (the folder of <wnid>/<name>.JPEG)"]
    else:
        missing = [n for n in names if not ie.image_file(sel.image_root, n).is_file()]
        images = [str(len(missing)), f"first: {missing[0]}" if missing else str(sel.image_root)]
    uncaptioned = ie.missing_captions(names, sel.captions)
    captions = ([str(len(uncaptioned)), f"first: {uncaptioned[0]} ({sel.captions_file})" if uncaptioned
                 else str(sel.captions_file)] if sel.captions_file.is_file()
                else ["-", f"no captions file ({sel.captions_file}): set dataset.captions"])
    report.sections.append(Section(f"stimuli of the {len(names)} images the kept trials show "
                                   "(needed by image and text suites)", ["missing", "count", "where"],
                                   [["image files", *images], ["captions", *captions]]))
    report.notes += sel.notes
    report.problem = sel.problems[0] if sel.problems else _first_problem(dataset.load)


def _length_rows(length: np.ndarray, crop: tuple[int, int], length_range: tuple[int, int],
                 interpolate: int | None) -> list[list[str]]:
    """Histogram rows (non-empty bins only): below the range, 10-sample bins inside it (split at the crop end), above."""
    from eegbench.data.imagenet_eeg import crop_fits, length_ok

    lo, hi = length_range
    starts = sorted({*range(lo, hi + 1, 10), *([crop[1]] if lo < crop[1] <= hi else [])})
    bins = ([(0, lo - 1, f"< {lo}")] + [(a, b - 1, f"{a}..{b - 1}" if b - 1 > a else str(a))
                                        for a, b in zip(starts, starts[1:] + [hi + 1])]
            + [(hi + 1, np.iinfo(np.int64).max, f"> {hi}")])
    ok, fits = length_ok(length, length_range), crop_fits(length, crop, interpolate)
    rows = []
    for a, b, label in bins:
        inside = (length >= a) & (length <= b)
        if not inside.any():
            continue
        if not ok[inside].all():
            what = "dropped (dataset.length_range)"
        elif not fits[inside].all():
            what = f"stops the load: ends before the crop end {crop[1]} (see the error below)"
        elif interpolate is not None:
            part = "what it has of" if (length[inside] < crop[1]).any() else "samples"
            what = f"kept: {part} [{crop[0]}:{crop[1]}] resampled to {interpolate}"
        else:
            what = f"kept: samples [{crop[0]}:{crop[1]}]"
        rows.append([label, str(int(inside.sum())), what])
    return rows


def _tuab(dataset, report: Report) -> None:
    found = dataset.survey()
    table = found.table
    rows = []
    for split in ("train", "val", "test"):
        mine = table[table["split"] == split] if len(table) else table
        windows = sum(np.load(found.arrays[i], mmap_mode="r").shape[0] for i in mine.index) if len(mine) else 0
        counts = [int((mine["pathological"] == k).sum()) if len(mine) else 0 for k in (0, 1)]
        rows.append([split, *map(str, counts), str(len(mine)), str(windows)])
    report.sections.append(Section("usable recordings by split and label (test = the official eval set)",
                                   ["split", "normal", "abnormal", "recordings", "windows"], rows))
    report.sections.append(Section("physician reports (dataset.reports)", ["item", "value"], [
        ["folder", str(found.reports_folder)],
        ["report files <subject>_s<NNN>.txt", str(found.reports_found)],
        ["readable recordings with a report", f"{found.matched} of {found.readable}"]]))
    skipped = [[s["path"], s["reason"]] for s in found.skipped[:SHOWN_SKIPPED]] or [["none", ""]]
    if len(found.skipped) > SHOWN_SKIPPED:
        skipped.append([f"... and {len(found.skipped) - SHOWN_SKIPPED} more", ""])
    report.sections.append(Section(f"skipped recordings ({len(found.skipped)})", ["file", "reason"], skipped))
    report.notes += found.notes
    report.problem = found.problems[0] if found.problems else None


def _first_problem(load) -> str | None:
    """The message of the UserError ``load()`` raises, or None (this builds the loader's cache, as a run would)."""
    try:
        load()
    except UserError as exc:
        return str(exc)
    return None


def show(report: Report, console) -> None:
    """Print ``report`` with rich tables."""
    from rich.table import Table

    where = f"the synthetic world at {report.root}" if report.synthetic else str(report.root)
    console.print(f"[bold]{report.name}[/bold]: {where}", soft_wrap=True)
    for section in report.sections:
        table = Table(title=section.title, title_justify="left", min_width=len(section.title))
        for col in section.columns:
            table.add_column(col, overflow="fold")
        for row in section.rows:
            table.add_row(*row)
        console.print(table)
    for note in report.notes:
        console.print(f"[bold yellow]note:[/bold yellow] {note}", soft_wrap=True)
    if report.problem is None:
        console.print("no blocking problem: a run can load this data", soft_wrap=True)
