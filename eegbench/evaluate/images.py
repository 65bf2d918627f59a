"""Metrics of generated images, computed from judge probabilities and pixels, never from a model.

``nway_topk`` follows DreamDiffusion's evaluation code: the ground-truth class is the judge's argmax
on the stimulus (or the dataset label, in the label-based variant); for each generated image, and
each of ``draws`` repetitions, ``n - 1`` distractor classes are drawn uniformly from the judge's
other classes, and the image scores 1 when the ground-truth class is among the ``k`` most probable
of those ``n``. A trial's score is the mean over its samples; the best sample per trial is
reported separately (it is an oracle choice and is labelled as such). Chance is ``k / n``.

``pairwise_identification`` is the "pair-wise" 2-way identification: a generated image counts as
identified against another trial when it is more similar (SSIM or Pearson correlation) to its own
stimulus than to that trial's stimulus. Chance is 0.5.
"""

from __future__ import annotations

import numpy as np

from eegbench.evaluate.context import EvalContext, evaluation


def nway_topk(probs: np.ndarray, gt_class: np.ndarray, *, n: int = 50, k: int = 1, draws: int = 50,
              seed: int = 0) -> dict:
    """Per-trial n-way top-k of generated images.

    ``probs``: judge probabilities ``[trials, samples, classes]``; ``gt_class``: ``[trials]``.
    ``n`` is capped by the judge's class count. Returns ``per_trial`` (mean over samples),
    ``per_trial_best`` (max over samples), ``chance`` and the ``n`` used.
    """
    trials, samples, classes = probs.shape
    n = min(n, classes)
    rng = np.random.default_rng(seed)
    hits = np.empty((trials, samples))
    for t in range(trials):
        others = np.delete(np.arange(classes), gt_class[t])
        # one set of distractors per (sample, draw): argsort of uniform noise picks n-1 without replacement
        picks = np.argsort(rng.random((samples, draws, len(others))), axis=-1)[..., : n - 1]
        distractor_p = probs[t][np.arange(samples)[:, None, None], others[picks]]
        gt_p = probs[t, :, gt_class[t]][:, None]
        # top-k among the n: fewer than k distractors beat the ground truth
        hits[t] = ((distractor_p > gt_p[..., None]).sum(-1) < k).mean(-1)
    return {"per_trial": hits.mean(1), "per_trial_best": hits.max(1), "chance": k / n, "n": n}


def pearson_matrix(generated: np.ndarray, stimuli: np.ndarray) -> np.ndarray:
    """``[i, j]`` = Pearson correlation of generated image ``i`` with stimulus ``j`` (pixels flattened)."""
    def standardise(x):
        x = x.reshape(len(x), -1).astype(np.float64)
        x = x - x.mean(1, keepdims=True)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    return standardise(generated) @ standardise(stimuli).T


def ssim_matrix(generated: np.ndarray, stimuli: np.ndarray) -> np.ndarray:
    """``[i, j]`` = SSIM of generated image ``i`` with stimulus ``j``; images ``[N, 3, H, W]`` in [0, 1]."""
    import torch
    from torchmetrics.functional.image import structural_similarity_index_measure as ssim

    g, s = torch.as_tensor(generated, dtype=torch.float32), torch.as_tensor(stimuli, dtype=torch.float32)
    kernel = min(11, g.shape[-1] - (1 - g.shape[-1] % 2))  # odd and no larger than the image
    out = np.empty((len(g), len(s)))
    for i in range(len(g)):
        out[i] = ssim(g[i:i + 1].expand_as(s), s, data_range=1.0, kernel_size=kernel, reduction="none").numpy()
    return out


def pairwise_identification(similarity: np.ndarray) -> dict:
    """Per-trial 2-way identification rate from a ``[generated, stimuli]`` similarity matrix."""
    own = np.diag(similarity)[:, None]
    others = ~np.eye(len(similarity), dtype=bool)
    per_trial = ((own > similarity) & others).sum(1) / others.sum(1)
    return {"per_trial": per_trial, "chance": 0.5}


# registered evaluations: ``fn(predictions, ctx)`` on ``predictions["images"]`` [trials, samples, 3, H, W] uint8

def _check_labels(ctx: EvalContext) -> None:
    ctx.check_stimuli()
    ctx.label_in_judge_classes()


@evaluation("images", needs=("judge",), precheck=EvalContext.check_stimuli)
def image_nway_top1(predictions: dict, ctx: EvalContext) -> dict:
    """n-way top-1 of generated images, ground truth = the judge's class of the stimulus; mean over samples."""
    scored = nway_topk(ctx.judge_probs(predictions["images"]), ctx.judge_gt_class(), seed=ctx.seed)
    return {"per_trial": scored["per_trial"], "chance": scored["chance"],
            "note": f"{scored['n']}-way, judge's class of the stimulus, mean over samples"}


@evaluation("images", needs=("judge",), precheck=EvalContext.check_stimuli)
def image_nway_top1_best(predictions: dict, ctx: EvalContext) -> dict:
    """As image_nway_top1 but each trial's best sample: an oracle choice, reported apart, with its own chance."""
    probs, gt = ctx.judge_probs(predictions["images"]), ctx.judge_gt_class()
    scored = nway_topk(probs, gt, seed=ctx.seed)
    # chance of "best of S" when every sample's judge output is independent noise, by Monte Carlo: the
    # most a no-information generator can get (one that repeats the same image gets k / n)
    null = nway_topk(np.random.default_rng(ctx.seed).random(probs.shape), gt, seed=ctx.seed)
    return {"per_trial": scored["per_trial_best"], "chance": float(null["per_trial_best"].mean()),
            "note": f"{scored['n']}-way, best of {probs.shape[1]} samples per trial (oracle; not comparable to mean; "
                    "chance = independent random samples)"}


@evaluation("images", needs=("judge",), precheck=_check_labels)
def image_nway_top1_label(predictions: dict, ctx: EvalContext) -> dict:
    """n-way top-1 of generated images with the dataset label as ground truth; mean over samples."""
    scored = nway_topk(ctx.judge_probs(predictions["images"]), ctx.label_in_judge_classes(), seed=ctx.seed)
    return {"per_trial": scored["per_trial"], "chance": scored["chance"],
            "note": f"{scored['n']}-way, dataset label, mean over samples"}


@evaluation("images", precheck=EvalContext.check_stimuli)
def image_ssim_2way(predictions: dict, ctx: EvalContext) -> dict:
    """Pair-wise 2-way identification by SSIM to the stimulus, mean over samples."""
    return _two_way(predictions["images"], ctx, ssim_matrix)


@evaluation("images", precheck=EvalContext.check_stimuli)
def image_pcc_2way(predictions: dict, ctx: EvalContext) -> dict:
    """Pair-wise 2-way identification by pixel correlation (PCC) to the stimulus, mean over samples."""
    return _two_way(predictions["images"], ctx, pearson_matrix)


def _two_way(images: np.ndarray, ctx: EvalContext, similarity) -> dict:
    stimuli = ctx.stimuli(images.shape[-1]).astype(np.float32) / 255
    per_sample = [pairwise_identification(similarity(images[:, s].astype(np.float32) / 255, stimuli))["per_trial"]
                  for s in range(images.shape[1])]
    return {"per_trial": np.mean(per_sample, axis=0), "chance": 0.5, "note": "2-way, mean over samples"}
