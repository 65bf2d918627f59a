"""The supervised stage: an encoder and a classifier head trained with cross-entropy.

The checkpoint kept is the epoch with the best validation balanced accuracy; test data is never
looked at. ``target`` names a task of the dataset (e.g. a TUAB label) instead of its class label.
With ``clip_weight > 0`` (Thought2Text's encoder stage) the encoder's features are also pulled to the
CLIP image embedding of each trial's stimulus by ``clip_weight`` x MSE, so they live in CLIP space
(``embed_dim`` must then be the CLIP width).
Each epoch's state (weights, optimiser, best-so-far) is checkpointed, so an interrupted run resumes
where it stopped, and per-epoch seeding makes a resumed run identical to an uninterrupted one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from eegbench import progress
from eegbench.config import StrictModel
from eegbench.errors import UserError
from eegbench.train.checkpoint import load_epoch, save_epoch
from eegbench.train.stage import Stage


class SupervisedStage(Stage):
    """Encoder + classifier head trained with cross-entropy; checkpoint chosen on val."""

    produces = ("logits",)  # the prediction keys evaluations read

    class Config(StrictModel):
        encoder: str = "deep4"
        encoder_args: dict = {}
        embed_dim: int = Field(128, ge=1)
        head: str = "classifier"
        epochs: int = Field(20, ge=1)
        batch_size: int = Field(64, ge=1)
        lr: float = Field(1e-3, gt=0)
        weight_decay: float = Field(0.0, ge=0)
        target: str | None = None  # a dataset task (data.target); unset = the class label
        clip_weight: float = Field(0.0, ge=0)  # MSE of the features to the stimulus's CLIP image embedding
        select_on: Literal["val"] = "val"  # checkpoint selection split; never test

    @property
    def needs(self) -> tuple[str, ...]:
        return ("clip",) if self.config.clip_weight else ()

    def precheck(self, data, pretrained) -> None:
        """With CLIP targets: the features must have the CLIP width, and every train/val stimulus must exist."""
        import numpy as np

        from eegbench.data.stimuli import check_stimuli

        c = self.config
        if not c.clip_weight:
            return
        width = pretrained.clip()[0].visual.output_dim
        if c.embed_dim != width:
            raise UserError(f"stages.{self.name}.embed_dim: {c.embed_dim}, but clip_weight pulls the features to CLIP "
                            f"image embeddings of width {width}; set embed_dim: {width}")
        check_stimuli(data, np.concatenate([data.splits["train"], data.splits["val"]]))

    def build(self, n_chans: int, n_times: int, n_classes: int, encoder=None):
        """Encoder + head; ``encoder`` is a pretrained one handed on by an earlier stage, if any."""
        import torch
        from torch import nn

        from eegbench import registry

        c = self.config
        torch.manual_seed(self.seed)
        if encoder is None:
            encoder = self.make(registry.encoders.get(c.encoder), n_chans=n_chans, n_times=n_times,
                                out_dim=c.embed_dim, **c.encoder_args)
        with torch.no_grad():
            encoder.eval()
            features = encoder(torch.zeros(2, n_chans, n_times)).shape[1]
        return nn.Sequential(encoder, registry.heads.get(c.head)(features, n_classes))

    def run(self, data, run, model=None, pretrained=None):
        """Train on ``data.splits['train']``, select on ``'val'``; return the selected model.

        ``model``, when given, is the encoder an earlier stage pretrained; it is fine-tuned under the head.
        """
        import numpy as np
        import torch
        import torch.nn.functional as F

        c = self.config
        y, n_classes = data.target(c.target) if c.target else (data.label, len(data.wnids))
        model = self.build(data.eeg.shape[1], data.eeg.shape[2], n_classes, encoder=model)
        done = run.load_checkpoint(self.name)
        if done is not None:
            model.load_state_dict(done[0])
            return model

        train, val = (s[y[s] >= 0] for s in (data.splits["train"], data.splits["val"]))  # -1: label unknown
        x_train = torch.from_numpy(np.ascontiguousarray(data.eeg[train]))
        y_train = torch.from_numpy(y[train])
        x_val, y_val = np.ascontiguousarray(data.eeg[val]), y[val]
        clip_train = torch.from_numpy(stimulus_clip(data, train, pretrained)) if c.clip_weight else None
        opt = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)

        best, history, start = load_epoch(run, self.name, model, opt, initial={"acc": -1.0})

        for epoch in progress.track(range(start, c.epochs), f"{self.name}: training", total=c.epochs - start):
            torch.manual_seed(self.seed * 100_003 + epoch)
            model.train()
            order = torch.randperm(len(x_train))
            losses = []
            for i in range(0, len(order), c.batch_size):
                idx = order[i:i + c.batch_size]
                if len(idx) < 2:  # batch norm needs two samples
                    continue
                features = model[0](x_train[idx])
                loss = F.cross_entropy(model[1](features), y_train[idx])
                if clip_train is not None:
                    loss = loss + c.clip_weight * F.mse_loss(features, clip_train[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
            acc = balanced_accuracy(y_val, predict_logits(model, x_val, c.batch_size).argmax(1))
            history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_bacc": acc})
            run.log(f"{self.name}: epoch {epoch} train_loss {history[-1]['train_loss']:.4f} val_bacc {acc:.4f}")
            if acc > best["acc"]:
                best = {"acc": acc, "epoch": epoch, "state": {k: v.clone() for k, v in model.state_dict().items()}}
            save_epoch(run, self.name, model, opt, best, {"epoch": epoch, "history": history})

        model.load_state_dict(best["state"])
        run.save_checkpoint(self.name, model.state_dict(), {
            "selected_on": "val", "best_epoch": best["epoch"], "val_bacc": best["acc"], "history": history})
        run.drop_checkpoint(self.name, resume=True)
        run.log(f"{self.name}: selected epoch {best['epoch']} on val (balanced acc {best['acc']:.4f})")
        return model

    def predict(self, model, eeg) -> dict:
        """Class logits for numpy ``eeg`` [n, channels, times]."""
        return {"logits": predict_logits(model, eeg, self.config.batch_size)}


def stimulus_clip(data, trials, pretrained):
    """[len(trials), D] unit CLIP image embeddings of each trial's stimulus (cached per image set)."""
    import numpy as np

    images, inverse = np.unique(data.image[trials], return_inverse=True)
    paths = [data.image_path(int(np.flatnonzero(data.image == i)[0])) for i in images]
    return pretrained.clip_image_embeddings(paths)[inverse]


def balanced_accuracy(y, predicted) -> float:
    """Mean over the classes present in ``y`` of the fraction of their samples predicted right."""
    from eegbench.evaluate.stats import class_balance_weights, weighted_mean

    return weighted_mean(predicted == y, class_balance_weights(y))


def predict_logits(model, eeg, batch_size: int = 256):
    """Logits of ``model`` on numpy ``eeg`` [n, channels, times], in eval mode, as numpy."""
    import numpy as np
    import torch

    model.eval()
    with torch.no_grad():
        out = [model(torch.from_numpy(np.ascontiguousarray(eeg[i:i + batch_size]))) for i in range(0, len(eeg), batch_size)]
    return torch.cat(out).numpy()
