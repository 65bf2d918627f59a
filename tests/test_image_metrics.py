"""Image metrics against cases whose answer is known in closed form."""

import numpy as np
import pytest

from eegbench.evaluate.images import nway_topk, pairwise_identification, pearson_matrix, ssim_matrix_gaussian


def test_nway_topk_of_a_perfect_judge_is_one_and_chance_is_k_over_n():
    probs = np.eye(10)[np.arange(10)][:, None, :].repeat(3, axis=1)  # [10 trials, 3 samples, 10 classes]
    out = nway_topk(probs, np.arange(10), n=5, k=1)
    assert out["per_trial"].tolist() == [1.0] * 10 and out["chance"] == 0.2 and out["n"] == 5


def test_nway_topk_of_uninformative_probabilities_sits_at_chance():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(40), size=(400, 2))
    out = nway_topk(probs, rng.integers(0, 40, 400), n=10, k=1)
    assert abs(out["per_trial"].mean() - 0.1) < 0.02


def test_nway_topk_second_best_ground_truth_matches_closed_form():
    """GT ranked second of C: top-1 wins only when the top class is not drawn, 1 - (n-1)/(C-1)."""
    C, n = 20, 5
    probs = np.full((1, 1, C), 0.01)
    probs[0, 0, 3], probs[0, 0, 7] = 0.5, 0.3  # class 3 is top, GT is class 7
    top1 = nway_topk(probs, np.array([7]), n=n, k=1, draws=20000)["per_trial"][0]
    assert top1 == pytest.approx(1 - (n - 1) / (C - 1), abs=0.01)
    assert nway_topk(probs, np.array([7]), n=n, k=2)["per_trial"][0] == 1.0


def test_nway_topk_caps_n_and_reports_each_sample():
    probs = np.array([[[0.9, 0.1, 0.0], [0.0, 0.1, 0.9]]])  # sample 0 right, sample 1 wrong
    out = nway_topk(probs, np.array([0]), n=50)
    assert out["n"] == 3 and out["per_trial"][0] == 0.5 and out["per_sample"].tolist() == [[1.0, 0.0]]


def test_pairwise_identification_perfect_and_chance():
    rng = np.random.default_rng(1)
    images = rng.random((30, 3, 16, 16))
    assert pairwise_identification(pearson_matrix(images, images))["per_trial"].mean() == 1.0
    unrelated = pairwise_identification(pearson_matrix(rng.random((200, 3, 16, 16)), rng.random((200, 3, 16, 16))))
    assert abs(unrelated["per_trial"].mean() - 0.5) < 0.05 and unrelated["chance"] == 0.5


def test_gaussian_ssim_matrix_diagonal_is_one_for_identical_images():
    images = np.random.default_rng(2).integers(0, 256, (4, 3, 16, 16), dtype=np.uint8)
    sim = ssim_matrix_gaussian(images, images)
    assert np.allclose(np.diag(sim), 1.0, atol=1e-4) and (sim[~np.eye(4, dtype=bool)] < 0.5).all()


def test_grid_rows_take_the_first_trial_of_each_class():
    from eegbench.evaluate.grids import grid_rows, image_grid_png

    labels = np.array([2, 0, 0, 1, 2, 1])
    assert grid_rows(labels).tolist() == [1, 3, 0]
    assert grid_rows(labels, per_class=2, max_rows=5).tolist() == [1, 2, 3, 5, 0]
    import io

    from PIL import Image

    png = image_grid_png(np.zeros((3, 3, 8, 8), np.uint8), np.full((3, 2, 3, 8, 8), 255, np.uint8), cell=16, gap=2)
    with Image.open(io.BytesIO(png)) as grid:
        assert grid.size == (3 * 16 + 3 * 2, 3 * 16 + 2 * 2)
        assert grid.getpixel((0, 0)) == (0, 0, 0) and grid.getpixel((16 + 4, 0)) == (255, 255, 255)


def test_label_based_ground_truth_maps_wnids_into_the_judge_classes():
    from types import SimpleNamespace

    from eegbench.errors import UserError
    from eegbench.evaluate.context import EvalContext

    judge = SimpleNamespace(classes=["n3", "n1", "n2"])
    data = SimpleNamespace(wnids=["n1", "n2", "n3"], label=np.array([0, 1, 2, 0]))
    ctx = EvalContext(data, np.array([3, 2, 1]), SimpleNamespace(judge=lambda: judge), seed=0)
    assert ctx.label_in_judge_classes().tolist() == [1, 0, 2]
    judge.classes = ["n1", "n2"]
    ctx = EvalContext(data, np.array([2]), SimpleNamespace(judge=lambda: judge), seed=0)
    with pytest.raises(UserError, match="lack dataset class"):
        ctx.label_in_judge_classes()
