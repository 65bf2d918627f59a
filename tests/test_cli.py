"""The command line: listings, resolved configs, and bad input as one line with exit code 2."""

import json
import re
import shutil
import sys

import pytest
import torch

from eegbench import cli, registry


def invoke(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["eegbench", *args])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    out = capsys.readouterr()
    return exc.value.code or 0, out.out, out.err


def test_list_shows_every_registered_item(monkeypatch, capsys):
    code, out, _ = invoke(monkeypatch, capsys, "list")
    assert code == 0
    for reg in registry.REGISTRIES.values():
        for entry in reg:
            assert entry.name in out


def test_show_prints_resolved_config_and_run_id(monkeypatch, capsys, ci_smoke):
    code, out, _ = invoke(monkeypatch, capsys, "show", "smoke", "--scale", "ci")
    assert code == 0 and ci_smoke.hash() in out and "select_on: val" in out


@pytest.fixture(scope="module")
def world_root(cache_dir, ci_smoke):
    from eegbench.data.datasets import ImageNetEEG

    return ImageNetEEG(ci_smoke.dataset, cache_dir).prepare()


def copy_world(world_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(world_root, root, ignore=shutil.ignore_patterns("images"))
    return root


def corrupt_channels(root):
    data = torch.load(root / "eeg_5_95_std.pth", weights_only=True)
    data["dataset"][5]["eeg"] = data["dataset"][5]["eeg"][:64]
    torch.save(data, root / "eeg_5_95_std.pth")


def drop_key(root):
    data = torch.load(root / "eeg_5_95_std.pth", weights_only=True)
    del data["labels"]
    torch.save(data, root / "eeg_5_95_std.pth")


def add_nan(root):
    data = torch.load(root / "eeg_5_95_std.pth", weights_only=True)
    data["dataset"][7]["eeg"][3, 100] = float("nan")  # inside the [20:460] crop
    torch.save(data, root / "eeg_5_95_std.pth")


def bad_split_index(root):
    splits = torch.load(root / "block_splits_by_image_all.pth", weights_only=True)
    splits["splits"][0]["test"].append(10**6)
    torch.save(splits, root / "block_splits_by_image_all.pth")


def garbage(root):
    (root / "eeg_5_95_std.pth").write_bytes(b"not a torch file")


@pytest.mark.parametrize("damage, message", [
    (corrupt_channels, r"eeg_5_95_std.pth: .*trial 5.*128"),
    (drop_key, r"eeg_5_95_std.pth: .*'labels'"),
    (add_nan, r"eeg_5_95_std.pth: .*trial 7.*NaN"),
    (bad_split_index, r"block_splits_by_image_all.pth: .*1000000"),
    (garbage, r"eeg_5_95_std.pth"),
])
def test_bad_data_files_exit_2_with_one_line_and_write_nothing(monkeypatch, capsys, tmp_path, world_root, damage, message):
    root = copy_world(world_root, tmp_path)
    damage(root)
    out = tmp_path / "runs"
    code, _, err = invoke(monkeypatch, capsys, "run", "--suite", "smoke", "--scale", "ci",
                          "--data-root", str(root), "--out", str(out))
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert re.search(message, err), err
    assert not out.exists() or not any(out.rglob("*.json")), list(out.rglob("*"))


@pytest.mark.parametrize("args, message", [
    (["run", "--suite", "smok"], "unknown suite 'smok'; did you mean 'smoke'"),
    (["run", "--suite", "smoke", "--variant", "nope"], "unknown variant 'nope'"),
    (["run", "--suite", "smoke", "--set", "stages.classify.epoch=3"], "--set: stages.classify.epoch: unknown key; did you mean 'epochs'"),
    (["run", "--suite", "smoke", "--data-root", "/nonexistent/eeg"], "--data-root /nonexistent/eeg: no such folder"),
    (["run", "--suite", "smoke", "--scale", "huge"], "unknown scale"),
    (["list", "gadgets"], "unknown kind 'gadgets'"),
    (["run", "--suite", "smoke", "--wandb"], "--wandb logs online and needs a W&B API key"),
    (["data", "prepare", "imagenet-eg"], "unknown dataset 'imagenet-eg'; did you mean 'imagenet-eeg'"),
])
def test_bad_names_exit_2_with_one_line(monkeypatch, capsys, tmp_path, args, message):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc with W&B credentials
    code, _, err = invoke(monkeypatch, capsys, *args, *(["--out", str(tmp_path / "runs")] if args[0] == "run" else []))
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists()


def test_data_prepare_generates_a_world_and_reads_it_back(monkeypatch, capsys, cache_dir):
    code, out, err = invoke(monkeypatch, capsys, "data", "prepare", "imagenet-eeg", "--set", "world.classes=3",
                            "--set", "world.images_per_class=6", "--set", "world.subjects=1", "--set", "world.image_size=16")
    assert code == 0, err
    assert "3 classes, 128 channels x 440 samples" in out and re.search(r"train \d+, val \d+, test \d+", out)


def test_data_prepare_rejects_unknown_keys(monkeypatch, capsys):
    code, _, err = invoke(monkeypatch, capsys, "data", "prepare", "imagenet-eeg", "--set", "world.clases=3")
    assert code == 2 and "--set: world.clases: unknown key; did you mean 'classes'" in err


@pytest.mark.parametrize("text, seeds", [("0,1,2", [0, 1, 2]), ("0-3", [0, 1, 2, 3]), ("2,0-1,2", [2, 0, 1])])
def test_seeds_lists_and_ranges(text, seeds):
    assert cli.parse_seeds(text) == seeds


@pytest.mark.parametrize("args, message", [
    (["--seeds", "0-x"], "--seeds '0-x'"),
    (["--seeds", "3-1"], "--seeds '3-1'"),
    (["--seeds", "0,1", "--seed", "2"], "--seed and --seeds"),
])
def test_bad_seeds_exit_2_with_one_line(monkeypatch, capsys, tmp_path, args, message):
    code, _, err = invoke(monkeypatch, capsys, "run", "--suite", "smoke", "--scale", "ci", "--out", str(tmp_path), *args)
    assert code == 2 and message in err and err.count("\n") == 1 and not any(tmp_path.iterdir())


@pytest.mark.slow
def test_seeds_run_each_seed_and_json_prints_only_the_summaries(monkeypatch, capsys, tmp_path):
    """Two short smoke runs, one per seed; with --json stdout holds one metrics summary per line and nothing else.
    Run again, the finished runs are reused and print the same lines."""
    args = ["run", "--suite", "smoke", "--scale", "ci", "--seeds", "0-1", "--set", "stages.classify.epochs=1",
            "--out", str(tmp_path), "--no-wandb", "--json"]
    code, out, _ = invoke(monkeypatch, capsys, *args)
    lines = out.splitlines()
    summaries = [json.loads(line) for line in lines]
    assert code == 0 and [s["seed"] for s in summaries] == [0, 1]
    assert all(s["metrics"][0]["metric"] == "nway_top1" for s in summaries)
    assert len({s["run_id"] for s in summaries}) == 2
    code, again, _ = invoke(monkeypatch, capsys, *args)
    assert code == 0 and again.splitlines() == lines


def test_a_table_prints_whole_without_a_terminal(monkeypatch, capsys):
    """In a log (no TTY) rich would cut names to fit 80 columns; the metric table keeps them whole."""
    long = "image_nway_top1_oracle_with_a_long_name"
    summary = {"suite": "smoke", "variant": "default", "metrics": [{
        "metric": long, "split": "test", "n": 119, "value": 0.5, "ci": [0.4, 0.6], "chance": 0.1,
        "chance_ci": [0.05, 0.16], "controls": [{"name": "shuffled_eeg_control_with_a_long_name", "value": 0.1,
                                                 "ci": [0.05, 0.15], "gap": 0.4, "gap_ci": [0.3, 0.5],
                                                 "p_vs_control": 0.0001}]}]}
    assert not cli.console.is_terminal
    cli.print_metrics(summary)
    out = capsys.readouterr().out
    assert long in out and "shuffled_eeg_control_with_a_long_name" in out and "…" not in out


def test_a_progress_bar_appears_only_once_work_is_reported():
    """A world or model found in the cache reports no progress, and so shows no bar (no '0/?' with a clock)."""
    from eegbench import progress

    with progress.bars():
        progress.callback("generating synthetic world")  # asked for, never called: a cache hit
        built = progress.callback("building")
        built(1, 4)
        assert [task.description for task in progress._progress.tasks] == ["building"]
