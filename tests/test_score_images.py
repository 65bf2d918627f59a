"""`eegbench score images`: folders of generated and stimulus images scored with the runs' image metrics."""

import json
import re
import sys

import numpy as np
import pytest
from PIL import Image

from eegbench import cli
from eegbench.evaluate.images import nway_chances, pairwise_identification, pearson_matrix, ssim_matrix_skimage
from eegbench.score.images import pair_folders

TRIALS = ["n01_1", "n01_2", "n02_7", "n03_3", "n03_4", "n02_9"]


def invoke(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["eegbench", "score", "images", *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    out = capsys.readouterr()
    return exc.value.code or 0, out.out, out.err


def save(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def stimuli(seed=0):
    """Six 16 px stimuli: noise on a per-trial colour, so pixels and the judge both tell them apart."""
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 216, (len(TRIALS), 1, 1, 3))
    return np.clip(base + rng.integers(-40, 40, (len(TRIALS), 16, 16, 3)), 0, 255).astype(np.uint8)


def folders(tmp_path, generated_of, samples=2, suffix=".png"):
    """``stimuli/<trial><suffix>`` and ``generated/<trial>_<k>.png`` with ``generated_of(i, k)`` as pixels."""
    pixels = stimuli()
    for i, trial in enumerate(TRIALS):
        save(tmp_path / "stimuli" / f"{trial}{suffix}", pixels[i])
        for k in range(samples):
            save(tmp_path / "generated" / f"{trial}_{k}.png", generated_of(pixels, i, k))
    return tmp_path / "generated", tmp_path / "stimuli"


@pytest.fixture(scope="module")
def judge_dir(tmp_path_factory):
    """A tiny random synthetic-judge folder (config.json + model.safetensors) over three classes."""
    import torch
    from safetensors.torch import save_file

    from eegbench.models.pretrained.judge import judge_cnn

    folder = tmp_path_factory.mktemp("judge")
    torch.manual_seed(0)
    model = judge_cnn(3, (4,))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({
        "architecture": "eegbench-judge-cnn", "channels": [4], "image_size": 16, "classes": ["n01", "n02", "n03"],
        "class_names": ["a", "b", "c"], "mean": [0.5] * 3, "std": [0.25] * 3}))
    return folder


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """A tiny random open_clip folder, laid out as the synthetic world's."""
    import hashlib

    import open_clip
    import torch
    from safetensors.torch import save_file

    from eegbench.synthetic.foundation import build_tokenizer, clip_config

    folder = tmp_path_factory.mktemp("clip")
    config = clip_config(len(build_tokenizer(["a red circle", "a blue square"], folder / "tokenizer")), 16)
    name = "test-clip-" + hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
    (folder / f"{name}.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder / f"{name}.json")
    torch.manual_seed(0)
    model = open_clip.create_model(name)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    return folder


def test_generated_images_pair_with_stimuli_by_name(tmp_path):
    for name in ("n01_1.png", "n01_22.JPEG", "test0.jpg", "unused.png"):
        save(tmp_path / "stimuli" / name, np.zeros((8, 8, 3), np.uint8))
    for name in ("n01_1_1.png", "n01_1_0.png", "n01_22-10.png", "n01_22-2.png", "test0-1.png", "test0.png"):
        save(tmp_path / "generated" / name, np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "generated" / "notes.txt").write_text("not an image")
    pairs = pair_folders(tmp_path / "generated", tmp_path / "stimuli")
    assert pairs.trials == ["n01_1", "n01_22", "test0"] and pairs.unused_stimuli == 1
    assert [[p.name for p in g] for g in pairs.generated] == [
        ["n01_1_0.png", "n01_1_1.png"], ["n01_22-2.png", "n01_22-10.png"], ["test0.png", "test0-1.png"]]
    assert [p.name for p in pairs.stimuli] == ["n01_1.png", "n01_22.JPEG", "test0.jpg"]
    assert [len(g) for g in pair_folders(tmp_path / "generated", tmp_path / "stimuli", 1).generated] == [1, 1, 1]


def test_copies_of_the_stimuli_score_one_with_each_metrics_own_chance(monkeypatch, capsys, tmp_path, judge_dir):
    generated, stim = folders(tmp_path, lambda pixels, i, k: pixels[i])
    out_json = tmp_path / "scores.json"
    code, out, err = invoke(monkeypatch, capsys, generated, stim, "--judge-weights", judge_dir, "--json", out_json)
    assert code == 0, err
    result = json.loads(out_json.read_text())
    names = ["image_nway_top1", "image_nway_top1_max", "image_nway_top1_oracle", "image_ssim_2way", "image_pcc_2way"]
    assert [m["metric"] for m in result["metrics"]] == names and sorted(result["values"]) == sorted(names)
    assert result["trials"] == 6 and result["samples"] == 2
    chances = nway_chances(trials=6, samples=2, classes=3, n=3)
    expected_chance = [1 / 3, chances["max"], chances["oracle"], 0.5, 0.5]
    for m, chance in zip(result["metrics"], expected_chance):
        assert m["value"] == 1.0 and m["n"] == 6 and m["ci"] == [1.0, 1.0] and m["higher_is_better"] is True
        assert m["chance"] == pytest.approx(chance) and m["metric"] in out
    assert result["metrics"][3]["definition"] == "skimage" and "image_clip_2way skipped" in out


def test_scores_are_the_metrics_of_the_images_as_paired(monkeypatch, capsys, tmp_path):
    rng = np.random.default_rng(5)
    noisy = {}

    def generated_of(pixels, i, k):
        noisy[i, k] = np.clip(pixels[(i + k) % len(TRIALS)].astype(int) + rng.integers(-60, 60, (16, 16, 3)),
                              0, 255).astype(np.uint8)  # sample 1 is drawn from the next trial's stimulus
        return noisy[i, k]

    generated, stim = folders(tmp_path, generated_of)
    out_json = tmp_path / "scores.json"
    code, out, err = invoke(monkeypatch, capsys, generated, stim, "--json", out_json)
    assert code == 0, err
    values = json.loads(out_json.read_text())["values"]
    assert "image_nway_top1, image_nway_top1_max, image_nway_top1_oracle skipped: pass --judge-weights" in out
    assert sorted(values) == ["image_pcc_2way", "image_ssim_2way"]
    pixels = stimuli().transpose(0, 3, 1, 2)
    sample = [np.stack([noisy[i, k] for i in range(len(TRIALS))]).transpose(0, 3, 1, 2) for k in (0, 1)]
    for name, similarity in (("image_ssim_2way", ssim_matrix_skimage), ("image_pcc_2way", pearson_matrix)):
        per_sample = [pairwise_identification(similarity(s, pixels))["per_trial"].mean() for s in sample]
        assert per_sample[0] == 1.0 and per_sample[1] <= 0.8  # the mismatched sample loses to its source
        assert values[name] == pytest.approx(np.mean(per_sample))


def test_clip_weights_add_clip_2way(monkeypatch, capsys, tmp_path, clip_dir):
    generated, stim = folders(tmp_path, lambda pixels, i, k: pixels[i], samples=1)
    out_json = tmp_path / "scores.json"
    code, out, err = invoke(monkeypatch, capsys, generated, stim, "--clip-weights", clip_dir, "--json", out_json)
    assert code == 0, err
    record = json.loads(out_json.read_text())["metrics"][-1]
    assert record["metric"] == "image_clip_2way" and record["value"] == 1.0 and record["chance"] == 0.5


def unreadable(tmp_path):
    (tmp_path / "generated" / "n02_7_1.png").write_bytes(b"not a png")


def orphan(tmp_path):
    save(tmp_path / "generated" / "n09_5_0.png", np.zeros((16, 16, 3), np.uint8))


def uneven(tmp_path):
    (tmp_path / "generated" / "n03_3_1.png").unlink()


def no_stimuli(tmp_path):
    for path in (tmp_path / "stimuli").iterdir():
        path.rename(path.with_suffix(".txt"))


@pytest.mark.parametrize("damage, extra, message", [
    (unreadable, (), r"n02_7_1.png: not a readable image"),
    (orphan, (), r"n09_5_0.png: no stimulus n09_5.png\|.jpg\|.jpeg in .*stimuli \(1 generated"),
    (uneven, (), r"trial 'n01_1' has 2 generated image\(s\), trial 'n03_3' 1; .* --samples-per-trial N"),
    (lambda tmp_path: None, ("--samples-per-trial", "3"), r"has 2 generated image\(s\), fewer than --samples-per-trial 3"),
    (no_stimuli, (), r"stimuli: no .png, .jpg or .jpeg files"),
    (lambda tmp_path: None, ("--judge-weights", "missing-judge"), r"missing-judge: judge folder not found"),
])
def test_bad_input_exits_2_with_one_line(monkeypatch, capsys, tmp_path, damage, extra, message):
    generated, stim = folders(tmp_path, lambda pixels, i, k: pixels[i])
    damage(tmp_path)
    code, _, err = invoke(monkeypatch, capsys, generated, stim, *extra)
    assert code == 2 and len(err.strip().splitlines()) == 1 and re.search(message, err), err


def test_a_missing_folder_exits_2_naming_it(monkeypatch, capsys, tmp_path):
    code, _, err = invoke(monkeypatch, capsys, tmp_path / "nowhere", tmp_path)
    assert code == 2 and "nowhere: no such folder; pass the folder of generated images" in err
