"""Each named text-metric definition against hand-computed values and the reference libraries, corpus
BLEU's resampled CI and tests, and the CLIPScore conventions."""

import math

import numpy as np
import pytest

from eegbench.evaluate import text
from eegbench.evaluate import text_definitions as td
from eegbench.evaluate.report import metric_record
from eegbench.evaluate.stats import (bootstrap_ci, bootstrap_statistic_ci, paired_permutation_p,
                                     statistic_permutation_p, statistic_value)

DOG = ("A dog runs on the grass.", "a dog is running on the grass")
CAT = ("The cat, the cat sat on the mat.", "The cat sat on the mat.")


def corpus(definition, hyps, refs):
    return {part: statistic_value(out["per_trial"], out["statistic"]) for part, out in td.bleu(definition, hyps, refs).items()}


@pytest.mark.parametrize("pair, expected", [
    (DOG, {"bleu1": 0.423, "bleu4": 0.091, "rouge1": 0.615, "rouge2": 0.364, "rougeL": 0.615}),
    (CAT, {"bleu1": 0.750, "bleu4": 0.541, "rouge1": 0.923, "rouge2": 0.667, "rougeL": 0.923}),
])
def test_thought2text_matches_the_hand_values(pair, expected):
    scores = td.bleu("thought2text", [pair[0]], [pair[1]]) | td.rouge("thought2text", [pair[0]], [pair[1]])
    for name, value in expected.items():
        assert scores[name]["per_trial"][0] == pytest.approx(value, abs=5e-4), name


def test_thought2text_keeps_the_first_whitelisted_sentence():
    assert td.first_sentence("  A dog runs!  It is   happy.") == "A dog runs!"
    assert td.first_sentence("Caf\u00e9 \U0001f600 au lait? Oui.") == "Caf au lait?"  # outside the whitelist: dropped
    assert td.first_sentence("A dog.\nA cat.") == "A dog. A cat."  # a sentence ends at spaces, not at a newline
    assert td.first_sentence("   ") == td.first_sentence("\U0001f600") == "No response."
    assert td.first_sentence("a") == "No response"
    # an empty output is scored as the notebook's "No response.", not as 0
    empty, spelled = (td.bleu("thought2text", [h], ["No response today"])["bleu1"]["per_trial"][0] for h in ("", "No response."))
    assert empty == spelled > 0


def test_eeg_to_text_is_nltk_corpus_bleu_on_bart_pretokens():
    assert td.bart_pretokens("The cat's mat, 42x!") == ["The", " cat", "'s", " mat", ",", " 42", "x", "!"]
    # by hand: "the" opens only the first sentence, " the" (with its space) is another token; 7 of 8 unigrams
    # and 4 of 6 bigrams match; 8 hypothesis tokens against 9 reference tokens
    hyps, refs = ["the cat sat on the mat", "a dog"], ["the cat is on the mat", "a dog runs"]
    scores = corpus("eeg-to-text", hyps, refs)
    assert scores["bleu1"] == pytest.approx(7 / 8 * math.exp(1 - 9 / 8))
    assert scores["bleu2"] == pytest.approx(math.exp(1 - 9 / 8) * math.sqrt(7 / 8 * 4 / 6))
    assert scores["bleu4"] == 0.0  # no 4-gram matches; unsmoothed


def test_eeg_to_text_bleu_equals_nltk_corpus_bleu():
    from nltk.translate.bleu_score import corpus_bleu

    hyps = ["A dog runs on the grass.", "the the cat sat on a mat", "Two birds fly over the blue sea today."]
    refs = ["a dog is running on the grass", "the cat sat on the mat", "two birds fly over the sea"]
    tokens = [td.bart_pretokens(h) for h in hyps], [[td.bart_pretokens(r)] for r in refs]
    ours = corpus("eeg-to-text", hyps, refs)
    for n in td.BLEU_ORDERS:
        assert ours[f"bleu{n}"] == pytest.approx(corpus_bleu(tokens[1], tokens[0], weights=(1 / n,) * n), abs=1e-12)


