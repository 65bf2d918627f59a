"""Print how hard the synthetic TUAB world's four tasks are for a simple band-power baseline.

Usage: ``python scripts/tuab_world_difficulty.py [--seeds 0 1 2] [--effect 1.0]``. For each seed the
world is generated (cached under ``$EEGBENCH_CACHE/worlds``) and read back from its EDF files with
mne; features are log band powers (delta 1-4, theta 4-8, alpha 8-13, beta 13-30 Hz) of the 21
EEG-CLIP channels, average-referenced, Welch over minutes 1-3; a standardised, class-balanced
logistic regression is fit on train and scored by balanced accuracy on eval. Labels come from
``world.json`` (medication: the report mentions Keppra/Dilantin/Depakote).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from eegbench import paths
from eegbench.data.tuab import TUH_CHANNELS
from eegbench.synthetic.tuab import TUABSpec, ensure

BANDS = ((1, 4), (4, 8), (8, 13), (13, 30))
TASKS = {"pathological": lambda r: r["pathological"], "age<50": lambda r: r["age"] < 50,
         "gender": lambda r: r["gender"] == "F", "medication": lambda r: r["medication"]}


def features(edf: Path) -> np.ndarray:
    """[21 x 4] log band powers of minutes 1-3 of one recording."""
    import mne
    from scipy.signal import welch

    raw = mne.io.read_raw_edf(edf, verbose="error").pick(list(TUH_CHANNELS))
    sf = raw.info["sfreq"]
    x = raw.get_data(start=int(60 * sf), stop=int(180 * sf)) * 1e6
    x -= x.mean(0)
    f, p = welch(x, fs=sf, nperseg=int(2 * sf))
    return np.concatenate([np.log(p[:, (f >= lo) & (f < hi)].mean(1)) for lo, hi in BANDS])


def scores(root: Path) -> dict[str, float]:
    """Balanced accuracy on eval of each task."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows = json.loads((root / "world.json").read_text())["recordings"]
    X = np.stack([features(root / r["edf"]) for r in rows])
    train = np.array([r["split"] == "train" for r in rows])
    out = {}
    for task, label in TASKS.items():
        y = np.array([bool(label(r)) for r in rows])
        model = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=2000))
        model.fit(X[train], y[train])
        out[task] = balanced_accuracy_score(y[~train], model.predict(X[~train]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--effect", type=float, default=1.0)
    args = parser.parse_args()
    results = []
    for seed in args.seeds:
        start = time.perf_counter()
        root = ensure(TUABSpec(seed=seed, effect=args.effect), paths.cache_dir())
        built = time.perf_counter() - start
        results.append(scores(root))
        print(f"seed {seed} (world ready in {built:.1f} s): "
              + "  ".join(f"{k} {v:.3f}" for k, v in results[-1].items()), flush=True)
    if len(results) > 1:
        print("mean: " + "  ".join(f"{k} {np.mean([r[k] for r in results]):.3f}" for k in TASKS))


if __name__ == "__main__":
    main()
