"""Scores of generated text: BLEU, ROUGE-L, MiniLM similarity, CLIPScore and image-text consistency.

Every score is per trial (sentence-level), so each gets a bootstrap CI and a paired permutation
test against every control. The reference is the trial's image caption; text is lower-cased and
split on non-alphanumerics before n-gram matching. Chance is the same score with each output
paired with another trial's reference (or image): a random cyclic shift of the trials, reported with
its own bootstrap interval. An empty output scores 0 and is counted in the metric's note.
"""

from __future__ import annotations

import re
from functools import partial

import numpy as np

from eegbench.evaluate.context import evaluation

BLEU_ORDERS = (1, 2, 3, 4)


def normalise(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", str(text).lower()))


def references(ctx) -> list[str]:
    return ctx.memoised("references", lambda: ctx.data.captions_of(ctx.trials))


def mismatched(n: int, seed: int) -> np.ndarray:
    """A random cyclic shift of ``range(n)``: every trial paired with another one."""
    return (np.arange(n) + np.random.default_rng(seed).integers(1, max(n, 2))) % n


def noting_empty(out: dict, outputs, what: str = "outputs") -> dict:
    """``out`` with a note counting the empty texts among ``outputs`` (they scored 0), if any."""
    empty = sum(not normalise(o) for o in outputs)
    if empty:
        out["note"] = "; ".join(filter(None, (out.get("note"), f"{empty} of {len(outputs)} {what} empty (scored 0)")))
    return out


def scored(fn, outputs, targets, seed: int) -> dict:
    """``fn(output, target)`` per trial, and the chance-level score with targets paired to other trials."""
    return noting_empty({"per_trial": np.array([fn(o, t) for o, t in zip(outputs, targets)], dtype=float),
                         "chance_per_trial": np.array([fn(o, targets[j]) for o, j in
                                                       zip(outputs, mismatched(len(outputs), seed))])}, outputs)


def sentence_bleu(hypothesis: str, reference: str, n: int) -> float:
    """Cumulative BLEU-n of one sentence (uniform weights, brevity penalty; add-one smoothing above unigrams)."""
    from torchmetrics.functional.text import bleu_score

    hyp, ref = normalise(hypothesis), normalise(reference)
    return float(bleu_score([hyp], [[ref]], n_gram=n, smooth=n > 1)) if hyp else 0.0


def rouge_n(hypothesis: str, reference: str, n: int) -> float:
    """ROUGE-n F1: clipped n-gram overlap over hypothesis and reference n-gram counts."""
    from collections import Counter

    def grams(text: str) -> Counter:
        words = normalise(text).split()
        return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))

    hyp, ref = grams(hypothesis), grams(reference)
    overlap = sum((hyp & ref).values())
    return 0.0 if overlap == 0 else 2 * overlap / (sum(hyp.values()) + sum(ref.values()))


def rouge_l(hypothesis: str, reference: str) -> float:
    """ROUGE-L F1: longest common subsequence of words over hypothesis and reference lengths."""
    hyp, ref = normalise(hypothesis).split(), normalise(reference).split()
    if not hyp or not ref:
        return 0.0
    previous = [0] * (len(ref) + 1)
    for word in hyp:
        current = [0]
        for j, other in enumerate(ref):
            current.append(previous[j] + 1 if word == other else max(previous[j + 1], current[j]))
        previous = current
    lcs = previous[-1]
    return 0.0 if lcs == 0 else 2 * lcs / (len(hyp) + len(ref))


@evaluation(reads="text")
def text_bleu(pred: dict, ctx) -> dict:
    """Sentence BLEU-1..4 of the output against the trial's caption, averaged over trials."""
    refs = references(ctx)
    return {"parts": {f"bleu{n}": scored(partial(sentence_bleu, n=n), pred["text"], refs, ctx.seed) for n in BLEU_ORDERS}}


@evaluation(reads="text")
def text_rouge(pred: dict, ctx) -> dict:
    """Sentence ROUGE-1, ROUGE-2 and ROUGE-L F1 of the output against the trial's caption."""
    refs = references(ctx)
    scorers = {"rouge1": partial(rouge_n, n=1), "rouge2": partial(rouge_n, n=2), "rougeL": rouge_l}
    return {"parts": {name: scored(fn, pred["text"], refs, ctx.seed) for name, fn in scorers.items()}}


