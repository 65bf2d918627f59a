"""Tiny pretrained models of a synthetic ImageNet-EEG world: text-to-image LDM, CLIP, judge, LM, captioner.

A real DreamDiffusion run loads Stable Diffusion v1.5, CLIP ViT-L/14 and a torchvision ViT-H/14
judge from local folders; text decoding loads a causal LM (e.g. GPT-2) and a BLIP captioner. For a
synthetic world, ``ensure_foundation`` builds tiny counterparts of the models asked for (and of
those they need) once, on the world's TRAIN-split images and captions only (validation and test
stimuli stay unseen), caches them under ``cache_dir/foundation/images-<image key>-<scale>-<version>/``
(worlds that differ only in their EEG share them) and writes them in the real formats, so that
they load through the same calls:

- ``clip/``: an open_clip model config ``<name>.json`` (the name is a hash of the config, so
  worlds never collide in open_clip's registry), ``open_clip_model.safetensors`` and
  ``tokenizer/``, a CLIP BPE tokenizer learned on the captions. Load with
  ``models.pretrained.clip.load_clip``.
- ``sd/``: a diffusers ``StableDiffusionPipeline`` folder: ``unet``, ``vae`` (AutoencoderKL),
  ``text_encoder`` (the tiny CLIP's text tower converted to ``CLIPTextModel`` and kept frozen, as
  SD v1.5 keeps OpenAI CLIP's), ``tokenizer`` (the CLIP one), ``scheduler`` (DDIM, SD v1.5 betas).
- ``judge/``: a small CNN classifier (``config.json`` + ``model.safetensors``). Load with
  ``models.pretrained.judge.load_judge``.
- ``lm/``: a tiny GPT-2 (``GPT2LMHeadModel``, ``model.safetensors``) and a byte-level BPE tokenizer
  learned on the captions, ``<|endoftext|>`` its bos, eos and pad token; it models
  ``<|endoftext|> caption <|endoftext|>``. Load with ``models.pretrained.lm.load_lm`` (or transformers' Auto classes).
- ``captioner/``: a CLIP-retrieval captioner, no training: ``captioner.json``, ``captions.json``
  (the caption bank: the train captions and their mirrors) and ``clip/`` (a copy of ``clip/``); an
  image's caption is the bank caption nearest it in CLIP space. Load with ``models.pretrained.captioner.load_captioner``.

``sd`` and ``captioner`` need ``clip``. Each model is built in a temporary sibling folder,
finished with ``done.json`` (seconds taken, final loss, recipe) and renamed into place; a folder
holding ``done.json`` is never rebuilt. Training is deterministic given the recipe's seed (same
torch version and thread count). Images are rendered at ``Recipe.image_size`` from the world's
files with a box filter; every training set is doubled by mirroring images left-right, with
"left" and "right" swapped in the captions.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from pydantic import BaseModel, ConfigDict, Field

from eegbench.errors import UserError

if TYPE_CHECKING:
    import torch

FOUNDATION_VERSION = "v2"  # v2: tokenizers learned by synthetic.bpe (deterministic)
DONE = "done.json"
TEXT_WIDTH = 64  # text encoder width = CLIP embedding size = UNet cross_attention_dim
CONTEXT_LENGTH = 32  # tokens per caption: the text encoder's context is [B, 32, 64]
TEXT_LAYERS, TEXT_HEADS = 2, 4
VISION_LAYERS, VISION_HEADS = 3, 4
JUDGE_CHANNELS = (32, 64, 128)
UNET_CHANNELS = (32, 64, 64)
LATENT_CHANNELS = 4
SOT, EOT = "<|startoftext|>", "<|endoftext|>"
LM_WIDTH, LM_LAYERS, LM_HEADS, LM_POSITIONS = 64, 2, 4, 64
LM_VOCAB = 1000  # target size of the LM's byte-level BPE vocabulary (captions may saturate it earlier)
BUILD_ORDER = ("judge", "clip", "sd", "lm", "captioner")  # each model after those it needs
NEEDS = {"sd": ("clip",), "captioner": ("clip",)}
Progress = Callable[[int, int], None] | None


class Recipe(BaseModel):
    """Training budget of the foundation models at one scale (optimisation steps, not seconds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image_size: int = Field(16, description="side of the images all three models are trained on, px")
    seed: int = 0
    judge_steps: int = 300
    judge_batch: int = 64
    clip_steps: int = 300
    clip_batch: int = 64
    lm_steps: int = 600
    lm_batch: int = 64
    vae_steps: int = 800
    vae_lr: float = 2e-3
    unet_steps: int = 2400
    batch: int = Field(32, description="batch of the VAE and UNet")
    lr: float = Field(1e-3, description="learning rate of the UNet and CLIP; the judge uses twice this")
    warmup: int = Field(50, description="linear warm-up steps, then cosine decay to zero")
    cfg_drop: float = Field(0.1, description="fraction of captions replaced by the empty caption (CFG)")
    vae_channels: tuple[int, ...] = Field((16, 32), description="AutoencoderKL block widths; each after the first halves the side")


# ci, measured on 2 idle cores for the default 10-class world: judge 4 s, CLIP 13 s, VAE + UNet 271 s
# (8x8x4 latent, 0.09 s/UNet step); the judge scores 62% on images generated from held-out captions
# with guidance 3 (45% with guidance 1; chance 10%). tiny: a few steps, for tests. small: unmeasured.
RECIPES: dict[str, Recipe] = {
    "tiny": Recipe(judge_steps=2, judge_batch=8, clip_steps=2, clip_batch=8, lm_steps=2, lm_batch=8, vae_steps=2,
                   unet_steps=2, batch=4, warmup=1),
    "ci": Recipe(),
    "small": Recipe(vae_steps=1600, unet_steps=8000),
}


@dataclass
class WorldImages:
    """Images of some splits of a world, rendered at one size, with their captions and classes."""

    pixels: torch.Tensor  # [N, 3, s, s] uint8
    labels: list[int]  # class index into wnids
    captions: list[str]
    paths: list[Path]
    wnids: list[str]
    class_names: list[str]


def world_images(world_root: Path, splits: tuple[str, ...] = ("train",), size: int = 16) -> WorldImages:
    """The images of ``splits`` (of ``block_splits_by_image_all.pth``, split 0), box-filtered to ``size`` px."""
    import torch

    from eegbench.data.stimuli import load_pixels

    root = Path(world_root)
    for name in ("world.json", "eeg_5_95_std.pth", "block_splits_by_image_all.pth", "captions.json", "classes.json"):
        if not (root / name).is_file():
            raise UserError(f"{root / name}: file not found; pass the folder returned by synthetic.imagenet_eeg.ensure")
    data = torch.load(root / "eeg_5_95_std.pth", weights_only=True, mmap=True)
    table = torch.load(root / "block_splits_by_image_all.pth", weights_only=True)["splits"][0]
    dataset, names, wnids = data["dataset"], data["images"], data["labels"]
    chosen = sorted({int(dataset[i]["image"]) for split in splits for i in table[split]})
    captions = json.loads((root / "captions.json").read_text())
    classes = json.loads((root / "classes.json").read_text())
    paths = [root / "images" / names[i].split("_")[0] / f"{names[i]}.JPEG" for i in chosen]
    return WorldImages(
        pixels=torch.from_numpy(load_pixels(paths, size)),
        labels=[wnids.index(names[i].split("_")[0]) for i in chosen], captions=[captions[names[i]] for i in chosen],
        paths=paths, wnids=list(wnids), class_names=[classes[w] for w in wnids])


def mirror_caption(caption: str) -> str:
    """The caption of the left-right mirrored image."""
    return re.sub(r"\b(left|right)\b", lambda m: "right" if m.group(1) == "left" else "left", caption)


def _schedule(optimizer, warmup: int, steps: int):
    """Linear warm-up over ``warmup`` steps, then cosine decay to zero at ``steps``."""
    import torch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _step(loss, model, optimizer, scheduler) -> float:
    """One optimisation step, gradients clipped to norm 1.0; returns the loss."""
    import torch

    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    return loss.item()


# judge ------------------------------------------------------------------------------------------

def train_judge(world_root: Path, recipe: Recipe, out: Path, progress: Progress = None) -> dict:
    """Train the judge CNN on the world's train images (random flips, quarter turns, shifts, noise)."""
    import torch
    import torch.nn.functional as F
    from safetensors.torch import save_file

    from eegbench.models.pretrained.judge import JUDGE_CONFIG, JUDGE_WEIGHTS, Judge, judge_cnn

    data = world_images(world_root, ("train",), recipe.image_size)
    torch.manual_seed(recipe.seed)
    g = torch.Generator().manual_seed(recipe.seed)
    model = judge_cnn(len(data.wnids), JUDGE_CHANNELS)
    judge = Judge(model, data.wnids, data.class_names, recipe.image_size, (0.5,) * 3, (0.25,) * 3, center_crop=False)
    x, y = data.pixels.float() / 255, torch.tensor(data.labels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2 * recipe.lr, weight_decay=0.05)
    scheduler = _schedule(optimizer, recipe.warmup, recipe.judge_steps)
    model.train()
    loss = float("nan")
    for step in range(recipe.judge_steps):
        idx = torch.randint(len(x), (recipe.judge_batch,), generator=g)
        batch = _augment(x[idx], g)
        loss = _step(F.cross_entropy(model(judge.prepare(batch)), y[idx]), model, optimizer, scheduler)
        if progress:
            progress(step + 1, recipe.judge_steps)
    model.eval()
    Path(out).mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(Path(out) / JUDGE_WEIGHTS))
    config = {"architecture": "eegbench-judge-cnn", "channels": list(JUDGE_CHANNELS), "image_size": recipe.image_size,
              "classes": data.wnids, "class_names": data.class_names, "mean": judge.mean, "std": judge.std}
    (Path(out) / JUDGE_CONFIG).write_text(json.dumps(config, indent=1))
    return {"final_loss": loss, "train_images": len(x)}


