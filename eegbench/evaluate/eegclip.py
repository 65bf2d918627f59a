"""EEG-CLIP's evaluations on TUAB: per-task balanced accuracy, retrieval, baselines.

Definition "per-recording" (every evaluation but ``zero_shot_window``): window outputs are averaged per
recording and thresholded. Balanced accuracy is the mean of per-recording correctness weighted by
1 / (size of the recording's class). Definition "per-window" (``zero_shot_window``, the authors' zero-shot
code): each window is classified alone and balanced accuracy is taken over windows (weights 1 / windows
of the class). Either way the items carry the dataset's independent units as ``groups``
(``Recordings.recording_units``: subjects, all of a subject's recordings and windows together), so
the bootstrap CI and the paired tests resample subjects, not recordings or windows. Chance is 0.5 for every task
(retrieval: k over the number of candidate reports). Probes are fitted on the training recordings' windows with C chosen on
validation recordings; test recordings are only ever predicted.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, field_validator

from eegbench.config import StrictModel
from eegbench.data.tuab import TASKS
from eegbench.evaluate.context import evaluation
from eegbench.io import figure_png
from eegbench.data.balance import class_balance_weights
from eegbench.evaluate.stats import weighted_mean

NOTE = "recording-level balanced accuracy (window outputs averaged per recording), chance 0.5"
WINDOW_NOTE = ("window-level balanced accuracy (per window the nearer class prompt wins; EEG-CLIP's zero-shot code), "
               "chance 0.5")
C_GRID = (0.01, 0.1, 1.0, 10.0)


def _check_tasks(tasks):
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {', '.join(unknown)}; use {', '.join(TASKS)}")
    return tasks


class ZeroShotArgs(StrictModel):
    prompts: dict[str, list[list[str]]]  # task -> [prompts of class 0, prompts of class 1]

    @field_validator("prompts")
    @classmethod
    def _two_classes(cls, prompts):
        _check_tasks(prompts)
        for task, classes in prompts.items():
            if len(classes) != 2 or not all(classes):
                raise ValueError(f"{task}: give two non-empty prompt lists (class 0, class 1)")
        return prompts


class ProbeArgs(StrictModel):
    tasks: list[str] = list(TASKS)

    @field_validator("tasks")
    @classmethod
    def _known(cls, tasks):
        return _check_tasks(tasks)


class FewShotArgs(ProbeArgs):
    fractions: list[float] = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5]  # of the training subjects
    seeds: int = Field(5, ge=1)
    C: float = Field(1.0, gt=0)  # fixed: few-shot has no validation set to choose it on


class RetrievalArgs(StrictModel):
    ks: list[int] = [1, 5, 10]


class BaselineArgs(ProbeArgs):
    """The probes' arguments, and the recipe of the comparison models the stage trains (``train.baselines``)."""

    encoder: str | None = None  # unset: the EEG-CLIP stage's encoder, arguments and width (like for like)
    encoder_args: dict | None = None
    embed_dim: int | None = Field(None, ge=1)
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(1e-3, gt=0)
    other_task: dict[str, str] = {"pathological": "age", "age": "pathological", "gender": "pathological",
                                  "medication": "pathological"}  # the irrelevant-task encoder of each task

    @field_validator("other_task")
    @classmethod
    def _known_pairs(cls, other):
        _check_tasks([*other, *other.values()])
        return other


# --- scoring ---------------------------------------------------------------------------------


def recording_means(values: np.ndarray, recording: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(recordings, mean of values per recording)`` for window ``values``."""
    rows, inverse = np.unique(recording, return_inverse=True)
    return rows, np.bincount(inverse, weights=values) / np.bincount(inverse)


def balanced(y: np.ndarray, predicted: np.ndarray) -> dict:
    """Per-sample correctness and the weights (1 / class size) whose weighted mean is balanced accuracy."""
    return {"per_trial": (predicted == y).astype(float), "weights": class_balance_weights(y)}


def task_score(window_scores: np.ndarray, recording: np.ndarray, threshold: float, data, task: str) -> dict:
    """Recording-level balanced accuracy of ``mean(window_scores) > threshold`` on ``task``."""
    rows, means = recording_means(window_scores, recording)
    y = data.task(task)[rows]
    known = y >= 0
    groups, unit = data.recording_units(rows[known])
    return {**balanced(y[known], (means[known] > threshold).astype(int)), "chance": 0.5, "note": NOTE,
            "definition": "per-recording", "groups": groups, "unit": unit}


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True).clip(1e-12)


def fit_probe(features: dict[str, np.ndarray], data, labels: np.ndarray, seed: int):
    """Logistic regression on train windows' ``features`` with C chosen on val recordings' balanced accuracy.

    ``labels`` are per recording (-1 unknown); ``features`` hold ``train`` and ``val`` window features.
    """
    best, best_score = None, -1.0
    for C in C_GRID:
        clf = _fit(features["train"], data.recording[data.splits["train"]], labels, C, seed)
        val = data.recording[data.splits["val"]]
        rows, means = recording_means(_prob(clf, features["val"]), val)
        y = labels[rows]
        known = y >= 0
        scored = balanced(y[known], (means[known] > 0.5).astype(int))
        score = weighted_mean(scored["per_trial"], scored["weights"]) if known.any() else 0.0
        if score > best_score:
            best, best_score = clf, score
    return best


def _fit(x: np.ndarray, recording: np.ndarray, labels: np.ndarray, C: float, seed: int):
    """A standardised, class-balanced logistic regression; a constant when one class is present."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = labels[recording]
    keep = y >= 0
    if len(np.unique(y[keep])) < 2:
        return float(y[keep][0]) if keep.any() else 0.5
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, class_weight="balanced", max_iter=2000,
                                                              random_state=seed)).fit(x[keep], y[keep])