def minilm_cosine(ctx, a: list[str], b: list[str]) -> np.ndarray:
    """Cosine of MiniLM (the run's sentence encoder) embeddings of paired texts; 0 where either is empty."""
    texts = sorted(set(a) | set(b))
    emb = ctx.pretrained.text().embed(texts, ctx.pretrained.cache_dir)
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    row = {t: i for i, t in enumerate(texts)}
    cos = np.array([float(emb[row[x]] @ emb[row[y]]) for x, y in zip(a, b)])
    return np.where([bool(normalise(x)) and bool(normalise(y)) for x, y in zip(a, b)], cos, 0.0)


def similarity_scored(ctx, outputs: list[str], targets: list[str]) -> dict:
    """:func:`scored` for MiniLM cosine, embedding each distinct text once."""
    outputs, targets = list(outputs), list(targets)
    shifted = [targets[j] for j in mismatched(len(outputs), ctx.seed)]
    return noting_empty({"per_trial": minilm_cosine(ctx, outputs, targets),
                         "chance_per_trial": minilm_cosine(ctx, outputs, shifted)}, outputs)


@evaluation(reads="text", needs=("text",))
def text_similarity(pred: dict, ctx) -> dict:
    """Cosine of MiniLM sentence embeddings of the output and the trial's caption."""
    return similarity_scored(ctx, pred["text"], references(ctx))


def clip_image_features(ctx, images: np.ndarray) -> np.ndarray:
    """Unit CLIP image embeddings of uint8 images ``[N, 3, H, W]``."""
    import torch
    from PIL import Image

    model, preprocess, _ = ctx.pretrained.clip()
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), 256):
            batch = torch.stack([preprocess(Image.fromarray(img.transpose(1, 2, 0))) for img in images[i:i + 256]])
            out.append(torch.nn.functional.normalize(model.encode_image(batch).float(), dim=-1).numpy())
    return np.concatenate(out)


def clip_text_features(ctx, texts: list[str]) -> np.ndarray:
    from eegbench.evaluate.judges import clip_text_embeddings

    model, _, tokenizer = ctx.pretrained.clip()
    return clip_text_embeddings(model, tokenizer, list(texts))


def clipscore(image_emb: np.ndarray, text_emb: np.ndarray, texts) -> np.ndarray:
    """CLIPScore ``100 * max(cos, 0)`` per (image, text) pair (images ``[N, samples, D]``: mean over samples)."""
    cos = np.einsum("nsd,nd->ns", image_emb, text_emb).mean(1)
    return np.where([bool(normalise(t)) for t in texts], 100 * np.maximum(cos, 0), 0.0)


def _clipscore(ctx, image_emb: np.ndarray, texts) -> dict:
    """CLIPScore of each trial's images with its text, and with another trial's text (chance)."""
    texts = list(texts)
    text_emb = clip_text_features(ctx, texts)
    shift = mismatched(len(texts), ctx.seed)
    return noting_empty({"per_trial": clipscore(image_emb, text_emb, texts),
                         "chance_per_trial": clipscore(image_emb, text_emb[shift], [texts[j] for j in shift])}, texts)


@evaluation(reads="text", needs=("clip",), precheck=lambda ctx: ctx.check_stimuli())
def clipscore_stimulus(pred: dict, ctx) -> dict:
    """CLIPScore of the trial's stimulus image and the generated text (100 max(cos, 0), the world's/user's CLIP)."""
    size = ctx.pretrained.clip()[0].visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    image_emb = ctx.memoised("clip_stimuli", lambda: clip_image_features(ctx, ctx.stimuli(size)))[:, None]
    return _clipscore(ctx, image_emb, pred["text"])


@evaluation(reads=("images", "text"), needs=("clip",))
def clipscore_generated(pred: dict, ctx) -> dict:
    """CLIPScore of the generated images and the generated text of the same trial (mean over samples)."""
    images = pred["images"]
    flat = clip_image_features(ctx, images.reshape(-1, *images.shape[2:]))
    return _clipscore(ctx, flat.reshape(*images.shape[:2], -1), pred["text"])


@evaluation(reads=("images", "text"), needs=("captioner", "text"))
def image_text_consistency(pred: dict, ctx) -> dict:
    """MiniLM cosine of the captioner's caption of the generated image (first sample) and the generated text."""
    captions = ctx.pretrained.captioner().caption(pred["images"][:, 0])
    return noting_empty(similarity_scored(ctx, pred["text"], captions), captions, "image captions")