def test_eeg_to_text_rouge_counts_repeats_as_rouge_1_0_0_did():
    scores = td.rouge("eeg-to-text", [CAT[0]], [CAT[1]])
    # 1.0.0: 6 of 8 hypothesis unigrams matched (repeats count), all 6 reference ones: F = 2 PR / (P + R)
    assert scores["rouge1"]["per_trial"][0] == pytest.approx(2 * 0.75 / 1.75, abs=1e-6)
    # ROUGE-L was exclusive in 1.0.0 too: 6 of 7 distinct hypothesis words, the 1.0.1 value
    assert scores["rougeL"]["per_trial"][0] == pytest.approx(12 / 13, abs=1e-6)


def test_sacrebleu_is_its_corpus_bleu_on_a_0_1_scale():
    from sacrebleu.metrics import BLEU

    # by hand: 5/6, 3/5, 1/4 and no 4-gram match (exp smoothing: 1 / (2 x 3)); equal lengths
    one = corpus("sacrebleu", ["the cat sat on the mat"], ["the cat is on the mat"])
    assert one["bleu2"] == pytest.approx(math.sqrt(5 / 6 * 3 / 5))
    assert one["bleu4"] == pytest.approx((5 / 6 * 3 / 5 * 1 / 4 * 1 / 6) ** 0.25)
    hyps, refs = ["A dog runs on the grass.", "The cat, the cat sat on the mat.", "Birds."], [DOG[1], CAT[1], "Two birds fly."]
    ours = corpus("sacrebleu", hyps, refs)
    for n in td.BLEU_ORDERS:
        assert ours[f"bleu{n}"] == pytest.approx(BLEU(max_ngram_order=n).corpus_score(hyps, [refs]).score / 100)


def test_sacrebleu_rouge_stems_and_sentence_does_not():
    assert td.rouge("sacrebleu", ["cats running"], ["cat runs"])["rouge1"]["per_trial"][0] == pytest.approx(1.0)
    assert td.rouge("sentence", ["cats running"], ["cat runs"])["rouge1"]["per_trial"][0] == 0.0


def test_sentence_bleu_smooths_an_order_without_matches():
    # unigrams 2/3; no bigram matches: add-one gives 1/3 (torchmetrics returned 0 here)
    bleu2 = td.bleu("sentence", ["red circle big"], ["circle red large"])["bleu2"]["per_trial"][0]
    assert bleu2 == pytest.approx(math.sqrt(2 / 3 * 1 / 3))


def test_a_mean_as_statistic_reproduces_the_per_trial_bootstrap_and_permutation():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.5, 0.2, 60), rng.normal(0.4, 0.2, 60)

    def rows(x):
        return np.stack([x, np.ones_like(x)], axis=1)

    def mean(sums):
        return sums[0] / sums[1]

    assert statistic_value(rows(a), mean) == pytest.approx(a.mean())
    assert bootstrap_statistic_ci(rows(a), mean, seed=3) == pytest.approx(bootstrap_ci(a, seed=3))
    assert bootstrap_statistic_ci(rows(a), mean, minus=rows(b), seed=3) == pytest.approx(bootstrap_ci(a - b, seed=3))
    assert statistic_permutation_p(rows(a), rows(b), mean, n_perm=2000, seed=1) == pytest.approx(
        paired_permutation_p(a, b, n_perm=2000, seed=1))


