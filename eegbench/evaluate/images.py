"""Metrics of generated images, computed from judge probabilities, CLIP embeddings and pixels, never from a model.

``nway_topk`` follows DreamDiffusion's evaluation code: the ground-truth class is the judge's argmax
on the stimulus (or the dataset label, in the label-based variant); for each generated image, and
each of ``draws`` repetitions, ``n - 1`` distractor classes are drawn uniformly from the judge's
other classes, and the image scores 1 when the ground-truth class is among the ``k`` most probable
of those ``n``. Three summaries of the ``[trials, samples]`` scores are reported:

- ``image_nway_top1``: each trial's mean over its samples (DreamDiffusion's "top-1-class"); chance ``k / n``.
- ``image_nway_top1_max``: DreamDiffusion's "top-1-class (max)": sample set ``s`` is sample ``s`` of
  every trial, and the value is the best set's test-set mean. The set is chosen on the test set, so
  its CI resamples trials and chooses again, and its chance is the expected value of the same
  maximum for a generator whose samples carry no information (below).
- ``image_nway_top1_oracle``: each trial's best sample, an oracle choice, with the chance of that choice.

A no-information generator is one whose judge ranking of each image is independent of the trial and
of the other samples and exchangeable across classes: the number of classes ranked above the ground
truth is uniform on ``0..C-1``, so a draw hits with a hypergeometric probability and an image's
score is a mixture of binomials over ``draws``; the chances of the mean, the oracle and the (max)
are computed exactly from that distribution (:func:`nway_chances`). Samples that repeat each other
have lower oracle and (max) chances (``k / n`` when identical), so these chances are the highest a
no-information generator reaches.

``pairwise_identification`` is the "pair-wise" 2-way identification: a generated image counts as
identified against another trial when it is more similar (SSIM, Pearson correlation or CLIP
cosine) to its own stimulus than to that trial's stimulus. Chance is 0.5. SSIM has two definitions:
``skimage`` (default; DreamDiffusion's: scikit-image ``structural_similarity`` with its defaults,
7x7 uniform window, sample covariance, data range 255, mean over the RGB channels) and ``gaussian``
(torchmetrics: 11 px Gaussian window, sigma 1.5). Images are compared at the generated resolution,
in colour, as DreamDiffusion does.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from eegbench.config import StrictModel
from eegbench.errors import UserError
from eegbench.evaluate.context import EvalContext, evaluation

SKIMAGE_WINDOW = 7


def nway_topk(probs: np.ndarray, gt_class: np.ndarray, *, n: int = 50, k: int = 1, draws: int = 50,
              seed: int = 0) -> dict:
    """Per-image n-way top-k of generated images.

    ``probs``: judge probabilities ``[trials, samples, classes]``; ``gt_class``: ``[trials]``.
    ``n`` is capped by the judge's class count. Returns ``per_sample`` ``[trials, samples]`` (each the
    mean over ``draws`` distractor sets), ``per_trial`` (mean over samples), ``chance`` and the ``n`` used.
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
    return {"per_sample": hits, "per_trial": hits.mean(1), "chance": k / n, "n": n}


def nway_chances(*, trials: int, samples: int, classes: int, n: int, k: int = 1, draws: int = 50) -> dict:
    """Exact expected ``mean``, ``oracle`` (best sample per trial) and ``max`` (best sample set's mean over
    ``trials``) n-way top-k of a no-information generator (module docstring), ``n`` already capped."""
    from scipy.stats import binom, hypergeom

    above = np.arange(classes)  # classes the judge ranks above the ground truth: uniform on 0..C-1
    p_hit = hypergeom.cdf(k - 1, classes - 1, above, n - 1)  # fewer than k of the n-1 distractors among them
    score = binom.pmf(np.arange(draws + 1)[:, None], draws, p_hit[None]).mean(1)  # P(image score = j / draws)
    # a set's mean over trials: the trials' scores summed (T-fold convolution, by FFT), over trials * draws
    size = trials * draws + 1
    total = np.clip(np.fft.irfft(np.fft.rfft(score, size) ** trials, size), 0, None)
    return {"mean": float(score @ np.arange(draws + 1) / draws),
            "oracle": _expected_max(score, np.arange(draws + 1) / draws, samples),
            "max": _expected_max(total, np.arange(size) / (size - 1), samples)}


def _expected_max(pmf: np.ndarray, values: np.ndarray, m: int) -> float:
    """E[max of ``m`` independent draws] of a distribution ``pmf`` over increasing ``values``."""
    cdf = np.cumsum(pmf / pmf.sum())
    return float(values @ np.diff(np.minimum(cdf, 1.0) ** m, prepend=0.0))


def best_set_mean(sums: np.ndarray) -> float:
    """The (max) statistic from column sums of rows ``[hits of sample 0..S-1, 1]``: the best set's mean."""
    return float(sums[:-1].max() / sums[-1])


