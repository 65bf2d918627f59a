"""eegbench compare: per-trial and per-seed pairing, the test each uses, effect sizes and verdicts."""

import numpy as np
import pytest

from eegbench.errors import UserError
from eegbench.track import compare
from eegbench.track.store import Index, Run


def make_run(root, name, per_trial, seed=0, variant="v", dataset=None, index=None):
    path = root / name
    run = Run(path)
    run.save_predictions("test", {"image_nway_top1/real": per_trial, "image_nway_top1/shuffled_eeg": per_trial * 0})
    summary = {"run_id": name, "suite": "s", "variant": variant, "scale": "ci", "seed": seed, "path": str(path),
               "config": {"dataset": dataset or {"name": "imagenet-eeg"}, "seed": seed},
               "metrics": [{"metric": "image_nway_top1", "split": "test", "n": len(per_trial), "value": float(per_trial.mean()),
                            "ci": [0, 1], "chance": 0.1, "controls": []}]}
    run.write_json("metrics.json", summary)
    if index is not None:
        index.record(summary)
    return path


def test_many_trials_use_wilcoxon_and_name_the_winner(tmp_path):
    rng = np.random.default_rng(0)
    a = make_run(tmp_path, "a", (rng.random(119) < 0.6).astype(float))
    b = make_run(tmp_path, "b", (rng.random(119) < 0.3).astype(float))
    paired, units = compare.pairs(compare.side(str(a), None), compare.side(str(b), None))
    result = compare.paired_test(*paired["image_nway_top1"])
    assert units == {"image_nway_top1": "trials"} and result["test"] == "Wilcoxon signed-rank" and result["n"] == 119
    assert result["p"] < 0.01 and result["difference"] > 0.15 and 0 < result["effect"] <= 1
    line = compare.verdict("image_nway_top1", result, "A", "B", units["image_nway_top1"])
    assert line.startswith("image_nway_top1: A beats B: +") and "119 trials" in line


def test_few_pairs_use_a_permutation_test_and_a_null_result_says_so(tmp_path):
    x = np.array([0.5, 0.52, 0.49, 0.51, 0.5, 0.48, 0.53, 0.5, 0.5, 0.51])
    result = compare.paired_test(x, x[::-1])
    assert result["test"] == "paired permutation" and result["p"] > 0.05
    assert "no significant difference between A and B" in compare.verdict("m", result, "A", "B", "seeds")


def test_variants_pair_by_seed_through_the_index(tmp_path):
    index = Index(tmp_path / "index.sqlite")
    for seed in (0, 1, 2, 3, 4, 5):
        make_run(tmp_path, f"good{seed}", np.full(10, 0.6 + 0.01 * seed), seed=seed, variant="good", index=index)
        make_run(tmp_path, f"bad{seed}", np.full(10, 0.3 + 0.02 * seed), seed=seed, variant="bad", index=index)
    paired, units = compare.pairs(compare.side("s/good", index), compare.side("s/bad", index))
    result = compare.paired_test(*paired["image_nway_top1"])
    assert units["image_nway_top1"] == "seeds" and result["n"] == 6 and result["test"] == "paired permutation"
    assert result["p"] < 0.05  # six seeds all in one direction: the smallest two-sided p is 2/64
    assert compare.side("good3", index)["by"] == "trial"  # a run id


def test_runs_of_different_data_or_mixed_sides_are_refused(tmp_path):
    index = Index(tmp_path / "index.sqlite")
    a = make_run(tmp_path, "a", np.ones(5), index=index)
    b = make_run(tmp_path, "b", np.ones(5), dataset={"name": "imagenet-eeg", "subject": 4})
    with pytest.raises(UserError, match="scored different test trials"):
        compare.pairs(compare.side(str(a), None), compare.side(str(b), None))
    with pytest.raises(UserError, match="not one of each"):
        compare.pairs(compare.side(str(a), None), compare.side("s/v", index))
    with pytest.raises(UserError, match="nowhere: not a run folder"):
        compare.side("nowhere", index)


