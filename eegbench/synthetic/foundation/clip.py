"""The tiny CLIP: a BPE tokenizer learned on the train captions, an open_clip ViT and text tower."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from eegbench.synthetic.foundation.recipe import (CONTEXT_LENGTH, EOT, SOT, TEXT_HEADS, TEXT_LAYERS, TEXT_WIDTH,
                                                  VISION_HEADS, VISION_LAYERS, Progress, Recipe, mirror_caption,
                                                  optimise, schedule, world_images)


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
    scheduler = schedule(optimizer, recipe.warmup, recipe.clip_steps)
    model.train()
    loss = float("nan")
    for step in range(recipe.clip_steps):
        idx = torch.randperm(len(images), generator=g)[: recipe.clip_batch]
        image_features, text_features, scale = model(images[idx], tokens[idx])
        logits = scale * image_features @ text_features.T
        target = torch.arange(len(idx))
        loss = optimise((F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2,
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
