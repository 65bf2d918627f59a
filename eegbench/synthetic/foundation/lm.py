"""The tiny GPT-2 and its byte-level BPE tokenizer, learned on the train captions."""

from __future__ import annotations

from pathlib import Path

from eegbench.synthetic.foundation.recipe import (EOT, LM_HEADS, LM_LAYERS, LM_POSITIONS, LM_VOCAB, LM_WIDTH, Progress,
                                                  Recipe, mirror_caption, optimise, schedule, world_images)


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
    scheduler = schedule(optimizer, recipe.warmup, recipe.lm_steps)
    model.train()
    loss = float("nan")
    for step in range(recipe.lm_steps):
        idx = torch.randint(len(ids), (recipe.lm_batch,), generator=g)
        labels = ids[idx].masked_fill(mask[idx] == 0, -100)
        loss = optimise(model(input_ids=ids[idx], attention_mask=mask[idx], labels=labels).loss, model, optimizer, scheduler)
        if progress:
            progress(step + 1, recipe.lm_steps)
    model.eval()
    model.save_pretrained(out, safe_serialization=True)
    return {"final_loss": loss, "train_captions": len(captions), "vocab_size": len(tokenizer)}
