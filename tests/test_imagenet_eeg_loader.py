"""The ImageNet-EEG loader against files in the published format: the protocol's length rule, DreamDiffusion's
crop and resampling, the errors' suggested fixes, _single split files and the raw variant."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from eegbench import config
from eegbench.data.datasets import ImageNetEEG
from eegbench.data.imagenet_eeg import load, select
from eegbench.errors import UserError

WNIDS = ["n01000001", "n01000002"]
IMAGES = ["n01000001_1", "n01000001_2", "n01000002_3", "n01000002_4"]


def write_pth(root: Path, lengths, subjects=None, name="eeg_5_95_std.pth", **top) -> list[torch.Tensor]:
    """A data file of the published structure: trial i shows image i % 4 (class (i % 4) // 2)."""
    root.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    subjects = subjects or [1] * len(lengths)
    dataset = [{"eeg": torch.randn(128, int(t), generator=g), "image": i % 4, "label": (i % 4) // 2, "subject": s}
               for i, (t, s) in enumerate(zip(lengths, subjects))]
    torch.save({"dataset": dataset, "labels": WNIDS, "images": IMAGES, **top}, root / name)
    return [d["eeg"] for d in dataset]


def write_splits(root: Path, n: int, name="block_splits_by_image_all.pth", unlisted=()) -> None:
    """Split 0: every index but ``unlisted``, cycling train, train, train, train, val, test."""
    idx = [i for i in range(n) if i not in unlisted]
    split = {"train": [i for i in idx if i % 6 < 4], "val": [i for i in idx if i % 6 == 4],
             "test": [i for i in idx if i % 6 == 5]}
    torch.save({"splits": [split]}, root / name)


def dreamdiffusion(eeg: torch.Tensor, n: int = 512) -> np.ndarray:
    """What DreamDiffusion's loader does: take [20:460] of what the trial has, linear interp1d on [0, 1] to n."""
    x = eeg[:, 20:460].numpy().astype(np.float64)
    grid, new = np.linspace(0, 1, x.shape[1]), np.linspace(0, 1, n)
    return np.stack([np.interp(new, grid, row) for row in x])


def _error(call) -> str:
    with pytest.raises(UserError) as info:
        call()
    assert "\n" not in str(info.value)
    return str(info.value)


def test_protocol_lengths_are_kept_and_short_ones_resampled(tmp_path):
    lengths = [500, 455, 450, 600, 449, 601, 499, 1000, 460, 500, 300, 500]
    eeg = write_pth(tmp_path, lengths)
    write_splits(tmp_path, len(lengths))
    tr = load(tmp_path, cache_dir=tmp_path / "cache", interpolate=512)
    kept = [i for i, t in enumerate(lengths) if 450 <= t <= 600]
    assert tr.eeg.shape == (len(kept), 128, 512)
    for row, i in enumerate(kept):  # 450 and 455 samples: 430 and 435 of [20:460], resampled to 512
        np.testing.assert_allclose(tr.eeg[row], dreamdiffusion(eeg[i]), atol=1e-5)
    assert sum(len(v) for v in tr.splits.values()) == len(kept)


def test_short_trials_without_interpolate_get_one_error_whose_fixes_work(tmp_path):
    lengths = [500, 455, 500, 450, 500, 500, 500, 500]
    write_pth(tmp_path, lengths)
    write_splits(tmp_path, len(lengths))
    message = _error(lambda: load(tmp_path, cache_dir=tmp_path / "cache"))
    assert "2 kept trial(s)" in message and "first: trial 1, 455 samples" in message
    fixes = re.findall(r"dataset\.(\w+)=(\[[^\]]*\]|[^\s,;)]+)", message)
    assert [k for k, _ in fixes] == ["interpolate", "length_range"]
    for key, value in fixes:  # each suggestion, applied as `eegbench run --set` would, loads the file
        cfg = config.resolve("smoke", scale="ci", data_root=str(tmp_path),
                             overrides=config.parse_set([f"dataset.{key}={value}"]))
        tr = ImageNetEEG(cfg.dataset, tmp_path / "cache").load()
        assert len(tr.label) == (8 if key == "interpolate" else 6), key


def test_length_range_is_a_validated_dataset_key(tmp_path):
    with pytest.raises(UserError, match=r"--set: dataset.length_range: .*min <= max"):
        config.resolve("smoke", scale="ci", overrides={"dataset.length_range": [600, 450]})


def test_interpolate_keeps_fewer_than_two_samples_out(tmp_path):
    write_pth(tmp_path, [500, 21, 500, 500, 500, 500])
    write_splits(tmp_path, 6)
    message = _error(lambda: load(tmp_path, cache_dir=tmp_path / "c", interpolate=512, length_range=(0, 600)))
    assert "fewer than 2 samples after the crop start 20" in message and "dataset.length_range=[22,600]" in message
    assert len(load(tmp_path, cache_dir=tmp_path / "c", interpolate=512, length_range=(22, 600)).label) == 5


def test_drops_are_counted_by_reason(tmp_path):
    lengths = [500, 500, 300, 500, 500, 500, 1000, 500, 500]
    write_pth(tmp_path, lengths, subjects=[1, 1, 1, 1, 1, 1, 2, 2, 2])
    write_splits(tmp_path, 9, unlisted=(4,))
    sel = select(tmp_path, cache_dir=tmp_path / "cache")
    assert sel.dropped == {"subject": 0, "split": 1, "length": 2}
    assert list(sel.rows) == [0, 1, 3, 5, 7, 8] and not sel.problems
    torch.save({"splits": [{"train": [0, 1], "val": [2], "test": [3, 4]}]}, tmp_path / "per_subject.pth")
    one = select(tmp_path, cache_dir=tmp_path / "cache", subject=1, splits="per_subject.pth")
    assert one.dropped == {"subject": 3, "split": 1, "length": 1} and list(one.rows) == [0, 1, 3, 4]


def test_single_split_with_subject_0_is_an_error_naming_the_fix(tmp_path):
    write_pth(tmp_path, [500] * 12, subjects=[1] * 6 + [2] * 6)
    write_splits(tmp_path, 6, name="block_splits_by_image_single.pth")
    single = "block_splits_by_image_single.pth"
    message = _error(lambda: load(tmp_path, cache_dir=tmp_path / "cache", splits=single))
    assert single in message and "dataset.subject is 0" in message and "set dataset.subject to one of 1, 2" in message
    tr = load(tmp_path, cache_dir=tmp_path / "cache", splits=single, subject=2)
    assert set(tr.subject) == {2} and len(tr.label) == 6


def test_raw_variant_loads_and_its_statistics_are_noted(tmp_path):
    raw = "eeg_signals_raw_with_mean_std.pth"
    eeg = write_pth(tmp_path, [500] * 6, name=raw, means=torch.full((128,), 3.0), stddevs=torch.full((128,), 2.0))
    write_splits(tmp_path, 6)
    tr = load(tmp_path, file=raw, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(tr.eeg[0], eeg[0][:, 20:460].numpy())  # used as stored
    assert len(tr.warnings) == 1 and raw in tr.warnings[0] and "not applied" in tr.warnings[0]
    write_pth(tmp_path, [500] * 6)
    assert not load(tmp_path, cache_dir=tmp_path / "cache").warnings
