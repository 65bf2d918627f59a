"""BLEU-1..4 and ROUGE-1/2/L F1 under each named definition: the papers' own and eegbench's.

- ``sacrebleu`` (the default for new work): corpus BLEU with sacrebleu's defaults (13a tokens, case
  kept, exponential smoothing), on a 0-1 scale; ROUGE from ``rouge-score`` with the Porter stemmer.
- ``thought2text``, Thought2Text's evaluation notebook: each output cut to its first sentence
  (:func:`first_sentence`), whitespace tokens with case and punctuation kept; nltk sentence BLEU with
  smoothing method 4 (BLEU-1 weights (1, 0, 0, 0), BLEU-n uniform over n orders; their "BLEU" is
  BLEU-4); ROUGE from ``rouge`` 1.0.1 (each distinct n-gram counted once).
- ``eeg-to-text``, EEG-To-Text's ``eval_decoding.py`` (Jo et al.): nltk corpus BLEU without smoothing on
  the tokens of BART's byte-level pre-tokeniser (a word with its leading space, digits and
  punctuation runs apart, case kept; BART's BPE would split the rare words outside its vocabulary
  further); ROUGE from ``rouge`` 1.0.0, which counts repeated n-grams in ROUGE-1/2 and distinct words
  in ROUGE-L: 1.0.1 with ``exclusive=False`` for ROUGE-1/2 and its default for ROUGE-L is that code.
- ``sentence``, eegbench's own: lower-cased alphanumeric words; nltk sentence BLEU with add-one
  smoothing above unigrams (Lin and Och; nltk method 2); ROUGE with clipped n-gram counts and the LCS.

ROUGE is the F1 of each pair, averaged over pairs, under every definition; so is sentence BLEU. Corpus
BLEU is one number: its ``per_trial`` are each pair's counts and ``statistic`` turns their column
sums into the corpus BLEU, so its CI resamples trials and recomputes it (see evaluate/report.py).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import partial

import numpy as np

DEFINITIONS = ("sacrebleu", "thought2text", "eeg-to-text", "sentence")
CORPUS_BLEU = ("sacrebleu", "eeg-to-text")
BLEU_ORDERS = (1, 2, 3, 4)
ROUGE_PARTS = ("rouge1", "rouge2", "rougeL")
NOTES = {
    ("sacrebleu", "bleu"): "sacrebleu: corpus BLEU (13a tokens, exp smoothing) on 0-1, CI over resampled trials",
    ("sacrebleu", "rouge"): "sacrebleu: rouge-score F1 with Porter stemming, mean over pairs",
    ("thought2text", "bleu"): "thought2text: first sentence, whitespace tokens with case; nltk sentence BLEU, "
                              "smoothing method 4, mean over pairs",
    ("thought2text", "rouge"): "thought2text: first sentence; rouge 1.0.1 F (distinct n-grams), mean over pairs",
    ("eeg-to-text", "bleu"): "eeg-to-text: nltk corpus BLEU without smoothing on BART pre-tokens, CI over resampled trials",
    ("eeg-to-text", "rouge"): "eeg-to-text: rouge 1.0.0 F (repeated n-grams counted), mean over pairs",
    ("sentence", "bleu"): "sentence: lower-cased words; nltk sentence BLEU, add-one smoothing above unigrams, mean over pairs",
    ("sentence", "rouge"): "sentence: lower-cased words; ROUGE F1 with clipped counts, mean over pairs",
}
T2T_DROPPED = re.compile(r"[^a-zA-Z0-9.,!?;:'\"()\[\]{}\-\s]")
T2T_SENTENCE_END = re.compile(r"(?<=[.!?]) +")
BART_PRETOKEN = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+")


def empty_treatment(definition: str, kind: str) -> str:
    """What ``definition`` makes of an empty output, for the metric's note."""
    if definition == "thought2text":
        return "scored as the notebook's cleaning leaves them: 'No response' when nothing is left"
    if kind == "bleu" and definition in CORPUS_BLEU:
        return "no n-grams: they lower the corpus BLEU"
    return "scored 0"


