"""Foundation models of a synthetic world: real loading paths, cache reuse, clear errors (no quality checks)."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from eegbench.errors import UserError  # noqa: E402
from eegbench.models.pretrained.captioner import load_captioner  # noqa: E402
from eegbench.models.pretrained.clip import clip_image_embeddings, load_clip  # noqa: E402
from eegbench.models.pretrained.judge import load_judge  # noqa: E402
from eegbench.synthetic import foundation  # noqa: E402
from eegbench.synthetic.imagenet_eeg import WorldSpec, ensure  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A 3-class 16 px world and its foundation models trained with the ``tiny`` recipe."""
    cache = tmp_path_factory.mktemp("foundation-cache")
    world = ensure(WorldSpec(classes=3, images_per_class=6, subjects=1, image_size=16), cache)
    calls = []
    folders = foundation.ensure_foundation(world, cache, scale="tiny", progress=lambda d, t: calls.append((d, t)))
    return world, cache, folders, calls


def one_line_error(fn, *names: str) -> str:
    with pytest.raises(UserError) as info:
        fn()
    message = str(info.value)
    assert "\n" not in message and all(n in message for n in names), message
    return message


def test_imports_do_not_pull_in_torch():
    code = ("import sys, eegbench.synthetic.foundation, eegbench.models.pretrained.judge; "
            "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules and 'open_clip' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_layout_markers_and_progress(built):
    world, cache, folders, calls = built
    spec = WorldSpec(classes=3, images_per_class=6, subjects=1, image_size=16)
    root = cache / "foundation" / f"images-{spec.image_key()}-tiny-{foundation.FOUNDATION_VERSION}"
    assert folders == {"sd": root / "sd", "clip": root / "clip", "judge": root / "judge"}
    for name, folder in folders.items():
        info = json.loads((folder / foundation.DONE).read_text())
        assert info["model"] == name and info["world"] == world.name and info["seconds"] >= 0
    assert not list(root.glob(".tmp-*"))
    tiny = foundation.RECIPES["tiny"]
    total = tiny.judge_steps + tiny.clip_steps + tiny.vae_steps + tiny.unet_steps
    assert calls[-1] == (total, total) and len(calls) == total


def test_worlds_differing_only_in_eeg_share_images_and_foundation_models(built):
    world, cache, folders, _ = built
    other = ensure(WorldSpec(classes=3, images_per_class=6, subjects=2, snr=0.5, block_drift=1.0, image_size=16), cache)
    assert other != world
    for path in sorted((world / "images").rglob("*.JPEG")) + [world / "captions.json"]:
        assert (other / path.relative_to(world)).read_bytes() == path.read_bytes(), path
    for split in ("train", "val", "test"):  # the same images in each split, whatever the subject count
        assert ([p.name for p in foundation.world_images(world, (split,)).paths]
                == [p.name for p in foundation.world_images(other, (split,)).paths])
    assert foundation.ensure_foundation(other, cache, scale="tiny") == folders


def test_text_to_image_loads_with_stable_diffusion_pipeline(built):
    from diffusers import PNDMScheduler, StableDiffusionPipeline
    from transformers import CLIPTokenizer

    pipe = StableDiffusionPipeline.from_pretrained(built[2]["sd"], safety_checker=None, requires_safety_checker=False)
    assert isinstance(pipe.tokenizer, CLIPTokenizer)
    assert pipe.tokenizer.model_max_length == foundation.CONTEXT_LENGTH
    assert pipe.text_encoder.config.hidden_size == pipe.unet.config.cross_attention_dim == foundation.TEXT_WIDTH
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(0)
    out = pipe(prompt=["a red circle in the centre"], num_inference_steps=2, guidance_scale=3, height=16, width=16,
               output_type="np", generator=generator).images
    assert out.shape == (1, 16, 16, 3) and np.isfinite(out).all() and 0 <= out.min() and out.max() <= 1
    pipe.scheduler = PNDMScheduler.from_config(pipe.scheduler.config, skip_prk_steps=True)
    assert pipe(prompt=["a blue star"], num_inference_steps=2, height=16, width=16, output_type="np").images.shape == (1, 16, 16, 3)


def test_tokenizer_files_load_offline(built, tmp_path):
    from transformers import AutoTokenizer, CLIPTokenizer

    folder = built[2]["sd"] / "tokenizer"
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        shutil.copy(folder / name, tmp_path / name)  # the slow-tokenizer files alone, as in SD v1.5's folder
    caption = "a medium-sized tilted red circle in the upper left; the background is dark grey"
    ids = [CLIPTokenizer.from_pretrained(f)(caption).input_ids for f in (folder, tmp_path)]
    assert ids[0] == ids[1] == AutoTokenizer.from_pretrained(folder)(caption).input_ids
    tok = CLIPTokenizer.from_pretrained(folder)
    words = re.findall(r"[a-z]+|[^\sa-z]+", caption)  # CLIP's pre-tokenizer splits "medium-sized" in 3
    assert len(ids[0]) == len(words) + 2  # one token per word, plus start and end
    assert tok.eos_token_id == tok.pad_token_id == len(tok) - 1 == max(ids[0])


def test_clip_loads_with_open_clip_and_feeds_the_text_encoder(built):
    from diffusers import StableDiffusionPipeline

    model, preprocess, tokenizer = load_clip(built[2]["clip"])
    ids = tokenizer(["a red circle on the left", "a large green square at the top"])
    assert ids.shape == (2, foundation.CONTEXT_LENGTH)
    with torch.no_grad():
        converted = foundation.clip_text_encoder(model)(ids)
        torch.testing.assert_close(converted.pooler_output @ model.text_projection, model.encode_text(ids))
        pipe = StableDiffusionPipeline.from_pretrained(built[2]["sd"], safety_checker=None, requires_safety_checker=False)
        torch.testing.assert_close(pipe.text_encoder(ids).last_hidden_state, converted.last_hidden_state)
    paths = sorted((built[0] / "images").rglob("*.JPEG"))[:3]
    from PIL import Image

    with Image.open(paths[0]) as img:
        assert model.encode_image(preprocess(img)[None]).shape == (1, foundation.TEXT_WIDTH)


def test_clip_image_embeddings_are_cached(built, tmp_path, monkeypatch):
    model, preprocess, _ = load_clip(built[2]["clip"])
    paths = sorted((built[0] / "images").rglob("*.JPEG"))[:4]
    emb = clip_image_embeddings(model, preprocess, paths, tmp_path / "emb.npy")
    assert emb.shape == (4, foundation.TEXT_WIDTH) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    monkeypatch.setattr(model, "encode_image", lambda x: (_ for _ in ()).throw(AssertionError("recomputed")))
    np.testing.assert_array_equal(clip_image_embeddings(model, preprocess, paths, tmp_path / "emb.npy"), emb)
    with pytest.raises(AssertionError, match="recomputed"):  # another image list is another key
        clip_image_embeddings(model, preprocess, paths[:3], tmp_path / "emb.npy")


def test_judge_gives_probabilities_over_the_world_classes(built):
    judge = load_judge(built[2]["judge"])
    classes = json.loads((built[0] / "classes.json").read_text())
    assert sorted(judge.classes) == sorted(classes) and judge.class_names == [classes[w] for w in judge.classes]
    for size in (16, 64, 8):
        p = judge.probs(torch.rand(5, 3, size, size))
        assert p.shape == (5, 3) and (p >= 0).all()
        torch.testing.assert_close(p.sum(-1), torch.ones(5))


def test_cache_is_reused_and_only_missing_models_are_trained(built, monkeypatch):
    world, cache, folders, _ = built

    def refuse(*args, **kwargs):
        raise AssertionError("retrained")

    for name in ("train_judge", "train_clip", "train_sd"):
        monkeypatch.setattr(foundation, name, refuse)
    assert foundation.ensure_foundation(world, cache, scale="tiny") == folders
    (folders["judge"] / foundation.DONE).unlink()  # an unfinished judge is rebuilt, nothing else
    with pytest.raises(AssertionError, match="retrained"):
        foundation.ensure_foundation(world, cache, scale="tiny")
    monkeypatch.undo()
    for name in ("train_clip", "train_sd"):
        monkeypatch.setattr(foundation, name, refuse)
    foundation.ensure_foundation(world, cache, scale="tiny")
    assert (folders["judge"] / foundation.DONE).is_file() and load_judge(folders["judge"]).classes


def test_missing_or_malformed_files_name_the_file(built, tmp_path):
    world, cache, folders, _ = built
    judge = shutil.copytree(folders["judge"], tmp_path / "judge")
    (judge / "model.safetensors").unlink()
    one_line_error(lambda: load_judge(judge), "model.safetensors")
    (judge / "config.json").unlink()
    one_line_error(lambda: load_judge(judge), "config.json", "vit_h_14.pth")
    one_line_error(lambda: load_judge(tmp_path / "nowhere"), "nowhere")

    vit = tmp_path / "vit"
    vit.mkdir()
    torch.save({"not": torch.zeros(1)}, vit / "vit_h_14.pth")
    one_line_error(lambda: load_judge(vit), "classes.json")
    (vit / "classes.json").write_text(json.dumps(["n01440764"]))
    one_line_error(lambda: load_judge(vit), "vit_h_14.pth", "state dict")

    clip = shutil.copytree(folders["clip"], tmp_path / "clip")
    (clip / "open_clip_model.safetensors").unlink()
    one_line_error(lambda: load_clip(clip), "open_clip_model.safetensors")
    for config in clip.glob("eegbench-clip-*.json"):
        config.unlink()
    one_line_error(lambda: load_clip(clip), "<name>.json", "embed_dim")

    one_line_error(lambda: foundation.ensure_foundation(world, cache, scale="huge"), "huge", "ci")
    one_line_error(lambda: foundation.ensure_foundation(tmp_path, cache, scale="tiny"), "world.json")


def test_language_model_and_captioner_are_built_on_demand_and_load_through_the_real_calls(built):
    from PIL import Image
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from eegbench.models.pretrained.lm import load_lm

    world, cache, _, _ = built
    folders = foundation.ensure_foundation(world, cache, scale="tiny", names=("lm", "captioner"))
    assert set(folders) == {"lm", "captioner"} and all((f / foundation.DONE).is_file() for f in folders.values())
    caption = "a large red circle on the left"
    tokenizer = AutoTokenizer.from_pretrained(folders["lm"])
    assert tokenizer.decode(tokenizer(caption).input_ids) == caption
    assert tokenizer.eos_token == tokenizer.pad_token == foundation.EOT
    model = AutoModelForCausalLM.from_pretrained(folders["lm"], use_safetensors=True)
    assert model.config.n_embd == foundation.LM_WIDTH and model.config.vocab_size == len(tokenizer)
    frozen, _ = load_lm(folders["lm"])
    assert not any(p.requires_grad for p in frozen.parameters())
    captioner = load_captioner(folders["captioner"])
    bank = json.loads((folders["captioner"] / "captions.json").read_text())
    stimuli = np.stack([np.asarray(Image.open(p).convert("RGB").resize((16, 16))).transpose(2, 0, 1)
                        for p in sorted((world / "images").rglob("*.JPEG"))[:4]])
    captions = captioner.caption(stimuli)
    assert len(captions) == 4 and set(captions) <= set(bank)


def test_an_unknown_foundation_model_is_named(built):
    world, cache, _, _ = built
    with pytest.raises(UserError, match=r"foundation model 'blip': unknown; pass names from judge, clip, sd, lm, captioner"):
        foundation.ensure_foundation(world, cache, scale="tiny", names=("blip",))
