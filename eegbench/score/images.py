"""``eegbench score images``: the benchmark's image metrics on images generated outside eegbench.

Layout (one flat folder each; names are matched case-sensitively, suffixes .png, .jpg, .jpeg in any case):

- ``STIMULI_DIR/<trial>.png`` (or .jpg, .jpeg): the stimulus image of each trial;
- ``GENERATED_DIR/<trial>_<k>.png`` (or ``<trial>-<k>.png``, k = 0, 1, ...): sample k generated for that
  trial, e.g. ``n02106662_1234_0.png`` for ``n02106662_1234.JPEG``; a file named exactly ``<trial>.png``
  is that trial's one sample. A name that is itself a stimulus name is that trial's image first.

Every trial with generated images must have a stimulus; stimuli without generated images are left
out. Trials keep the same number of samples (``--samples-per-trial N`` keeps the first N by k).
Images are centre-cropped to squares and compared at the first generated image's size, as runs
compare them; the judge and CLIP resize as they do in runs. The metrics are the runs' own
evaluations (``evaluate.images``) and records (``evaluate.report.metric_record``): value, bootstrap
95% CI and chance as in a run's metrics.json, without controls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eegbench.errors import UserError

SUFFIXES = (".png", ".jpg", ".jpeg")
LAYOUT = "name generated images <trial>_<k>.png after their stimulus <trial>.png|.jpg|.jpeg"
JUDGED = ("image_nway_top1", "image_nway_top1_max", "image_nway_top1_oracle")
PIXELS = ("image_ssim_2way", "image_pcc_2way")
CLIP = ("image_clip_2way",)
_NUMBERED = re.compile(r"^(?P<trial>.+)[_-](?P<k>\d+)$")


@dataclass
class Pairs:
    """Trial names (sorted), each trial's stimulus, and its generated images ``[trial][sample]``."""

    trials: list[str]
    stimuli: list[Path]
    generated: list[list[Path]]
    unused_stimuli: int

    def image_path(self, i: int) -> Path:  # what evaluate.context.EvalContext.stimuli reads
        return self.stimuli[i]


def _images(folder: Path, role: str) -> list[Path]:
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder; pass the folder of {role} images ({LAYOUT})")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:
        raise UserError(f"{folder}: no .png, .jpg or .jpeg files; pass the folder of {role} images ({LAYOUT})")
    return files


def pair_folders(generated_dir: Path, stimuli_dir: Path, samples_per_trial: int | None = None) -> Pairs:
    """Match each generated image to its trial's stimulus by name (module docstring); UserError on what cannot be."""
    generated_files = _images(Path(generated_dir), "generated")
    stimuli: dict[str, Path] = {}
    for path in _images(Path(stimuli_dir), "stimulus"):
        if path.stem in stimuli:
            raise UserError(f"{path}: a second stimulus for trial {path.stem!r} (also {stimuli[path.stem].name}); "
                            "keep one image per trial")
        stimuli[path.stem] = path
    samples: dict[str, list[tuple[int, Path]]] = {}
    unmatched = []
    for path in generated_files:
        numbered = _NUMBERED.match(path.stem)
        if path.stem in stimuli:
            samples.setdefault(path.stem, []).append((-1, path))
        elif numbered and numbered["trial"] in stimuli:
            samples.setdefault(numbered["trial"], []).append((int(numbered["k"]), path))
        else:
            unmatched.append(path)
    if unmatched:
        trial = _NUMBERED.match(unmatched[0].stem)
        raise UserError(f"{unmatched[0]}: no stimulus {trial['trial'] if trial else unmatched[0].stem}.png|.jpg|.jpeg "
                        f"in {stimuli_dir} ({len(unmatched)} generated image(s) without one); {LAYOUT}")
    trials = sorted(samples)
    if len(trials) < 2:
        raise UserError(f"{generated_dir}: images of {len(trials)} trial; the 2-way metrics compare each trial with "
                        "the others, so give at least two trials")
    generated = [[p for _, p in sorted(samples[t], key=lambda kp: (kp[0], kp[1].name))] for t in trials]
    counts = [len(g) for g in generated]
    if samples_per_trial is not None:
        short = [t for t, c in zip(trials, counts) if c < samples_per_trial]
        if short:
            raise UserError(f"{generated_dir}: trial {short[0]!r} has {counts[trials.index(short[0])]} generated "
                            f"image(s), fewer than --samples-per-trial {samples_per_trial} ({len(short)} such trial(s)); "
                            "lower it or generate more")
        generated = [g[:samples_per_trial] for g in generated]
    elif len(set(counts)) > 1:
        first, other = trials[0], next(t for t, c in zip(trials, counts) if c != counts[0])
        raise UserError(f"{generated_dir}: trial {first!r} has {counts[0]} generated image(s), trial {other!r} "
                        f"{counts[trials.index(other)]}; give every trial the same number or pass "
                        "--samples-per-trial N to keep the first N of each")
    return Pairs(trials, [stimuli[t] for t in trials], generated, len(stimuli) - len(trials))


