"""The supervised stage: an encoder and a classifier head trained with cross-entropy.

The checkpoint kept is the epoch with the best validation balanced accuracy; test data is never
looked at. ``target`` names a task of the dataset (e.g. a TUAB label) instead of its class label.
With ``clip_weight > 0`` (Thought2Text's encoder stage) the encoder's features are also pulled to the
CLIP image embedding of each trial's stimulus by ``clip_weight`` x MSE, so they live in CLIP space
(``embed_dim`` must then be the CLIP width).
It trains through the one loop (``train.loop``): resumable, seeded per epoch, on any runtime.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from eegbench import runtime
from eegbench.config import StrictModel, added
from eegbench.data.balance import balanced_accuracy
from eegbench.errors import UserError
from eegbench.train.loop import Optim, Selection, Task, fit
from eegbench.train.stage import Stage


class SupervisedStage(Stage):
    """Encoder + classifier head trained with cross-entropy; checkpoint chosen on val."""

    produces = ("logits",)  # the prediction keys evaluations read
    consumes = (None, "feature-encoder")  # a new encoder, or one an earlier stage pretrained
    hands_on = "classifier"

    @property
    def requires(self) -> tuple[str, ...]:
        return ("eeg", "splits", "labels") + ("images",) * bool(self.config.clip_weight)

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
        init_from: str | None = added(None)  # a run (folder, or suite/variant) whose encoder weights start a fresh one
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
        c = self.config
        y, n_classes = data.target(c.target) if c.target else (data.label, len(data.wnids))
        fresh = model is None
        model = self.build(data.eeg.shape[1], data.eeg.shape[2], n_classes, encoder=model)
        if fresh:
            self.initialise(model[0], run)
        fit(model, lambda: self.task(data, y, pretrained), run=run, name=self.name, seed=self.seed, epochs=c.epochs,
            optim=Optim(lr=c.lr, weight_decay=c.weight_decay), selection=Selection("val_bacc", "max"))
        return model

    def task(self, data, y, pretrained) -> Task:
        """Cross-entropy (+ ``clip_weight`` x MSE to CLIP) on train trials; balanced accuracy on val trials."""
        import numpy as np
        import torch
        import torch.nn.functional as F

        c = self.config
        train, val = (s[y[s] >= 0] for s in (data.splits["train"], data.splits["val"]))  # -1: label unknown
        x_train = torch.from_numpy(np.ascontiguousarray(data.eeg[train]))
        y_train = torch.from_numpy(y[train])
        x_val, y_val = np.ascontiguousarray(data.eeg[val]), y[val]
        clip_train = torch.from_numpy(stimulus_clip(data, train, pretrained)) if c.clip_weight else None

        def losses(model, batch):
            device = runtime.current().device
            features = model[0](x_train[batch.idx].to(device))
            out = {"loss": F.cross_entropy(model[1](features), y_train[batch.idx].to(device))}
            if clip_train is not None:
                out["loss"] = out["loss"] + c.clip_weight * F.mse_loss(features, clip_train[batch.idx].to(device))
            return out

        def validate(model):
            return {"val_bacc": balanced_accuracy(y_val, predict_logits(model, x_val, c.batch_size).argmax(1))}

        return Task(losses, validate, n_items=len(x_train), batch_size=c.batch_size, min_batch=2)  # BatchNorm: 2

    def predict(self, model, eeg) -> dict:
        """Class logits for numpy ``eeg`` [n, channels, times]."""
        return {"logits": predict_logits(model, eeg, self.config.batch_size, split=True)}


def stimulus_clip(data, trials, pretrained):
    """[len(trials), D] unit CLIP image embeddings of each trial's stimulus (cached per image set)."""
    import numpy as np

    images, inverse = np.unique(data.image[trials], return_inverse=True)
    paths = [data.image_path(int(np.flatnonzero(data.image == i)[0])) for i in images]
    return pretrained.clip_image_embeddings(paths)[inverse]


def predict_logits(model, eeg, batch_size: int = 256, split: bool = False):
    """Logits of ``model`` on numpy ``eeg`` [n, channels, times], in eval mode, as numpy (``split``: across processes)."""
    return runtime.map_rows(model, eeg, batch_size, split=split)
