"""The dreamdiffusion suite's mechanics on a tiny world with tiny foundation models (no quality checks)."""

import json
import os
import re
import shutil

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from eegbench import config  # noqa: E402
from eegbench.errors import UserError  # noqa: E402
from eegbench.runner import execute  # noqa: E402
from eegbench.synthetic.foundation import FOUNDATION_VERSION  # noqa: E402
from eegbench.track.store import Index, Run  # noqa: E402

pytestmark = pytest.mark.slow

IMAGE_METRICS = ["image_nway_top1", "image_nway_top1_max", "image_nway_top1_oracle", "image_nway_top1_label",
                 "image_ssim_2way", "image_pcc_2way"]
TINY = {
    "dataset.world": {"classes": 3, "images_per_class": 12, "subjects": 1, "image_size": 16},
    "models.synthetic_recipe": "tiny",
    "stages.msm.encoder_args": {"embed_dim": 16, "depth": 1, "heads": 2, "decoder_embed_dim": 16,
                                "decoder_depth": 1, "decoder_heads": 2},
    "stages.msm.epochs": 1, "stages.msm.batch_size": 8,
    "stages.generate.epochs": 3, "stages.generate.batch_size": 8,
    "stages.generate.samples": 2, "stages.generate.steps": 2,
}


def tiny(variant: str = "default", **overrides):
    return config.resolve("dreamdiffusion", variant=variant, scale="ci", overrides={**TINY, **overrides})


def tiny_world(cache_dir):
    """The folder of the tiny synthetic world the TINY runs use."""
    from eegbench.synthetic.imagenet_eeg import WorldSpec

    return cache_dir / "worlds" / f"imagenet-eeg-{WorldSpec(**tiny().dataset['world']).key()}"


