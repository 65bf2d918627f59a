"""The multitask and thought2text suites' mechanics on a tiny world with tiny foundation models (no quality checks)."""

import json
import os
import shutil

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from eegbench import config  # noqa: E402
from eegbench.errors import UserError  # noqa: E402
from eegbench.runner import execute  # noqa: E402
from eegbench.synthetic.foundation import FOUNDATION_VERSION  # noqa: E402
from eegbench.track.store import RUNNING, Run  # noqa: E402

pytestmark = pytest.mark.slow

WORLD = {"classes": 3, "images_per_class": 12, "subjects": 1, "image_size": 16}
TINY = {
    "dataset.world": WORLD,
    "models.synthetic_recipe": "tiny",
    "stages.msm.encoder_args": {"embed_dim": 16, "depth": 1, "heads": 2, "decoder_embed_dim": 16,
                                "decoder_depth": 1, "decoder_heads": 2},
    "stages.msm.epochs": 1, "stages.msm.batch_size": 8,
    "stages.joint.epochs": 2, "stages.joint.batch_size": 8,
    "stages.joint.samples": 2, "stages.joint.steps": 2, "stages.joint.text.max_new_tokens": 6,
}
TINY_T2T = {
    "dataset.world": WORLD, "models.synthetic_recipe": "tiny",
    "stages.encode.embed_dim": 64, "stages.encode.epochs": 2, "stages.encode.batch_size": 8,
    "stages.describe.clip_epochs": 2, "stages.describe.eeg_epochs": 2, "stages.describe.max_new_tokens": 6,
}
TEXT_METRICS = ["text_bleu/bleu1", "text_bleu/bleu2", "text_bleu/bleu3", "text_bleu/bleu4", "text_rouge/rouge1",
                "text_rouge/rouge2", "text_rouge/rougeL", "text_similarity", "clipscore_stimulus"]


def tiny(variant="default", **overrides):
    return config.resolve("multitask", variant=variant, scale="ci", overrides={**TINY, **overrides})


def metric(outcome, name):
    return next(m for m in outcome.metrics["metrics"] if m["metric"] == name)


