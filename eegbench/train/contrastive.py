"""The EEG-CLIP stage: EEG windows aligned with their recording's report text by contrastive training.

Every training window is paired with its session's report text; windows paired with the same
report (one recording's windows, or several recordings of one session) are positives of each
other. The text encoder is frozen (its embeddings computed once and cached) unless
``text_lr_ratio`` > 0, which tunes it at that fraction of the EEG learning rate.
``pairing: shuffled`` is the control: reports are permuted across recordings (within each split)
before training, so nothing real is left to align and the alignment-based numbers (zero-shot,
retrieval) should fall to chance; probes need not, since the EEG itself carries the labels.
The checkpoint kept is the last epoch of the cosine schedule (the authors' protocol) or, with
``select_on: val_loss``, the epoch with the lowest validation loss. On the synthetic world the
validation loss is lowest after the first epoch and then rises (the training pairs are memorised;
every run's log shows it) while zero-shot accuracy keeps improving, so the loss is a poor
selector: at ci it keeps epoch 0, whose zero-shot pathology is 0.500 against 0.906 for the last.
Test data is never looked at.
"""

from __future__ import annotations

import copy
import math
from typing import Literal

from pydantic import Field

from eegbench import progress
from eegbench.config import StrictModel
from eegbench.train.checkpoint import load_epoch, save_epoch
from eegbench.train.stage import Stage


