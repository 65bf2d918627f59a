"""Synthetic ImageNet-EEG world and the real-format loader: structure, protocol, cache, bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from eegbench.data.imagenet_eeg import load
from eegbench.errors import UserError
from eegbench.synthetic.imagenet_eeg import WorldSpec, ensure, generate

SMALL = dict(classes=4, images_per_class=6, subjects=2, image_size=32)
ALL, SINGLE = "block_splits_by_image_all.pth", "block_splits_by_image_single.pth"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return generate(WorldSpec(**SMALL), tmp_path_factory.mktemp("w") / "world")


def test_imports_do_not_pull_in_torch():
    code = ("import sys, eegbench.synthetic.imagenet_eeg, eegbench.data.imagenet_eeg; "
            "assert 'torch' not in sys.modules and 'PIL' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_spec_key_is_stable_and_strict():
    assert WorldSpec(**SMALL).key() == WorldSpec(**SMALL).key()
    assert len(WorldSpec().key()) == 12 and WorldSpec(seed=1).key() != WorldSpec().key()
    with pytest.raises(ValueError):
        WorldSpec(colour="red")


def test_generation_is_deterministic(world, tmp_path):
    calls = []
    again = generate(WorldSpec(**SMALL), tmp_path / "again", progress=lambda d, t: calls.append((d, t)))
    assert calls[-1][0] == calls[-1][1] and [p for p in tmp_path.iterdir()] == [again]
    a, b = (torch.load(r / "eeg_5_95_std.pth", weights_only=True) for r in (world, again))
    assert all(torch.equal(x["eeg"], y["eeg"]) for x, y in zip(a["dataset"], b["dataset"]))
    assert (world / "captions.json").read_text() == (again / "captions.json").read_text()
    other = generate(WorldSpec(**SMALL, seed=1), tmp_path / "other")
    c = torch.load(other / "eeg_5_95_std.pth", weights_only=True)
    assert not torch.equal(a["dataset"][0]["eeg"], c["dataset"][0]["eeg"])


def test_files_have_the_real_structure(world):
    data = torch.load(world / "eeg_5_95_std.pth", weights_only=True)
    assert set(data) == {"dataset", "labels", "images"}
    assert len(data["dataset"]) == 4 * 6 * 2 and len(data["labels"]) == 4 and len(data["images"]) == 24
    assert all(w.startswith("n") and len(w) == 9 for w in data["labels"])
    item = data["dataset"][0]
    assert set(item) == {"eeg", "image", "label", "subject"}
    assert item["eeg"].dtype == torch.float32 and item["eeg"].shape[0] == 128
    lengths = [d["eeg"].shape[1] for d in data["dataset"]]
    assert sum(not 450 <= t <= 600 for t in lengths) >= 2 and lengths.count(500) > len(lengths) / 2
    assert {d["subject"] for d in data["dataset"]} == {1, 2}
    for d in data["dataset"]:
        assert data["images"][d["image"]].startswith(data["labels"][d["label"]] + "_")
    eeg = torch.cat([d["eeg"] for d in data["dataset"]], dim=1)
    assert abs(float(eeg.mean())) < 0.1 and 0.8 < float(eeg.std()) < 1.2
    for name, n in ((ALL, 48), (SINGLE, 24)):
        split = torch.load(world / name, weights_only=True)["splits"][0]
        assert set(split) == {"train", "val", "test"}
        assert sorted(i for v in split.values() for i in v) == list(range(n))
    classes = json.loads((world / "classes.json").read_text())
    assert list(classes) == data["labels"] and len(set(classes.values())) == 4
    assert json.loads((world / "world.json").read_text())["spec"] == WorldSpec(**SMALL).model_dump()


def test_ensure_reuses_the_cached_world(tmp_path):
    spec = WorldSpec(**{**SMALL, "subjects": 1})
    root = ensure(spec, tmp_path)
    assert root == tmp_path / "worlds" / f"imagenet-eeg-{spec.key()}"
    stamp = (root / "world.json").stat().st_mtime_ns
    assert ensure(spec, tmp_path) == root and (root / "world.json").stat().st_mtime_ns == stamp


def test_load_reads_the_world_back(world, tmp_path):
    raw = torch.load(world / "eeg_5_95_std.pth", weights_only=True)["dataset"]
    valid = [i for i, d in enumerate(raw) if 450 <= d["eeg"].shape[1] <= 600]
    tr = load(world, cache_dir=tmp_path)
    assert tr.eeg.shape == (len(valid), 128, 440) and tr.eeg.dtype == np.float32
    np.testing.assert_array_equal(tr.eeg[0], raw[valid[0]]["eeg"][:, 20:460].numpy())
    assert tr.label.dtype == np.int64 and set(tr.subject) == {1, 2}
    assert tr.class_names != tr.wnids and len(tr.class_names) == 4
    for i in range(len(tr.label)):
        assert tr.image_path(i).is_file()
        assert tr.captions[tr.image_names[tr.image[i]]]
    assert sum(len(v) for v in tr.splits.values()) == len(valid)
    assert load(world, cache_dir=tmp_path, images_root=world / "images").image_root == world / "images"
    _assert_user_error(lambda: load(world, cache_dir=tmp_path, images_root=tmp_path / "elsewhere"), "elsewhere")


def test_single_split_matches_all_split_for_one_subject(world, tmp_path):
    every = load(world, cache_dir=tmp_path)
    one = load(world, cache_dir=tmp_path, subject=2, splits=SINGLE)
    assert set(one.subject) == {2}
    for name in ("train", "val", "test"):
        pos = every.splits[name][every.subject[every.splits[name]] == 2]
        np.testing.assert_array_equal(every.image[pos], one.image[one.splits[name]])
        np.testing.assert_array_equal(np.asarray(every.eeg[pos]), np.asarray(one.eeg[one.splits[name]]))


def test_splits_are_image_disjoint_4_1_1(world, tmp_path):
    tr = load(world, cache_dir=tmp_path)
    raw = torch.load(world / ALL, weights_only=True)["splits"][0]
    data = torch.load(world / "eeg_5_95_std.pth", weights_only=True)["dataset"]
    images = {k: {data[i]["image"] for i in v} for k, v in raw.items()}
    assert not (images["train"] & images["val"] or images["train"] & images["test"] or images["val"] & images["test"])
    assert [len(images[k]) for k in ("train", "val", "test")] == [16, 4, 4]
    loaded = {k: set(tr.image[v]) for k, v in tr.splits.items()}
    assert not (loaded["train"] & loaded["test"])


def test_interpolate_to_512(world, tmp_path):
    base = load(world, cache_dir=tmp_path)
    tr = load(world, cache_dir=tmp_path, interpolate=512)
    assert tr.eeg.shape == (len(base.label), 128, 512)
    np.testing.assert_allclose(tr.eeg[:, :, [0, -1]], base.eeg[:, :, [0, -1]], atol=1e-6)


def test_second_load_uses_the_cache(world, tmp_path, monkeypatch):
    first = load(world, cache_dir=tmp_path, subject=1, splits=SINGLE)

    def refuse(*args, **kwargs):
        raise AssertionError("torch.load called on a cached file")

    monkeypatch.setattr(torch, "load", refuse)
    second = load(world, cache_dir=tmp_path, subject=1, splits=SINGLE)
    assert isinstance(second.eeg, np.memmap)
    np.testing.assert_array_equal(first.eeg, second.eeg)


def _mean_centroid_accuracy(root: Path, cache: Path) -> float:
    tr = load(root, cache_dir=cache)
    means = np.asarray(tr.eeg).mean(-1)
    train, held = tr.splits["train"], np.concatenate([tr.splits["val"], tr.splits["test"]])
    centroids = np.stack([means[train][tr.label[train] == c].mean(0) for c in range(len(tr.wnids))])
    guess = ((means[held][:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    return float((guess == tr.label[held]).mean())


def test_block_drift_makes_channel_means_decode_the_class(tmp_path):
    spec = dict(classes=4, images_per_class=18, subjects=1, image_size=16)
    clean = _mean_centroid_accuracy(generate(WorldSpec(**spec), tmp_path / "clean"), tmp_path / "c")
    drift = _mean_centroid_accuracy(generate(WorldSpec(**spec, block_drift=1.0), tmp_path / "drift"), tmp_path / "c")
    assert drift >= 0.8 and drift - clean >= 0.4


def _fake(path: Path, n: int = 6, change=None, **top) -> Path:
    """A small valid ImageNet-EEG file; ``change(dataset)`` corrupts it."""
    g = torch.Generator().manual_seed(0)
    dataset = [{"eeg": torch.randn(128, 500, generator=g), "image": i % 3, "label": i % 2, "subject": 1}
               for i in range(n)]
    if change:
        change(dataset)
    torch.save({"dataset": dataset, "labels": ["n01", "n02"], "images": ["n01_1", "n02_2", "n01_3"], **top}, path)
    return path


def _splits(path: Path, train=(0, 1, 2, 3), val=(4,), test=(5,)) -> Path:
    torch.save({"splits": [{"train": list(train), "val": list(val), "test": list(test)}]}, path)
    return path


def _set(i, key, value):
    return lambda d: d[i].__setitem__(key, value)


def _nan(d):
    d[2]["eeg"][5, 100] = float("nan")


BAD_DATA = {
    "wrong channel count": (lambda p: _fake(p, change=_set(1, "eeg", torch.zeros(64, 500))), "trial 1"),
    "1-d eeg": (lambda p: _fake(p, change=_set(0, "eeg", torch.zeros(500))), "trial 0"),
    "nan": (lambda p: _fake(p, change=_nan), "trial 2"),
    "label out of range": (lambda p: _fake(p, change=_set(3, "label", 7)), "trial 3"),
    "item missing key": (lambda p: _fake(p, change=lambda d: d[4].pop("subject")), "subject"),
    "missing top key": (lambda p: torch.save({"dataset": [], "labels": []}, p), "'images'"),
    "not a dict": (lambda p: torch.save([1, 2, 3], p), "dict"),
    "garbage bytes": (lambda p: p.write_bytes(b"\x00garbage, not a torch file" * 10), "weights_only"),
}


def _assert_user_error(call, *needles):
    with pytest.raises(UserError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


def _no_partial_entries(cache: Path):
    arrays = cache / "arrays"
    return not arrays.exists() or not any(p.name.startswith(".tmp") for p in arrays.iterdir())


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_data_file_raises_user_error(tmp_path, case):
    make, needle = BAD_DATA[case]
    data = tmp_path / "eeg_5_95_std.pth"
    make(data)
    _splits(tmp_path / ALL)
    cache = tmp_path / "cache"
    _assert_user_error(lambda: load(tmp_path, cache_dir=cache), str(data), needle)
    assert _no_partial_entries(cache)
    assert not (cache / "arrays").exists() or not any(p.is_dir() for p in (cache / "arrays").iterdir())


def test_missing_folder_or_file_names_the_path(tmp_path):
    _assert_user_error(lambda: load(tmp_path / "nowhere", cache_dir=tmp_path), "nowhere", "--data-root")
    _assert_user_error(lambda: load(tmp_path, cache_dir=tmp_path), str(tmp_path / "eeg_5_95_std.pth"), "--data-root")
    _fake(tmp_path / "eeg_5_95_std.pth")
    _assert_user_error(lambda: load(tmp_path, cache_dir=tmp_path), str(tmp_path / ALL))


def test_bad_split_file_raises_user_error(tmp_path):
    _fake(tmp_path / "eeg_5_95_std.pth")
    cache = tmp_path / "cache"
    torch.save({"folds": []}, tmp_path / ALL)
    _assert_user_error(lambda: load(tmp_path, cache_dir=cache), str(tmp_path / ALL), "'splits'")
    _splits(tmp_path / "s1.pth", test=(5, 6))
    _assert_user_error(lambda: load(tmp_path, splits="s1.pth", cache_dir=cache), "s1.pth", "'test'", "index 6", "6-trial")
    _splits(tmp_path / "s2.pth")
    _assert_user_error(lambda: load(tmp_path, splits="s2.pth", split_index=3, cache_dir=cache), "s2.pth", "split_index 3")
    _assert_user_error(lambda: load(tmp_path, splits="s2.pth", subject=4, cache_dir=cache), "subject 4")
    assert _no_partial_entries(cache)
    assert load(tmp_path, splits="s2.pth", cache_dir=cache).eeg.shape == (6, 128, 440)