def test_corpus_bleu_records_resample_the_corpus_and_test_against_controls():
    rng = np.random.default_rng(0)
    words = "a the red blue circle square on left right top".split()
    refs = [" ".join(rng.choice(words, 8)) for _ in range(80)]
    hyps = [r if i % 2 else " ".join(rng.choice(words, 8)) for i, r in enumerate(refs)]  # half exact copies
    scored = text.text_metrics("bleu", "sacrebleu", hyps, refs, seed=0)
    assert {part: s["definition"] for part, s in scored.items()} == {f"bleu{n}": "sacrebleu" for n in td.BLEU_ORDERS}
    bleu2 = scored["bleu2"]
    assert bleu2["note"].startswith("sacrebleu: corpus BLEU") and bleu2["chance_per_trial"].shape == (80, 10)
    control = text.text_metrics("bleu", "sacrebleu", hyps[::-1], refs, seed=0)["bleu2"]
    record = metric_record("text_bleu/bleu2", "test", bleu2, {"reversed": control}, seed=0)
    assert record["value"] == pytest.approx(corpus("sacrebleu", hyps, refs)["bleu2"])
    assert record["ci"][0] < record["value"] < record["ci"][1] and record["chance_ci"][1] < record["ci"][0]
    entry = record["controls"][0]
    assert entry["gap"] == pytest.approx(record["value"] - entry["value"]) and entry["gap_ci"][0] > 0
    assert entry["p_vs_control"] < 0.01


def test_clipscore_conventions():
    # two trials, two samples each; cosines (0.5, -0.5) and (0.3, 0.3) with the text
    angles = np.arccos([[0.5, -0.5], [0.3, 0.3]])
    images = np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    texts_emb, texts = np.array([[1.0, 0.0], [1.0, 0.0]]), ["a cat", "a dog"]
    assert text.clipscore(images, texts_emb, texts, "clamped100") == pytest.approx([0.0, 30.0])
    assert text.clipscore(images, texts_emb, texts, "hessel") == pytest.approx([2.5 * 0.5 / 2, 2.5 * 0.3])
    rows = text.clipscore(images, texts_emb, ["", "a dog"], "torchmetrics")
    np.testing.assert_allclose(rows, [[0.0, 1.0], [30.0, 1.0]], atol=1e-12)  # an empty text scores 0
    negative = np.array([[-50.0, 1.0], [30.0, 1.0]])  # mean -10: torchmetrics clamps the mean, not each trial
    assert text.torchmetrics_clipscore(negative.sum(axis=0)) == 0.0
    assert text.torchmetrics_clipscore(np.array([40.0, 2.0])) == 20.0


def test_hessel_prefixes_the_text_and_every_note_names_the_convention(monkeypatch):
    seen = []

    def fake_text_features(ctx, texts):
        seen.append(list(texts))
        return np.tile([1.0, 0.0], (len(texts), 1))

    class Ctx:
        seed = 0

    monkeypatch.setattr(text, "clip_text_features", fake_text_features)
    images = np.tile([[[0.6, 0.8]]], (3, 1, 1))
    for convention in text.CLIPSCORE_CONVENTIONS:
        out = text._clipscore(Ctx(), images, ["a cat", "a dog", "a cow"], convention)
        assert out["definition"] == convention and out["note"].startswith(f"CLIPScore {convention}")
        assert ("statistic" in out) == (convention == "torchmetrics")
    assert seen[1] == ["A photo depicts a cat", "A photo depicts a dog", "A photo depicts a cow"]
    assert seen[0] == seen[2] == ["a cat", "a dog", "a cow"]


def test_two_runs_compare_per_trial_scores_and_skip_corpus_counts(tmp_path):
    from eegbench.track import compare
    from eegbench.track.store import Run

    sides = []
    for name in ("a", "b"):
        run = Run(tmp_path / name)
        run.save_predictions("test", {"text_rouge/rouge1/real": np.full(5, 0.5),
                                      "text_bleu/bleu4/real": np.ones((5, 10))})  # corpus BLEU: per-trial counts
        run.write_json("metrics.json", {"config": {"dataset": {"name": "imagenet-eeg"}}, "metrics": []})
        sides.append(compare.side(str(tmp_path / name), None))
    paired, units = compare.pairs(*sides)
    assert units == {"text_rouge/rouge1": "trials"} and list(paired) == ["text_rouge/rouge1"]
