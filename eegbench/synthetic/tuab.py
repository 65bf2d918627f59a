"""Synthetic TUH Abnormal (TUAB v3.0.1) world: EDF recordings and physician reports in the real formats.

Files written under the world's root (``ensure`` returns it; braindecode's
``TUHAbnormal(root, version="v3.0.1", on_missing_files="warn")`` reads the tree):

- ``v3.0.1/edf/{train,eval}/{normal,abnormal}/01_tcp_ar/<subject>_s<NNN>_t000.edf``: plain EDF,
  1-s data records, int16, physical range +-4999.84 uV; the 21 ``TUH_CHANNELS`` plus T1, T2, EKG1
  and PHOTIC, in TUH's file order (not ``TUH_CHANNELS`` order). The patient field is TUH's
  ``<number> <M|F> 01-JAN-<birth year> <number> Age:<age>``; first sessions start in 2010-2016.
- ``reports/<subject>_s<NNN>.txt``: one physician report per session (v3 pairs reports by
  subject and session, not by folder).
- ``world.json``, last: the spec and one ground-truth row per recording.

Subjects. 8-letter ids (``aaaaamnj``), each in one split, ~20% with two sessions (s001, s002,
30-700 days apart, age and birth year consistent; sessions share the subject's traits and scalp
patterns). Age ~ uniform 18-90, gender 50/50.
Pathological: P = sigmoid(logit(p_abnormal) + 0.9 (age - 54) / 21) (abnormal patients are
older, as in TUAB); a second session keeps its label with P 0.85. Anti-epileptic drug (``aed``):
P 0.2 when normal, 0.45 when abnormal. The *medication* label is, as in EEG-CLIP, defined by the
report: it mentions Keppra, Dilantin or Depakote (any case; ``data.tuab.MEDICATION``). The report
names one of them whenever ``aed`` (never otherwise), except when its MEDICATIONS section is
left out, so the label is a noisy copy of the EEG's drug effect.

EEG, in uV, on 23 scalp channels (referential "-REF"; 2-D 10-20 positions). Each component is a
Gaussian process made in the frequency domain (its amplitude spectrum with random phases, one
inverse FFT) and reaches the channels through smooth Gaussian scalp patterns:

- Background: 8 pink (1/f^b, b ~ 0.8-1.3 per subject, cut below 0.3 Hz, rolled off above 70 Hz)
  sources, 6 uV, with patterns shared by the world (left-right mirror pairs) plus a 40% subject
  perturbation; the reference electrode's own pink activity (6 uV), common to every channel
  (average referencing removes it); a per-subject gain (log-sd 0.25) scales all brain signal
  and blinks; independent pink (4 uV) plus white (1 uV) noise per channel.
- Rhythms: posterior alpha, two narrow-band sources (O1/O2 side, 9 uV) at the recording's
  ``alpha_hz``; diffuse theta (3 uV) stronger when drowsy (40% of recordings, alpha x0.7);
  frontocentral beta (4 uV, 13-25 Hz); each with a per-subject log-normal amplitude.
- ``effect`` scales every label effect below: shifts and additive amplitudes linearly,
  amplitude factors as a power.
- Pathological: delta slowing (1-4 Hz with a theta shoulder), focal (60%: one of 10 named
  regions, 8 uV, the subject's region in every session) or diffuse (40%: four broad sources,
  4 uV); alpha amplitude x0.7; 35% have a slow posterior dominant rhythm (alpha -1.6 Hz); 30%
  have sharp waves (~70 ms, 40-90 uV) at the slowing's focus.
- Age: ``alpha_hz`` = 10.6 - 2.6 (age - 20) / 65 + subject jitter (sd 0.45) + session jitter
  (sd 0.15), clipped to 6-12.5 Hz; alpha amplitude x(1 - 0.45 (age - 20) / 65).
- Gender: women have beta x1.5 and a brain-signal gain x1.12.
- Drug (``aed``): an extra frontocentral 18-28 Hz beta source (3 uV) and alpha -0.7 Hz.
- Artefacts and other channels: eye blinks (3-20 per minute, 60-150 uV at FP1/FP2, weaker at
  F7/F3/FZ/F4/F8), muscle bursts (20-80 Hz, 12 uV, 0.5-4 per minute) on temporal channels, 60 Hz
  line noise, an ECG (300-800 uV) on EKG1 at the heart rate the report may state, leaking
  faintly into A1/A2, and photic pulse trains on PHOTIC (70% of recordings; near-flat otherwise).

Difficulty: log band powers (delta/theta/alpha/beta, 21 channels, average reference, minutes
1-3) with a logistic regression trained on 100 subjects reach balanced accuracies of about 0.85
pathological, 0.71 age < 50, 0.65 gender, 0.62 medication (large eval set); on the default
spec's ~60 eval recordings a seed scatters these by +-0.05-0.1
(``scripts/tuab_world_difficulty.py``).

Reports. Sections CLINICAL HISTORY, MEDICATIONS, INTRODUCTION, DESCRIPTION OF THE RECORD,
HEART RATE (30%), FINDINGS (10%), IMPRESSION, CLINICAL CORRELATION, the main ones left out with P
``missing_section_p`` (IMPRESSION with a third of it). Sentences come from label-conditioned
templates with several phrasings, findings in random order and extra benign sentences: the
history gives age and sex in varied forms and a complaint; the description states the posterior
dominant rhythm (rounded ``alpha_hz``), the slowing with its region, sharp waves, drowsiness,
photic stimulation and artefacts that are present; the impression is a "Normal EEG" variant or
"Abnormal EEG due to" the findings. No label lines are written.

Output is deterministic: each recording's signal and report come from their own seed sequence.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from eegbench.data.tuab import MEDICATION, TUH_CHANNELS

GENERATOR_VERSION = 1
VERSION_DIR = "v3.0.1"
POSITIONS = {  # 2-D scalp coordinates (x right, y front, head radius 1) of the scalp channels
    "FP1": (-0.31, 0.95), "FP2": (0.31, 0.95), "F7": (-0.81, 0.59), "F3": (-0.4, 0.5), "FZ": (0.0, 0.45),
    "F4": (0.4, 0.5), "F8": (0.81, 0.59), "T3": (-1.0, 0.0), "C3": (-0.5, 0.0), "CZ": (0.0, 0.0),
    "C4": (0.5, 0.0), "T4": (1.0, 0.0), "T5": (-0.81, -0.59), "P3": (-0.4, -0.5), "PZ": (0.0, -0.45),
    "P4": (0.4, -0.5), "T6": (0.81, -0.59), "O1": (-0.31, -0.95), "O2": (0.31, -0.95),
    "A1": (-1.15, -0.1), "A2": (1.15, -0.1), "T1": (-0.95, 0.3), "T2": (0.95, 0.3),
}
SCALP = tuple(POSITIONS)
FILE_CHANNELS = tuple(f"EEG {n}-REF" for n in (
    "FP1", "FP2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "F7", "F8", "T3", "T4", "T5", "T6",
    "A1", "A2", "FZ", "CZ", "PZ", "EKG1", "T1", "T2")) + ("PHOTIC-REF",)
REGIONS = {  # focal slowing: name -> centre
    "left temporal": (-0.9, 0.0), "right temporal": (0.9, 0.0), "left frontotemporal": (-0.75, 0.5),
    "right frontotemporal": (0.75, 0.5), "left frontal": (-0.4, 0.6), "right frontal": (0.4, 0.6),
    "left parietal": (-0.45, -0.5), "right parietal": (0.45, -0.5), "left occipital": (-0.3, -0.9),
    "right occipital": (0.3, -0.9),
}
BG_UV, REF_UV, LOCAL_UV, ALPHA_UV, THETA_UV, BETA_UV = 6.0, 6.0, 4.0, 9.0, 3.0, 4.0  # component amplitudes (uV)
MUSCLE_UV, AED_BETA_UV, FOCAL_UV, DIFFUSE_UV = 12.0, 3.0, 8.0, 4.0  # per unit ``effect`` for the last three
PATH_ALPHA, FEMALE_BETA, FEMALE_GAIN = 0.7, 1.5, 1.12  # amplitude factors, to the power ``effect``
PHYS_MAX = 4999.84  # uV; digital range +-32767
_LSB = 2 * PHYS_MAX / 65534
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


class TUABSpec(BaseModel):
    """The knobs of a synthetic TUAB world; ``key()`` names its cache folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(0, description="seed of every random draw")
    train_subjects: int = Field(100, ge=1, description="subjects in train (one or two sessions each)")
    eval_subjects: int = Field(50, ge=1, description="subjects in eval (one or two sessions each)")
    duration_s: float = Field(190.0, gt=0, multiple_of=1, description="seconds; >= 180 for EEG-CLIP's minutes 1-3")
    sfreq: float = Field(250.0, gt=0, multiple_of=1, description="sampling rate, Hz")
    effect: float = Field(1.0, ge=0, description="scales every label's EEG effect (difficulty knob)")
    p_abnormal: float = Field(0.5, ge=0, le=1, description="share of abnormal recordings (at age 54)")
    missing_section_p: float = Field(0.1, ge=0, le=1, description="chance each report section is left out")

    def key(self) -> str:
        """Stable 12-hex hash of the spec and the generator version."""
        text = json.dumps({"spec": self.model_dump(), "version": GENERATOR_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def ensure(spec: TUABSpec, cache_dir: Path, progress: Callable[[int, int], None] | None = None) -> Path:
    """The world's root (the folder above ``v3.0.1/``) under ``cache_dir/worlds``, generated if incomplete."""
    root = Path(cache_dir) / "worlds" / f"tuab-{spec.key()}"
    if not (root / "world.json").is_file():
        generate(spec, root, progress)
    return root


def generate(spec: TUABSpec, root: Path, progress: Callable[[int, int], None] | None = None) -> Path:
    """Write the world into ``root`` atomically (built in a sibling temp folder, then renamed)."""
    from eegbench.io import atomic_folder

    with atomic_folder(Path(root), "world.json") as tmp:
        _build(spec, tmp, progress or (lambda done, total: None))
    return Path(root)


def _build(spec: TUABSpec, out: Path, progress: Callable[[int, int], None]) -> None:
    """Draw the recordings, write every EDF and report, then ``world.json``."""
    rows = _draw_recordings(spec)
    model = _Model(spec)
    (out / "reports").mkdir()
    for done, row in enumerate(rows, 1):
        data = model.signal(row)
        path = out / row["edf"]
        path.parent.mkdir(parents=True, exist_ok=True)
        row["rms_uv"] = _write_edf(path, data, row, int(round(spec.sfreq)))
        text = _write_report(row, spec.missing_section_p, _rng(spec, 3, row))
        (out / row["report"]).write_text(text, encoding="utf-8")
        row["medication"] = bool(MEDICATION.search(text))
        progress(done, len(rows))
    world = {"spec": spec.model_dump(), "generator_version": GENERATOR_VERSION, "sfreq": spec.sfreq,
             "channels": list(FILE_CHANNELS), "recordings": rows}
    (out / "world.json").write_text(json.dumps(world, indent=1))


def _rng(spec: TUABSpec, stream: int, row: dict) -> np.random.Generator:
    """The generator of one recording's ``stream`` (2 signal, 3 report), independent of order."""
    seq = np.random.SeedSequence([spec.seed, GENERATOR_VERSION, stream, row["subject_index"], row["session"]])
    return np.random.Generator(np.random.SFC64(seq))


def _subject_ids(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct 8-letter ids in TUH's style (base 26, ``aaa``-prefixed)."""
    ids = []
    for v in np.sort(rng.choice(26**5, n, replace=False)):
        letters = ""
        for _ in range(8):
            v, r = divmod(int(v), 26)
            letters = chr(97 + r) + letters
        ids.append(letters)
    return list(rng.permutation(ids))


def _draw_recordings(spec: TUABSpec) -> list[dict]:
    """One ground-truth row per recording (labels, traits, dates, paths); ``medication`` is set from the report."""
    rng = np.random.default_rng([spec.seed, GENERATOR_VERSION, 0])
    n = spec.train_subjects + spec.eval_subjects
    ids = _subject_ids(rng, n)
    numbers = rng.choice(np.arange(1, 20000), n, replace=False)
    p = float(np.clip(spec.p_abnormal, 1e-9, 1 - 1e-9))
    e = spec.effect
    rows = []
    for i in range(n):
        gender = "F" if rng.random() < 0.5 else "M"
        age0 = int(rng.integers(18, 91))
        start0 = datetime(int(rng.integers(2010, 2017)), 1, 1) + timedelta(
            days=int(rng.integers(0, 365)), seconds=int(rng.integers(7 * 3600, 18 * 3600)))
        subject = {"gain": rng.lognormal(0, 0.25) * (FEMALE_GAIN**e if gender == "F" else 1.0),
                   "alpha_base": 10.6 + rng.normal(0, 0.45), "alpha_amp": rng.lognormal(0, 0.3),
                   "beta_amp": rng.lognormal(0, 0.35) * (FEMALE_BETA**e if gender == "F" else 1.0),
                   "theta_amp": rng.lognormal(0, 0.3), "exponent": rng.uniform(0.8, 1.3),
                   "region": str(rng.choice(list(REGIONS)))}
        abnormal = rng.random() < 1 / (1 + np.exp(-(np.log(p / (1 - p)) + 0.9 * (age0 - 54) / 21)))
        aed = rng.random() < (0.45 if abnormal else 0.2)
        focal, sharp, slow_pdr = rng.random() < 0.6, rng.random() < 0.3, rng.random() < 0.35
        for s in range(1 if rng.random() < 0.8 else 2):
            start = start0 if s == 0 else start0 + timedelta(days=int(rng.integers(30, 700)))
            if s:
                abnormal = abnormal if rng.random() < 0.85 else not abnormal
                aed = aed if rng.random() < 0.85 else not aed
            age = age0 + start.year - start0.year
            alpha = (subject["alpha_base"] - e * 2.6 * (age - 20) / 65 - e * 0.7 * aed
                     - e * 1.6 * (abnormal and slow_pdr) + rng.normal(0, 0.15))
            split = "train" if i < spec.train_subjects else "eval"
            name = f"{ids[i]}_s{s + 1:03d}"
            rows.append({
                "edf": f"{VERSION_DIR}/edf/{split}/{'abnormal' if abnormal else 'normal'}/01_tcp_ar/{name}_t000.edf",
                "report": f"reports/{name}.txt", "subject": ids[i], "session": s + 1, "subject_index": i,
                "split": split, "pathological": bool(abnormal), "age": age, "gender": gender, "medication": None,
                "aed": bool(aed), "alpha_hz": round(float(np.clip(alpha, 6.0, 12.5)), 2),
                "slowing": ("focal" if focal else "diffuse") if abnormal else None,
                "region": subject["region"] if abnormal and focal else None, "sharp_waves": bool(abnormal and sharp),
                "slow_pdr": bool(abnormal and slow_pdr), "drowsy": bool(rng.random() < 0.4),
                "photic": bool(rng.random() < 0.7), "heart_rate": int(rng.integers(55, 101)),
                "patient_number": int(numbers[i]), "start": start.isoformat(), "birth_year": start0.year - age0,
                "traits": {k: v if isinstance(v, str) else round(float(v), 4) for k, v in subject.items()},
            })
    return rows


class _Model:
    """Fixed parts of the EEG model (background scalp patterns) and per-recording synthesis."""

    def __init__(self, spec: TUABSpec):
        self.spec = spec
        self.pos = np.array([POSITIONS[c] for c in SCALP])
        rng = np.random.default_rng([spec.seed, GENERATOR_VERSION, 1])
        half = rng.uniform(-0.9, 0.9, (4, 2))
        self.bg_base = self._blobs(rng, 8, 0.6, np.concatenate([half, half * (-1, 1)]))  # mirror pairs
        self.T = int(round(spec.duration_s)) * int(round(spec.sfreq))
        self.f = np.fft.rfftfreq(self.T, 1 / spec.sfreq)

    def _blobs(self, rng: np.random.Generator, n: int, width: float, centres=None) -> np.ndarray:
        """[23, n] smooth scalp patterns (Gaussian around ``centres`` or random points), unit RMS."""
        if centres is None:
            centres = rng.uniform(-0.9, 0.9, (n, 2))
        d2 = ((self.pos[:, None, :] - np.asarray(centres)[None]) ** 2).sum(-1)
        pattern = np.exp(-d2 / (2 * width**2))
        return pattern / np.sqrt((pattern**2).mean(0))

    def _band(self, centre: float, width: float) -> np.ndarray:
        """Gaussian spectral bump."""
        return np.exp(-0.5 * ((self.f - centre) / width) ** 2)

    def _slow(self) -> np.ndarray:
        """Spectrum of pathological slowing: 1-4 Hz delta with a theta shoulder."""
        return self._band(2.0, 0.9) + 0.4 * self._band(5.0, 1.0)

    def _unit(self, spectrum: np.ndarray) -> np.ndarray:
        """``spectrum`` scaled so its process has unit variance (``_sources`` convention)."""
        return spectrum / np.sqrt((spectrum**2).sum())

    def _pink(self, exponent: float) -> np.ndarray:
        """1/f^exponent power spectrum (as amplitude), flat below 1 Hz, cut below 0.3 Hz, rolled off above 70 Hz."""
        return (self.f >= 0.3) * np.maximum(self.f, 1.0) ** (-exponent / 2) / (1 + (self.f / 70) ** 4)

    def _sources(self, rng: np.random.Generator, spectrum: np.ndarray, n: int) -> np.ndarray:
        """[n, T] float32 unit-variance Gaussian processes with amplitude ``spectrum`` [F] (random phases)."""
        scale = (spectrum * (self.T / np.sqrt(2 * (spectrum**2).sum()))).astype(np.float32)
        band = np.flatnonzero(scale > 1e-4 * scale.max())
        lo, hi = band[0], band[-1] + 1
        phase = rng.random((n, hi - lo), dtype=np.float32) * np.float32(2 * np.pi)
        coef = np.zeros((n, len(spectrum)), dtype=np.complex64)
        coef[:, lo:hi] = (np.cos(phase) + 1j * np.sin(phase)) * scale[lo:hi]
        return np.fft.irfft(coef, n=self.T)

    def signal(self, row: dict) -> np.ndarray:
        """[len(FILE_CHANNELS), T] float32 microvolts of one recording."""
        spec, e, tr = self.spec, self.spec.effect, row["traits"]
        sub = np.random.default_rng([spec.seed, GENERATOR_VERSION, 4, row["subject_index"]])
        rng = _rng(spec, 2, row)
        age = (row["age"] - 20) / 65
        alpha_centres = np.array([(-0.3, -0.85), (0.3, -0.85)]) + sub.normal(0, 0.1, (2, 2))
        alpha_amp = (ALPHA_UV * tr["alpha_amp"] * (1 - 0.45 * age) ** e * (PATH_ALPHA**e if row["pathological"] else 1.0)
                     * (0.7 if row["drowsy"] else 1.0))
        pink = self._pink(tr["exponent"])
        groups = [  # (scalp patterns [23, k] in uV, amplitude spectrum [F])
            (BG_UV * (self.bg_base + 0.4 * self._blobs(sub, 8, 0.5)), pink),
            (np.full((len(SCALP), 1), REF_UV), pink),
            (alpha_amp * self._blobs(sub, 2, 0.45, alpha_centres), self._band(row["alpha_hz"], 0.45)),
            (THETA_UV * tr["theta_amp"] * (1.5 if row["drowsy"] else 1.0) * self._blobs(sub, 1, 1.0, [(0, 0.2)]),
             self._band(6.0, 1.2)),
            (BETA_UV * tr["beta_amp"] * self._blobs(sub, 1, 0.7, [(0, 0.3)]), self._band(19.0, 4.0)),
        ]
        if row["aed"]:
            groups.append((AED_BETA_UV * e * self._blobs(sub, 1, 0.6, [(0, 0.4)]), self._band(23.0, 3.0)))
        if row["slowing"] == "focal":
            groups.append((FOCAL_UV * e * self._blobs(sub, 1, 0.4, [REGIONS[row["region"]]]), self._slow()))
        elif row["slowing"] == "diffuse":
            groups.append((DIFFUSE_UV * e * self._blobs(sub, 4, 0.8), self._slow()))
        patterns = np.concatenate([pattern for pattern, _ in groups], axis=1).astype(np.float32)
        sources = np.concatenate([self._sources(rng, spectrum, p.shape[1]) for p, spectrum in groups])
        scalp = np.einsum("ck,kt->ct", patterns, sources)  # einsum: BLAS threads are slower here
        muscle = self._sources(rng, (self.f > 20) * (self.f < 80) * 1.0, 2) * self._bursts(rng, 2)
        temporal = MUSCLE_UV * self._blobs(sub, 2, 0.35, [(-1.0, 0.2), (1.0, 0.2)])
        scalp += np.einsum("ck,kt->ct", temporal.astype(np.float32), muscle)
        if row["sharp_waves"]:
            scalp += self._sharp_waves(rng, sub, row)
        scalp += self._blinks(rng)
        scalp *= np.float32(tr["gain"])
        scalp += self._sources(rng, np.sqrt((LOCAL_UV * self._unit(pink))**2
                                            + self._unit(np.ones_like(self.f))**2), len(SCALP))
        ecg = self._ecg(rng, row["heart_rate"])
        scalp += np.outer(np.isin(SCALP, ("A1", "A2")).astype(np.float32) * 0.008, ecg)
        line = np.sin(2 * np.pi * 60 * np.arange(self.T, dtype=np.float32) / np.float32(spec.sfreq))
        scalp += np.outer((rng.uniform(0, 1, len(SCALP)) * rng.uniform(0.2, 3.0)).astype(np.float32), line)
        out = np.empty((len(FILE_CHANNELS), self.T), dtype=np.float32)
        out[[FILE_CHANNELS.index(f"EEG {c}-REF") for c in SCALP]] = scalp
        out[FILE_CHANNELS.index("EEG EKG1-REF")] = ecg + rng.normal(0, 5.0, self.T)
        out[FILE_CHANNELS.index("PHOTIC-REF")] = self._photic(rng) if row["photic"] else rng.normal(0, 0.5, self.T)
        return out

    def _events(self, rng: np.random.Generator, rate_per_min: float) -> np.ndarray:
        """Sample indices of a Poisson process."""
        n = rng.poisson(rate_per_min * self.T / self.spec.sfreq / 60)
        return np.sort(rng.integers(0, self.T, n))

    def _train(self, idx: np.ndarray, amps: np.ndarray, kernel: np.ndarray) -> np.ndarray:
        """[T] sum of ``kernel`` copies (centred) at ``idx`` scaled by ``amps``."""
        from scipy.signal import oaconvolve

        impulses = np.zeros(self.T, dtype=np.float32)
        np.add.at(impulses, idx, amps)
        return oaconvolve(impulses, kernel.astype(np.float32), mode="same")

    def _blinks(self, rng: np.random.Generator) -> np.ndarray:
        """[23, T] eye blinks (~0.4 s, 60-150 uV at FP1/FP2)."""
        idx = self._events(rng, rng.uniform(3, 20))
        k = np.arange(-0.4, 0.4, 1 / self.spec.sfreq)
        blink = self._train(idx, rng.uniform(60, 150, len(idx)), np.exp(-0.5 * (k / 0.09) ** 2))
        weight = {"FP1": 1.0, "FP2": 1.0, "F7": 0.35, "F8": 0.35, "F3": 0.3, "F4": 0.3, "FZ": 0.3}
        return np.outer([weight.get(c, 0.0) for c in SCALP], blink)

    def _bursts(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """[n, T] muscle-burst envelopes: 0.5-4 bursts per minute, 0.5-3 s, smooth edges."""
        env = np.zeros((n, self.T))
        sf = self.spec.sfreq
        for row in env:
            for i in self._events(rng, rng.uniform(0.5, 4)):
                row[i: i + int(rng.uniform(0.5, 3) * sf)] = rng.uniform(0.5, 1.5)
        kernel = np.hanning(int(0.2 * sf))
        return np.stack([np.convolve(r, kernel / kernel.sum(), mode="same") for r in env]).astype(np.float32)

    def _sharp_waves(self, rng: np.random.Generator, sub: np.random.Generator, row: dict) -> np.ndarray:
        """[23, T] ~70 ms negative transients (40-90 uV) at the slowing's focus."""
        centre = REGIONS[row["region"]] if row["region"] else (0.0, 0.5)
        pattern = self._blobs(sub, 1, 0.35, [centre])[:, 0]
        idx = self._events(rng, rng.uniform(2, 8))
        k = np.arange(-0.15, 0.15, 1 / self.spec.sfreq)
        wave = -np.exp(-0.5 * (k / 0.02) ** 2) + 0.3 * np.exp(-0.5 * ((k - 0.06) / 0.04) ** 2)
        return np.outer(pattern / pattern.max(), self._train(idx, rng.uniform(40, 90, len(idx)), wave))

    def _ecg(self, rng: np.random.Generator, heart_rate: int) -> np.ndarray:
        """[T] ECG in uV: P-QRS-T complexes at ``heart_rate`` with beat-to-beat jitter."""
        sf = self.spec.sfreq
        beats = np.cumsum(rng.normal(60 / heart_rate, 0.03, int(self.T / sf * heart_rate / 60) + 2)) * sf
        idx = beats[beats < self.T].astype(int)
        k = np.arange(-0.3, 0.5, 1 / sf)
        wave = sum(a * np.exp(-0.5 * ((k - c) / w) ** 2) for a, c, w in
                   ((0.12, -0.18, 0.03), (-0.15, -0.03, 0.008), (1.0, 0.0, 0.01), (-0.25, 0.03, 0.01), (0.3, 0.25, 0.05)))
        return self._train(idx, np.full(len(idx), rng.uniform(300, 800)), wave)

    def _photic(self, rng: np.random.Generator) -> np.ndarray:
        """[T] photic stimulator: 10-s pulse trains at 1-20 Hz from a random start, 2-sample pulses."""
        sf, out = self.spec.sfreq, rng.normal(0, 0.5, self.T)
        start = rng.uniform(0, max(1.0, self.T / sf - 80))
        for j, hz in enumerate((1, 3, 5, 7, 9, 11, 13, 15, 17, 20)):
            t0 = start + 12 * j
            pulses = (np.arange(t0, t0 + 10, 1 / hz) * sf).astype(int)
            pulses = pulses[pulses < self.T - 1]
            out[pulses] += 200.0
            out[pulses + 1] += 200.0
        return out


def _field(text: str, width: int) -> bytes:
    """ASCII header field, left-justified and space-padded to ``width``."""
    data = text.encode("ascii")
    assert len(data) <= width, (text, width)
    return data.ljust(width)


def _write_edf(path: Path, data: np.ndarray, row: dict, sfreq: int) -> float:
    """Write ``data`` (uV, [FILE_CHANNELS, T]) as a TUH-style plain EDF; returns the quantised mean SD of TUH_CHANNELS."""
    n_ch, T = data.shape
    digital = np.clip(np.rint(data / _LSB), -32767, 32767).astype("<i2")
    start = datetime.fromisoformat(row["start"])
    number = f"{row['patient_number']:08d}"
    patient = f"{number} {row['gender']} 01-JAN-{row['birth_year']} {number} Age:{row['age']}"
    recording = f"Startdate {start.day:02d}-{MONTHS[start.month - 1]}-{start.year} {number}_s{row['session']:03d} X X"
    header = [_field("0", 8), _field(patient, 80), _field(recording, 80), _field(start.strftime("%d.%m.%y"), 8),
              _field(start.strftime("%H.%M.%S"), 8), _field(str(256 * (n_ch + 1)), 8), _field("", 44),
              _field(str(T // sfreq), 8), _field("1", 8), _field(str(n_ch), 4)]
    for text, width in ((None, 16), ("Unknown", 80), ("uV", 8), (f"{-PHYS_MAX}", 8), (f"{PHYS_MAX}", 8),
                        ("-32767", 8), ("32767", 8), ("HP:0.000 Hz LP:0.0 Hz N:0.0", 80), (str(sfreq), 8), ("", 32)):
        header += [_field(text if text is not None else label, width) for label in FILE_CHANNELS]
    records = digital.reshape(n_ch, T // sfreq, sfreq).transpose(1, 0, 2)
    path.write_bytes(b"".join(header) + records.tobytes())
    picked = digital[[FILE_CHANNELS.index(c) for c in TUH_CHANNELS]].astype(np.float32)
    return round(float(picked.std(1).mean() * _LSB), 3)


AED = (("Keppra", "KEPPRA", "keppra", "Keppra (levetiracetam)", "Keppra 500 mg BID", "Keppra 1000 mg"),
       ("Dilantin", "DILANTIN", "dilantin", "Dilantin (phenytoin)", "Dilantin 100 mg TID"),
       ("Depakote", "DEPAKOTE", "depakote", "Depakote (valproate)", "Depakote ER"))
OTHER_DRUGS = ("lisinopril", "aspirin", "metformin", "atorvastatin", "Lipitor", "Coumadin", "Zoloft", "Ativan",
               "Lamictal", "Tegretol", "Topamax", "Vimpat", "omeprazole", "Synthroid", "insulin", "Norvasc",
               "Seroquel", "Haldol", "gabapentin", "Plavix", "metoprolol", "Lasix", "Tylenol", "Protonix")
NO_DRUGS = ("None.", "None reported.", "None", "No medications listed.", "Unknown.")
SEX_WORDS = {"F": ("woman", "female", "lady", "F"), "M": ("man", "male", "gentleman", "M")}
HISTORY = ("A {age}-year-old {sex} with {c}.", "{age} y/o {sex} with {c}.", "{age} year old {sex} presenting with {c}.",
           "This is a {age}-year-old right-handed {sex} with {c}.", "Patient is a {age} year old {sex} admitted for {c}.",
           "{age}yo {sex} with {c}.")
COMPLAINTS = {
    True: ("altered mental status", "a recent stroke", "encephalopathy", "confusion", "dementia", "memory loss",
           "a traumatic brain injury", "left-sided weakness", "right-sided weakness", "unresponsiveness", "a brain tumor"),
    False: ("headaches", "syncope", "dizziness", "episodes of passing out", "spells", "staring spells", "migraine",
            "numbness and tingling", "a fall", "anxiety"),
    "aed": ("a history of epilepsy", "seizures", "breakthrough seizures", "a seizure disorder", "new onset seizures"),
}
HISTORY_EXTRA = ("No prior EEG.", "Previous EEG was normal.", "CT of the head was unremarkable.", "MRI is pending.",
                 "History of hypertension and diabetes.", "Family history is noncontributory.", "Rule out seizures.")
PDR_NORMAL = ("In wakefulness, there is a {pdr} Hz posterior dominant rhythm which is reactive to eye opening.",
              "The background is well organized with a {pdr} Hz alpha rhythm posteriorly.",
              "The posterior dominant rhythm is {pdr} Hz, symmetric and reactive.",
              "The awake background shows a well-regulated {pdr} Hz PDR.")
PDR_SLOW = ("The posterior dominant rhythm is slow for age at {pdr} Hz.", "The background is slow with a PDR of {pdr} Hz.",
            "There is a {pdr} Hz posterior rhythm, which is slow for age.")
PDR_WEAK = ("The posterior dominant rhythm is poorly formed, {pdr} Hz.",
            "There is a low-amplitude {pdr} Hz alpha rhythm posteriorly.", "The PDR is of low voltage at {pdr} Hz.")
FOCAL = ("There is {freq} focal polymorphic delta slowing over the {region} region.",
         "Focal 1-3 Hz slowing is seen in the {region} region.", "{Region} slowing is noted.",
         "Polymorphic delta activity is present in the {region} region.")
DIFFUSE = ("The background is diffusely slow, with theta and delta activity.",
           "There is generalized slowing of the background.", "Diffuse delta and theta slowing is present.",
           "Generalized polymorphic delta activity is seen.")
SHARP = ("Occasional sharp waves are seen in the {region} region.", "{Region} sharp waves are noted.",
         "There are sharp waves in the {region} region.")
DROWSY = ("Drowsiness is characterized by slowing of the background and attenuation of the alpha rhythm.",
          "Drowsiness is marked by an increase in theta activity.", "Brief drowsiness was recorded.")
PHOTIC = ("Photic stimulation produces symmetric driving.", "Photic stimulation did not elicit a driving response.")
DESCRIPTION_EXTRA = ("Eye blink artifact is noted frontally.",
                     "Intermittent muscle artifact is seen over the temporal regions.", "There is some 60 Hz artifact.",
                     "A small amount of frontocentral beta is present.", "The record is symmetric.",
                     "No epileptiform discharges are seen.")
SHORT = {"focal": ("focal slowing, {region}", "{region} slowing", "focal {region} delta slowing"),
         "diffuse": ("generalized background slowing", "diffuse slowing", "diffuse theta and delta slowing"),
         "slow_pdr": ("a slow posterior dominant rhythm", "a slow PDR"),
         "weak_pdr": ("a poorly organized background", "a low-voltage alpha rhythm"),
         "sharp": ("{region} sharp waves", "sharp waves in the {region} region")}
NORMAL_IMPRESSION = ("Normal EEG.", "Normal awake EEG.", "Normal EEG in wakefulness{drowsy}.", "This is a normal EEG.",
                     "NORMAL EEG.")
ABNORMAL_HEAD = ("Abnormal EEG due to", "ABNORMAL EEG due to", "This is an abnormal EEG due to")
NORMAL_CORRELATION = ("A normal EEG does not exclude a diagnosis of epilepsy.", "No epileptiform features were seen.",
                      "This is a normal EEG for age.", "No focal or epileptiform features were observed.")
CORRELATION = {"focal": ("The focal slowing suggests focal cerebral dysfunction in the {side} hemisphere.",
                         "This is consistent with a structural lesion in the {region} region."),
               "diffuse": ("The diffuse slowing indicates a nonspecific diffuse cerebral dysfunction.",
                           "These findings are consistent with an encephalopathy of nonspecific etiology."),
               "sharp": ("The sharp waves suggest a potentially epileptogenic focus.",),
               "none": ("No epileptiform features were seen.", "No seizures were recorded.")}


def _write_report(row: dict, missing_p: float, rng: np.random.Generator) -> str:
    """A TUH-style physician report for one recording, conditioned on its labels."""
    pick = _picker(rng)
    sections = {
        "CLINICAL HISTORY": _history(row, pick, rng),
        "MEDICATIONS": _medications(row, pick, rng),
        "INTRODUCTION": _introduction(row, pick),
        "DESCRIPTION OF THE RECORD": _description(row, pick, rng),
        "HEART RATE": pick(("{} bpm", "HR: {} BPM", "{} beats per minute.")).format(row["heart_rate"]),
        "FINDINGS": "; ".join(_short_findings(row, pick, rng)) or pick(("None.", "No abnormal findings.")),
        "IMPRESSION": _impression(row, pick, rng),
        "CLINICAL CORRELATION": _correlation(row, pick, rng),
    }
    keep = {"HEART RATE": 0.3, "FINDINGS": 0.1, "IMPRESSION": 1 - missing_p / 3}
    kept = [f"{name}: {text}" for name, text in sections.items() if rng.random() < keep.get(name, 1 - missing_p)]
    return "\n\n".join(kept) + "\n"


def _picker(rng: np.random.Generator) -> Callable[[tuple], str]:
    """A function drawing one option of a tuple uniformly."""
    return lambda options: options[int(rng.integers(len(options)))]


def _fill(template: str, row: dict, **extra: str) -> str:
    """``template`` with {region}/{Region}/{side} of the row's focus (bifrontal when diffuse) and ``extra``."""
    region = row["region"] or "bifrontal"
    return template.format(region=region, Region=region[0].upper() + region[1:], side=region.split()[0], **extra)


def _history(row: dict, pick, rng: np.random.Generator) -> str:
    """Age, sex and a complaint (seizures likely with a drug, label-leaning otherwise), plus extras."""
    if row["aed"] and rng.random() < 0.6:
        complaint = pick(COMPLAINTS["aed"])
    else:
        complaint = pick(COMPLAINTS[row["pathological"] if rng.random() < 0.75 else not row["pathological"]])
    template = pick(HISTORY)
    words = SEX_WORDS[row["gender"]]
    sex = pick(words) if template.startswith("{age}yo") else pick(words[:3])
    text = [template.format(age=row["age"], sex=sex, c=complaint)]
    text += list(rng.choice(HISTORY_EXTRA, int(rng.integers(0, 3)), replace=False))
    if row["aed"] and rng.random() < 0.25:
        text.append(f"Currently on {pick(pick(AED))}.")
    return " ".join(text)


def _medications(row: dict, pick, rng: np.random.Generator) -> str:
    """Drug list: one or two of Keppra/Dilantin/Depakote when on a drug, plus other common drugs, or None."""
    drugs = list(rng.choice(OTHER_DRUGS, int(rng.integers(0, 4)), replace=False))
    if row["aed"]:
        drugs += [pick(AED[k]) for k in rng.choice(3, 1 + int(rng.random() < 0.3), replace=False)]
    if not drugs:
        return pick(NO_DRUGS)
    return pick((", ", "; ", ", ")).join(rng.permutation(drugs)) + pick(("", "."))


def _introduction(row: dict, pick) -> str:
    """Recording setting, activation procedures (photic iff performed) and state."""
    activation = pick(("Photic stimulation was performed.", "Hyperventilation and photic stimulation were completed.")
                      if row["photic"] else ("Activation procedures were not performed.",
                                             "Hyperventilation and photic stimulation were not performed."))
    state = pick(("The patient is awake and drowsy.", "This is an awake and drowsy record.") if row["drowsy"]
                 else ("The patient is awake.", "This is an awake record."))
    return (f"{pick(('Routine EEG', 'Digital video EEG', 'A routine digital EEG'))} was performed "
            f"{pick(('in the lab', 'at the bedside', 'in the EEG laboratory', 'in the ICU'))} using the standard 10-20 "
            f"system of electrode placement with {pick(('one channel', '1 channel'))} of EKG. {activation} {state}")


def _pdr(alpha_hz: float, pick) -> str:
    """The posterior dominant rhythm as a report would state it: to 0.5 Hz, whole Hz or a 1-Hz range."""
    half = round(alpha_hz * 2) / 2
    return pick((f"{half:g}", f"{round(alpha_hz)}", f"{int(alpha_hz)}-{int(alpha_hz) + 1}"))


def _description(row: dict, pick, rng: np.random.Generator) -> str:
    """PDR sentence first, then findings, drowsiness, photic response and benign extras in random order."""
    path = row["pathological"]
    pdr = pick(PDR_SLOW if row["slow_pdr"] else PDR_WEAK if path else PDR_NORMAL).format(pdr=_pdr(row["alpha_hz"], pick))
    pdr = re.sub(r"\ba (?=(?:8|11)\b)", "an ", pdr)  # "an 8 Hz", "an 11-12 Hz"
    rest = []
    if row["slowing"]:
        freq = pick(("intermittent", "continuous", "frequent", "occasional"))
        rest.append(_fill(pick(FOCAL if row["slowing"] == "focal" else DIFFUSE), row, freq=freq))
    if row["sharp_waves"]:
        rest.append(_fill(pick(SHARP), row))
    if row["drowsy"]:
        rest.append(pick(DROWSY))
    if row["photic"]:
        rest.append(pick(PHOTIC))
    if row["aed"] and rng.random() < 0.4:
        rest.append("There is an increase in diffuse beta activity.")
    extras = [s for s in DESCRIPTION_EXTRA if not ("epileptiform" in s and row["sharp_waves"]
                                                   or "symmetric" in s and row["slowing"] == "focal")]
    rest += list(rng.choice(extras, int(rng.integers(0, 3)), replace=False))
    return " ".join([pdr, *rng.permutation(rest)])


def _short_findings(row: dict, pick, rng: np.random.Generator) -> list[str]:
    """The abnormal findings in impression style, in random order (empty when normal)."""
    keys = [row["slowing"]] if row["slowing"] else []
    keys += ["slow_pdr"] * row["slow_pdr"] + ["sharp"] * row["sharp_waves"]
    if row["pathological"] and not row["slow_pdr"] and rng.random() < 0.5:
        keys.append("weak_pdr")
    return [_fill(pick(SHORT[k]), row) for k in rng.permutation(keys)]


def _impression(row: dict, pick, rng: np.random.Generator) -> str:
    """A "Normal EEG" variant, or "Abnormal EEG due to" the findings as a list or a sentence."""
    if not row["pathological"]:
        return pick(NORMAL_IMPRESSION).replace("{drowsy}", " and drowsiness" if row["drowsy"] else "")
    findings = _short_findings(row, pick, rng)
    head = pick(ABNORMAL_HEAD)
    if len(findings) > 1 and rng.random() < 0.5:
        return f"{head}:\n" + "\n".join(f"{i}. {f[0].upper()}{f[1:]}." for i, f in enumerate(findings, 1))
    return f"{head} {', '.join(findings[:-1]) + ' and ' if len(findings) > 1 else ''}{findings[-1]}."


def _correlation(row: dict, pick, rng: np.random.Generator) -> str:
    """What the findings suggest (abnormal) or the usual caveat (normal)."""
    if not row["pathological"]:
        return " ".join(rng.choice(NORMAL_CORRELATION, int(rng.integers(1, 3)), replace=False))
    text = [_fill(pick(CORRELATION[row["slowing"]]), row)]
    text.append(pick(CORRELATION["sharp" if row["sharp_waves"] else "none"]))
    return " ".join(text)