def _prob(clf, x: np.ndarray) -> np.ndarray:
    return np.full(len(x), clf) if isinstance(clf, float) else clf.predict_proba(x)[:, 1]


def _permuted(data, task: str, seed: int) -> np.ndarray:
    """The task's labels permuted across the training and validation recordings (test untouched)."""
    labels = data.task(task).copy()
    pool = np.flatnonzero(data.table["split"].to_numpy() != "test")
    labels[pool] = labels[pool][np.random.default_rng(seed).permutation(len(pool))]
    return labels


# --- evaluations -----------------------------------------------------------------------------


def _prototypes(ctx, classes: list[list[str]]) -> list[np.ndarray]:
    """Per class, the unit mean of its prompts' unit text embeddings (the prompt itself when there is one)."""
    return [_unit(_unit(ctx.embed_text(prompts)).mean(0)) for prompts in classes]


@evaluation("embeddings", needs=("text",), config=ZeroShotArgs, higher_is_better=True,
            requires=("recordings", "tasks"))
def zero_shot(predictions: dict, ctx, args: ZeroShotArgs) -> dict:
    """Cosine of each window to the mean prompt embedding of each class, the margin averaged per recording;
    no training on labels."""
    emb = _unit(np.asarray(predictions["embeddings"]))
    recording = ctx.data.recording[ctx.trials]
    parts = {}
    for task, classes in args.prompts.items():
        protos = _prototypes(ctx, classes)
        parts[task] = task_score(emb @ protos[1] - emb @ protos[0], recording, 0.0, ctx.data, task)
    return {"parts": parts}


@evaluation("embeddings", needs=("text",), config=ZeroShotArgs, higher_is_better=True,
            requires=("recordings", "tasks"))
def zero_shot_window(predictions: dict, ctx, args: ZeroShotArgs) -> dict:
    """The authors' zero-shot: each window takes the class whose prompt embedding is nearer (cosine; a tie
    goes to class 1, as in their code); balanced accuracy over windows, its CI over recordings."""
    emb = _unit(np.asarray(predictions["embeddings"]))
    recording = ctx.data.recording[ctx.trials]
    parts = {}
    for task, classes in args.prompts.items():
        protos = _prototypes(ctx, classes)
        y = ctx.data.task(task)[recording]
        known = y >= 0
        predicted = (emb @ protos[1] >= emb @ protos[0]).astype(int)
        groups, unit = ctx.data.recording_units(recording[known])
        parts[task] = {**balanced(y[known], predicted[known]), "groups": groups, "unit": unit, "chance": 0.5,
                       "note": WINDOW_NOTE, "definition": "per-window"}
    return {"parts": parts}


@evaluation("embeddings", config=ProbeArgs, higher_is_better=True,
            requires=("recordings", "tasks"))
def linear_probe(predictions: dict, ctx, args: ProbeArgs) -> dict:
    """Logistic regression on frozen embeddings; its control refits it on permuted training labels."""
    features = {s: ctx.outputs(s)["embeddings"] for s in ("train", "val")}
    recording = ctx.data.recording[ctx.trials]
    parts = {}
    for task in args.tasks:
        probes = ctx.memoised(("linear_probe", task), lambda: (
            fit_probe(features, ctx.data, ctx.data.task(task), ctx.seed),
            fit_probe(features, ctx.data, _permuted(ctx.data, task, ctx.seed), ctx.seed)))
        real, permuted = (task_score(_prob(p, predictions["embeddings"]), recording, 0.5, ctx.data, task) for p in probes)
        parts[task] = {**real, "controls": {"label_permutation": permuted}}
    return {"parts": parts}


@evaluation("embeddings", config=FewShotArgs, higher_is_better=True,
            requires=("recordings", "tasks"))