class ContrastiveStage(Stage):
    """EEG-CLIP: Deep4 + text encoder, symmetric InfoNCE; the last epoch, or the lowest val loss."""

    needs = ("text",)
    produces = ("embeddings",)

    class Config(StrictModel):
        encoder: str = "deep4"
        encoder_args: dict = {"final_conv_length": 2, "stride_before_pool": True, "dense": True}
        embed_dim: int = Field(128, ge=1)  # encoder outputs
        dim: int = Field(64, ge=1)  # shared space
        hidden: int = Field(128, ge=1)  # projection heads' hidden width
        dropout: float = Field(0.1, ge=0, lt=1)
        loss: Literal["normalised", "authors"] = "normalised"  # authors: no L2 norm, raw scale (their code)
        temperature: float = Field(0.07, gt=0)  # initial, learnt (normalised loss; the authors' scale starts at 1)
        text_lr_ratio: float = Field(0.0, ge=0)  # 0 = frozen text encoder; EEG-CLIP tunes at 1e-3
        max_tokens: int = Field(256, ge=8)
        pairing: Literal["matched", "shuffled"] = "matched"
        epochs: int = Field(20, ge=1)
        batch_size: int = Field(64, ge=2)
        lr: float = Field(5e-3, gt=0)  # cosine-annealed to 0 over the epochs
        weight_decay: float = Field(5e-4, ge=0)
        select_on: Literal["last", "val_loss"] = "last"

    def build(self, n_chans: int, n_times: int, text_dim: int, text_encoder=None):
        import torch

        from eegbench import registry
        from eegbench.models.eegclip import EEGCLIP

        c = self.config
        torch.manual_seed(self.seed)
        encoder = self.make(registry.encoders.get(c.encoder), n_chans=n_chans, n_times=n_times,
                            out_dim=c.embed_dim, **c.encoder_args)
        return EEGCLIP(encoder, c.embed_dim, text_dim, dim=c.dim, hidden=c.hidden, dropout=c.dropout,
                       loss=c.loss, temperature=c.temperature, text_encoder=text_encoder)

    def _pairs(self, data):
        """The recording whose report each recording is paired with: itself, or a permutation within its
        split (the control)."""
        import numpy as np

        pair = np.arange(len(data.table))
        if self.config.pairing == "shuffled":
            rng = np.random.default_rng(self.seed + 7)
            split = data.table["split"].to_numpy()
            for s in ("train", "val"):
                rows = np.flatnonzero(split == s)
                pair[rows] = rows[rng.permutation(len(rows))]
        return pair

    def run(self, data, run, model=None, pretrained=None):
        """Train on ``data.splits['train']`` windows, select on ``'val'``; return the selected model."""
        import numpy as np
        import torch

        from eegbench.models.eegclip import contrastive_loss

        c = self.config
        text = pretrained.text()
        text.max_tokens = c.max_tokens
        self._frozen_text = text
        tuned = copy.deepcopy(text).requires_grad_(True) if c.text_lr_ratio > 0 else None
        model = self.build(data.eeg.shape[1], data.eeg.shape[2], text.width, text_encoder=tuned)
        done = run.load_checkpoint(self.name)
        if done is not None:
            model.load_state_dict(done[0])
            return model

        texts = list(data.table["text"])
        pair = torch.from_numpy(self._pairs(data))
        report = torch.from_numpy(data.table.groupby("report_path", sort=False).ngroup().to_numpy().copy())
        features = None if tuned else torch.from_numpy(text.embed(texts, cache_dir=pretrained.cache_dir))

        def text_of(recordings):
            ids = pair[recordings]
            if tuned is None:
                return model.embed_text(features[ids])
            unique, inverse = torch.unique(ids, return_inverse=True)  # each report encoded once per batch
            return model.embed_text(model.text_encoder([texts[i] for i in unique.tolist()])[inverse])

        def positive_id(recordings):
            return report[pair[recordings]]

        base = [p for n, p in model.named_parameters() if not n.startswith("text_encoder.")]
        groups = [{"params": base, "lr": c.lr}]
        if tuned is not None:
            groups.append({"params": list(model.text_encoder.parameters()), "lr": c.lr * c.text_lr_ratio})
        opt = torch.optim.AdamW(groups, lr=c.lr, weight_decay=c.weight_decay)
        ratios = [g["lr"] / c.lr for g in groups]

        train, val = data.splits["train"], data.splits["val"]
        recording = torch.from_numpy(data.recording)
        steps = c.epochs * math.ceil(len(train) / c.batch_size)
        best, history, start = load_epoch(run, self.name, model, opt, initial={"loss": float("inf")})
        last = c.select_on == "last"
        for epoch in progress.track(range(start, c.epochs), f"{self.name}: training", total=c.epochs - start):
            torch.manual_seed(self.seed * 100_003 + epoch)
            model.train()
            order = train[torch.randperm(len(train)).numpy()]
            losses = []
            for i in range(0, len(order), c.batch_size):
                idx = np.sort(order[i:i + c.batch_size])
                if len(idx) < 2:  # batch norm needs two samples
                    continue
                step = epoch * math.ceil(len(train) / c.batch_size) + i // c.batch_size
                for group, ratio in zip(opt.param_groups, ratios):
                    group["lr"] = c.lr * ratio * 0.5 * (1 + math.cos(math.pi * step / steps))
                rec = recording[idx]
                eeg = model.embed_eeg(torch.from_numpy(np.ascontiguousarray(data.eeg[idx])))
                loss = contrastive_loss(model.logits(eeg, text_of(rec)), positive_id(rec))
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
            val_loss = self._val_loss(model, data, val, recording, positive_id, text_of)
            history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": val_loss})
            run.log(f"{self.name}: epoch {epoch} train_loss {history[-1]['train_loss']:.4f} val_loss {val_loss:.4f}")
            if last or val_loss < best["loss"]:
                best = {"loss": val_loss, "epoch": epoch, "state": {k: v.clone() for k, v in model.state_dict().items()}}
            save_epoch(run, self.name, model, opt, best, {"epoch": epoch, "history": history})

        model.load_state_dict(best["state"])
        run.save_checkpoint(self.name, model.state_dict(), {
            "selected_on": c.select_on, "best_epoch": best["epoch"], "val_loss": best["loss"], "history": history})
        run.drop_checkpoint(self.name, resume=True)
        run.log(f"{self.name}: kept epoch {best['epoch']} ({c.select_on}; val loss {best['loss']:.4f})")
        return model

    def _val_loss(self, model, data, val, recording, positive_id, text_of) -> float:
        """Mean contrastive loss over fixed batches of validation windows."""
        import numpy as np
        import torch

        from eegbench.models.eegclip import contrastive_loss

        model.eval()
        order = val[np.random.default_rng(self.seed).permutation(len(val))]
        losses = []
        with torch.no_grad():
            for i in range(0, len(order), self.config.batch_size):
                idx = np.sort(order[i:i + self.config.batch_size])
                if len(idx) < 2:
                    continue
                rec = recording[idx]
                eeg = model.embed_eeg(torch.from_numpy(np.ascontiguousarray(data.eeg[idx])))
                losses.append(contrastive_loss(model.logits(eeg, text_of(rec)), positive_id(rec)).item() * len(idx))
        return float(np.sum(losses) / len(order))

    def predict(self, model, eeg) -> dict:
        """Shared-space EEG embeddings ``[n, dim]`` for numpy ``eeg`` [n, channels, times]."""
        import numpy as np
        import torch

        model.eval()
        with torch.no_grad():
            out = [model.embed_eeg(torch.from_numpy(np.ascontiguousarray(eeg[i:i + 256]))) for i in range(0, len(eeg), 256)]
        return {"embeddings": torch.cat(out).numpy()}

    def embed_text(self, model, texts: list[str]):
        """Shared-space embeddings ``[n, dim]`` of ``texts`` (prompts, reports)."""
        import torch

        model.eval()
        encoder = getattr(model, "text_encoder", None) or self._frozen_text
        with torch.no_grad():
            return model.embed_text(torch.from_numpy(encoder.embed(list(texts)))).numpy()