@pytest.fixture(scope="module")
def finished(cache_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return execute(tiny(), out=out, cache_dir=cache_dir, wandb="offline"), out


def test_every_image_metric_is_scored_beside_both_controls_and_the_probe(finished):
    outcome, _ = finished
    metrics = outcome.metrics["metrics"]
    assert [m["metric"] for m in metrics] == IMAGE_METRICS + ["probe:block_confound"]
    for m in metrics[:-1]:
        assert m["n"] == 6 and [c["name"] for c in m["controls"]] == ["shuffled_eeg", "noise_eeg"]
        assert 0 <= m["value"] <= 1 and m["note"]
    nway, best_set, best = metrics[0], metrics[1], metrics[2]
    assert nway["chance"] == pytest.approx(1 / 3) and "3-way" in nway["note"]
    assert best["chance"] > nway["chance"] and "oracle" in best["note"]  # best of 2 samples beats chance more often
    assert best["value"] >= nway["value"]
    assert nway["chance"] < best_set["chance"] < best["chance"] and best_set["value"] >= nway["value"]
    assert metrics[4]["chance"] == 0.5 and metrics[5]["chance"] == 0.5 and metrics[4]["definition"] == "skimage"


def test_run_folder_holds_grids_plots_and_small_checkpoints(finished):
    outcome, _ = finished
    names = {p.relative_to(outcome.run_dir).as_posix() for p in outcome.run_dir.rglob("*")}
    assert {"samples/test_real.png", "samples/test_shuffled_eeg.png", "samples/test_noise_eeg.png",
            "samples/msm_reconstruction.png", "checkpoints/msm.safetensors", "checkpoints/generate.safetensors",
            "predictions/test.npz"} <= names
    assert not any(n.endswith(".resume.safetensors") for n in names)
    tensors, meta = Run(outcome.run_dir).load_checkpoint("generate")
    assert meta["selected_on"] == "val" and len(meta["history"]) == 3
    assert {k.split(".")[0] for k in tensors} == {"encoder", "image"}  # the encoder and the image head
    assert {k.split(".")[1] for k in tensors if k.startswith("image.")} == {"conditioner", "unet_params"}  # frozen SD not saved
    assert all("attn2" in k or "norm2" in k for k in tensors if k.startswith("image.unet_params"))
    media = {p.name.split("_")[0] for p in outcome.run_dir.glob("wandb/offline-run-*/files/media/images/samples/*.png")}
    assert media >= {"test", "msm"}  # the grids and the reconstruction plot reach the W&B mirror
    from PIL import Image

    with Image.open(outcome.run_dir / "samples/test_real.png") as grid:  # 3 rows (one per class) x (GT + 2 samples)
        assert grid.size == (3 * 64 + 3 * 4, 3 * 64 + 2 * 4)


def test_interrupted_training_resumes_to_the_same_metrics(finished, cache_dir, tmp_path, monkeypatch):
    outcome, _ = finished
    real_log = Run.log

    def dying_log(self, message):
        real_log(self, message)
        if message.startswith("generate: epoch 1 "):
            raise KeyboardInterrupt

    monkeypatch.setattr(Run, "log", dying_log)
    with pytest.raises(KeyboardInterrupt):
        execute(tiny(), out=tmp_path, cache_dir=cache_dir)
    monkeypatch.setattr(Run, "log", real_log)
    resumed = execute(tiny(), out=tmp_path, cache_dir=cache_dir)
    assert "generate: resuming after epoch 0" in (resumed.run_dir / "log.txt").read_text()
    assert resumed.metrics["metrics"] == outcome.metrics["metrics"]


@pytest.mark.parametrize("scheduler", ["plms", "ddim", "dpm", "euler"])
def test_every_scheduler_samples_the_same_images_twice(finished, scheduler):
    from eegbench import registry
    from eegbench.models.pretrained import Pretrained, resolve_folders

    outcome, _ = finished
    cfg = tiny(**{"stages.generate.scheduler": scheduler})
    dataset = registry.datasets.get("imagenet-eeg")(cfg.dataset, outcome.run_dir.parents[3])
    data = dataset.load()
    folders = resolve_folders(cfg, dataset.prepare, {"sd", "clip"}, outcome.run_dir.parents[3])
    stage = registry.stages.get("joint")("generate", cfg.stages["generate"], seed=0)
    model = stage.build(*data.eeg.shape[1:], Pretrained(folders, outcome.run_dir.parents[3]), data)
    eeg = data.eeg[data.splits["test"][:2]]
    first, second = stage.predict(model, eeg)["images"], stage.predict(model, eeg)["images"]
    assert first.shape == (2, 2, 3, 16, 16) and first.dtype == np.uint8
    assert np.array_equal(first, second)


def test_trained_on_noise_variant_never_sees_eeg(cache_dir, tmp_path):
    outcome = execute(tiny("trained-on-noise"), out=tmp_path, cache_dir=cache_dir)
    log = (outcome.run_dir / "log.txt").read_text()
    assert re.search(r"generate: training diffusion\+clip on \d+ trials \(noise\)", log), log
    assert outcome.metrics["config"]["stages"]["msm"]["train_on"] == "noise"


def test_unknown_scheduler_names_the_key():
    with pytest.raises(UserError, match=r"stages\.generate\.scheduler: .*'plms'"):
        tiny(**{"stages.generate.scheduler": "heun"})


def test_paper_scale_names_every_missing_input(cache_dir, tmp_path):
    cfg = config.resolve("dreamdiffusion", scale="paper")
    with pytest.raises(UserError) as info:
        execute(cfg, out=tmp_path, cache_dir=cache_dir)
    message = str(info.value)
    assert "\n" not in message
    for part in ("dataset.root (--data-root", "models.sd (--sd-weights", "models.clip (--clip-weights",
                 "models.judge (--judge-weights"):
        assert part in message
    assert not any(tmp_path.iterdir())


def test_real_data_without_weights_names_the_flags(finished, cache_dir, tmp_path):
    outcome, _ = finished
    world = tiny_world(cache_dir)
    real = tmp_path / "real"
    shutil.copytree(world, real, ignore=shutil.ignore_patterns("world.json"))  # the real format has no world.json
    cfg = config.resolve("dreamdiffusion", scale="ci", data_root=str(real), overrides=TINY)
    with pytest.raises(UserError, match=r"real data needs local pretrained weights; missing: models\.clip \(--clip-weights"):
        execute(cfg, out=tmp_path / "runs", cache_dir=cache_dir)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("model, remove, named", [
    ("sd", "unet/diffusion_pytorch_model.safetensors", "unet weights"),
    ("sd", "model_index.json", "model_index.json"),
    ("sd", "scheduler/scheduler_config.json", "scheduler"),
    ("clip", "open_clip_model.safetensors", "open_clip checkpoint"),
    ("judge", "config.json", "vit_h_14.pth"),
])
def test_a_damaged_weights_folder_names_the_missing_file(finished, cache_dir, tmp_path, model, remove, named):
    source = next((cache_dir / "foundation").glob(f"images-*-tiny-{FOUNDATION_VERSION}")) / model
    broken = tmp_path / model
    shutil.copytree(source, broken)
    (broken / remove).unlink()
    cfg = config.resolve("dreamdiffusion", scale="ci", weights={model: str(broken)}, overrides=TINY)
    with pytest.raises(UserError) as info:
        execute(cfg, out=tmp_path / "runs", cache_dir=cache_dir)
    assert str(broken / remove) in str(info.value) and named in str(info.value)
    assert not (tmp_path / "runs").exists()  # checked before the run folder exists


def test_missing_stimulus_images_stop_the_run_before_training(finished, cache_dir, tmp_path):
    world = tiny_world(cache_dir)
    real = tmp_path / "real"
    shutil.copytree(world, real, ignore=shutil.ignore_patterns("world.json"))
    victim = sorted((real / "images").rglob("*.JPEG"))[0]
    victim.unlink()
    foundation = next((cache_dir / "foundation").glob(f"images-*-tiny-{FOUNDATION_VERSION}"))
    cfg = config.resolve("dreamdiffusion", scale="ci", data_root=str(real), overrides=TINY,
                         weights={m: str(foundation / m) for m in ("sd", "clip", "judge")})
    with pytest.raises(UserError, match=re.escape(f"{victim}: stimulus image not found")):
        execute(cfg, out=tmp_path / "runs", cache_dir=cache_dir)
    assert not (tmp_path / "runs").exists()


def test_an_image_size_the_pipeline_cannot_make_stops_the_run_before_training(finished, cache_dir, tmp_path):
    cfg = tiny(**{"stages.generate.image_size": 12})
    with pytest.raises(UserError, match=r"stages\.generate\.image_size: 12 px .* multiple of 8"):
        execute(cfg, out=tmp_path, cache_dir=cache_dir)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("overrides, message", [
    ({"stages.generate": None}, r"evaluate\.0: image_nway_top1 scores images, but the last stage 'msm' predicts nothing"),
    ({"evaluate": ["nway_top1"]}, r"evaluate\.0: nway_top1 scores logits, but the last stage 'generate' predicts images"),
])
def test_evaluations_must_read_what_the_last_stage_predicts(overrides, message):
    with pytest.raises(UserError, match=message):
        tiny(**overrides)


def test_every_variant_runs_from_one_command(finished, cache_dir, tmp_path, monkeypatch, capsys):
    from test_cli import invoke

    args = ["run", "--suite", "dreamdiffusion", "--scale", "ci", "--variant", "all", "--out", str(tmp_path),
            "--no-wandb"] + [a for key, value in TINY.items() for a in ("--set", f"{key}={json.dumps(value)}")]
    code, out, _ = invoke(monkeypatch, capsys, *args)
    assert code == 0 and "the block_confound probe decodes above chance" in out  # the block-drift variant warns
    variants = {r["variant"] for r in Index(tmp_path / "index.sqlite").runs("dreamdiffusion")}
    assert variants == set(config.variants("dreamdiffusion"))


def test_published_numbers_name_real_variants_and_metrics(tmp_path):
    from eegbench.track import baselines

    published = baselines.load("dreamdiffusion")
    assert published.tag == "reported" and "Table 1" in published.source
    assert {(r.variant, r.value) for r in published.rows} >= {("default", 0.458), ("mask-0.25", 0.197)}
    bad = tmp_path / "dreamdiffusion.yaml"
    bad.write_text(baselines.baselines_dir().joinpath("dreamdiffusion.yaml").read_text().replace("mask-0.25", "mask-0.3"))
    with pytest.raises(UserError, match=r"rows\.5\.variant 'mask-0\.3' is not a variant of dreamdiffusion"):
        baselines.load("dreamdiffusion", folder=tmp_path)


@pytest.mark.parametrize("variant, stages, encoder", [
    ("deep4", ["generate"], "Deep4Encoder, 1 token(s) of width 128"),
    ("eegclip", ["align", "generate"], "EEGCLIPEncoder, 1 token(s) of width 64"),
])
def test_other_encoders_condition_stable_diffusion(cache_dir, tmp_path, variant, stages, encoder):
    """Deep4 and EEG-CLIP's EEG side (trained on the stimuli's captions first) give SD one pooled token."""
    outcome = execute(tiny(variant, **{"stages.align.epochs": 1}), out=tmp_path, cache_dir=cache_dir)
    assert list(outcome.metrics["config"]["stages"]) == stages
    assert "generate: training diffusion+clip on" in (log := (outcome.run_dir / "log.txt").read_text()) and encoder in log
    tensors, _ = Run(outcome.run_dir).load_checkpoint("generate")
    assert tuple(tensors["image.conditioner.seq.0.weight"].shape) == (1, 1, 1)  # one token in
    if variant == "eegclip":  # the EEG side a contrastive stage aligned with captions, trained on by generate
        aligned, _ = Run(outcome.run_dir).load_checkpoint("align")
        assert {k for k in aligned if k.startswith(("encoder.", "eeg_head."))} == \
            {k.removeprefix("encoder.encoder.") for k in tensors if k.startswith("encoder.")}  # joint > pooled > EEG side
    assert [m["metric"] for m in outcome.metrics["metrics"]][:1] == ["image_nway_top1"]
    if variant == "eegclip":  # init_from: a fresh Deep4 starts from the one this run fine-tuned under SD
        shape = outcome.metrics["config"]["stages"]["align"]["encoder_args"]  # the same Deep4 as EEG-CLIP's
        started = execute(tiny("deep4", **{"stages.generate.init_from": str(outcome.run_dir),
                                           "stages.generate.encoder_args": shape}), out=tmp_path, cache_dir=cache_dir)
        assert (f"generate: encoder initialised from {outcome.run_dir} (stage 'generate', weights under "
                "'encoder.encoder.encoder.')") in (started.run_dir / "log.txt").read_text()