def pearson_matrix(generated: np.ndarray, stimuli: np.ndarray) -> np.ndarray:
    """``[i, j]`` = Pearson correlation of generated image ``i`` with stimulus ``j`` (pixels flattened)."""
    def standardise(x):
        x = x.reshape(len(x), -1).astype(np.float64)
        x = x - x.mean(1, keepdims=True)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    return standardise(generated) @ standardise(stimuli).T


def ssim_matrix_skimage(generated: np.ndarray, stimuli: np.ndarray, block_values: int = 2 ** 22) -> np.ndarray:
    """``[i, j]`` = ``skimage.metrics.structural_similarity(g_i, s_j, data_range=255, channel_axis=-1)`` of
    uint8 images ``[N, 3, H, W]``, computed in blocks of about ``block_values`` pixel values per array."""
    from scipy.ndimage import uniform_filter

    def local(x):  # float64 NHWC, local means and sample variances (7x7 windows, reflected borders)
        x = x.transpose(0, 2, 3, 1).astype(np.float64)
        mean = uniform_filter(x, size=(1, SKIMAGE_WINDOW, SKIMAGE_WINDOW, 1))
        return x, mean, cov_norm * (uniform_filter(x * x, size=(1, SKIMAGE_WINDOW, SKIMAGE_WINDOW, 1)) - mean * mean)

    cov_norm = SKIMAGE_WINDOW ** 2 / (SKIMAGE_WINDOW ** 2 - 1)
    c1, c2, pad = (0.01 * 255) ** 2, (0.03 * 255) ** 2, (SKIMAGE_WINDOW - 1) // 2
    block = max(1, block_values // generated[0].size)
    out = np.empty((len(generated), len(stimuli)))
    for j in range(0, len(stimuli), block):
        y, uy, vy = local(stimuli[j: j + block])
        for i0 in range(0, len(generated), block):
            xs, uxs, vxs = local(generated[i0: i0 + block])
            for i, (x, ux, vx) in enumerate(zip(xs, uxs, vxs), start=i0):
                vxy = cov_norm * (uniform_filter(x * y, size=(1, SKIMAGE_WINDOW, SKIMAGE_WINDOW, 1)) - ux * uy)
                s = (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
                out[i, j: j + len(y)] = s[:, pad: s.shape[1] - pad, pad: s.shape[2] - pad].mean(axis=(1, 2)).mean(-1)
    return out


def ssim_matrix_gaussian(generated: np.ndarray, stimuli: np.ndarray) -> np.ndarray:
    """``[i, j]`` = torchmetrics SSIM (11 px Gaussian window, sigma 1.5) of uint8 images ``[N, 3, H, W]``."""
    import torch
    from torchmetrics.functional.image import structural_similarity_index_measure as ssim

    g, s = (torch.from_numpy(np.ascontiguousarray(x)).float() / 255 for x in (generated, stimuli))
    kernel = min(11, g.shape[-1] - (1 - g.shape[-1] % 2))  # odd and no larger than the image
    out = np.empty((len(g), len(s)))
    for i in range(len(g)):
        out[i] = ssim(g[i:i + 1].expand_as(s), s, data_range=1.0, kernel_size=kernel, reduction="none").numpy()
    return out


SSIM = {"skimage": ssim_matrix_skimage, "gaussian": ssim_matrix_gaussian}
SSIM_NOTES = {"skimage": "SSIM definition skimage: 7x7 uniform window, sample covariance, data range 255, RGB mean "
                         "(DreamDiffusion)",
              "gaussian": "SSIM definition gaussian: 11 px window, sigma 1.5 (torchmetrics)"}


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


def _judged(predictions: dict, ctx: EvalContext) -> tuple[dict, dict]:
    """The n-way top-1 scores (ground truth: the judge's class of the stimulus) and their chances, computed
    once per set of images for the mean, the (max) and the oracle (the memo holds ``probs``, so its id is unique)."""
    probs = ctx.judge_probs(predictions["images"])
    trials, samples, classes = probs.shape

    def compute():
        scored = nway_topk(probs, ctx.judge_gt_class(), seed=ctx.seed)
        return probs, scored, nway_chances(trials=trials, samples=samples, classes=classes, n=scored["n"])

    return ctx.memoised(("nway_top1", id(probs)), compute)[1:]


@evaluation("images", needs=("judge",), precheck=EvalContext.check_stimuli,
            higher_is_better=True, requires=("images",))
def image_nway_top1(predictions: dict, ctx: EvalContext) -> dict:
    """n-way top-1 of generated images, ground truth = the judge's class of the stimulus; mean over samples."""
    scored, _ = _judged(predictions, ctx)
    return {"per_trial": scored["per_trial"], "chance": scored["chance"], "definition": "dreamdiffusion",
            "note": f"{scored['n']}-way, judge's class of the stimulus, mean over samples"}


@evaluation("images", needs=("judge",), precheck=EvalContext.check_stimuli,
            higher_is_better=True, requires=("images",))
def image_nway_top1_max(predictions: dict, ctx: EvalContext) -> dict:
    """DreamDiffusion's "(max)": the n-way top-1 of the best sample set (sample s of every trial) over the test set."""
    scored, chances = _judged(predictions, ctx)
    hits = scored["per_sample"]
    return {"per_trial": np.column_stack([hits, np.ones(len(hits))]), "statistic": best_set_mean,
            "chance": chances["max"], "definition": "dreamdiffusion",
            "note": f"{scored['n']}-way, best of {hits.shape[1]} sample sets chosen on the test set (CI chooses again "
                    "per resample; chance = the same choice among samples carrying no information)"}


@evaluation("images", needs=("judge",), precheck=EvalContext.check_stimuli,
            higher_is_better=True, requires=("images",))
def image_nway_top1_oracle(predictions: dict, ctx: EvalContext) -> dict:
    """As image_nway_top1 but each trial's best sample: an oracle choice, reported apart, with its own chance."""
    scored, chances = _judged(predictions, ctx)
    return {"per_trial": scored["per_sample"].max(1), "chance": chances["oracle"],
            "note": f"{scored['n']}-way, best of {scored['per_sample'].shape[1]} samples per trial (oracle; not "
                    "comparable to mean or (max); chance = the same choice among samples carrying no information)"}


@evaluation("images", needs=("judge",), precheck=_check_labels,
            higher_is_better=True, requires=("images",))
def image_nway_top1_label(predictions: dict, ctx: EvalContext) -> dict:
    """n-way top-1 of generated images with the dataset label as ground truth; mean over samples."""
    scored = nway_topk(ctx.judge_probs(predictions["images"]), ctx.label_in_judge_classes(), seed=ctx.seed)
    return {"per_trial": scored["per_trial"], "chance": scored["chance"],
            "note": f"{scored['n']}-way, dataset label, mean over samples"}


class SsimArgs(StrictModel):
    definition: Literal["skimage", "gaussian"] = "skimage"  # skimage: DreamDiffusion's


@evaluation("images", precheck=EvalContext.check_stimuli, config=SsimArgs,
            higher_is_better=True, requires=("images",))
def image_ssim_2way(predictions: dict, ctx: EvalContext, args: SsimArgs) -> dict:
    """Pair-wise 2-way identification by SSIM to the stimulus (``definition``: skimage or gaussian), mean over samples."""
    images = predictions["images"]
    if args.definition == "skimage" and min(images.shape[-2:]) < SKIMAGE_WINDOW:
        raise UserError(f"image_ssim_2way: generated images are {images.shape[-1]}x{images.shape[-2]} px, smaller than "
                        f"skimage's {SKIMAGE_WINDOW}x{SKIMAGE_WINDOW} window; generate larger images or set "
                        "evaluation_args.image_ssim_2way.definition: gaussian")
    return {**_two_way(images, ctx, SSIM[args.definition]), "definition": args.definition,
            "note": f"2-way, {SSIM_NOTES[args.definition]}, mean over samples"}


@evaluation("images", precheck=EvalContext.check_stimuli,
            higher_is_better=True, requires=("images",))
def image_pcc_2way(predictions: dict, ctx: EvalContext) -> dict:
    """Pair-wise 2-way identification by pixel correlation (PCC) to the stimulus, mean over samples."""
    return {**_two_way(predictions["images"], ctx, pearson_matrix), "definition": "dreamdiffusion",
            "note": "2-way, Pearson correlation of RGB pixels, mean over samples"}


@evaluation("images", needs=("clip",), precheck=EvalContext.check_stimuli,
            higher_is_better=True, requires=("images",))
def image_clip_2way(predictions: dict, ctx: EvalContext) -> dict:
    """Pair-wise 2-way identification by CLIP image-embedding cosine to the stimulus, mean over samples."""
    from eegbench.evaluate.text import clip_image_features

    def cosine(generated, stimuli):
        return clip_image_features(ctx, generated) @ ctx.memoised(
            ("clip_2way_stimuli", stimuli.shape[-1]), lambda: clip_image_features(ctx, stimuli)).T

    return {**_two_way(predictions["images"], ctx, cosine), "note": "2-way, CLIP image-embedding cosine, mean over samples"}


def _two_way(images: np.ndarray, ctx: EvalContext, similarity) -> dict:
    stimuli = ctx.stimuli(images.shape[-1])
    per_sample = [pairwise_identification(similarity(images[:, s], stimuli))["per_trial"] for s in range(images.shape[1])]
    return {"per_trial": np.mean(per_sample, axis=0), "chance": 0.5}
