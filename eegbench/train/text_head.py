"""Training a text head on fixed inputs: Thought2Text's projector phases and the prior-only control.

``fit_text_head`` trains only the head (the features are precomputed: CLIP image embeddings, a
frozen encoder's EEG embeddings, or a constant for the prior-only model) through the one loop
(``train.loop``: resumable, seeded per epoch) and keeps the epoch with the lowest teacher-forced
loss on validation trials. That loss only selects; text is
scored by free-running generation alone (``generate_text``). ``train_prior_only`` is the prior-only
control of any stage with a text head: the same head trained and run on a constant input.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from eegbench import runtime
from eegbench.config import StrictModel


class Decoding(StrictModel):
    """A prefix-LM text head's shape and its free-running decoding (never teacher forced)."""

    prefix_tokens: int = Field(4, ge=1)  # learned EEG tokens before the LM
    decoding: Literal["greedy", "beam"] = "greedy"
    num_beams: int = Field(3, ge=2)  # beam decoding only
    max_new_tokens: int = Field(32, ge=1)

    def lm_head(self, in_dim: int, pretrained):
        """A fresh prefix-LM head over features of ``in_dim`` before the run's frozen LM."""
        from eegbench import registry

        return registry.heads.get("prefix-lm").build(in_dim, self, pretrained)


def fit_text_head(head, train: dict, val: dict, *, run, name: str, epochs: int, batch_size: int, lr: float,
                  seed: int, lr_key: str, meta: dict | None = None) -> dict:
    """Train ``head`` on ``train`` = ``{"features": [N, d] tensor, "captions": [...], "prompts": [...] or None}``
    through the one loop (checkpoint ``name``); load the epoch with the lowest teacher-forced loss on ``val``
    into it and return the checkpoint's metadata."""
    from eegbench.train.loop import Optim, Selection, Task, fit

    def losses(head, batch):
        return {"text": head.loss(train["features"][batch.idx].to(runtime.current().device), _batch(train, batch.idx))}

    def task() -> Task:
        return Task(losses, lambda head: {"val_text": text_loss(head, val, batch_size)},
                    n_items=len(train["features"]), batch_size=batch_size)

    return fit(head, task, run=run, name=name, seed=seed, epochs=epochs, optim=Optim(lr=lr),
               selection=Selection("val_text", "min"), meta=meta, lr_key=lr_key)


def text_loss(head, data: dict, batch_size: int) -> float:
    """Mean teacher-forced loss of ``head`` over ``data`` (selection only), in eval mode."""
    import torch

    head.eval()
    total = 0.0
    device = runtime.current().device
    with torch.no_grad():
        for i in range(0, len(data["features"]), batch_size):
            idx = torch.arange(i, min(i + batch_size, len(data["features"])))
            total += head.loss(data["features"][idx].to(device), _batch(data, idx)).item() * len(idx)
    return total / len(data["features"])


def _batch(data: dict, idx) -> dict:
    out = {key: [data[key][int(i)] for i in idx] for key in ("captions", "prompts") if data.get(key) is not None}
    for key in ("text_emb", "pair_id"):
        if data.get(key) is not None:
            out[key] = data[key][idx].to(runtime.current().device)
    return out


def generate_text(head, features, prompts: list[str] | None = None, batch_size: int = 64):
    """Free-running outputs of ``head`` for ``features`` [N, d], as a numpy object array of strings; each
    process generates its shard of the rows and every process gets all of them, in order."""
    import numpy as np
    import torch

    rt = runtime.current()
    rows = rt.shard(len(features))
    features, prompts = features[rows].to(rt.device), prompts[rows] if prompts else None
    head.eval()
    out: list[str] = []
    with torch.no_grad(), rt.autocast():
        for i in range(0, len(features), batch_size):
            out += head.generate(features[i:i + batch_size], prompts[i:i + batch_size] if prompts else None)
    return np.array(rt.gather_rows(out), dtype=object)


class PriorOnly:
    """The prior-only control model: a text head trained on a constant input, so its text is the language prior's."""

    def __init__(self, head, width: int):
        self.head, self.width = head, width

    def predict(self, eeg) -> dict:
        """``{"text": one output per trial}``; the EEG is not read."""
        import torch

        return {"text": generate_text(self.head, torch.zeros(len(eeg), self.width))}


def train_prior_only(head, data, run, name: str, *, width: int, epochs: int, batch_size: int, lr: float, seed: int,
                     lr_key: str, text_embed=None) -> PriorOnly:
    """A fresh ``head`` trained on a constant input (zeros ``[width]``) with the train captions and selected on val:
    what the language prior alone produces. Checkpointed as ``<name>`` in ``run``.

    ``text_embed(captions) -> [N, D] tensor`` supplies the CLIP text targets a retrieval head trains on.
    """
    import torch

    parts = {}
    for split in ("train", "val"):
        trials = data.splits[split]
        parts[split] = {"features": torch.zeros(len(trials), width), "captions": data.captions_of(trials)}
        if text_embed is not None:
            parts[split] |= {"text_emb": text_embed(parts[split]["captions"]),
                             "pair_id": torch.from_numpy(data.image[trials])}
    fit_text_head(head, parts["train"], parts["val"], run=run, name=name, epochs=epochs, batch_size=batch_size,
                  lr=lr, seed=seed, lr_key=lr_key)
    return PriorOnly(head, width)