def normalise(text: str) -> str:
    """Lower-cased alphanumeric words joined by spaces (the ``sentence`` definition's tokens)."""
    return " ".join(re.findall(r"[a-z0-9]+", str(text).lower()))


def first_sentence(text: str) -> str:
    """Thought2Text's cleaning: characters outside its whitelist dropped, the first sentence (split at spaces
    after . ! ?) with whitespace runs collapsed; "No response." when nothing is left, "No response" when one
    character is."""
    kept = " ".join(T2T_SENTENCE_END.split(T2T_DROPPED.sub("", text))[0].split()) if text.strip() else ""
    if not kept:
        return "No response."
    return kept if len(kept) > 1 else "No response"


def bart_pretokens(text: str) -> list[str]:
    """BART's (GPT-2's) byte-level pre-tokens of ``text``, spaces kept on the word they precede."""
    return BART_PRETOKEN.findall(text)


def bleu(definition: str, hypotheses, references) -> dict[str, dict]:
    """``{"bleu1".."bleu4": {"per_trial": ...}}`` of ``definition``; corpus BLEU also gives ``"statistic"``."""
    hypotheses, references = [str(h) for h in hypotheses], [str(r) for r in references]
    if definition == "sacrebleu":
        return _sacrebleu(hypotheses, references)
    if definition == "eeg-to-text":
        return _nltk_corpus(hypotheses, references)
    if definition == "thought2text":
        hyp, ref, smoothing = [first_sentence(h).split() for h in hypotheses], [r.split() for r in references], 4
    else:
        hyp, ref, smoothing = [normalise(h).split() for h in hypotheses], [normalise(r).split() for r in references], 2
    return _nltk_sentence(hyp, ref, smoothing)


def rouge(definition: str, hypotheses, references) -> dict[str, dict]:
    """``{"rouge1", "rouge2", "rougeL": {"per_trial": F1 of each pair}}`` of ``definition``."""
    hypotheses, references = [str(h) for h in hypotheses], [str(r) for r in references]
    if definition == "sacrebleu":
        from rouge_score.rouge_scorer import RougeScorer

        scorer = RougeScorer(list(ROUGE_PARTS), use_stemmer=True)
        scores = [scorer.score(r, h) for h, r in zip(hypotheses, references)]
        rows = [[s[part].fmeasure for part in ROUGE_PARTS] for s in scores]
    elif definition == "sentence":
        scorers = (partial(rouge_n, n=1), partial(rouge_n, n=2), rouge_l)
        rows = [[fn(h, r) for fn in scorers] for h, r in zip(hypotheses, references)]
    else:
        from rouge import Rouge

        if definition == "thought2text":
            hypotheses, scorers = [first_sentence(h) for h in hypotheses], (Rouge(),)
        else:  # rouge 1.0.0: repeated n-grams count in ROUGE-1/2, ROUGE-L is exclusive
            scorers = (Rouge(metrics=["rouge-1", "rouge-2"], exclusive=False), Rouge(metrics=["rouge-l"]))
        rows = [_rouge_package(scorers, h, r) for h, r in zip(hypotheses, references)]
    values = np.array(rows, dtype=float).reshape(len(hypotheses), len(ROUGE_PARTS))
    return {part: {"per_trial": values[:, i]} for i, part in enumerate(ROUGE_PARTS)}


def _rouge_package(scorers, hypothesis: str, reference: str) -> list[float]:
    """ROUGE-1, -2, -L F of the ``rouge`` package; 0 where it finds no words (it raises on an empty text)."""
    scores = {}
    for scorer in scorers:
        try:
            scores |= scorer.get_scores(hypothesis, reference)[0]
        except ValueError:  # "Hypothesis is empty." / "Reference is empty." after its split at "."
            return [0.0] * len(ROUGE_PARTS)
    return [scores[m]["f"] for m in ("rouge-1", "rouge-2", "rouge-l")]