def _side(path: Path) -> int:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return min(img.size)
    except (UnidentifiedImageError, OSError) as exc:
        raise UserError(f"{path}: not a readable image ({type(exc).__name__}); replace the file") from None


def score_folders(generated_dir: Path, stimuli_dir: Path, *, judge_weights: Path | None = None,
                  clip_weights: Path | None = None, samples_per_trial: int | None = None, seed: int = 0) -> dict:
    """``{"generated", "stimuli", "trials", "samples", "values": {metric: value}, "metrics": [records], "skipped":
    [lines]}``: every image metric the given models allow, records as in a run's metrics.json."""
    from eegbench import paths, registry
    from eegbench.data.stimuli import load_pixels
    from eegbench.evaluate.context import EvalContext, higher_is_better
    from eegbench.models.pretrained.clip import check_clip_folder
    from eegbench.models.pretrained.judge import check_judge_folder
    from eegbench.evaluate.report import metric_record
    from eegbench.models.pretrained import Pretrained

    folders = {}
    if judge_weights is not None:
        check_judge_folder(judge_weights)
        folders["judge"] = Path(judge_weights)
    if clip_weights is not None:
        check_clip_folder(clip_weights)
        folders["clip"] = Path(clip_weights)
    pairs = pair_folders(Path(generated_dir), Path(stimuli_dir), samples_per_trial)
    size = _side(pairs.generated[0][0])
    flat = [p for trial in pairs.generated for p in trial]
    images = load_pixels(flat, size).reshape(len(pairs.trials), -1, 3, size, size)
    ctx = EvalContext(pairs, np.arange(len(pairs.trials)), Pretrained(folders, paths.cache_dir()),
                      seed=seed)
    names = list(PIXELS)
    skipped = [f"{pairs.unused_stimuli} stimulus image(s) without generated images left out"] if pairs.unused_stimuli else []
    if "judge" in folders:
        names = [*JUDGED, *names]
    else:
        skipped.append(f"{', '.join(JUDGED)} skipped: pass --judge-weights (a judge folder) to score them")
    if "clip" in folders:
        names += CLIP
    else:
        skipped.append(f"{', '.join(CLIP)} skipped: pass --clip-weights (an open_clip folder) to score it")
    records = []
    for name in names:
        fn = registry.evaluations.get(name)
        scored = fn({"images": images}, ctx, *([fn.Config()] if hasattr(fn, "Config") else []))
        records.append(metric_record(name, "folder", scored, {}, seed, higher_is_better=higher_is_better(name, fn)))
    return {"generated": str(generated_dir), "stimuli": str(stimuli_dir), "trials": len(pairs.trials),
            "samples": images.shape[1], "values": {r["metric"]: r["value"] for r in records}, "metrics": records,
            "skipped": skipped}
