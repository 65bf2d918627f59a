"""The masked-signal-modelling stage: DreamDiffusion's MAE pretraining of an EEG encoder.

An :class:`~eegbench.models.mae.MAEEncoder` is pretrained on the train split (plus optional
unlabelled ``extra_eeg``); val trials only select the checkpoint, by masked-token MSE with masks
that are the same every epoch; test trials are never read. AdamW (no weight decay on biases and
norms, as timm's parameter groups), per-step linear warm-up then cosine decay to zero. ``lr`` is
the peak rate for ``batch_size`` as given (2.5e-4 at 100, the paper's); nothing rescales it, so
scale it yourself when changing the batch size (linear rule: lr x batch_size / 100). Each epoch
trains through the one loop (``train.loop``), so a resumed run equals an uninterrupted one. The stage returns the selected MAEEncoder for the next stage and writes
``samples/<stage>_reconstruction.png``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from eegbench import runtime
from eegbench.config import StrictModel
from eegbench.errors import UserError
from eegbench.io import atomic_write_bytes
from eegbench.train.loop import Optim, Selection, Task, fit
from eegbench.train.stage import Stage

Beta = Annotated[float, Field(ge=0, lt=1)]
EXTRA_SUFFIXES = (".npy", ".edf", ".bdf")


class MSMStage(Stage):
    """MAE-ViT pretrained by masked signal modelling (DreamDiffusion); checkpoint chosen on val MSE."""

    hands_on = "token-encoder"

    class Config(StrictModel):
        encoder_args: dict = {}  # MAEEncoder widths/depths/heads/patch/mlp_ratio; paper scale by default
        mask_ratio: float = Field(0.75, gt=0, lt=1)
        epochs: int = Field(100, ge=0)  # 0: no pretraining, the encoder is handed on as initialised (ablations)
        batch_size: int = Field(100, ge=1)
        lr: float = Field(2.5e-4, gt=0)  # peak, used as given for batch_size (no automatic scaling)
        weight_decay: float = Field(0.05, ge=0)
        betas: tuple[Beta, Beta] = (0.9, 0.95)
        warmup_epochs: int = Field(40, ge=0)
        extra_eeg: str | None = None  # folder of unlabelled .npy [n, C, T] / [C, T], .edf, .bdf
        train_on: Literal["eeg", "noise"] = "eeg"  # noise: the trained-on-noise control variant
        select_on: Literal["val"] = "val"  # checkpoint selection split; never test

    def build(self, n_chans: int, n_times: int):
        """A freshly initialised MAEEncoder for EEG of ``n_chans`` x ``n_times``."""
        import torch

        from eegbench.models.mae import MAEEncoder

        torch.manual_seed(self.seed)
        return self.make(MAEEncoder, n_chans=n_chans, n_times=n_times, mask_ratio=self.config.mask_ratio,
                         **self.config.encoder_args)

    def run(self, data, run, model=None, pretrained=None):
        """Pretrain on ``data.splits['train']`` (+ ``extra_eeg``), select on ``'val'``; return the MAEEncoder."""
        c = self.config
        n_chans, n_times = data.eeg.shape[1:]
        model = self.build(n_chans, n_times)
        if c.epochs == 0:
            run.log(f"{self.name}: 0 epochs: the encoder is handed on as initialised (seed {self.seed}), not pretrained")
            return model
        model.gradient_checkpointing = runtime.current().config.gradient_checkpointing
        meta = {"encoder": "mae-vit", "encoder_args": {"n_chans": n_chans, "n_times": n_times,
                                                       "mask_ratio": c.mask_ratio, **c.encoder_args}}
        held = {}  # the task's val EEG, for the reconstruction plot of a stage trained now
        meta = fit(model, lambda: self.task(data, run, n_chans, n_times, meta, held), run=run, name=self.name,
                   seed=self.seed, epochs=c.epochs, selection=Selection("val_mse", "min"), meta=meta,
                   optim=Optim(lr=c.lr, betas=c.betas, schedule="cosine", warmup_epochs=c.warmup_epochs,
                               weight_decay=c.weight_decay))
        model.gradient_checkpointing = False
        if "x_val" in held and runtime.is_main_process():
            write_reconstruction_plot(model, held["x_val"][:3], run.path / "samples" / f"{self.name}_reconstruction.png",
                                      self.seed, title=f"{self.name}: val trials, epoch {meta['best_epoch']}")
        return model

    def task(self, data, run, n_chans: int, n_times: int, meta: dict, held: dict) -> Task:
        """Masked-token MSE on train trials (+ extra EEG); val MSE under fixed masks. AdamW groups as timm's:
        no weight decay on biases and norms. Records the training items in ``meta``."""
        import torch

        c = self.config
        train, val = data.splits["train"], data.splits["val"]
        if len(train) == 0 or len(val) == 0:
            raise UserError(f"stages.{self.name}: needs train and val trials (got {len(train)} and {len(val)}); "
                            "check the dataset's split file")
        x_train = np.ascontiguousarray(data.eeg[train], dtype=np.float32)
        x_val = np.ascontiguousarray(data.eeg[val], dtype=np.float32)
        n_extra = 0
        if c.extra_eeg is not None:
            extra = load_extra_eeg(Path(c.extra_eeg), n_chans, n_times, key=f"stages.{self.name}.extra_eeg")
            x_train, n_extra = np.concatenate([x_train, extra]), len(extra)
        x_train = torch.from_numpy(self.training_eeg(x_train, "train"))
        x_val = torch.from_numpy(self.training_eeg(x_val, "val"))
        held["x_val"] = x_val
        meta["train_items"] = {"trials": len(train), "extra": n_extra}
        run.log(f"{self.name}: pretraining on {len(train)} train trials + {n_extra} extra segments, "
                f"selecting on {len(val)} val trials")

        def losses(model, batch):
            x = x_train[batch.idx].to(runtime.current().device)
            return {"mse": model.masked_loss(x, noise=batch.draw(torch.rand, model.n_tokens))[0]}

        def groups(model):
            return [{"params": [p for p in model.parameters() if p.ndim > 1], "weight_decay": c.weight_decay},
                    {"params": [p for p in model.parameters() if p.ndim <= 1], "weight_decay": 0.0}]

        return Task(losses, lambda model: {"val_mse": val_mse(model, x_val, c.batch_size, self.seed)},
                    n_items=len(x_train), batch_size=c.batch_size, param_groups=groups)

    def predict(self, model, eeg) -> dict:
        """Not available: msm is never the last stage."""
        raise UserError(f"stages.{self.name}: an msm stage only pretrains an encoder and predicts nothing; "
                        "add a stage after it (e.g. kind: supervised)")


def val_mse(model, eeg, batch_size: int, seed: int) -> float:
    """Masked-token MSE of ``model`` on ``eeg`` [n, C, T] in eval mode, on the runtime's device, with masks drawn
    on the CPU from ``seed``: the global RNGs are left untouched, and the same (eeg, batch_size, seed) gives the
    same masks on any device.
    """
    import torch

    device = runtime.current().device
    g = torch.Generator().manual_seed(seed)
    model.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(eeg), batch_size):
            batch = eeg[i:i + batch_size]
            noise = torch.rand(len(batch), model.n_tokens, generator=g)
            total += model.masked_loss(batch.to(device), noise=noise.to(device))[0].item() * len(batch)
    return total / len(eeg)


def load_extra_eeg(folder: Path, n_chans: int, n_times: int, key: str = "extra_eeg") -> np.ndarray:
    """Unlabelled EEG from ``folder`` as float32 ``[n, n_chans, n_times]`` windows.

    ``.npy`` files hold ``[n, C, T]`` or ``[C, T]`` arrays, used in their own units (they should be
    preprocessed like the dataset). ``.edf``/``.bdf`` files are read with mne; their EEG channels
    are standardised per channel over the recording (they are in volts), at the file's own sampling
    rate. Each recording is cut into consecutive non-overlapping ``n_times`` windows (the remainder
    is cropped). Other files are ignored.
    """
    if not folder.is_dir():
        raise UserError(f"{key}: {folder} is not a folder; point it at a folder of .npy/.edf/.bdf files or remove it")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EXTRA_SUFFIXES)
    if not files:
        raise UserError(f"{key}: {folder} holds no .npy, .edf or .bdf files; add some or remove {key}")
    parts = []
    for path in files:
        arr = _read_npy(path) if path.suffix.lower() == ".npy" else _read_edf(path)
        if arr.shape[1] != n_chans:
            raise UserError(f"{path}: {arr.shape[1]} EEG channels, but the encoder takes {n_chans} (the dataset's); "
                            f"remove the file from {key} or re-export it with {n_chans} channels")
        if arr.shape[2] < n_times:
            raise UserError(f"{path}: {arr.shape[2]} samples, fewer than the encoder's n_times={n_times}; "
                            f"remove the file from {key} or supply recordings of at least {n_times} samples")
        n, c, t = arr.shape
        k = t // n_times
        windows = np.asarray(arr[..., :k * n_times], dtype=np.float32).reshape(n, c, k, n_times)
        windows = windows.transpose(0, 2, 1, 3).reshape(n * k, c, n_times)
        if not np.isfinite(windows).all():
            raise UserError(f"{path}: holds NaN/Inf samples; repair the file or remove it from {key}")
        parts.append(windows)
    return np.concatenate(parts)


def _read_npy(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable .npy array ({type(exc).__name__}); re-save it with numpy.save") from None
    if arr.ndim not in (2, 3) or not np.issubdtype(arr.dtype, np.number):
        raise UserError(f"{path}: a {arr.dtype} array of shape {list(arr.shape)}; save numeric [n, C, T] or [C, T] EEG")
    return arr[None] if arr.ndim == 2 else arr


def _read_edf(path: Path) -> np.ndarray:
    import mne

    try:
        raw = mne.io.read_raw(path, preload=True, verbose="error")
        raw.pick("eeg")
    except Exception as exc:  # mne raises many types for unreadable files or files without EEG
        raise UserError(f"{path}: mne cannot read EEG channels from it ({type(exc).__name__}); "
                        "re-export it as EDF/BDF with EEG channels or remove it") from None
    x = raw.get_data()
    std = x.std(axis=1, keepdims=True)
    return ((x - x.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0))[None]


def write_reconstruction_plot(model, eeg, path: Path, seed: int, title: str) -> None:
    """Original vs reconstruction of a few trials of ``eeg`` on three channels, masked spans shaded; atomic PNG."""
    import torch
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    device = runtime.current().device
    model.eval()
    with torch.no_grad():
        noise = torch.rand(len(eeg), model.n_tokens, generator=torch.Generator().manual_seed(seed))
        _, pred, mask = model.masked_loss(eeg.to(device), noise=noise.to(device))
    pred, mask = pred.cpu(), mask.cpu()
    tokens = torch.full_like(model.patchify(eeg), float("nan"))
    tokens[mask] = pred.float().reshape(-1, tokens.shape[-1])
    recon = model.unpatchify(tokens).numpy()
    channels = sorted({0, model.n_chans // 2, model.n_chans - 1})
    fig = Figure(figsize=(4 * len(channels), 1.8 * len(eeg)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(eeg), len(channels), squeeze=False, sharex=True)
    for i in range(len(eeg)):
        for j, ch in enumerate(channels):
            ax = axes[i, j]
            for start, stop in _runs(mask[i].tolist()):
                ax.axvspan(start * model.patch - 0.5, stop * model.patch - 0.5, color="0.88", lw=0)
            ax.plot(eeg[i, ch].numpy(), color="black", lw=0.7, label="original")
            ax.plot(recon[i, ch], color="tab:red", lw=0.9, label="reconstruction (masked, shaded)")
            ax.set_title(f"trial {i}, channel {ch}", fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    fig.suptitle(title, fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    atomic_write_bytes(path, buf.getvalue())


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    """``[start, stop)`` index ranges of the consecutive True entries of ``flags``."""
    runs, start = [], None
    for i, flag in enumerate([*flags, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i))
            start = None
    return runs