def _augment(x, g):
    """Per image: one of the 8 flips/quarter turns, a shift of up to 2 px, Gaussian noise (sd <= 0.04)."""
    import torch
    import torch.nn.functional as F

    n, _, h, w = x.shape
    out = torch.empty_like(x)
    turns, flips = torch.randint(4, (n,), generator=g), torch.randint(2, (n,), generator=g)
    shifts = torch.randint(5, (n, 2), generator=g)
    padded = F.pad(x, (2, 2, 2, 2), mode="replicate")
    for i in range(n):
        img = padded[i, :, shifts[i, 0]: shifts[i, 0] + h, shifts[i, 1]: shifts[i, 1] + w]
        img = torch.rot90(img, int(turns[i]), dims=(1, 2))
        out[i] = img.flip(-1) if flips[i] else img
    noise = torch.randn(out.shape, generator=g) * torch.rand(n, 1, 1, 1, generator=g) * 0.04
    return (out + noise).clamp(0, 1)


# CLIP -------------------------------------------------------------------------------------------

def build_tokenizer(captions: list[str], out: Path):
    """A CLIP BPE tokenizer learned on ``captions``, saved to ``out`` (tokenizer.json, vocab.json, merges.txt).

    Vocabulary layout as OpenAI CLIP's: the 256 byte symbols, the same with ``</w>``, the learned
    merges, then ``<|startoftext|>`` and ``<|endoftext|>`` (the largest id, so argmax pooling finds
    it). Padding uses ``<|endoftext|>``, as SD v1.5's tokenizer does.
    """
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    from eegbench.synthetic.bpe import learn_merges, word_counts

    rules = CLIPTokenizer().backend_tokenizer
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    merges = learn_merges(word_counts(sorted(set(captions)), rules.normalizer, rules.pre_tokenizer), alphabet,
                          suffix="</w>")
    vocab: dict[str, int] = {}
    for token in alphabet + [c + "</w>" for c in alphabet] + [a + b for a, b in merges] + [SOT, EOT]:
        vocab.setdefault(token, len(vocab))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=CONTEXT_LENGTH)
    out = Path(out)
    tokenizer.save_pretrained(out)
    (out / "vocab.json").write_text(json.dumps(vocab))
    (out / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return tokenizer


def clip_config(vocab_size: int, image_size: int) -> dict:
    """open_clip model config of the tiny CLIP: ViT on a 4x4 patch grid, causal text transformer."""
    return {
        "embed_dim": TEXT_WIDTH,
        "vision_cfg": {"image_size": image_size, "patch_size": image_size // 4, "layers": VISION_LAYERS,
                       "width": 64, "head_width": 64 // VISION_HEADS, "mlp_ratio": 4.0},
        "text_cfg": {"context_length": CONTEXT_LENGTH, "vocab_size": vocab_size, "width": TEXT_WIDTH,
                     "heads": TEXT_HEADS, "layers": TEXT_LAYERS},
    }


def train_clip(world_root: Path, recipe: Recipe, out: Path, progress: Progress = None) -> dict:
    """Train the tiny CLIP contrastively on the world's train image-caption pairs (and their mirrors)."""
    import open_clip
    import torch
    import torch.nn.functional as F
    from PIL import Image
    from safetensors.torch import save_file

    from eegbench.models.pretrained.clip import CLIP_WEIGHTS

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = world_images(world_root, ("train",), recipe.image_size)
    captions = data.captions + [mirror_caption(c) for c in data.captions]
    vocab_size = len(build_tokenizer(captions, out / "tokenizer"))
    config = clip_config(vocab_size, recipe.image_size)
    name = "eegbench-clip-" + hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
    (out / f"{name}.json").write_text(json.dumps(config, indent=1))
    open_clip.add_model_config(out / f"{name}.json")
    torch.manual_seed(recipe.seed)
    g = torch.Generator().manual_seed(recipe.seed)
    model, _, preprocess = open_clip.create_model_and_transforms(name)
    tokenizer = open_clip.tokenizer.HFTokenizer(str(out / "tokenizer"), context_length=CONTEXT_LENGTH)
    images = []
    for flip in (False, True):
        for path in data.paths:
            with Image.open(path) as img:
                img = img.convert("RGB")
                images.append(preprocess(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else img))
    images, tokens = torch.stack(images), tokenizer(captions)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=0.05)
    scheduler = _schedule(optimizer, recipe.warmup, recipe.clip_steps)
    model.train()
    loss = float("nan")
    for step in range(recipe.clip_steps):
        idx = torch.randperm(len(images), generator=g)[: recipe.clip_batch]
        image_features, text_features, scale = model(images[idx], tokens[idx])
        logits = scale * image_features @ text_features.T
        target = torch.arange(len(idx))
        loss = _step((F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2,
                     model, optimizer, scheduler)
        if progress:
            progress(step + 1, recipe.clip_steps)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(out / CLIP_WEIGHTS))
    return {"final_loss": loss, "model_name": name, "train_pairs": len(captions)}


def clip_text_encoder(clip_model):
    """The text tower of an open_clip CLIP as a transformers ``CLIPTextModel`` (same outputs).

    ``last_hidden_state`` equals open_clip's token features after ``ln_final``; ``pooler_output``
    is the first ``<|endoftext|>`` token's, which open_clip projects with ``text_projection``.
    """
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    vocab_size, width = clip_model.token_embedding.weight.shape
    blocks = clip_model.transformer.resblocks
    config = CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=width, intermediate_size=blocks[0].mlp.c_fc.out_features,
        num_hidden_layers=len(blocks), num_attention_heads=blocks[0].attn.num_heads,
        max_position_embeddings=clip_model.positional_embedding.shape[0], hidden_act="gelu",
        projection_dim=clip_model.text_projection.shape[1], bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1)
    model = CLIPTextModel(config)
    prefix = next(k for k in model.state_dict() if k.endswith("embeddings.token_embedding.weight"))[: -len("embeddings.token_embedding.weight")]
    src = clip_model.state_dict()
    state = {"embeddings.token_embedding.weight": src["token_embedding.weight"],
             "embeddings.position_embedding.weight": src["positional_embedding"],
             "final_layer_norm.weight": src["ln_final.weight"], "final_layer_norm.bias": src["ln_final.bias"]}
    for i in range(len(blocks)):
        a, b = f"transformer.resblocks.{i}.", f"encoder.layers.{i}."
        for part, w, bias in zip("qkv", src[a + "attn.in_proj_weight"].chunk(3), src[a + "attn.in_proj_bias"].chunk(3)):
            state[f"{b}self_attn.{part}_proj.weight"], state[f"{b}self_attn.{part}_proj.bias"] = w, bias
        for new, old in (("self_attn.out_proj", "attn.out_proj"), ("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"),
                         ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj")):
            for p in ("weight", "bias"):
                state[f"{b}{new}.{p}"] = src[f"{a}{old}.{p}"]
    missing, unexpected = model.load_state_dict({prefix + k: v.clone() for k, v in state.items()}, strict=False)
    if unexpected or [k for k in missing if not k.endswith("position_ids")]:
        raise RuntimeError(f"text tower conversion left keys unmatched: {missing} {unexpected}")
    return model.eval().requires_grad_(False).to(torch.float32)


# text-to-image ----------------------------------------------------------------------------------

def train_sd(world_root: Path, recipe: Recipe, out: Path, clip_folder: Path, progress: Progress = None) -> dict:
    """Train the VAE, then the UNet on frozen text contexts from ``clip_folder``'s text tower; save the pipeline."""
    import torch
    import torch.nn.functional as F
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTokenizer

    from eegbench.models.pretrained.clip import load_clip

    total = recipe.vae_steps + recipe.unet_steps
    data = world_images(world_root, ("train",), recipe.image_size)
    x = data.pixels.float() / 127.5 - 1
    x = torch.cat([x, x.flip(-1)])
    captions = data.captions + [mirror_caption(c) for c in data.captions]
    clip_model, _, _ = load_clip(clip_folder)
    text_encoder = clip_text_encoder(clip_model)
    tokenizer = CLIPTokenizer.from_pretrained(Path(clip_folder) / "tokenizer")

    torch.manual_seed(recipe.seed)
    g = torch.Generator().manual_seed(recipe.seed)
    n_blocks = len(recipe.vae_channels)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n_blocks,
                        up_block_types=("UpDecoderBlock2D",) * n_blocks, block_out_channels=recipe.vae_channels,
                        layers_per_block=1, latent_channels=LATENT_CHANNELS, norm_num_groups=8,
                        sample_size=recipe.image_size, mid_block_add_attention=False)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=recipe.vae_lr)
    scheduler = _schedule(optimizer, recipe.warmup, recipe.vae_steps)
    vae_loss = float("nan")
    for step in range(recipe.vae_steps):
        batch = x[torch.randint(len(x), (recipe.batch,), generator=g)]
        posterior = vae.encode(batch).latent_dist
        recon = vae.decode(posterior.sample(generator=g)).sample
        vae_loss = _step(F.mse_loss(recon, batch) + 1e-6 * posterior.kl().mean(), vae, optimizer, scheduler)
        if progress:
            progress(step + 1, total)
    vae.eval().requires_grad_(False)
    with torch.no_grad():
        latents = torch.cat([vae.encode(x[i: i + 256]).latent_dist.mean for i in range(0, len(x), 256)])
        recon_mse = float(F.mse_loss(torch.cat([vae.decode(latents[i: i + 256]).sample
                                                for i in range(0, len(x), 256)]), x))
    vae.register_to_config(scaling_factor=float(1 / latents.std()))
    latents = latents * vae.config.scaling_factor

    unet = UNet2DConditionModel(
        sample_size=latents.shape[-1], in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS,
        block_out_channels=UNET_CHANNELS, layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_WIDTH, attention_head_dim=8)
    noise_scheduler = DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                    beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                                    steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=noise_scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    with torch.no_grad():
        context = torch.cat([pipe.encode_prompt(captions[i: i + 256], "cpu", 1, False)[0]
                             for i in range(0, len(captions), 256)])
        null = pipe.encode_prompt([""], "cpu", 1, False)[0]
    optimizer = torch.optim.AdamW(unet.parameters(), lr=recipe.lr)
    scheduler = _schedule(optimizer, recipe.warmup, recipe.unet_steps)
    unet.train()
    loss = float("nan")
    for step in range(recipe.unet_steps):
        idx = torch.randint(len(latents), (recipe.batch,), generator=g)
        drop = torch.rand(len(idx), generator=g) < recipe.cfg_drop
        cond = torch.where(drop[:, None, None], null, context[idx])
        noise = torch.randn(latents[idx].shape, generator=g)
        t = torch.randint(noise_scheduler.config.num_train_timesteps, (len(idx),), generator=g)
        pred = unet(noise_scheduler.add_noise(latents[idx], noise, t), t, cond).sample
        loss = _step(F.mse_loss(pred, noise), unet, optimizer, scheduler)
        if progress:
            progress(recipe.vae_steps + step + 1, total)
    unet.eval()
    pipe.save_pretrained(out, safe_serialization=True)
    shutil.copytree(Path(clip_folder) / "tokenizer", Path(out) / "tokenizer", dirs_exist_ok=True)  # + vocab.json, merges.txt
    return {"final_loss": loss, "vae_final_loss": vae_loss, "vae_recon_mse": recon_mse,
            "latent_shape": list(latents.shape[1:]), "train_pairs": len(captions)}


