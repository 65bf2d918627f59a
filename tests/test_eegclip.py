"""The EEG-CLIP suite's mechanics on a tiny synthetic TUAB world: every evaluation, control and bad input.

The ci-scale claims (zero-shot well above chance, probe above zero-shot, shuffled pairs at
chance) are in test_eegclip_ci.py.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from eegbench import config, registry
from eegbench.data.tuab import Recordings
from eegbench.errors import UserError
from eegbench.evaluate.eegclip import balanced
from eegbench.evaluate.stats import bootstrap_ci, weighted_mean
from eegbench.models.eegclip import contrastive_loss
from eegbench.runner import execute
from eegbench.synthetic.tuab import TUABSpec, ensure
from test_cli import invoke

SMALL_DEEP4 = {"final_conv_length": 2, "stride_before_pool": True, "n_filters_time": 4, "n_filters_spat": 4,
               "n_filters_2": 8, "n_filters_3": 8, "n_filters_4": 16}
TINY = {
    "dataset.world.train_subjects": 16, "dataset.world.eval_subjects": 8,
    "stages.align.encoder_args": SMALL_DEEP4, "stages.align.epochs": 2, "stages.align.batch_size": 32,
    "evaluation_args.baselines.epochs": 1,
    "evaluation_args.few_shot.seeds": 2,
}
TASKS = ("pathological", "age", "gender", "medication")


def tiny(variant="default", **overrides):
    return config.resolve("eegclip", scale="ci", variant=variant, overrides={**TINY, **overrides})


@pytest.fixture(scope="module")
def finished(cache_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return execute(tiny(), out=out, cache_dir=cache_dir)


def test_every_evaluation_reports_parts_with_chance_and_controls(finished):
    metrics = {m["metric"]: m for m in finished.metrics["metrics"]}
    expected = ([f"zero_shot/{t}" for t in TASKS] + [f"zero_shot_window/{t}" for t in TASKS]
                + [f"linear_probe/{t}" for t in TASKS]
                + [f"few_shot/{t}@{p}%" for t in TASKS for p in (1, 2, 5, 10, 20, 50)]
                + [f"retrieval/recall@{k}" for k in (1, 5, 10)]
                + [f"baselines/{kind}/{t}" for t in TASKS for kind in ("task_deep4", "random_encoder", "irrelevant_task")])
    assert sorted(metrics) == sorted(expected)
    for name, m in metrics.items():
        assert 0 <= m["ci"][0] <= m["value"] <= m["ci"][1] <= 1, name
        assert [c["name"] for c in m["controls"]][:2] == ["shuffled_eeg", "noise_eeg"]
        if not name.startswith("retrieval"):
            assert m["chance"] == 0.5 and "balanced accuracy" in m["note"]
    assert [c["name"] for c in metrics["linear_probe/age"]["controls"]] == ["shuffled_eeg", "noise_eeg", "label_permutation"]
    assert metrics["retrieval/recall@1"]["chance"] == pytest.approx(1 / metrics["retrieval/recall@1"]["n"])
    for t in TASKS:  # the same recordings, scored per window: the CI resamples the same units, not windows
        window, recording = metrics[f"zero_shot_window/{t}"], metrics[f"zero_shot/{t}"]
        assert (window["definition"], recording["definition"]) == ("per-window", "per-recording")
        assert window["n_groups"] == recording["n_groups"] <= recording["n"] < window["n"]
        assert window["unit"] == recording["unit"] and window["unit"] in window["note"]
    assert {m["definition"] for n, m in metrics.items() if not n.startswith("zero_shot_window")} == {"per-recording"}
    assert all(m["higher_is_better"] is True for m in metrics.values())
    assert finished.metrics["skipped"] == []


def test_run_folder_holds_curve_checkpoints_and_per_recording_scores(finished):
    path = finished.run_dir
    assert (path / "figures" / "few_shot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for stage in ("align", *(f"baseline_{t}" for t in TASKS)):
        assert (path / "checkpoints" / f"{stage}.safetensors").is_file()
    with np.load(path / "predictions" / "test.npz") as npz:
        assert len(npz["zero_shot/pathological/real"]) == finished.metrics["metrics"][0]["n"]
    assert "align: selected epoch 1 (the last)" in (path / "log.txt").read_text()


def test_balanced_accuracy_and_its_interval():
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(0)
    y = (rng.random(50) < 0.2).astype(int)
    pred = rng.integers(0, 2, 50)
    scored = balanced(y, pred)
    assert weighted_mean(scored["per_trial"], scored["weights"]) == pytest.approx(balanced_accuracy_score(y, pred))
    lo, hi = bootstrap_ci(scored["per_trial"], weights=scored["weights"])
    assert 0 <= lo <= hi <= 1


def test_zero_shot_window_is_the_authors_per_window_balanced_accuracy_with_recordings_as_groups():
    from scipy.spatial import distance
    from sklearn.metrics import balanced_accuracy_score

    from eegbench.evaluate.context import EvalContext
    from eegbench.evaluate.eegclip import ZeroShotArgs, zero_shot, zero_shot_window
    from eegbench.evaluate.report import metric_record
    from eegbench.evaluate.stats import chance_interval

    labels = np.array([0, 1, 1, 0, 1, -1])  # per recording; the last one's label is unknown

    class Data:
        recording = np.repeat(np.arange(6), 5)  # 6 recordings x 5 windows
        table = pd.DataFrame({"subject": [f"s{i}" for i in range(6)]})  # one each: too few subjects to resample
        recording_units = Recordings.recording_units

        def task(self, task):
            return labels

    class Stage:
        def embed_text(self, model, texts):
            return np.array([{"normal": [1.0, 0, 0], "abnormal": [0, 1.0, 0]}[t] for t in texts])

    emb = np.random.default_rng(0).normal(size=(30, 3))
    emb[0] = [2.0, 2.0, 1.0]  # equally near both prompts: the authors' `d0 < d1` gives it class 1
    ctx = EvalContext(Data(), np.arange(30), None, 0, stage=Stage())
    args = ZeroShotArgs(prompts={"pathological": [["normal"], ["abnormal"]]})
    part = zero_shot_window({"embeddings": emb}, ctx, args)["parts"]["pathological"]
    known = labels[Data.recording] >= 0
    authors = [0 if distance.cosine(e, [1, 0, 0]) < distance.cosine(e, [0, 1, 0]) else 1 for e in emb[known]]
    assert weighted_mean(part["per_trial"], part["weights"]) == pytest.approx(
        balanced_accuracy_score(labels[Data.recording][known], authors))
    assert part["per_trial"][0] == 0.0  # recording 0 is class 0; the tie went to class 1
    assert part["groups"].tolist() == Data.recording[known].tolist() and part["definition"] == "per-window"
    record = metric_record("zero_shot_window/pathological", "test", part, {}, seed=0)
    assert (record["n"], record["n_groups"], record["definition"]) == (25, 5, "per-window")
    assert record["chance_ci"][1] - record["chance_ci"][0] > np.subtract(*chance_interval(0.5, 25)[::-1])  # 5 recordings, not 25 windows
    per_recording = zero_shot({"embeddings": emb}, ctx, args)["parts"]["pathological"]
    assert len(per_recording["per_trial"]) == 5 and per_recording["definition"] == "per-recording"


def test_grouped_bootstrap_and_permutation_resample_whole_recordings():
    from eegbench.evaluate.stats import effective_n, paired_permutation_p

    rng = np.random.default_rng(0)
    a, b = (rng.random(40) < 0.65).astype(float), (rng.random(40) < 0.5).astype(float)  # per recording
    groups = np.repeat(np.arange(40), 4)  # each recording's value on all four of its windows
    wa, wb = np.repeat(a, 4), np.repeat(b, 4)
    grouped = bootstrap_ci(wa, groups=groups, seed=3)
    assert grouped == pytest.approx(bootstrap_ci(a, seed=3))  # the recordings' bootstrap, not the windows'
    assert np.diff(bootstrap_ci(wa, seed=3))[0] < 0.7 * np.diff(grouped)[0]  # windows as independent: too narrow
    assert paired_permutation_p(wa, wb, groups=groups, seed=3) == pytest.approx(paired_permutation_p(a, b, seed=3))
    assert effective_n(160, groups=groups) == pytest.approx(40)
    w = rng.random(40) + 0.5  # one trial per group: exactly the ungrouped draws
    assert bootstrap_ci(a, weights=w, groups=np.arange(40)) == bootstrap_ci(a, weights=w)
    assert paired_permutation_p(a, b, weights=w, groups=np.arange(40)) == paired_permutation_p(a, b, weights=w)


def test_the_suite_scores_zero_shot_both_ways_and_the_published_zero_shot_is_per_window():
    from eegbench.track import baselines

    assert {"zero_shot", "zero_shot_window"} <= set(tiny().evaluate)
    rows = [r for r in baselines.load("eegclip").rows if r.metric.startswith("zero_shot")]
    assert len(rows) == 4 and all(r.metric.startswith("zero_shot_window/") and r.definition == "per-window" for r in rows)


def test_retrieval_ranks_distinct_reports_and_counts_ties_against():
    from eegbench.evaluate.context import EvalContext
    from eegbench.evaluate.eegclip import RetrievalArgs, retrieval

    class Data:
        table = pd.DataFrame({"report_path": ["a", "a", "b", "c"], "text": ["x", "x", "y", "z"],
                              "subject": ["s0", "s0", "s1", "s2"]})
        recording = np.array([0, 0, 1, 2, 3])
        recording_units = Recordings.recording_units

    class Stage:
        def embed_text(self, model, texts):
            return np.ones((len(texts), 4))  # every report ties with every other
    ctx = EvalContext(Data(), np.arange(5), None, 0, stage=Stage())
    out = retrieval({"embeddings": np.random.default_rng(0).normal(size=(5, 4))}, ctx, RetrievalArgs(ks=[1, 3]))["parts"]
    assert out["recall@1"]["chance"] == pytest.approx(1 / 3) and out["recall@1"]["per_trial"].sum() == 0
    assert out["recall@3"]["per_trial"].tolist() == [1.0] * 4


def test_contrastive_loss_counts_windows_of_one_report_as_positives():
    pair = torch.tensor([0, 0, 1])
    perfect = torch.tensor([[9.0, 9.0, -9.0], [9.0, 9.0, -9.0], [-9.0, -9.0, 9.0]])
    assert contrastive_loss(perfect, pair) < 1e-3
    wrong = torch.tensor([[-9.0, -9.0, 9.0], [-9.0, -9.0, 9.0], [9.0, 9.0, -9.0]])
    assert contrastive_loss(wrong, pair) > 10
    uniform = torch.zeros(3, 3)  # each row: positives hold 2/3 (or 1/3) of the mass
    expected = (2 * np.log(3 / 2) + np.log(3)) / 3
    assert contrastive_loss(uniform, pair).item() == pytest.approx(expected, rel=1e-5)


def test_shuffled_pairing_permutes_reports_within_each_split(cache_dir):
    cfg = tiny("shuffled-pairs")
    data = registry.datasets.get("tuab")(cfg.dataset, cache_dir).load()
    stage = registry.stages.get("contrastive")("align", cfg.stages["align"], cfg.seed)
    texts, source, split, group = stage._sources(data)
    assert texts == list(data.table["text"]) and np.array_equal(source, data.recording)
    pair = stage._pairs(split)
    assert (split[pair] == split).all() and (pair != np.arange(len(pair))).mean() > 0.5
    assert np.array_equal(registry.stages.get("contrastive")("align", tiny().stages["align"], 0)._pairs(split),
                          np.arange(len(pair)))


def test_captions_pair_each_trial_with_its_stimulus_and_the_trials_of_one_image(cache_dir):
    """``texts: captions`` (ImageNet-EEG): one text per stimulus image, shared by that image's trials."""
    world = {"classes": 3, "images_per_class": 12, "subjects": 1, "image_size": 16}  # the dreamdiffusion tests' tiny world
    cfg = config.resolve("dreamdiffusion", variant="eegclip", scale="ci", overrides={"dataset.world": world})
    data = registry.datasets.get("imagenet-eeg")(cfg.dataset, cache_dir).load()
    stage = registry.stages.get("contrastive")("align", cfg.stages["align"], cfg.seed)
    assert set(stage.requires) == {"eeg", "splits", "captions"}
    texts, source, split, group = stage._sources(data)
    assert len(texts) == len(np.unique(data.image)) and np.array_equal(group, np.arange(len(texts)))
    assert [texts[s] for s in source] == data.captions_of(np.arange(len(data.eeg)))
    for name, trials in data.splits.items():
        assert (split[source[trials]] == name).all()


