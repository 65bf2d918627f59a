"""Image metric definitions: DreamDiffusion's SSIM and "(max)", the oracle, and the chances of each."""

import numpy as np
import pytest
from pydantic import ValidationError
from skimage.metrics import structural_similarity

from eegbench.errors import UserError
from eegbench.evaluate import images
from eegbench.evaluate.images import (SsimArgs, best_set_mean, nway_chances, nway_topk, ssim_matrix_gaussian,
                                      ssim_matrix_skimage)
from eegbench.evaluate.report import metric_record


class FakeContext:
    """What the image evaluations read: judge probabilities, ground-truth classes, stimuli, a memo, a seed."""

    def __init__(self, probs=None, gt=None, stimuli=None, seed=0):
        self.probs, self.gt, self._stimuli, self.seed, self.memo = probs, gt, stimuli, seed, {}

    def judge_probs(self, _images):
        return self.probs

    def judge_gt_class(self):
        return self.gt

    def stimuli(self, size):
        assert size == self._stimuli.shape[-1]
        return self._stimuli

    def memoised(self, key, compute):
        if key not in self.memo:
            self.memo[key] = compute()
        return self.memo[key]


def test_skimage_ssim_matrix_is_scikit_images_structural_similarity_with_its_defaults():
    rng = np.random.default_rng(0)
    generated = rng.integers(0, 256, (5, 3, 9, 12), dtype=np.uint8)
    stimuli = rng.integers(0, 256, (4, 3, 9, 12), dtype=np.uint8)
    stimuli[2] = np.clip(generated[1].astype(int) + rng.integers(-20, 20, generated[1].shape), 0, 255)
    expected = np.array([[structural_similarity(g.transpose(1, 2, 0), s.transpose(1, 2, 0), data_range=255,
                                                channel_axis=-1) for s in stimuli] for g in generated])
    for block in (2 ** 22, 300):  # one block, and blocks of one image
        assert ssim_matrix_skimage(generated, stimuli, block_values=block) == pytest.approx(expected, abs=1e-12)
    assert expected[1, 2] > 0.8 and np.abs(np.delete(expected, 2, axis=1)).max() < 0.3


def test_skimage_ssim_of_two_flat_images_is_the_luminance_term_by_hand():
    """No variance: SSIM = (2ab + C1) / (a^2 + b^2 + C1), C1 = (0.01 * 255)^2."""
    a, b, c1 = 100.0, 50.0, (0.01 * 255) ** 2
    flat = np.stack([np.full((3, 8, 8), a), np.full((3, 8, 8), b)]).astype(np.uint8)
    sim = ssim_matrix_skimage(flat, flat)
    assert sim[0, 1] == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), abs=1e-12)
    assert sim[0, 0] == pytest.approx(1.0) and sim[1, 0] == pytest.approx(sim[0, 1])


def test_the_two_ssim_definitions_disagree_and_each_result_names_its_own():
    rng = np.random.default_rng(1)
    stimuli = rng.integers(0, 256, (6, 3, 16, 16), dtype=np.uint8)
    generated = np.clip(stimuli[:, None].astype(int) + rng.integers(-90, 90, (6, 2, 3, 16, 16)), 0, 255).astype(np.uint8)
    ctx = FakeContext(stimuli=stimuli)
    assert ssim_matrix_skimage(stimuli, stimuli[::-1]) != pytest.approx(ssim_matrix_gaussian(stimuli, stimuli[::-1]),
                                                                        abs=0.01)
    results = {d: images.image_ssim_2way({"images": generated}, ctx, SsimArgs(definition=d)) for d in ("skimage", "gaussian")}
    for definition, out in results.items():
        assert out["definition"] == definition and definition in out["note"] and out["chance"] == 0.5
        assert out["per_trial"].tolist() == [1.0] * 6  # noisy copies still beat the other stimuli
    assert SsimArgs().definition == "skimage"
    with pytest.raises(ValidationError):
        SsimArgs(definition="wang")


def test_skimage_ssim_refuses_images_smaller_than_its_window_and_names_the_fix():
    tiny = np.zeros((3, 1, 3, 6, 6), np.uint8)
    with pytest.raises(UserError, match="definition: gaussian"):
        images.image_ssim_2way({"images": tiny}, FakeContext(stimuli=tiny[:, 0]), SsimArgs())


