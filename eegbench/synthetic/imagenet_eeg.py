"""Synthetic ImageNet-EEG world: procedural images, captions and EEG written in the real file format.

A world holds ``classes`` classes of ``images_per_class`` images; every subject sees every image
once, as in the real recording (Spampinato et al. 2017). Files written (see ``generate``):
``eeg_5_95_std.pth``, ``block_splits_by_image_all.pth``, ``block_splits_by_image_single.pth``,
``images/<wnid>/<name>.JPEG``, ``captions.json``, ``classes.json`` and, last, ``world.json``.

Images. Class ``i`` is the pair (``SHAPES[i % 8]``, ``COLOURS[i % 10]``): 40 distinct pairs, both
attributes changing from one class to the next. Each image draws its own position, size,
rotation and background (a grey level or a muted colour, with a little grain).

EEG, 128 channels at 1 kHz, T = 500 samples (0.5 s from image onset; some 498/499, and about
1.5% of trials, at least one per subject, ~250-400 or ~1000-1200 samples, as in the real file):

- Signal. ``N_SOURCES`` latent sources. Each class has an evoked template per source: a shared
  (class-independent) visual response plus class-specific components, each a Gaussian bump or a
  damped 4-12 Hz oscillation at a latency in 80-400 ms with random amplitude and sign. Four
  attribute sources add responses scaled by the image's horizontal position (a lateralised
  left-minus-right pattern), size (an early ~100 ms component), background brightness and
  tilt; a small image-specific response rides on the class sources. Every trial gets a latency
  jitter (sd 4 ms) and a per-source amplitude jitter (sd 20%).
- Mixing. Sources reach the channels through a 128 x (N_SOURCES + 4) matrix per subject: a
  shared base of smooth scalp patterns plus a subject-specific perturbation (30% of its size),
  so a decoder transfers only partly across subjects.
- Noise. 1/f (pink) background from 32 spatially smooth noise sources (unit variance per
  channel) plus white sensor noise (sd 0.3); an alpha rhythm (8-12 Hz per subject, random
  phase and amplitude per trial, strongest on posterior channels); 50 Hz line noise with a
  per-subject amplitude.
- ``snr``: RMS of the class-evoked signal (base mixing, 0-500 ms) relative to the pink
  background's RMS (1 per channel). The default gives Deep4Net about 80% 10-way test accuracy
  on the default world after 15 epochs (the smoke suite at ci scale); chance is 10%.
- ``block_drift``: block design, as in the real data: each subject sees each class as one block
  of consecutive trials, in a block order shared by all subjects (so is the image order inside a
  block). When > 0, every (subject, block) gets a random per-channel DC offset plus a slow
  (0.01-0.15 Hz) trend that runs continuously across the block's trials, both scaled by
  ``block_drift``. The drift is shared by every trial of a class block, so per-trial channel
  means alone decode the class: the confound of Li et al. (TPAMI 2021). 0 = off.
- Band: the clean signal (evoked responses and noise) is band-passed 5-95 Hz per trial, as the
  real ``eeg_5_95_std.pth`` is, then demeaned over the standard analysis window [20:460]
  (partial cycles of time-locked wavelets would otherwise leave class-specific means), so a
  trial's mean carries no stimulus information. The drift is added after both: it stands for
  the slow correlations that survive filtering in the real block-design recording, so the
  confound probe sees only the drift.
- Standardisation: each channel is shifted and scaled by dataset-wide mean and sd of the clean
  signal (everything but the drift), so values are ~unit variance as in the ``_std`` files.

Splits are image-disjoint 4:1:1 per class; ``_all`` indexes the full trial list, ``_single`` a
subject's own list (identical order for every subject), both including bad-length trials, which
loaders drop. Output is deterministic: the same spec gives identical tensors.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

GENERATOR_VERSION = 3
BAND = (5.0, 95.0)  # Hz: every component but the drift is band-passed, as in eeg_5_95_std.pth
WINDOW = (20, 460)  # the standard analysis crop; clean trials have zero mean over it
N_CHANNELS = 128
N_SOURCES = 14  # class sources; four attribute sources come on top
N_NOISE_SOURCES = 32
FS = 1000  # Hz
SHAPES = ("circle", "square", "triangle", "star", "cross", "diamond", "hexagon", "ring")
COLOURS = {
    "red": (220, 30, 30), "green": (30, 170, 50), "blue": (40, 70, 230), "yellow": (240, 220, 40),
    "magenta": (220, 40, 200), "cyan": (40, 210, 220), "orange": (250, 140, 20), "purple": (120, 40, 170),
    "white": (245, 245, 245), "brown": (130, 80, 35),
}
MUTED = {"beige": (200, 190, 160), "olive": (110, 110, 70), "slate blue": (90, 100, 130),
         "dusty pink": (180, 140, 140), "sage green": (140, 160, 130)}
_SYMMETRY = {"circle": 0, "square": 4, "triangle": 3, "star": 5, "cross": 4, "diamond": 2, "hexagon": 6, "ring": 0}
_PAD = 64  # samples of template padding for latency jitter
_BATCH = 128  # trials synthesised at once


IMAGE_FIELDS = ("classes", "images_per_class", "image_size", "seed")  # drawn before, and apart from, the EEG


class WorldSpec(BaseModel):
    """The knobs of a synthetic world; ``key()`` names its cache folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    classes: int = Field(10, ge=2, le=40, description="number of classes; each is a (shape, colour) pair")
    images_per_class: int = Field(36, ge=6, description="images per class, split image-disjoint 4:1:1")
    subjects: int = Field(2, ge=1, le=6, description="subjects; each sees every image once")
    snr: float = Field(0.2, gt=0, description="class-evoked signal RMS relative to the pink background RMS")
    block_drift: float = Field(0.0, ge=0, description="amplitude of the slow per-block drift (block-design confound); 0 = off")
    image_size: int = Field(64, ge=16, description="side of the square stimulus images, pixels")
    seed: int = Field(0, description="seed of every random draw")

    def key(self) -> str:
        """Stable 12-hex hash of the spec and the generator version."""
        text = json.dumps({"spec": self.model_dump(), "version": GENERATOR_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def image_key(self) -> str:
        """Hash of what the images, captions and splits depend on (not the EEG's snr, subjects or drift)."""
        fields = self.model_dump(include=set(IMAGE_FIELDS))
        text = json.dumps({"images": fields, "version": GENERATOR_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def class_pairs(n: int) -> list[tuple[str, str]]:
    """(shape, colour) of the first ``n`` classes; distinct for n <= 40."""
    colours = list(COLOURS)
    return [(SHAPES[i % len(SHAPES)], colours[i % len(colours)]) for i in range(n)]


def ensure(spec: WorldSpec, cache_dir: Path, progress: Callable[[int, int], None] | None = None) -> Path:
    """The world's folder under ``cache_dir/worlds``, generated first if it is not complete."""
    root = Path(cache_dir) / "worlds" / f"imagenet-eeg-{spec.key()}"
    if not (root / "world.json").is_file():
        generate(spec, root, progress)
    return root


def generate(spec: WorldSpec, root: Path, progress: Callable[[int, int], None] | None = None) -> Path:
    """Write the world into ``root`` atomically (built in a sibling temp folder, then renamed)."""
    from eegbench.io import atomic_folder

    with atomic_folder(Path(root), "world.json") as tmp:
        _build(spec, tmp, progress or (lambda done, total: None))
    return Path(root)


def _build(spec: WorldSpec, out: Path, progress: Callable[[int, int], None]) -> None:
    """Draw the world and write every file into ``out``, ``world.json`` last."""
    import torch

    seeds = np.random.SeedSequence([spec.seed, GENERATOR_VERSION]).spawn(4)
    rng = np.random.default_rng(seeds[0])
    C, M, S = spec.classes, spec.images_per_class, spec.subjects
    wnids = [f"n9{d:07d}" for d in rng.choice(10**7, C, replace=False)]
    names = [f"{wnids[c]}_{k}" for c in range(C) for k in np.sort(rng.choice(90000, M, replace=False)) + 10000]
    img_class = np.repeat(np.arange(C), M)
    split_of = np.empty(C * M, dtype=np.int64)  # 0 train, 1 val, 2 test
    n_val = max(1, round(M / 6))
    for c in range(C):
        perm = rng.permutation(M) + c * M
        split_of[perm[: M - 2 * n_val]], split_of[perm[M - 2 * n_val: M - n_val]], split_of[perm[M - n_val:]] = 0, 1, 2
    order = np.concatenate([rng.permutation(M) + c * M for c in rng.permutation(C)])  # presentation order
    attrs = _draw_attributes(rng, C * M)
    pairs = class_pairs(C)
    shapes = [pairs[c][0] for c in img_class]

    total = C * M * (1 + S)
    captions = {}
    img_rng = np.random.default_rng(seeds[1])
    for i, name in enumerate(names):
        shape, colour = pairs[img_class[i]]
        folder = out / "images" / wnids[img_class[i]]
        folder.mkdir(parents=True, exist_ok=True)
        _draw_image(attrs, i, shape, colour, spec.image_size, img_rng).save(folder / f"{name}.JPEG", quality=90)
        captions[name] = _caption(attrs, i, shape, colour, img_rng)
        progress(i + 1, total)

    trials = _synthesise(spec, seeds[2], seeds[3], order, img_class, _attribute_values(attrs, shapes),
                         lambda done: progress(C * M + done, total))
    image_of = np.tile(order, S)
    dataset = [{"eeg": torch.from_numpy(x), "image": int(image_of[i]), "label": int(img_class[image_of[i]]),
                "subject": i // len(order) + 1} for i, x in enumerate(trials)]
    torch.save({"dataset": dataset, "labels": wnids, "images": names}, out / "eeg_5_95_std.pth")
    bad_length = sum(not 450 <= x.shape[1] <= 600 for x in trials)
    del dataset, trials

    split_names = ("train", "val", "test")
    single = {n: np.flatnonzero(split_of[order] == k).tolist() for k, n in enumerate(split_names)}
    every = {n: [s * len(order) + p for s in range(S) for p in idx] for n, idx in single.items()}
    torch.save({"splits": [every]}, out / "block_splits_by_image_all.pth")
    torch.save({"splits": [single]}, out / "block_splits_by_image_single.pth")
    (out / "captions.json").write_text(json.dumps(captions, indent=0))
    (out / "classes.json").write_text(json.dumps({w: f"{col} {shape}" for w, (shape, col) in zip(wnids, pairs)}, indent=0))
    world = {"spec": spec.model_dump(), "generator_version": GENERATOR_VERSION, "trials": S * len(order),
             "trials_per_subject": len(order), "trials_outside_450_600": bad_length, "images": len(names),
             "channels": N_CHANNELS, "sampling_rate": FS,
             "split_images": {n: int((split_of == k).sum()) for k, n in enumerate(split_names)}}
    (out / "world.json").write_text(json.dumps(world, indent=1))


def _synthesise(spec: WorldSpec, model_seed: np.random.SeedSequence, subject_seed: np.random.SeedSequence,
                order: np.ndarray, img_class: np.ndarray, values: np.ndarray,
                progress: Callable[[int], None]) -> list[np.ndarray]:
    """Standardised [128, T] float32 trials, subject by subject in presentation ``order``."""
    model = _EEGModel(spec, np.random.default_rng(model_seed), len(img_class))
    M = spec.images_per_class
    trials: list[np.ndarray] = []
    total_sum, total_sq, count, done = np.zeros(N_CHANNELS), np.zeros(N_CHANNELS), 0, 0
    for sub_seed in subject_seed.spawn(spec.subjects):
        sub_rng = np.random.default_rng(sub_seed)
        subject = model.subject(sub_rng)
        lengths = _trial_lengths(sub_rng, len(order))
        sub_trials: list[np.ndarray] = [np.empty(0)] * len(order)
        for T in np.unique(lengths):
            positions = np.flatnonzero(lengths == T)
            for start in range(0, len(positions), _BATCH):
                pos = positions[start: start + _BATCH]
                img = order[pos]
                x = model.trials(subject, sub_rng, img_class[img], img, values[img], int(T))
                total_sum += x.sum(axis=(0, 2), dtype=np.float64)
                total_sq += np.einsum("bct,bct->c", x, x, dtype=np.float64)
                count += x.shape[0] * x.shape[2]
                if spec.block_drift > 0:
                    x += model.drift(subject, pos % M, pos // M, int(T))
                for j, p in enumerate(pos):
                    sub_trials[p] = x[j].copy()
                done += len(pos)
                progress(done)
        trials.extend(sub_trials)

    mean = total_sum / count
    sd = np.sqrt(total_sq / count - mean**2)
    for x in trials:  # standardise with the clean signal's statistics, in place
        x -= mean.astype(np.float32)[:, None]
        x /= sd.astype(np.float32)[:, None]
    return trials


def _trial_lengths(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mostly 500 samples, some 498/499, and ~1.5% (at least one) far outside 450..600."""
    lengths = rng.choice([498, 499, 500], size=n, p=[0.04, 0.06, 0.90])
    bad = rng.choice(n, max(1, round(0.015 * n)), replace=False)
    long = rng.random(len(bad)) < 0.5
    lengths[bad] = np.where(long, rng.integers(1000, 1200, len(bad)), rng.integers(250, 400, len(bad)))
    return lengths


def _draw_attributes(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Per-image position (-1..1, left/up negative), size, rotation (degrees) and background."""
    return {
        "x": rng.uniform(-1, 1, n), "y": rng.uniform(-1, 1, n), "size": rng.uniform(0.12, 0.26, n),
        "rotation": rng.uniform(0, 360, n), "muted": rng.random(n) < 0.4,
        "grey": rng.uniform(0.1, 0.9, n), "muted_index": rng.integers(0, len(MUTED), n),
    }


def _background(attrs: dict, i: int) -> tuple[tuple[int, int, int], str, float]:
    """Background RGB, its words and its brightness (0..1)."""
    if attrs["muted"][i]:
        name, rgb = list(MUTED.items())[attrs["muted_index"][i]]
    else:
        g = float(attrs["grey"][i])
        rgb = (round(255 * g),) * 3
        name = "dark grey" if g < 0.37 else "light grey" if g > 0.63 else "mid grey"
    return rgb, name, float(np.dot(rgb, (0.299, 0.587, 0.114)) / 255)


def _tilt(shape: str, rotation: float) -> float:
    """cos(n * rotation) for an n-fold symmetric shape: 1 upright, -1 most tilted, 0 for round shapes."""
    n = _SYMMETRY[shape]
    return float(np.cos(np.deg2rad(n * rotation))) if n else 0.0


def _attribute_values(attrs: dict, shapes: list[str]) -> np.ndarray:
    """[n_images, 4] drivers of the attribute sources: position, size, brightness, tilt (~ -1..1)."""
    bright = np.array([_background(attrs, i)[2] for i in range(len(shapes))])
    tilt = np.array([_tilt(s, r) for s, r in zip(shapes, attrs["rotation"])])
    return np.stack([attrs["x"], (attrs["size"] - 0.19) / 0.07, 2 * bright - 1, tilt], axis=1).astype(np.float32)


def _polygon(shape: str) -> np.ndarray:
    """Upright outline of ``shape`` in unit coordinates, [n, 2]."""
    def ring(n, start, radius=1.0):
        a = np.deg2rad(start + 360 * np.arange(n) / n)
        return np.stack([np.cos(a), np.sin(a)], axis=1) * np.asarray(radius)[..., None]

    if shape == "square":
        return ring(4, 45)
    if shape == "triangle":
        return ring(3, -90)
    if shape == "star":
        return ring(10, -90, np.tile([1.0, 0.45], 5))
    if shape == "hexagon":
        return ring(6, 0)
    if shape == "diamond":
        return np.array([[0, -1], [0.6, 0], [0, 1], [-0.6, 0]], dtype=float)
    if shape == "cross":
        w = 0.33
        return np.array([[-w, -1], [w, -1], [w, -w], [1, -w], [1, w], [w, w],
                         [w, 1], [-w, 1], [-w, w], [-1, w], [-1, -w], [-w, -w]])
    return ring(64, 0)  # circle


def _draw_image(attrs: dict, i: int, shape: str, colour: str, size: int, rng: np.random.Generator):
    """The stimulus: ``shape`` in ``colour`` on a grainy background, drawn 4x larger then reduced."""
    from PIL import Image, ImageDraw

    big = 4 * size
    bg, _, _ = _background(attrs, i)
    canvas = Image.new("RGB", (big, big), bg)
    draw = ImageDraw.Draw(canvas)
    r = attrs["size"][i] * big
    cx, cy = (0.5 + 0.22 * attrs["x"][i]) * big, (0.5 + 0.22 * attrs["y"][i]) * big
    if shape == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=COLOURS[colour], width=max(1, round(0.3 * r)))
    else:
        a = np.deg2rad(attrs["rotation"][i])
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        pts = _polygon(shape) @ rot.T * r + (cx, cy)
        draw.polygon([tuple(p) for p in pts], fill=COLOURS[colour])
    small = np.asarray(canvas.resize((size, size), Image.BOX), dtype=np.float32)
    small = small + rng.normal(0, 6, small.shape)
    return Image.fromarray(np.clip(small, 0, 255).round().astype(np.uint8))


_TEMPLATES = (
    "{a_size} {tilt}{colour} {shape} {where} on {a_bg} background",
    "{a_colour} {shape}, {size}, {where}, against {a_bg} background",
    "{A_size} {tilt}{colour} {shape} {where}; the background is {bg}",
    "a picture of {a_size} {tilt}{colour} {shape} {where} with {a_bg} background",
    "on {a_bg} background, {a_size} {colour} {shape} sits {where}",
)


def _article(word: str) -> str:
    """``word`` with its indefinite article."""
    return ("an " if word[0] in "aeiou" else "a ") + word


def _caption(attrs: dict, i: int, shape: str, colour: str, rng: np.random.Generator) -> str:
    """One sentence naming size, colour, shape, position and background, in one of several phrasings."""
    s = attrs["size"][i]
    size = "small" if s < 0.167 else "large" if s > 0.213 else "medium-sized"
    horiz = "left" if attrs["x"][i] < -0.33 else "right" if attrs["x"][i] > 0.33 else ""
    vert = "upper" if attrs["y"][i] < -0.33 else "lower" if attrs["y"][i] > 0.33 else ""
    if horiz and vert:
        where = f"in the {vert} {horiz}"
    elif horiz:
        where = f"on the {horiz}"
    elif vert:
        where = "at the top" if vert == "upper" else "at the bottom"
    else:
        where = "in the centre"
    tilt = "tilted " if _tilt(shape, attrs["rotation"][i]) < 0 else ""
    template = _TEMPLATES[rng.integers(len(_TEMPLATES))]
    bg = _background(attrs, i)[1]
    a_size = _article(size)
    return template.format(a_size=a_size, A_size=a_size.capitalize(), size=size, tilt=tilt, colour=colour,
                           a_colour=_article(colour), shape=shape, where=where, bg=bg, a_bg=_article(bg))


def _electrodes() -> np.ndarray:
    """128 points on the upper scalp (Fibonacci spiral), [128, 3]: x right, y front, z up."""
    k = np.arange(N_CHANNELS) + 0.5
    z = 1 - 1.1 * k / N_CHANNELS
    rad = np.sqrt(1 - z**2)
    phi = np.pi * (3 - np.sqrt(5)) * k
    return np.stack([rad * np.cos(phi), rad * np.sin(phi), z], axis=1)


def _blobs(rng: np.random.Generator, pos: np.ndarray, n: int, width: float, centres: np.ndarray | None = None) -> np.ndarray:
    """[128, n] smooth dipole-like scalp patterns (a positive and a weaker negative blob), unit RMS."""
    def gauss(c):
        return np.exp(-((pos[:, None, :] - c[None]) ** 2).sum(-1) / (2 * width**2))

    if centres is None:
        centres = pos[rng.integers(0, len(pos), n)]
    patterns = gauss(centres) - 0.5 * gauss(pos[rng.integers(0, len(pos), n)])
    return patterns / np.sqrt((patterns**2).mean(0))


class _EEGModel:
    """The fixed parts of the generative model: templates, scalp patterns, noise spectra."""

    def __init__(self, spec: WorldSpec, rng: np.random.Generator, n_images: int):
        self.spec = spec
        self.pos = _electrodes()
        t = np.arange(-_PAD, 1200 + _PAD, dtype=np.float64)  # ms = samples at 1 kHz
        shared = self._components(rng, t, N_SOURCES, 3)
        templates = np.stack([0.6 * shared + self._components(rng, t, N_SOURCES, 3) for _ in range(spec.classes)])
        posterior = self.pos[:, 1] < 0
        centres = self.pos[np.flatnonzero(posterior)[rng.integers(0, posterior.sum(), N_SOURCES)]]
        self.base = _blobs(rng, self.pos, N_SOURCES, 0.45, centres)
        evoked = np.einsum("ck,ykt->yct", self.base, templates[:, :, _PAD: _PAD + 500])
        norm = np.sqrt((evoked**2).mean())  # class-evoked RMS = 1 before snr
        self.templates = (templates / norm).astype(np.float32)  # [classes, K, time]
        self.image_coef = (0.3 * rng.standard_normal((n_images, N_SOURCES))).astype(np.float32)
        self.image_basis = (self._components(rng, t, N_SOURCES, 1) / norm).astype(np.float32)
        self.attr_waves = (0.5 * np.stack([  # position ~170 ms, size ~100 ms, brightness ~220 ms, tilt ~280 ms
            _gauss(t, 170, 40), _gauss(t, 100, 20), -_gauss(t, 220, 50), _gauss(t, 280, 45)])).astype(np.float32)
        x = self.pos[:, 0]
        lateral = np.tanh(3 * x) * np.exp(-((self.pos[:, 1] + 0.6) ** 2) / 0.5)
        occipital = np.exp(-((self.pos - (0, -0.9, 0.2)) ** 2).sum(1) / 0.3)
        central = np.exp(-((self.pos - (0, -0.3, 0.9)) ** 2).sum(1) / 0.4)
        attr_patterns = np.stack([lateral, occipital, central, occipital - 0.7 * central], axis=1)
        attr_patterns /= np.sqrt((attr_patterns**2).mean(0))
        self.base = np.concatenate([self.base, attr_patterns], axis=1)  # [128, K + 4]
        noise_mix = _blobs(rng, self.pos, N_NOISE_SOURCES, 0.5)
        self.noise_mix = (noise_mix / np.linalg.norm(noise_mix, axis=1, keepdims=True)).astype(np.float32)
        self.alpha_pattern = (0.3 + 0.9 * np.exp(-((self.pos - (0, -0.9, 0.1)) ** 2).sum(1) / 0.5)).astype(np.float32)
        self.line_gain = rng.uniform(0.5, 1.5, N_CHANNELS).astype(np.float32)
        self.drift_basis = _blobs(rng, self.pos, 8, 0.6)

    @staticmethod
    def _components(rng: np.random.Generator, t: np.ndarray, n: int, most: int) -> np.ndarray:
        """[n, len(t)]: per source 1..``most`` ERP components (Gaussian bumps or damped oscillations)."""
        out = np.zeros((n, len(t)))
        for k in range(n):
            for _ in range(rng.integers(1, most + 1)):
                lat, width = rng.uniform(80, 400), rng.uniform(15, 50)
                amp = rng.uniform(0.5, 1.5) * rng.choice([-1, 1])
                if rng.random() < 0.5:
                    out[k] += amp * _gauss(t, lat, width)
                else:
                    out[k] += amp * _gauss(t, lat, 1.5 * width) * np.cos(2 * np.pi * rng.uniform(4, 12) * (t - lat) / FS)
        return out

    def subject(self, rng: np.random.Generator) -> dict:
        """Per-subject mixing, alpha frequency, line-noise amplitude and block drifts."""
        perturb = _blobs(rng, self.pos, self.base.shape[1], 0.45)
        mix = self.base + 0.3 * perturb
        C = self.spec.classes
        offsets = self.drift_basis @ rng.standard_normal((8, C)) + 0.5 * rng.standard_normal((N_CHANNELS, C))
        amps = self.drift_basis @ rng.standard_normal((8, C * 3))
        return {
            "mix": mix.astype(np.float32), "alpha_freq": rng.uniform(8, 12), "line_amp": rng.uniform(0.1, 0.4),
            "drift_offset": (offsets.T / np.sqrt((offsets**2).mean())).astype(np.float32),  # [blocks, 128]
            "drift_amp": (amps.T / np.sqrt((amps**2).mean())).reshape(C, 3, N_CHANNELS).astype(np.float32),
            "drift_freq": rng.uniform(0.01, 0.15, (C, 3)), "drift_phase": rng.uniform(0, 2 * np.pi, (C, 3)),
        }

    def trials(self, sub: dict, rng: np.random.Generator, label: np.ndarray, image: np.ndarray,
               values: np.ndarray, T: int) -> np.ndarray:
        """[b, 128, T] float32 clean trials (evoked signal + noise, no drift)."""
        b = len(label)
        shift = np.clip(np.rint(rng.normal(0, 4, b)), -_PAD + 1, _PAD - 1).astype(np.int64)
        idx = np.arange(T)[None, :] - shift[:, None] + _PAD  # [b, T]
        k = np.arange(N_SOURCES)[None, :, None]
        jitter = (1 + 0.2 * rng.standard_normal((b, N_SOURCES, 1))).astype(np.float32)
        src = self.templates[label[:, None, None], k, idx[:, None, :]] * jitter
        src += self.image_basis[k, idx[:, None, :]] * self.image_coef[image][:, :, None]
        attr = self.attr_waves[np.arange(4)[None, :, None], idx[:, None, :]] * values[:, :, None]
        x = np.matmul(sub["mix"], np.concatenate([src, attr], axis=1)) * np.float32(self.spec.snr)

        f = np.fft.rfftfreq(T, 1 / FS)
        w = 1 / np.sqrt(np.maximum(f, 1.0))
        w /= np.sqrt((w[0] ** 2 + 4 * (w[1:] ** 2).sum() - (3 * w[-1] ** 2 if T % 2 == 0 else 0)) / T**2)
        coef = rng.standard_normal((b, N_NOISE_SOURCES, len(f), 2), dtype=np.float32)
        pink = np.fft.irfft((coef[..., 0] + 1j * coef[..., 1]) * w, n=T).astype(np.float32)
        x += np.matmul(self.noise_mix, pink)
        x += rng.standard_normal(x.shape, dtype=np.float32) * np.float32(0.3)
        t = np.arange(T) / FS
        freq = sub["alpha_freq"] + rng.normal(0, 0.3, (b, 1))
        alpha = rng.lognormal(np.log(0.6), 0.4, (b, 1)) * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi, (b, 1)))
        x += alpha.astype(np.float32)[:, None, :] * self.alpha_pattern[:, None]
        line = sub["line_amp"] * np.sin(2 * np.pi * 50 * t + rng.uniform(0, 2 * np.pi, (b, 1)))
        x += line.astype(np.float32)[:, None, :] * self.line_gain[:, None]
        x = _bandpass(x, *BAND)
        return x - x[..., WINDOW[0]: WINDOW[1]].mean(-1, keepdims=True)

    def drift(self, sub: dict, block_pos: np.ndarray, block: np.ndarray, T: int) -> np.ndarray:
        """[b, 128, T] slow drift: the block's DC offset plus a trend continuous across its trials."""
        t = block_pos[:, None] * 0.5 + np.arange(T)[None, :] / FS  # seconds since the block began
        phase = 2 * np.pi * sub["drift_freq"][block][:, :, None] * t[:, None, :] + sub["drift_phase"][block][:, :, None]
        trend = np.einsum("bjc,bjt->bct", sub["drift_amp"][block], np.sin(phase).astype(np.float32))
        return np.float32(self.spec.block_drift) * (sub["drift_offset"][block][:, :, None] + 0.25 * trend)


def _bandpass(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """Zero-phase band-pass of the last axis: FFT bins outside [low, high] Hz set to zero."""
    f = np.fft.rfftfreq(x.shape[-1], 1 / FS)
    spectrum = np.fft.rfft(x, axis=-1)
    spectrum[..., (f < low) | (f > high)] = 0
    return np.fft.irfft(spectrum, n=x.shape[-1], axis=-1).astype(np.float32)


def _gauss(t: np.ndarray, centre: float, width: float) -> np.ndarray:
    """Unit-peak Gaussian window over ``t`` (ms)."""
    return np.exp(-0.5 * ((t - centre) / width) ** 2)