@pytest.fixture(scope="module")
def finished(cache_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return execute(tiny(), out=out, cache_dir=cache_dir, wandb="offline")


def test_text_and_image_metrics_stand_beside_their_controls(finished):
    names = [m["metric"] for m in finished.metrics["metrics"]]
    assert names == ["image_nway_top1", *TEXT_METRICS, "clipscore_generated", "image_text_consistency"]
    for name in TEXT_METRICS:
        m = metric(finished, name)
        assert [c["name"] for c in m["controls"]] == ["shuffled_eeg", "noise_eeg", "prior_only"], name
        assert m["n"] == 6 and m["chance_ci"][0] <= m["chance"] <= m["chance_ci"][1]
        for c in m["controls"]:
            assert c["gap"] == pytest.approx(m["value"] - c["value"]) and len(c["gap_ci"]) == 2
    for name in ("image_nway_top1", "clipscore_generated", "image_text_consistency"):  # the prior-only model makes no images
        assert [c["name"] for c in metric(finished, name)["controls"]] == ["shuffled_eeg", "noise_eeg"]
    lines = [json.loads(line) for line in (finished.run_dir / "samples/test_text.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and set(lines[0]) == {"trial", "reference", "real", "shuffled_eeg", "noise_eeg", "prior_only"}
    tables = list(finished.run_dir.glob("wandb/offline-run-*/files/media/table/samples/test_text_*.table.json"))
    assert len(tables) == 1 and len(json.loads(tables[0].read_text())["data"]) == 6  # the texts reach the W&B mirror


def test_checkpoints_hold_the_trained_heads_not_the_frozen_models(finished):
    run = Run(finished.run_dir)
    tensors, meta = run.load_checkpoint("joint")
    assert {k.split(".")[0] for k in tensors} == {"encoder", "image", "text", "text_align", "align_scale"}
    assert {k.split(".")[1] for k in tensors if k.startswith("text.")} == {"project"}  # the LM is not saved
    assert meta["selected_on"] == "val" and {"val_text", "val_eeg_text", "val_diffusion"} <= set(meta["history"][0])
    prior, prior_meta = run.load_checkpoint("joint-prior")
    assert {k.split(".")[0] for k in prior} == {"project"} and prior_meta["selected_on"] == "val"


def test_a_crash_mid_evaluation_keeps_the_scores_already_made(finished, cache_dir, tmp_path, monkeypatch):
    from eegbench.evaluate import text

    def broken(*args, **kwargs):
        raise RuntimeError("CLIP died")

    monkeypatch.setattr(text, "clip_image_features", broken)
    with pytest.raises(RuntimeError, match="CLIP died"):
        execute(tiny(), out=tmp_path, cache_dir=cache_dir)
    run = Run(next(tmp_path.glob("multitask/default/*")))
    saved = run.read_json("metrics.json")
    assert run.status == RUNNING and saved["status"] == RUNNING
    assert [m["metric"] for m in saved["metrics"]] == ["image_nway_top1", *TEXT_METRICS[:-1]]
    monkeypatch.undo()
    again = execute(tiny(), out=tmp_path, cache_dir=cache_dir)  # resumes from the trained checkpoints
    assert (again.run_dir / "log.txt").read_text().count("joint: selected epoch") == 1  # trained once
    assert again.metrics["metrics"] == finished.metrics["metrics"]


def test_consistency_variant_trains_the_text_head_on_captions_of_generated_images(cache_dir, tmp_path):
    from eegbench import registry

    cfg = tiny("consistency", **{"stages.joint.consistency_every": 1, "controls": []})
    assert "captioner" in registry.stages.get("joint")("joint", cfg.stages["joint"], 0).needs
    outcome = execute(cfg, out=tmp_path, cache_dir=cache_dir)
    captions = json.loads((outcome.run_dir / "samples/joint_consistency_epoch1.json").read_text())
    bank = json.loads((foundation_folder(cache_dir, "captioner") / "captions.json").read_text())
    train = registry.datasets.get("imagenet-eeg")(cfg.dataset, cache_dir).load().splits["train"]
    assert len(captions) == len(train) and set(captions) <= set(bank)  # one captioned image per train trial
    history = Run(outcome.run_dir).load_checkpoint("joint")[1]["history"]
    assert history[0]["train_consistency"] == 0 and history[1]["train_consistency"] > 0
    assert "val_consistency" not in history[1]  # trained on, never selected on


def test_text_only_retrieval_head_needs_no_stable_diffusion(cache_dir, tmp_path):
    from eegbench import registry

    cfg = tiny("text-only", **{"stages.joint.text.kind": "retrieval", "controls": ["shuffled_eeg"]})
    stage = registry.stages.get("joint")("joint", cfg.stages["joint"], 0)
    assert stage.needs == ("clip",) and stage.produces == ("text",)
    outcome = execute(cfg, out=tmp_path, cache_dir=cache_dir)
    assert [m["metric"] for m in outcome.metrics["metrics"]] == TEXT_METRICS
    data = registry.datasets.get("imagenet-eeg")(cfg.dataset, cache_dir).load()
    train_captions = set(data.captions_of(data.splits["train"]))
    lines = [json.loads(line) for line in (outcome.run_dir / "samples/test_text.jsonl").read_text().splitlines()]
    assert all(line["real"] in train_captions for line in lines)  # retrieval outputs a training caption


def test_the_prior_only_control_needs_a_text_head():
    with pytest.raises(UserError, match=r"controls\.0: prior_only retrains the last stage's text head, but 'joint' "
                                        r"predicts images; remove prior_only"):
        config.resolve("multitask", variant="image-only", scale="ci", overrides={"controls": ["prior_only"]})


def test_thought2text_projector_trains_on_clip_then_eeg(cache_dir, tmp_path):
    cfg = config.resolve("thought2text", scale="ci", overrides=TINY_T2T)
    outcome = execute(cfg, out=tmp_path, cache_dir=cache_dir)
    names = [m["metric"] for m in outcome.metrics["metrics"]]
    assert names == TEXT_METRICS + ["nway_top1"]
    tensors, meta = Run(outcome.run_dir).load_checkpoint("describe")
    assert {k.split(".")[0] for k in tensors} == {"project"} and set(meta) >= {"clip", "history", "selected_on"}
    log = (outcome.run_dir / "log.txt").read_text()
    assert "describe-clip: selected epoch" in log and "describe: selected epoch" in log
    lines = [json.loads(line) for line in (outcome.run_dir / "samples/test_text.jsonl").read_text().splitlines()]
    assert {"real", "shuffled_eeg", "noise_eeg", "prior_only"} <= set(lines[0])


def test_thought2text_encoder_must_have_the_clip_width(cache_dir, tmp_path):
    cfg = config.resolve("thought2text", scale="ci", overrides={**TINY_T2T, "stages.encode.embed_dim": 32})
    with pytest.raises(UserError, match=r"stages\.encode\.embed_dim: 32, .* width 64; set embed_dim: 64"):
        execute(cfg, out=tmp_path, cache_dir=cache_dir)
    assert not any(tmp_path.iterdir())


def foundation_folder(cache_dir, model):
    return next((cache_dir / "foundation").glob(f"images-*-tiny-{FOUNDATION_VERSION}")) / model


@pytest.mark.parametrize("model, remove, named", [
    ("lm", ["tokenizer.json"], "tokenizer.json"),
    ("lm", ["model.safetensors"], "model.safetensors"),
    ("captioner", ["captions.json"], "captions.json"),
    ("captioner", ["captioner.json"], "config.json"),
])
def test_a_damaged_lm_or_captioner_folder_names_the_missing_file(finished, cache_dir, tmp_path, model, remove, named):
    broken = tmp_path / model
    shutil.copytree(foundation_folder(cache_dir, model), broken)
    for name in remove:
        (broken / name).unlink()
    with pytest.raises(UserError) as info:
        execute(config.resolve("multitask", scale="ci", overrides=TINY, weights={model: str(broken)}),
                out=tmp_path / "runs", cache_dir=cache_dir)
    message = str(info.value)
    assert "\n" not in message and str(broken / named) in message
    assert not (tmp_path / "runs").exists()


def test_a_real_blip_folder_is_checked_file_by_file(tmp_path):
    from eegbench.models.pretrained.captioner import check_captioner_folder

    folder = tmp_path / "blip"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "blip"}))
    with pytest.raises(UserError, match=r"preprocessor_config\.json: file not found \(image processor\)"):
        check_captioner_folder(folder)
    for name in ("preprocessor_config.json", "model.safetensors", "vocab.txt"):
        (folder / name).write_text("{}")
    assert check_captioner_folder(folder) == "blip"
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(UserError, match=r'model_type is not "blip"'):
        check_captioner_folder(folder)