def test_label_lines_and_skipped_files_reach_every_output(cache_dir, tmp_path):
    world = ensure(TUABSpec(**tiny().dataset["world"]), cache_dir)
    real = tmp_path / "tuab"
    shutil.copytree(world, real, ignore=shutil.ignore_patterns("world.json", "*_date.txt"))
    bad = sorted(real.rglob("*.edf"))[0]
    bad.write_bytes(bad.read_bytes()[:4000])
    cfg = tiny("label-lines", **{"evaluate": ["zero_shot"], "evaluation_args.baselines": None,
                                 "evaluation_args.zero_shot_window": None,
                                 "evaluation_args.few_shot": None},
               **{"dataset.root": str(real), "dataset.reports": str(real / "reports"), "dataset.on_bad_file": "skip"})
    outcome = execute(cfg, out=tmp_path / "runs", cache_dir=cache_dir)
    assert all("label-leaking" in m["warning"] for m in outcome.metrics["metrics"])
    assert [s["path"] for s in outcome.metrics["skipped"]] == [str(bad.relative_to(real))]
    assert f"skipped {bad.relative_to(real)}: truncated EDF" in (outcome.run_dir / "log.txt").read_text()


def test_cli_rejects_a_folder_that_is_not_tuab(monkeypatch, capsys, tmp_path):
    (tmp_path / "data").mkdir()
    code, _, err = invoke(monkeypatch, capsys, "run", "--suite", "eegclip", "--scale", "ci",
                          "--data-root", str(tmp_path / "data"), "--out", str(tmp_path / "runs"))
    assert code == 2 and "not a TUAB tree; expected" in err and "v3.0.1/edf/train" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()


