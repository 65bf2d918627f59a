"""``eegbench data check``: what the loaders see, on tiny files in the published formats, and exit 2 when blocked."""

from __future__ import annotations

import json
import shutil

from test_cli import invoke
from test_imagenet_eeg_loader import IMAGES, write_pth, write_splits
from test_tuab import FIXTURE_RECIPE, fixture_tree  # noqa: F401 (a fixture)

from eegbench.data import check
from eegbench.data.datasets import ImageNetEEG

TUAB_SETTINGS = [f"recipe.{k}={json.dumps(v)}" for k, v in FIXTURE_RECIPE.model_dump().items()
                 if k in ("channels", "crop_s", "start_s", "stop_s", "window", "stride")] + ["n_jobs=1"]


def test_a_455_sample_trial_is_reported_and_blocks_until_interpolate(monkeypatch, capsys, tmp_path):
    write_pth(tmp_path, [500, 455, 500, 500, 1000, 500, 500, 500])
    write_splits(tmp_path, 8)
    code, out, err = invoke(monkeypatch, capsys, "data", "check", "imagenet-eeg", "--data-root", str(tmp_path))
    assert code == 2 and err.count("\n") == 1 and "1 kept trial(s) end before the crop end 460" in err
    assert "dataset.interpolate=512" in err and "trials dropped" in out and "trial lengths" in out
    assert "450..459" in out and "stops the load" in out and "> 600" in out
    code, out, err = invoke(monkeypatch, capsys, "data", "check", "imagenet-eeg", "--data-root", str(tmp_path),
                            "--set", "dataset.interpolate=512")
    assert code == 0 and not err and "what it has of [20:460] resampled to 512" in out and "no blocking problem" in out


def test_counts_are_what_the_loader_keeps(tmp_path, cache_dir):
    write_pth(tmp_path, [500, 500, 300, 500, 500, 500, 1000, 500, 500, 480], subjects=[1] * 6 + [2] * 4)
    write_splits(tmp_path, 6, unlisted=(4,))  # indexes subject 1's six trials
    report = check.check("imagenet-eeg", tmp_path, {"subject": 1}, cache_dir)
    assert report.problem is None
    tr = ImageNetEEG({"root": str(tmp_path), "subject": 1}, cache_dir).load()
    kept = report.section("trials kept per subject and split (block_splits_by_image_all.pth, split 0)").rows
    assert kept == [["1", *(str(len(tr.splits[s])) for s in ("train", "val", "test")), "4"], ["all", "3", "0", "1", "4"]]
    assert [r[1] for r in report.section("trials dropped").rows] == ["4", "1", "1"]  # subject, split, length
    lengths = report.section("trial lengths of subject 1").rows
    assert [r[:2] for r in lengths] == [["< 450", "1"], ["500..509", "5"]]


def test_missing_images_and_captions_are_counted(tmp_path, cache_dir):
    write_pth(tmp_path, [500] * 6)
    write_splits(tmp_path, 6)
    (tmp_path / "images" / "n01000001").mkdir(parents=True)
    (tmp_path / "images" / "n01000001" / f"{IMAGES[0]}.JPEG").write_bytes(b"")
    (tmp_path / "captions.json").write_text(json.dumps({IMAGES[0]: "a dog", IMAGES[1]: "a cat"}))
    rows = check.check("imagenet-eeg", tmp_path, {}, cache_dir).sections[-1].rows
    assert rows[0][:3] == ["image files", "3", f"first: {IMAGES[1]}"]
    assert rows[1][:3] == ["captions", "2", f"first: {IMAGES[2]} ({tmp_path / 'captions.json'})"]


def test_a_single_split_with_subject_0_exits_2_naming_the_fix(monkeypatch, capsys, tmp_path):
    write_pth(tmp_path, [500] * 12, subjects=[1] * 6 + [2] * 6)
    write_splits(tmp_path, 6, name="block_splits_by_image_single.pth")
    args = ["data", "check", "imagenet-eeg", "--data-root", str(tmp_path), "--set", "splits=block_splits_by_image_single.pth"]
    code, out, err = invoke(monkeypatch, capsys, *args)
    assert code == 2 and "dataset.subject is 0" in err and "set dataset.subject to one of 1, 2" in err
    code, out, _ = invoke(monkeypatch, capsys, *args, "--set", "dataset.subject=2")
    assert code == 0 and "another subject (dataset.subject=2)" in out


def test_an_unknown_key_is_named(monkeypatch, capsys, tmp_path):
    code, _, err = invoke(monkeypatch, capsys, "data", "check", "imagenet-eeg", "--set", "dataset.lenght_range=[1,2]")
    assert code == 2 and "dataset.lenght_range: unknown key; did you mean 'length_range'?" in err


def test_without_data_root_the_synthetic_world_is_checked(monkeypatch, capsys, cache_dir):
    world = ["--set", "world.classes=4", "--set", "world.images_per_class=6", "--set", "world.subjects=2",
             "--set", "world.image_size=32"]
    code, out, _ = invoke(monkeypatch, capsys, "data", "check", "imagenet-eeg", *world)
    assert code == 0 and "the synthetic world at" in out and "no blocking problem" in out
    settings = {"world": {"classes": 4, "images_per_class": 6, "subjects": 2, "image_size": 32}}
    tr = ImageNetEEG(settings, cache_dir).load()
    report = check.check("imagenet-eeg", None, {f"world.{k}": v for k, v in settings["world"].items()}, cache_dir)
    assert report.synthetic and report.sections[0].rows[-1][-1] == str(sum(len(v) for v in tr.splits.values()))


def test_a_tuab_tree_without_reports(monkeypatch, capsys, fixture_tree, tmp_path):  # noqa: F811
    reports = tmp_path / "elsewhere"
    shutil.move(fixture_tree / "reports", reports)
    args = ["data", "check", "tuab", "--data-root", str(fixture_tree), *(x for s in TUAB_SETTINGS for x in ("--set", s))]
    code, out, err = invoke(monkeypatch, capsys, *args)
    assert code == 2 and err.count("\n") == 1 and "set dataset.reports" in err and "<subject>_s<NNN>.txt" in err
    assert "0 of 4" in out and "skipped recordings (4)" in out and "no report aaaaaaac_s001.txt" in out
    code, out, err = invoke(monkeypatch, capsys, *args, "--on-bad-file", "skip")  # the flag the first error offers
    assert code == 2 and "no usable recording: 4 of 4 readable recording(s) have no report" in err
    assert "set dataset.reports" in err
    code, out, err = invoke(monkeypatch, capsys, *args, "--set", f"dataset.reports={reports}")
    assert code == 0 and "4 of 4" in out and "skipped recordings (0)" in out
    table = out[out.index("usable recordings"):out.index("physician reports")]
    assert [[cell.strip() for cell in line.split("│")[1:-1]] for line in table.splitlines() if "│" in line] == [
        ["train", "1", "1", "2", "8"], ["val", "1", "0", "1", "4"], ["test", "0", "1", "1", "4"]]
