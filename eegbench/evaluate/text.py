"""Scores of generated text: BLEU, ROUGE, MiniLM similarity, CLIPScore and image-text consistency.

The reference is the trial's image caption. BLEU and ROUGE follow the definition named by
``evaluation_args.<metric>.definition`` (evaluate/text_definitions.py; default ``sacrebleu``);
CLIPScore the convention named by ``evaluation_args.<metric>.convention`` (default ``clamped100``).
Every score gets a bootstrap CI over trials and a paired permutation test against every control.
Chance is the same score with each output paired with another trial's reference (or image): a
random cyclic shift of the trials, reported with its own bootstrap interval. An empty output scores
0 (unless the definition says otherwise) and is counted in the metric's note.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from eegbench.config import StrictModel
from eegbench.evaluate import text_definitions
from eegbench.evaluate.context import evaluation
from eegbench.evaluate.text_definitions import normalise

CLIPSCORE_CONVENTIONS = ("clamped100", "hessel", "torchmetrics")
HESSEL_PREFIX = "A photo depicts "
CLIPSCORE_NOTES = {
    "clamped100": "CLIPScore clamped100: 100 x max(cos, 0) per trial (cos averaged over samples)",
    "hessel": "CLIPScore hessel (Hessel et al. CLIP-S): 2.5 x max(cos, 0) per image, text prefixed 'A photo depicts'",
    "torchmetrics": "CLIPScore torchmetrics: max(mean of 100 x cos, 0); CI and tests on resampled trials' means, clamped",
}


class TextMetricArgs(StrictModel):
    definition: Literal[text_definitions.DEFINITIONS] = "sacrebleu"  # see evaluate/text_definitions.py


class ClipScoreArgs(StrictModel):
    convention: Literal[CLIPSCORE_CONVENTIONS] = "clamped100"


def references(ctx) -> list[str]:
    return ctx.memoised("references", lambda: ctx.data.captions_of(ctx.trials))


def mismatched(n: int, seed: int) -> np.ndarray:
    """A random cyclic shift of ``range(n)``: every trial paired with another one."""
    return (np.arange(n) + np.random.default_rng(seed).integers(1, max(n, 2))) % n


def noting_empty(out: dict, outputs, what: str = "outputs", treatment: str = "scored 0") -> dict:
    """``out`` with a note counting the empty texts among ``outputs`` and what was made of them, if any."""
    empty = sum(not normalise(o) for o in outputs)
    if empty:
        out["note"] = "; ".join(filter(None, (out.get("note"), f"{empty} of {len(outputs)} {what} empty ({treatment})")))
    return out


def text_metrics(kind: str, definition: str, outputs, targets, seed: int) -> dict[str, dict]:
    """Every part of ``kind`` ("bleu" or "rouge") under ``definition``, with chance on mismatched pairs, the
    definition and its note: ``{part: result dict}``."""
    score = text_definitions.bleu if kind == "bleu" else text_definitions.rouge
    outputs, targets = [str(o) for o in outputs], [str(t) for t in targets]
    real = score(definition, outputs, targets)
    chance = score(definition, outputs, [targets[j] for j in mismatched(len(outputs), seed)])
    return {part: noting_empty({**out, "chance_per_trial": chance[part]["per_trial"], "definition": definition,
                                "note": text_definitions.NOTES[definition, kind]}, outputs,
                               treatment=text_definitions.empty_treatment(definition, kind))
            for part, out in real.items()}


@evaluation(reads="text", config=TextMetricArgs, higher_is_better=True, requires=("captions",))
def text_bleu(pred: dict, ctx, args: TextMetricArgs) -> dict:
    """BLEU-1..4 of the output against the trial's caption, under the named definition."""
    return {"parts": text_metrics("bleu", args.definition, pred["text"], references(ctx), ctx.seed)}


@evaluation(reads="text", config=TextMetricArgs, higher_is_better=True, requires=("captions",))
def text_rouge(pred: dict, ctx, args: TextMetricArgs) -> dict:
    """ROUGE-1, ROUGE-2 and ROUGE-L F1 of the output against the trial's caption, under the named definition."""
    return {"parts": text_metrics("rouge", args.definition, pred["text"], references(ctx), ctx.seed)}


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