# language model ---------------------------------------------------------------------------------

def build_lm_tokenizer(captions: list[str], out: Path):
    """A GPT-2-style byte-level BPE tokenizer learned on ``captions``, ``<|endoftext|>`` as bos/eos/pad; saved to ``out``."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from eegbench.synthetic.bpe import learn_merges, word_counts

    split = pre_tokenizers.ByteLevel(add_prefix_space=False)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    merges = learn_merges(word_counts(sorted(set(captions)), None, split), alphabet, min_frequency=2,
                          max_merges=LM_VOCAB - 1 - len(alphabet))
    vocab: dict[str, int] = {}
    for token in [EOT, *alphabet, *(a + b for a, b in merges)]:
        vocab.setdefault(token, len(vocab))
    bpe = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    bpe.pre_tokenizer, bpe.decoder = split, decoders.ByteLevel()
    bpe.add_special_tokens([AddedToken(EOT, special=True)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=EOT, eos_token=EOT, pad_token=EOT,
                                        unk_token=EOT, model_max_length=LM_POSITIONS)
    tokenizer.save_pretrained(out)
    return tokenizer


def _lm_batches(tokenizer, captions: list[str]):
    """``(ids, mask)`` [N, L] of ``<|endoftext|> caption <|endoftext|>``, right-padded; mask 0 on padding."""
    import torch

    eot = tokenizer.eos_token_id
    rows = [[eot, *tokenizer(c, add_special_tokens=False).input_ids, eot][:LM_POSITIONS] for c in captions]
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), eot)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, :len(row)], mask[i, :len(row)] = torch.tensor(row), 1
    return ids, mask


def train_lm(world_root: Path, recipe: Recipe, out: Path, progress: Progress = None) -> dict:
    """Train the tiny GPT-2 on the world's train captions (and their mirrors); save it with its tokenizer."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    out = Path(out)
    data = world_images(world_root, ("train",), recipe.image_size)
    captions = data.captions + [mirror_caption(c) for c in data.captions]
    tokenizer = build_lm_tokenizer(captions, out)
    ids, mask = _lm_batches(tokenizer, captions)
    eot = tokenizer.eos_token_id
    torch.manual_seed(recipe.seed)
    g = torch.Generator().manual_seed(recipe.seed)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=LM_WIDTH, n_layer=LM_LAYERS, n_head=LM_HEADS,
                                       n_positions=LM_POSITIONS, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot))
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=0.01)
    scheduler = _schedule(optimizer, recipe.warmup, recipe.lm_steps)
    model.train()
    loss = float("nan")
    for step in range(recipe.lm_steps):
        idx = torch.randint(len(ids), (recipe.lm_batch,), generator=g)
        labels = ids[idx].masked_fill(mask[idx] == 0, -100)
        loss = _step(model(input_ids=ids[idx], attention_mask=mask[idx], labels=labels).loss, model, optimizer, scheduler)
        if progress:
            progress(step + 1, recipe.lm_steps)
    model.eval()
    model.save_pretrained(out, safe_serialization=True)
    return {"final_loss": loss, "train_captions": len(captions), "vocab_size": len(tokenizer)}


