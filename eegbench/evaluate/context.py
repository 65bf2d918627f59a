"""What an evaluation may read besides the predictions: the scored trials' data and the pretrained models.

Every evaluation is called as ``evaluate(predictions, ctx)`` (``evaluate(predictions, ctx, args)``
when it declares a ``Config``, filled from the suite's ``evaluation_args``) and returns
``{"per_trial": array, "chance": float}`` plus optionally a ``"note"`` printed with the metric and
``"controls"`` of its own (``{name: {"per_trial": ...}}``, e.g. a probe refit on permuted labels),
the ``"definition"`` it was computed with (shown beside it; published numbers are compared only
under the same one) and per-trial ``"groups"`` where trials are not independent (each window's
recording: CIs and p-values then resample whole groups). An evaluation that reports several numbers
returns ``{"parts": {suffix: that dict}}`` instead, and may add ``"figures": {file name: png bytes}``,
kept from the real predictions only.
Each declares what it reads and which pretrained models it needs with :func:`evaluation`, so a
suite pairing it with the wrong stage fails at config time, and the run resolves and checks those
models before it writes anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from eegbench.errors import UserError


def evaluation(reads: str | tuple[str, ...], needs: tuple[str, ...] = (), precheck=None, config=None,
               higher_is_better: bool | None = None, requires: tuple[str, ...] = (), comparison: str | None = None):
    """Declare what an evaluation scores: the prediction key(s) it ``reads`` ("logits", "images",
    "embeddings", "text"), what it ``requires`` of the dataset beyond the trials' EEG and labels
    (``contracts.DATA_ITEMS``, e.g. "images"), the pretrained models it ``needs`` (sd, clip, judge, text, lm,
    captioner), an optional
    ``precheck(ctx)`` the run calls before training (it raises UserError on inputs that cannot work),
    an optional pydantic ``config`` model of its arguments, whether a higher value is better
    (required: :func:`higher_is_better` refuses an evaluation that leaves it None) and the ``comparison``
    models it also reads (``ctx.comparisons[name]``), which the last stage trains before any scoring."""
    def mark(fn):
        fn.reads, fn.needs, fn.requires = (reads,) if isinstance(reads, str) else tuple(reads), needs, tuple(requires)
        fn.higher_is_better, fn.comparison = higher_is_better, comparison
        if precheck is not None:
            fn.precheck = precheck
        if config is not None:
            fn.Config = config
        return fn
    return mark


def higher_is_better(name: str, fn) -> bool:
    """The direction ``fn`` declares with :func:`evaluation`; an evaluation that declares none is refused,
    since ranks, checks, gaps and p-values all follow it."""
    declared = getattr(fn, "higher_is_better", None)
    if not isinstance(declared, bool):
        raise UserError(f"evaluation {name!r} declares no direction; pass higher_is_better=True or False to its "
                        "@evaluation(...) decorator")
    return declared


@dataclass
class EvalContext:
    """The scored trials (positions into ``data``), the run's pretrained models and seed; derived arrays
    memoised. After training the runner adds the run, the last stage, its model and its comparison models."""

    data: object  # data.imagenet_eeg.Trials, data.tuab.Recordings
    trials: np.ndarray
    pretrained: object | None  # models.pretrained.Pretrained
    seed: int
    run: object | None = None  # track.store.Run
    stage: object | None = None
    model: object | None = None
    comparisons: dict = field(default_factory=dict)  # name -> what Stage.train_comparison returned
    _memo: dict = field(default_factory=dict, repr=False)

    def memoised(self, key, compute):
        """``compute()`` once per ``key`` for this run's scoring (shared by evaluations and conditions)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def outputs(self, split: str) -> dict:
        """The trained model's predictions on every trial of ``split`` (for probes fitted on train/val)."""
        return self.memoised(("outputs", split), lambda: self.stage.predict(
            self.model, self.data.eeg[self.data.splits[split]]))

    def embed_text(self, texts: list[str]) -> np.ndarray:
        """The trained model's text embeddings of ``texts`` (stages with a text tower)."""
        return self.stage.embed_text(self.model, texts)

    def stimuli(self, size: int) -> np.ndarray:
        """uint8 ``[trials, 3, size, size]`` stimulus images of the scored trials."""
        from eegbench.data.stimuli import load_pixels

        return self.memoised(("stimuli", size), lambda: load_pixels(
            [self.data.image_path(int(i)) for i in self.trials], size))

    def judge_probs(self, images: np.ndarray) -> np.ndarray:
        """Judge probabilities ``[trials, samples, classes]`` of uint8 images ``[trials, samples, 3, H, W]``."""
        import torch

        def compute():
            judge = self.pretrained.judge()
            flat = images.reshape(-1, *images.shape[2:])
            probs = [judge.probs(torch.from_numpy(flat[i:i + 256]).float() / 255).numpy()
                     for i in range(0, len(flat), 256)]
            return np.concatenate(probs).reshape(*images.shape[:2], -1)

        key = ("judge", id(images))
        if key in self._memo and self._memo[key][0] is not images:  # id reused by a new array
            del self._memo[key]
        return self.memoised(key, lambda: (images, compute()))[1]

    def judge_gt_class(self) -> np.ndarray:
        """The judge's argmax on each scored trial's stimulus (DreamDiffusion's ground truth class)."""
        size = self.pretrained.judge().image_size
        return self.memoised("judge_gt", lambda: self.judge_probs(self.stimuli(size)[:, None])[:, 0].argmax(-1))

    def check_stimuli(self) -> None:
        """Raise UserError naming the first missing stimulus image of the scored trials."""
        from eegbench.data.stimuli import check_stimuli

        check_stimuli(self.data, self.trials)

    def label_in_judge_classes(self) -> np.ndarray:
        """Each scored trial's dataset label as an index into the judge's classes (matched by wnid)."""
        classes = self.pretrained.judge().classes
        index = {w: i for i, w in enumerate(classes)}
        wnids = [self.data.wnids[int(label)] for label in self.data.label[self.trials]]
        unknown = sorted({w for w in wnids if w not in index})
        if unknown:
            raise UserError(f"the judge's classes lack dataset class(es) {', '.join(unknown[:5])}; the label-based "
                            "n-way metric needs a judge over the dataset's wnids (remove it from evaluate)")
        return np.array([index[w] for w in wnids])