def few_shot(predictions: dict, ctx, args: FewShotArgs) -> dict:
    """Probes fitted on a fraction of the training subjects, averaged over seeds; plus the learning curve."""
    data = ctx.data
    train = data.splits["train"]
    features, recording = ctx.outputs("train")["embeddings"], data.recording[train]
    subjects = np.array(sorted(set(data.table["subject"].to_numpy()[np.unique(recording)])))
    test_recording = data.recording[ctx.trials]
    parts = {}
    for task in args.tasks:
        for fraction in args.fractions:
            n = max(1, int(round(fraction * len(subjects))))
            runs, draws, weights = [], [], None
            for s in range(args.seeds):
                chosen = np.random.default_rng(ctx.seed * 1000 + s).choice(subjects, n, replace=False)
                mask = data.table["subject"].isin(chosen).to_numpy()[recording]
                clf = _fit(features[mask], recording[mask], data.task(task), args.C, ctx.seed)
                scored = task_score(_prob(clf, predictions["embeddings"]), test_recording, 0.5, data, task)
                runs.append(scored["per_trial"])
                weights, units = scored["weights"], {k: scored[k] for k in ("groups", "unit")}
                draws.append(weighted_mean(scored["per_trial"], weights))
            parts[f"{task}@{fraction * 100:g}%"] = {
                "per_trial": np.mean(runs, axis=0), "weights": weights, **units, "chance": 0.5, "draws": draws,
                "definition": "per-recording",
                "note": f"{NOTE}; mean of {args.seeds} draws of training subjects; the CI is over test recordings, "
                        "the draws' spread is in the learning curve"}
    figure = _learning_curve(parts, args, len(subjects), getattr(data, "warnings", []))
    return {"parts": parts, "figures": {"few_shot.png": figure}}


def _learning_curve(parts: dict, args: FewShotArgs, n_subjects: int, warnings: list[str]) -> bytes:
    """PNG: balanced accuracy (mean and SD over subject draws) against training subjects, one line per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    x = [max(1, int(round(f * n_subjects))) for f in args.fractions]
    for task in args.tasks:
        draws = np.array([parts[f"{task}@{f * 100:g}%"]["draws"] for f in args.fractions])
        mean, sd = draws.mean(1), draws.std(1)
        ax.plot(x, mean, marker="o", label=task)
        ax.fill_between(x, mean - sd, mean + sd, alpha=0.15)
    ax.axhline(0.5, color="grey", linestyle="--", label="chance")
    ax.set(xscale="log", xlabel="training subjects", ylabel="balanced accuracy (test recordings)",
           title="few-shot logistic regression on EEG-CLIP features\n(mean +- SD over subject draws)"
                 + ("".join(f"\nWARNING: {w}" for w in warnings)))
    ax.legend(fontsize=8)
    return figure_png(fig, dpi=100)


@evaluation("embeddings", needs=("text",), config=RetrievalArgs, higher_is_better=True,
            requires=("recordings", "reports"))
def retrieval(predictions: dict, ctx, args: RetrievalArgs) -> dict:
    """Each test recording's mean embedding ranks the distinct test reports; recall@k of its own report
    (ties count against it)."""
    rows, _ = recording_means(np.zeros(len(ctx.trials)), ctx.data.recording[ctx.trials])
    emb = _unit(np.asarray(predictions["embeddings"]))
    inverse = np.searchsorted(rows, ctx.data.recording[ctx.trials])
    eeg = _unit(np.stack([emb[inverse == i].mean(0) for i in range(len(rows))]))
    table = ctx.data.table.iloc[rows]
    reports, own = np.unique(table["report_path"].to_numpy(), return_inverse=True)
    first = [np.flatnonzero(own == i)[0] for i in range(len(reports))]
    text = _unit(ctx.embed_text(list(table["text"].to_numpy()[first])))
    sim = eeg @ text.T
    mine = sim[np.arange(len(rows)), own][:, None]
    rank = (sim > mine).sum(1) + (sim == mine).sum(1) - 1
    groups, unit = ctx.data.recording_units(rows)
    return {"parts": {f"recall@{k}": {"per_trial": (rank < k).astype(float), "chance": min(1.0, k / len(reports)),
                                      "note": f"EEG-to-report retrieval among {len(reports)} test reports",
                                      "definition": "per-recording", "groups": groups, "unit": unit}
                      for k in args.ks}}


@evaluation("embeddings", config=BaselineArgs, higher_is_better=True,
            requires=("recordings", "tasks"), comparison="baselines")
def baselines(predictions: dict, ctx, args: BaselineArgs) -> dict:
    """EEG-CLIP's comparison rows: a Deep4 trained end to end per task (selected on val), and probes on a
    random-init frozen encoder and on the encoder trained for another task (models the stage trained)."""
    models = ctx.comparisons["baselines"]
    eeg = predictions["eeg"]
    recording = ctx.data.recording[ctx.trials]
    parts = {}
    for task in args.tasks:
        parts[f"task_deep4/{task}"] = task_score(models.probability(task, eeg), recording, 0.5, ctx.data, task)
        for kind, encoder in (("random_encoder", None), ("irrelevant_task", args.other_task[task])):
            features = {s: ctx.memoised(("baseline features", encoder, s), lambda s=s, encoder=encoder: models.features(
                encoder, ctx.data.eeg[ctx.data.splits[s]])) for s in ("train", "val")}
            probe = ctx.memoised((kind, task), lambda: fit_probe(features, ctx.data, ctx.data.task(task), ctx.seed))
            parts[f"{kind}/{task}"] = {**task_score(_prob(probe, models.features(encoder, eeg)), recording, 0.5,
                                                    ctx.data, task),
                                       "note": f"{NOTE}; logistic regression on a {kind.replace('_', ' ')}"
                                               + (f" ({args.other_task[task]})" if kind == "irrelevant_task" else "")}
    return {"parts": parts}
