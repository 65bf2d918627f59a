"""The EEG-CLIP stage: EEG windows aligned with their recording's report text by contrastive training.

Every training window is paired with its session's report text; windows paired with the same
report (one recording's windows, or several recordings of one session) are positives of each
other. With ``texts: captions`` (ImageNet-EEG) a trial is paired with its stimulus's caption and
the trials of one image are positives: the EEG-CLIP encoder a later stage can condition on. The text encoder is frozen (its embeddings computed once and cached) unless
``text_lr_ratio`` > 0, which tunes it at that fraction of the EEG learning rate.
``pairing: shuffled`` is the control: reports are permuted across recordings (captions across images; within each split)
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
from typing import Literal

from pydantic import Field

from eegbench import runtime
from eegbench.config import StrictModel, added
from eegbench.train.loop import Optim, Selection, Task, fit
from eegbench.train.stage import Stage


class ContrastiveStage(Stage):
    """EEG-CLIP: Deep4 + text encoder, symmetric InfoNCE; the last epoch, or the lowest val loss."""

    needs = ("text",)
    produces = ("embeddings",)
    hands_on = "eeg-text"
    comparisons = ("baselines",)  # train.baselines: task-specific Deep4, random-init and other-task encoders

    class Config(StrictModel):
        texts: Literal["reports", "captions"] = added("reports")  # each recording's report, or each stimulus's caption
        encoder: str = "deep4"
        init_from: str | None = added(None)  # a run (folder, or suite/variant) whose encoder weights start this one
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

    @property
    def requires(self) -> tuple[str, ...]:
        return ("eeg", "splits") + (("recordings", "reports") if self.config.texts == "reports" else ("captions",))

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

    def _sources(self, data):
        """``(texts, source, split, group)``: the text of each source (a recording, or a stimulus image), the source
        of each EEG item, each source's split, and the group of each source's text (sources with one group's text
        are positives: the recordings of one report; each image alone)."""
        import numpy as np

        if self.config.texts == "reports":
            table = data.table
            return (list(table["text"]), data.recording, table["split"].to_numpy(),
                    table.groupby("report_path", sort=False).ngroup().to_numpy().copy())
        images, source = np.unique(data.image, return_inverse=True)
        split = np.empty(len(images), dtype=object)
        for name, trials in sorted(data.splits.items()):
            split[source[trials]] = name
        first = np.unique(source, return_index=True)[1]
        return data.captions_of(first), source, split, np.arange(len(images))

    def _pairs(self, split):
        """The source whose text each source is paired with: itself, or a permutation within its split (the
        control)."""
        import numpy as np

        pair = np.arange(len(split))
        if self.config.pairing == "shuffled":
            rng = np.random.default_rng(self.seed + 7)
            for s in ("train", "val"):
                rows = np.flatnonzero(split == s)
                pair[rows] = rows[rng.permutation(len(rows))]
        return pair

    def run(self, data, run, model=None, pretrained=None):
        """Train on ``data.splits['train']`` windows, select on ``'val'``; return the selected model."""
        c = self.config
        text = pretrained.text()
        text.max_tokens = c.max_tokens
        self._frozen_text = text
        tuned = copy.deepcopy(text).requires_grad_(True) if c.text_lr_ratio > 0 else None
        model = self.build(data.eeg.shape[1], data.eeg.shape[2], text.width, text_encoder=tuned)
        self.initialise(model.encoder, run)
        fit(model, lambda: self.task(model, data, text, pretrained), run=run, name=self.name, seed=self.seed,
            epochs=c.epochs, optim=Optim(lr=c.lr, weight_decay=c.weight_decay, schedule="cosine"),
            selection=Selection(None) if c.select_on == "last" else Selection("val_loss", "min"))
        return model

    def task(self, model, data, text, pretrained) -> Task:
        """Symmetric InfoNCE over the global batch (embeddings gathered across processes); val loss on fixed
        batches of validation windows."""
        import numpy as np
        import torch

        from eegbench.models.eegclip import contrastive_loss

        c = self.config
        rt = runtime.current()
        tuned = getattr(model, "text_encoder", None)
        texts, source, split, group = self._sources(data)
        pair = torch.from_numpy(self._pairs(split))
        group = torch.from_numpy(group)
        features = None if tuned else torch.from_numpy(text.embed(texts, cache_dir=pretrained.cache_dir))
        source = torch.from_numpy(source)
        train, val = data.splits["train"], data.splits["val"]

        def text_of(model, sources):
            ids = pair[sources]
            if tuned is None:
                return model.embed_text(features[ids].to(rt.device))
            unique, inverse = torch.unique(ids, return_inverse=True)  # each text encoded once per batch
            return model.embed_text(model.text_encoder([texts[i] for i in unique.tolist()])[inverse.to(rt.device)])

        def batch_loss(model, idx, gather=lambda x: x):
            src = source[idx]
            eeg = model.embed_eeg(torch.from_numpy(np.ascontiguousarray(data.eeg[idx])).to(rt.device))
            ids = group[pair[src]].to(rt.device)
            return contrastive_loss(model.logits(gather(eeg), gather(text_of(model, src))), gather(ids))

        def losses(model, batch):
            idx = np.sort(train[batch.idx.numpy()])
            return {"loss": batch_loss(model, idx, rt.gather_with_grad)}

        def validate(model):
            order = val[np.random.default_rng(self.seed).permutation(len(val))]
            total = 0.0
            with torch.no_grad():
                for i in range(0, len(order), c.batch_size):
                    idx = np.sort(order[i:i + c.batch_size])
                    if len(idx) >= 2:  # batch norm needs two samples
                        total += batch_loss(model, idx).item() * len(idx)
            return {"val_loss": total / len(order)}

        def groups(model):
            base = [p for n, p in model.named_parameters() if not n.startswith("text_encoder.")]
            tuned_params = list(model.text_encoder.parameters()) if tuned is not None else []
            return [{"params": base, "lr": c.lr}, {"params": tuned_params, "lr": c.lr * c.text_lr_ratio}]

        return Task(losses, validate, n_items=len(train), batch_size=c.batch_size, param_groups=groups, min_batch=2)

    def train_comparison(self, name, model, data, run, pretrained, args=None):
        """EEG-CLIP's comparison models (``baselines``), with the scoring evaluation's arguments ``args``."""
        from eegbench.train.baselines import train_baselines

        return train_baselines(self.config, data, run, self.seed, args)

    def predict(self, model, eeg) -> dict:
        """Shared-space EEG embeddings ``[n, dim]`` for numpy ``eeg`` [n, channels, times]."""
        model.eval()
        return {"embeddings": runtime.map_rows(model.embed_eeg, eeg, 256, split=True)}

    def embed_text(self, model, texts: list[str]):
        """Shared-space embeddings ``[n, dim]`` of ``texts`` (prompts, reports)."""
        import torch

        model.eval()
        encoder = getattr(model, "text_encoder", None) or self._frozen_text
        with torch.no_grad():
            features = torch.from_numpy(encoder.embed(list(texts))).to(runtime.current().device)
            return model.embed_text(features).float().cpu().numpy()
