"""Thought2Text's language stages: a frozen causal LM reading one projected EEG embedding.

The model handed on is a ``supervised`` stage's encoder and class head, trained with ``clip_weight``
so that its features live in CLIP image space. It stays frozen. A ``PrefixLMHead`` maps a CLIP-space
vector to ``prefix_tokens`` LM input embeddings (Thought2Text: one) placed before the prompt. Phase
``clip`` trains only that projector on the CLIP image embeddings of the stimuli, with the true class
name in the prompt; phase ``eeg`` goes on from there with the encoder's EEG features and its predicted
class name, as at test time. Each phase keeps the epoch with the lowest teacher-forced loss on
validation trials; text is scored by free-running generation alone. ``class_name: false`` is the
paper's EEG-only row (no class name in the prompt).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from eegbench import runtime
from eegbench.errors import UserError
from eegbench.train.stage import Stage
from eegbench.train.text_head import Decoding


class ProjectorStage(Stage):
    """A trained projector of the frozen encoder's CLIP-space features into a frozen LM; chosen on val."""

    produces = ("text", "logits")
    consumes = ("classifier",)  # Thought2Text's encoder stage: supervised with clip_weight > 0
    hands_on = "text-projector"
    comparisons = ("prior_only",)
    requires = ("eeg", "splits", "labels", "images", "captions")

    class Config(Decoding):
        prefix_tokens: int = Field(1, ge=1)  # Thought2Text: one projected embedding token
        class_name: bool = True  # write the class name (predicted from EEG at test time) into the prompt
        prompt: str = "{class_name}:"  # the prompt after the EEG token, {class_name} filled in when class_name
        clip_epochs: int = Field(20, ge=0)  # phase 1: the projector on the stimuli's CLIP image embeddings
        eeg_epochs: int = Field(20, ge=1)  # phase 2: the projector on the encoder's EEG features
        batch_size: int = Field(32, ge=1)
        lr: float = Field(1e-3, gt=0)
        select_on: Literal["val"] = "val"  # checkpoint selection split; never test

    @property
    def needs(self) -> tuple[str, ...]:
        return ("lm",) + ("clip",) * bool(self.config.clip_epochs)

    def precheck(self, data, pretrained) -> None:
        """Every trial has a caption; the prompt template fills in."""
        data.captions_of(np.concatenate([data.splits[s] for s in ("train", "val", "test")]))
        try:
            self.config.prompt.format(class_name="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise UserError(f"stages.{self.name}.prompt: {self.config.prompt!r} does not format ({exc}); "
                            "use {class_name} as the only field") from None

    def prompts(self, labels) -> list[str] | None:
        """The prompt of each trial from its class (``labels``), or None without class names."""
        if not self.config.class_name:
            return None
        return [self.config.prompt.format(class_name=self.class_names[int(label)]) for label in labels]

    def run(self, data, run, model=None, pretrained=None):
        """Train the projector (phase clip, then phase eeg) on train trials, each phase selected on val."""
        import torch
        from torch import nn

        from eegbench.train.supervised import stimulus_clip
        from eegbench.train.text_head import fit_text_head

        c = self.config
        model.eval().requires_grad_(False)
        self.class_names = list(data.class_names)
        splits = {s: data.splits[s] for s in ("train", "val")}
        eeg = {s: self.features(model, data.eeg[t]) for s, t in splits.items()}
        width = eeg["train"][0].shape[1]
        torch.manual_seed(self.seed)
        head = c.lm_head(width, pretrained)
        captions = {s: data.captions_of(t) for s, t in splits.items()}
        meta = {}
        if c.clip_epochs:
            clip = {s: torch.from_numpy(stimulus_clip(data, t, pretrained)) for s, t in splits.items()}
            if clip["train"].shape[1] != width:
                raise UserError(f"stages.{self.name}: the encoder's features are {width} wide, CLIP's image embeddings "
                                f"{clip['train'].shape[1]}; train the supervised stage with embed_dim equal to the CLIP width")
            parts = {s: {"features": clip[s], "captions": captions[s], "prompts": self.prompts(data.label[t])}
                     for s, t in splits.items()}
            done = fit_text_head(head, parts["train"], parts["val"], run=run, name=f"{self.name}-clip",
                                 epochs=c.clip_epochs, batch_size=c.batch_size, lr=c.lr, seed=self.seed,
                                 lr_key=f"stages.{self.name}.lr")
            meta["clip"] = {k: done[k] for k in ("best_epoch", "val_text")}
        parts = {s: {"features": eeg[s][0], "captions": captions[s], "prompts": self.prompts(eeg[s][1])}
                 for s in splits}
        fit_text_head(head, parts["train"], parts["val"], run=run, name=self.name, epochs=c.eeg_epochs,
                      batch_size=c.batch_size, lr=c.lr, seed=self.seed + 1, lr_key=f"stages.{self.name}.lr", meta=meta)
        return nn.ModuleDict({"eeg": model, "text": head})

    def features(self, model, eeg: np.ndarray):
        """``(features [N, width] tensor, predicted class [N])`` of the frozen encoder and class head."""
        import torch

        features = torch.from_numpy(runtime.map_rows(model[0], eeg, 256))
        return features, runtime.map_rows(model[1], features.numpy(), 256).argmax(1)

    def predict(self, model, eeg) -> dict:
        """``{"text": free-running outputs, "logits": class logits}`` for numpy ``eeg`` [trials, C, T]."""
        from eegbench.train.text_head import generate_text

        features, predicted = self.features(model["eeg"], eeg)
        logits = runtime.map_rows(model["eeg"][1], features.numpy(), 256)
        return {"text": generate_text(model["text"], features, self.prompts(predicted)), "logits": logits}

    def train_comparison(self, name, model, data, run, pretrained, args=None):
        """The prior-only control (``prior_only``): a fresh projector trained on a constant input, no class name."""
        import torch

        from eegbench.train.text_head import train_prior_only

        c, width = self.config, model["text"].project[0].in_features
        torch.manual_seed(self.seed)
        return train_prior_only(c.lm_head(width, pretrained), data, run, f"{self.name}-prior", width=width,
                                epochs=c.clip_epochs + c.eeg_epochs, batch_size=c.batch_size, lr=c.lr, seed=self.seed,
                                lr_key=f"stages.{self.name}.lr")