def test_chances_by_hand():
    mean_only = nway_chances(trials=7, samples=1, classes=20, n=5, draws=3)
    assert mean_only["mean"] == pytest.approx(0.2) and mean_only["max"] == pytest.approx(0.2)
    assert mean_only["oracle"] == pytest.approx(0.2)
    one_draw = nway_chances(trials=7, samples=5, classes=1000, n=50, k=1, draws=1)
    assert one_draw["oracle"] == pytest.approx(1 - (1 - 1 / 50) ** 5)  # at least one of 5 samples wins
    top2 = nway_chances(trials=7, samples=3, classes=10, n=10, k=2, draws=1)  # n = classes: no draw at all
    assert top2["mean"] == pytest.approx(0.2) and top2["oracle"] == pytest.approx(1 - 0.8 ** 3)
    paper = nway_chances(trials=2000, samples=5, classes=1000, n=50)
    assert 0.02 < paper["max"] < 0.025 < 0.09 < paper["oracle"] < 0.095  # the 0.024 and 0.090


def test_chances_match_the_procedure_run_on_uninformative_judge_outputs():
    trials, samples, classes, n, draws, reps = 15, 3, 12, 5, 4, 1500
    rng = np.random.default_rng(3)
    best_set, oracle = [], []
    for r in range(reps):
        hits = nway_topk(rng.random((trials, samples, classes)), rng.integers(0, classes, trials), n=n, draws=draws,
                         seed=r)["per_sample"]
        best_set.append(hits.mean(0).max())
        oracle.append(hits.max(1).mean())
    chances = nway_chances(trials=trials, samples=samples, classes=classes, n=n, draws=draws)
    for simulated, exact in ((best_set, chances["max"]), (oracle, chances["oracle"])):
        assert np.mean(simulated) == pytest.approx(exact, abs=4 * np.std(simulated) / np.sqrt(reps))
    assert chances["mean"] < chances["max"] < chances["oracle"]


def nway_context(hits: np.ndarray) -> FakeContext:
    """A 3-class judge whose probabilities make each (trial, sample) a hit (1) or a miss (0) in every draw."""
    gt = np.zeros(len(hits), dtype=int)
    probs = np.where(hits[..., None] == 1, [0.8, 0.1, 0.1], [0.1, 0.8, 0.1])
    return FakeContext(probs=probs, gt=gt)


def test_mean_max_and_oracle_of_known_hits_with_their_own_chances():
    hits = np.array([[1, 0], [1, 0], [0, 1], [0, 0]])  # set 0 scores 2/4, set 1 scores 1/4
    ctx = nway_context(hits)
    top1 = images.image_nway_top1({"images": None}, ctx)
    best_set = images.image_nway_top1_max({"images": None}, ctx)
    oracle = images.image_nway_top1_oracle({"images": None}, ctx)
    chances = nway_chances(trials=4, samples=2, classes=3, n=3)
    assert top1["per_trial"].tolist() == [0.5, 0.5, 0.5, 0.0] and top1["chance"] == pytest.approx(1 / 3)
    assert best_set_mean(best_set["per_trial"].sum(0)) == 0.5 and best_set["chance"] == chances["max"]
    assert oracle["per_trial"].tolist() == [1, 1, 1, 0] and oracle["chance"] == chances["oracle"]
    assert oracle["chance"] == pytest.approx(1 - (2 / 3) ** 2)  # n = classes: each sample wins with 1/3
    assert top1["definition"] == best_set["definition"] == "dreamdiffusion" and "oracle" in oracle["note"]
    for fn in (images.image_nway_top1, images.image_nway_top1_max, images.image_nway_top1_oracle):
        assert fn.higher_is_better is True


def test_max_record_chooses_the_set_again_in_every_bootstrap_resample():
    rng = np.random.default_rng(4)
    hits = (rng.random((60, 4)) < 0.3).astype(float)  # four sets of equal quality
    best_set = images.image_nway_top1_max({"images": None}, nway_context(hits))
    record = metric_record("image_nway_top1_max", "test", best_set, {}, seed=0)
    chosen = hits[:, hits.mean(0).argmax()]
    fixed = metric_record("chosen set", "test", {"per_trial": chosen, "chance": 0.5}, {}, seed=0)
    assert record["value"] == pytest.approx(hits.mean(0).max()) == pytest.approx(fixed["value"])
    assert record["ci"][0] >= fixed["ci"][0] and record["ci"][1] >= fixed["ci"][1]  # re-chosen per resample
    assert record["ci"] != fixed["ci"] and record["definition"] == "dreamdiffusion"