def test_windows_of_one_recording_are_paired_per_recording(tmp_path):
    groups = np.repeat([3, 1, 2], 4)  # 3 recordings x 4 windows, as the runner saves <metric>/groups
    runs = []
    for name, per_window in (("a", np.tile([1.0, 1.0, 0.0, 0.0], 3)), ("b", np.zeros(12))):
        path = make_run(tmp_path, name, per_window)
        run = Run(path)
        run.save_predictions("test", {"zero_shot_window/age/real": per_window, "zero_shot_window/age/groups": groups,
                                      "image_nway_top1/real": per_window})
        summary = run.read_json("metrics.json")
        summary["metrics"].append({**summary["metrics"][0], "metric": "zero_shot_window/age",
                                   "unit": "3 recordings (the 3 subjects held fixed)"})
        run.write_json("metrics.json", summary)
        runs.append(compare.side(str(path), None))
    paired, units = compare.pairs(*runs)
    assert paired["zero_shot_window/age"][0].tolist() == [0.5, 0.5, 0.5]  # recordings 1, 2, 3: their windows' mean
    assert len(paired["image_nway_top1"][0]) == 12  # no groups: per trial
    assert units == {"zero_shot_window/age": "recordings", "image_nway_top1": "trials"}  # what the verdict counts


def test_the_cli_prints_a_table_and_one_verdict_per_metric(tmp_path, monkeypatch, capsys):
    from test_cli import invoke

    rng = np.random.default_rng(1)
    a = make_run(tmp_path, "a", (rng.random(60) < 0.7).astype(float))
    b = make_run(tmp_path, "b", (rng.random(60) < 0.2).astype(float))
    code, out, _ = invoke(monkeypatch, capsys, "compare", str(a), str(b), "--out", str(tmp_path / "none"))
    assert code == 0 and "image_nway_top1: A beats B" in out and "Wilcoxon" in out
    code, _, err = invoke(monkeypatch, capsys, "compare", str(a), str(b), "--metric", "bleu", "--out", str(tmp_path))
    assert code == 2 and "--metric bleu: not scored by both sides" in err


def test_corpus_bleu_of_two_runs_is_recomputed_from_their_per_trial_counts(tmp_path):
    from eegbench.evaluate.report import metric_record
    from eegbench.evaluate.text_definitions import bleu

    refs = [f"a {c} {s} on a grey background" for c in ("red", "blue", "green") for s in ("circle", "star")] * 10
    good = bleu("sacrebleu", refs, refs)["bleu2"]
    poor = bleu("sacrebleu", [r.replace("on a", "near the") for r in refs[:30]] + ["a shape"] * 30, refs)["bleu2"]
    sides = []
    for name, scored in (("a", good), ("b", poor)):
        path = tmp_path / name
        run = Run(path)
        run.save_predictions("test", {"text_bleu/bleu2/real": scored["per_trial"]})
        record = metric_record("text_bleu/bleu2", "test", scored | {"chance": 0.0}, {}, seed=0)
        run.write_json("metrics.json", {"run_id": name, "suite": "s", "variant": "v", "scale": "ci", "seed": 0,
                                        "config": {"dataset": {"name": "imagenet-eeg"}}, "metrics": [record]})
        sides.append((compare.side(str(path), None), record["value"]))
    paired, units = compare.pairs(sides[0][0], sides[1][0])
    result = compare.paired_test(*paired["text_bleu/bleu2"])
    assert result["test"] == "paired permutation (corpus)" and result["n"] == 60
    assert result["difference"] == pytest.approx(sides[0][1] - sides[1][1]) and result["difference"] > 0.3
    assert result["p"] < 0.01 and result["ci"][0] > 0
    assert compare.verdict("text_bleu/bleu2", result, "A", "B", units["text_bleu/bleu2"]).startswith("text_bleu/bleu2: A beats B")