@evaluation(reads="text", needs=("text",), higher_is_better=True, requires=("captions",))
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
            emb = model.encode_image(batch.to(next(model.parameters()).device))
            out.append(torch.nn.functional.normalize(emb.float(), dim=-1).cpu().numpy())
    return np.concatenate(out)


def clip_text_features(ctx, texts: list[str]) -> np.ndarray:
    from eegbench.models.pretrained.clip import clip_text_embeddings

    model, _, tokenizer = ctx.pretrained.clip()
    return clip_text_embeddings(model, tokenizer, list(texts))


def clipscore(image_emb: np.ndarray, text_emb: np.ndarray, texts, convention: str = "clamped100") -> np.ndarray:
    """Per-trial CLIPScore of images ``[N, samples, D]`` and texts ``[N, D]`` (unit embeddings); 0 for an empty
    text. ``clamped100``: 100 max(cos, 0) of the cos averaged over samples; ``hessel``: 2.5 max(cos, 0) averaged
    over samples (the caller embeds the prefixed text); ``torchmetrics``: rows [100 cos, 1], whose column sums
    :func:`torchmetrics_clipscore` turns into the clamped mean."""
    cos = np.einsum("nsd,nd->ns", image_emb, text_emb)
    if convention == "hessel":
        score = 2.5 * np.maximum(cos, 0).mean(1)
    elif convention == "torchmetrics":
        score = 100 * cos.mean(1)
    else:
        score = 100 * np.maximum(cos.mean(1), 0)
    score = np.where([bool(normalise(t)) for t in texts], score, 0.0)
    return np.stack([score, np.ones_like(score)], axis=1) if convention == "torchmetrics" else score


def torchmetrics_clipscore(sums: np.ndarray) -> float:
    """torchmetrics' CLIPScore from the column sums of :func:`clipscore` rows: max(mean of 100 cos, 0)."""
    return max(float(sums[0] / sums[1]), 0.0)


def _clipscore(ctx, image_emb: np.ndarray, texts, convention: str) -> dict:
    """CLIPScore of each trial's images with its text, and with another trial's text (chance)."""
    texts = list(texts)
    text_emb = clip_text_features(ctx, [HESSEL_PREFIX + t for t in texts] if convention == "hessel" else texts)
    shift = mismatched(len(texts), ctx.seed)
    out = {"per_trial": clipscore(image_emb, text_emb, texts, convention),
           "chance_per_trial": clipscore(image_emb, text_emb[shift], [texts[j] for j in shift], convention),
           "definition": convention, "note": CLIPSCORE_NOTES[convention]}
    if convention == "torchmetrics":
        out["statistic"] = torchmetrics_clipscore
    return noting_empty(out, texts)


@evaluation(reads="text", needs=("clip",), precheck=lambda ctx: ctx.check_stimuli(), config=ClipScoreArgs,
            higher_is_better=True, requires=("images",))
def clipscore_stimulus(pred: dict, ctx, args: ClipScoreArgs) -> dict:
    """CLIPScore of the trial's stimulus image and the generated text (the world's/user's CLIP), per convention."""
    size = ctx.pretrained.clip()[0].visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    image_emb = ctx.memoised("clip_stimuli", lambda: clip_image_features(ctx, ctx.stimuli(size)))[:, None]
    return _clipscore(ctx, image_emb, pred["text"], args.convention)


@evaluation(reads=("images", "text"), needs=("clip",), config=ClipScoreArgs, higher_is_better=True)
def clipscore_generated(pred: dict, ctx, args: ClipScoreArgs) -> dict:
    """CLIPScore of the generated images and the generated text of the same trial (over samples), per convention."""
    images = pred["images"]
    flat = clip_image_features(ctx, images.reshape(-1, *images.shape[2:]))
    return _clipscore(ctx, flat.reshape(*images.shape[:2], -1), pred["text"], args.convention)


@evaluation(reads=("images", "text"), needs=("captioner", "text"), higher_is_better=True)
def image_text_consistency(pred: dict, ctx) -> dict:
    """MiniLM cosine of the captioner's caption of the generated image (first sample) and the generated text."""
    captions = ctx.pretrained.captioner().caption(pred["images"][:, 0])
    return noting_empty(similarity_scored(ctx, pred["text"], captions), captions, "image captions")