def test_captions_naming_unknown_images_or_missing_some_fail_before_training(finished, cache_dir, tmp_path):
    from eegbench.synthetic.imagenet_eeg import WorldSpec

    world = cache_dir / "worlds" / f"imagenet-eeg-{WorldSpec(**tiny().dataset['world']).key()}"
    captions = json.loads((world / "captions.json").read_text())
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**captions, "n00000000_1": "a ghost"}))
    with pytest.raises(UserError, match=rf"{bad}: 1 caption\(s\) name images not in eeg_5_95_std.pth \(first: n00000000_1\)"):
        execute(tiny(**{"dataset.captions": str(bad)}), out=tmp_path / "runs", cache_dir=cache_dir)
    first = sorted(captions)[0]
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({k: v for k, v in captions.items() if k != first}))
    with pytest.raises(UserError, match=rf"{partial}: no caption for 1 image\(s\) of this run \(first: {first}\)"):
        execute(tiny(**{"dataset.captions": str(partial)}), out=tmp_path / "runs", cache_dir=cache_dir)
    assert not (tmp_path / "runs").exists()


def test_published_thought2text_numbers_are_reported_not_reproduced():
    from eegbench.track import baselines

    published = baselines.load("thought2text")
    assert published.tag == "data"
    rows = {(r.variant, r.metric): r.value for r in published.rows}
    assert rows[("default", "text_bleu/bleu1")] == 0.260 and rows[("eeg-only", "text_bleu/bleu1")] == 0.233
    assert np.isfinite(list(rows.values())).all()