def _nltk_sentence(hypotheses: list[list[str]], references: list[list[str]], smoothing: int) -> dict[str, dict]:
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    smooth = getattr(SmoothingFunction(), f"method{smoothing}")
    weights = [tuple(1 / n if i < n else 0.0 for i in range(max(BLEU_ORDERS))) for n in BLEU_ORDERS]
    values = np.array([sentence_bleu([r], h, weights=weights, smoothing_function=smooth)  # [0, ...] for no words
                       for h, r in zip(hypotheses, references)], dtype=float).reshape(len(hypotheses), len(BLEU_ORDERS))
    return {f"bleu{n}": {"per_trial": values[:, i]} for i, n in enumerate(BLEU_ORDERS)}


def _nltk_corpus(hypotheses: list[str], references: list[str]) -> dict[str, dict]:
    """Per pair ``[hypothesis length, reference length, matches_1, total_1, ..., matches_4, total_4]`` as nltk's
    ``corpus_bleu`` sums them (totals at least 1 per pair), with nltk's corpus BLEU of their sums."""
    from nltk.translate.bleu_score import modified_precision

    rows = []
    for h, r in zip(hypotheses, references):
        hyp, ref = bart_pretokens(h), bart_pretokens(r)
        precisions = [modified_precision([ref], hyp, n) for n in BLEU_ORDERS]
        rows.append([len(hyp), len(ref), *(x for p in precisions for x in (p.numerator, p.denominator))])
    stats = np.array(rows, dtype=float).reshape(len(hypotheses), 2 + 2 * len(BLEU_ORDERS))
    return {f"bleu{n}": {"per_trial": stats, "statistic": partial(nltk_corpus_bleu, n=n)} for n in BLEU_ORDERS}


def nltk_corpus_bleu(sums: np.ndarray, n: int) -> float:
    """nltk ``corpus_bleu`` with uniform weights over ``n`` orders, no smoothing, from summed counts. A zero
    order gives 0 (nltk: about 1e-77, a floor it puts in the logarithm)."""
    from nltk.translate.bleu_score import brevity_penalty

    matches, totals = sums[2:2 + 2 * n:2], sums[3:3 + 2 * n:2]
    if np.any(matches == 0):
        return 0.0
    return float(brevity_penalty(sums[1], sums[0]) * math.exp(math.fsum(np.log(matches / totals)) / n))


def _sacrebleu(hypotheses: list[str], references: list[str]) -> dict[str, dict]:
    """Per pair ``[hypothesis length, reference length, correct_1..4, total_1..4]`` (sacrebleu's statistics,
    which its corpus BLEU sums), with sacrebleu's corpus BLEU of their sums."""
    from sacrebleu.metrics import BLEU

    metric = BLEU()
    rows = []
    for h, r in zip(hypotheses, references):
        score = metric.corpus_score([h], [[r]])
        rows.append([score.sys_len, score.ref_len, *score.counts, *score.totals])
    stats = np.array(rows, dtype=float).reshape(len(hypotheses), 2 + 2 * len(BLEU_ORDERS))
    return {f"bleu{n}": {"per_trial": stats, "statistic": partial(sacrebleu_corpus_bleu, n=n)} for n in BLEU_ORDERS}


def sacrebleu_corpus_bleu(sums: np.ndarray, n: int) -> float:
    """sacrebleu's corpus BLEU-n (exponential smoothing, its default) from summed statistics, on a 0-1 scale."""
    from sacrebleu.metrics import BLEU

    k = len(BLEU_ORDERS)
    counts = [int(round(x)) for x in sums]
    score = BLEU.compute_bleu(counts[2:2 + n], counts[2 + k:2 + k + n], counts[0], counts[1], smooth_method="exp",
                              max_ngram_order=n)
    return score.score / 100


def rouge_n(hypothesis: str, reference: str, n: int) -> float:
    """ROUGE-n F1 of the ``sentence`` definition: clipped n-gram overlap over both texts' n-gram counts."""
    def grams(text: str) -> Counter:
        words = normalise(text).split()
        return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))

    hyp, ref = grams(hypothesis), grams(reference)
    overlap = sum((hyp & ref).values())
    return 0.0 if overlap == 0 else 2 * overlap / (sum(hyp.values()) + sum(ref.values()))


def rouge_l(hypothesis: str, reference: str) -> float:
    """ROUGE-L F1 of the ``sentence`` definition: longest common word subsequence over both lengths."""
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
