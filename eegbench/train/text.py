"""Training a text head on fixed inputs: Thought2Text's projector phases and the prior-only control.

``fit_text_head`` trains only the head (the features are precomputed: CLIP image embeddings, a
frozen encoder's EEG embeddings, or a constant for the prior-only model) with AdamW and keeps the
epoch with the lowest teacher-forced loss on validation trials. That loss only selects; text is
scored by free-running generation alone (``generate_text``). ``prior_only_text`` is the prior-only
control of any stage with a text head: the same head trained and run on a constant input.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from eegbench import progress
from eegbench.config import StrictModel


class Decoding(StrictModel):
    """A prefix-LM text head's shape and its free-running decoding (never teacher forced)."""

    prefix_tokens: int = Field(4, ge=1)  # learned EEG tokens before the LM
    decoding: Literal["greedy", "beam"] = "greedy"
    num_beams: int = Field(3, ge=2)  # beam decoding only
    max_new_tokens: int = Field(32, ge=1)

    def lm_head(self, in_dim: int, pretrained):
        """A fresh ``PrefixLMHead`` over features of ``in_dim`` before the run's frozen LM."""
        from eegbench.models.text_heads import PrefixLMHead

        lm, tokenizer = pretrained.lm()
        return PrefixLMHead(in_dim, lm, tokenizer, self.prefix_tokens, self.max_new_tokens,
                            self.num_beams if self.decoding == "beam" else 1)


def fit_text_head(head, train: dict, val: dict, *, epochs: int, batch_size: int, lr: float, seed: int,
                  run, label: str) -> dict:
    """Train ``head`` on ``train`` = ``{"features": [N, d] tensor, "captions": [...], "prompts": [...] or None}``;
    load the best epoch on ``val`` into it and return ``{"epoch", "val_loss", "history"}``."""
    import torch

    opt = torch.optim.AdamW([p for p in head.parameters() if p.requires_grad], lr=lr)
    best = {"val_loss": math.inf, "epoch": -1, "state": None}
    history = []
    for epoch in progress.track(range(epochs), f"{label}: training", total=epochs):
        torch.manual_seed(seed * 100_003 + epoch)
        head.train()
        order = torch.randperm(len(train["features"]))
        total = 0.0
        steps = 0
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            loss = head.loss(train["features"][idx], _batch(train, idx))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, steps = total + loss.item(), steps + 1
        val_loss = text_loss(head, val, batch_size)
        history.append({"epoch": epoch, "train_text": total / max(steps, 1), "val_text": val_loss})
        run.log(f"{label}: epoch {epoch} text {history[-1]['train_text']:.4f} val_text {val_loss:.4f}")
        if val_loss < best["val_loss"]:
            best = {"val_loss": val_loss, "epoch": epoch, "state": {k: v.clone() for k, v in head.state_dict().items()}}
    head.load_state_dict(best["state"])
    run.log(f"{label}: selected epoch {best['epoch']} on val (text loss {best['val_loss']:.4f})")
    return {"epoch": best["epoch"], "val_loss": best["val_loss"], "history": history}


def text_loss(head, data: dict, batch_size: int) -> float:
    """Mean teacher-forced loss of ``head`` over ``data`` (selection only), in eval mode."""
    import torch

    head.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(data["features"]), batch_size):
            idx = torch.arange(i, min(i + batch_size, len(data["features"])))
            total += head.loss(data["features"][idx], _batch(data, idx)).item() * len(idx)
    return total / len(data["features"])


def _batch(data: dict, idx) -> dict:
    out = {key: [data[key][int(i)] for i in idx] for key in ("captions", "prompts") if data.get(key) is not None}
    for key in ("text_emb", "pair_id"):
        if data.get(key) is not None:
            out[key] = data[key][idx]
    return out


def generate_text(head, features, prompts: list[str] | None = None, batch_size: int = 64):
    """Free-running outputs of ``head`` for ``features`` [N, d], as a numpy object array of strings."""
    import numpy as np
    import torch

    head.eval()
    out: list[str] = []
    with torch.no_grad():
        for i in range(0, len(features), batch_size):
            out += head.generate(features[i:i + batch_size], prompts[i:i + batch_size] if prompts else None)
    return np.array(out, dtype=object)


def prior_only_text(head, data, run, name: str, n: int, *, width: int, epochs: int, batch_size: int, lr: float,
                    seed: int, text_embed=None) -> dict:
    """``{"text": n outputs}`` of a fresh ``head`` trained on a constant input (zeros ``[width]``) with the train
    captions and selected on val: what the language prior alone produces. Checkpointed as ``<name>`` in ``run``.

    ``text_embed(captions) -> [N, D] tensor`` supplies the CLIP text targets a retrieval head trains on.
    """
    import torch

    done = run.load_checkpoint(name)
    if done is not None:
        head.load_state_dict(done[0])
    else:
        parts = {}
        for split in ("train", "val"):
            trials = data.splits[split]
            parts[split] = {"features": torch.zeros(len(trials), width), "captions": data.captions_of(trials)}
            if text_embed is not None:
                parts[split] |= {"text_emb": text_embed(parts[split]["captions"]),
                                 "pair_id": torch.from_numpy(data.image[trials])}
        info = fit_text_head(head, parts["train"], parts["val"], epochs=epochs, batch_size=batch_size, lr=lr,
                             seed=seed, run=run, label=name)
        run.save_checkpoint(name, head.state_dict(), {"selected_on": "val", **info})
    return {"text": generate_text(head, torch.zeros(n, width))}