def test_cli_names_the_missing_text_encoder_file(monkeypatch, capsys, tmp_path):
    from eegbench.models.pretrained.text import default_folder

    broken = tmp_path / "bert"
    shutil.copytree(default_folder(), broken, ignore=shutil.ignore_patterns("model.safetensors"))
    code, _, err = invoke(monkeypatch, capsys, "run", "--suite", "eegclip", "--scale", "ci", "--text-weights", str(broken),
                          "--out", str(tmp_path / "runs"))
    assert code == 2 and f"{broken / 'model.safetensors'}: file not found (weights)" in err
    assert not (tmp_path / "runs").exists()


def test_paper_scale_names_every_missing_input(cache_dir, tmp_path):
    with pytest.raises(UserError) as info:
        execute(config.resolve("eegclip", scale="paper"), out=tmp_path, cache_dir=cache_dir)
    assert "dataset.root (--data-root" in str(info.value) and "models.text (--text-weights" in str(info.value)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("overrides, message", [
    ({"evaluation_args.zero_shot.promts": {}}, r"evaluation_args\.zero_shot\.promts: unknown key; did you mean 'prompts'"),
    ({"evaluation_args.zero_shot.prompts": {"handedness": [["a"], ["b"]]}}, r"unknown task\(s\) handedness"),
    ({"evaluation_args.zero_shot.prompts": {"age": [["a"]]}}, r"age: give two non-empty prompt lists"),
    ({"evaluation_args.retrieval_k": {"ks": [1]}}, r"evaluation_args\.retrieval_k: retrieval_k is not in evaluate"),
    ({"dataset.recipe.windw": 100}, r"dataset\.recipe\.windw: unknown key; did you mean 'window'"),
    ({"dataset.on_bad_file": "ignore"}, r"dataset\.on_bad_file: .*'fail' or 'skip'"),
])
def test_config_errors_name_the_key(overrides, message):
    with pytest.raises(UserError, match=message):
        tiny(**overrides)


@pytest.mark.slow
def test_tuned_text_encoder_and_authors_loss_train(cache_dir, tmp_path):
    cfg = tiny(**{"stages.align.loss": "authors", "stages.align.text_lr_ratio": 1e-3, "stages.align.epochs": 1,
                  "evaluate": ["zero_shot", "retrieval"], "evaluation_args.baselines": None,
                  "evaluation_args.zero_shot_window": None,
                  "evaluation_args.few_shot": None})
    outcome = execute(cfg, out=tmp_path, cache_dir=cache_dir)
    from safetensors.torch import load_file

    from eegbench.models.pretrained.text import default_folder

    weights = load_file(outcome.run_dir / "checkpoints" / "align.safetensors")
    tuned = {k: v for k, v in weights.items() if k.startswith("text_encoder.model.")}
    original = load_file(default_folder() / "model.safetensors")
    assert tuned and any(not torch.equal(v, original[k.removeprefix("text_encoder.model.")]) for k, v in tuned.items())
    assert all(np.isfinite(m["value"]) for m in outcome.metrics["metrics"])