# captioner --------------------------------------------------------------------------------------

def build_captioner(world_root: Path, recipe: Recipe, out: Path, clip_folder: Path, progress: Progress = None) -> dict:
    """The CLIP-retrieval captioner: ``clip_folder``'s CLIP and a bank of the unique train captions and their mirrors."""
    from eegbench.models.pretrained.captioner import CAPTIONER_CONFIG, CAPTION_BANK, RETRIEVAL_CAPTIONER

    out = Path(out)
    data = world_images(world_root, ("train",), recipe.image_size)
    bank = sorted(set(data.captions) | {mirror_caption(c) for c in data.captions})
    shutil.copytree(clip_folder, out / "clip", ignore=shutil.ignore_patterns(DONE), dirs_exist_ok=True)
    (out / CAPTION_BANK).write_text(json.dumps(bank, indent=0))
    (out / CAPTIONER_CONFIG).write_text(json.dumps({"architecture": RETRIEVAL_CAPTIONER, "bank_size": len(bank)}))
    return {"bank_size": len(bank)}


# cache ------------------------------------------------------------------------------------------

def ensure_foundation(world_root: Path, cache_dir: Path, *, scale: str = "ci", progress: Progress = None,
                      names: tuple[str, ...] = ("sd", "clip", "judge")) -> dict[str, Path]:
    """Folders of the world's foundation models ``names`` (of judge, clip, sd, lm, captioner), building what is missing.

    A model's dependencies are built too (``sd`` and ``captioner`` need ``clip``); only ``names`` are returned.
    """
    unknown = [name for name in names if name not in BUILD_ORDER]
    if unknown:
        raise UserError(f"foundation model {unknown[0]!r}: unknown; pass names from {', '.join(BUILD_ORDER)}")
    if scale not in RECIPES:
        raise UserError(f"scale {scale!r}: no foundation recipe for it; pass one of {', '.join(RECIPES)}")
    recipe = RECIPES[scale]
    world_root = Path(world_root)
    if not (world_root / "world.json").is_file():
        raise UserError(f"{world_root / 'world.json'}: file not found; pass the folder returned by synthetic.imagenet_eeg.ensure")
    from eegbench.synthetic.imagenet_eeg import WorldSpec

    spec = WorldSpec.model_validate(json.loads((world_root / "world.json").read_text())["spec"])
    # keyed by the images alone: worlds that differ only in their EEG (snr, subjects, drift) share models
    root = Path(cache_dir) / "foundation" / f"images-{spec.image_key()}-{scale}-{FOUNDATION_VERSION}"
    folders = {name: root / name for name in BUILD_ORDER}
    wanted = set(names) | {dep for name in names for dep in NEEDS.get(name, ())}
    steps = {"judge": recipe.judge_steps, "clip": recipe.clip_steps, "sd": recipe.vae_steps + recipe.unet_steps,
             "lm": recipe.lm_steps, "captioner": 0}
    todo = [name for name in BUILD_ORDER if name in wanted and not (folders[name] / DONE).is_file()]
    total, offset = sum(steps[name] for name in todo), 0
    for name in todo:
        report = (lambda done, _, base=offset: progress(base + done, total)) if progress else None
        build = {"judge": train_judge, "clip": train_clip, "sd": partial(train_sd, clip_folder=folders["clip"]),
                 "lm": train_lm, "captioner": partial(build_captioner, clip_folder=folders["clip"])}[name]
        _build(folders[name], lambda tmp: build(world_root, recipe, tmp, progress=report),
               {"model": name, "world": world_root.name, "scale": scale, "version": FOUNDATION_VERSION,
                "recipe": recipe.model_dump()})
        offset += steps[name]
    return {name: folders[name] for name in names}


@contextmanager
def _quiet():
    """Silence what a user cannot act on while a world model is built: transformers' "Writing model shards" bars
    and warnings, and open_clip's "No pretrained weights loaded" (the world's CLIP starts from random weights)."""
    import logging

    import transformers

    class NoRandomInitWarning(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not record.getMessage().startswith("No pretrained weights loaded")

    quiet = NoRandomInitWarning()
    verbosity = transformers.utils.logging.get_verbosity()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    logging.getLogger().addFilter(quiet)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(quiet)
        transformers.utils.logging.enable_progress_bar()
        transformers.utils.logging.set_verbosity(verbosity)


def _build(folder: Path, build: Callable[[Path], dict], meta: dict) -> None:
    """Run ``build`` into a temp sibling folder, write ``done.json`` there, rename it to ``folder``."""
    from eegbench.io import atomic_folder, atomic_write_json

    with atomic_folder(folder, DONE) as tmp, _quiet():
        start = time.perf_counter()
        info = build(tmp)
        atomic_write_json(tmp / DONE, {**meta, "seconds": round(time.perf_counter() - start, 2), **info})
