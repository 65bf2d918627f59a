"""The one epoch loop: every stage, comparison model and text head trains through :func:`fit`.

A stage hands over a model and a :class:`Task` (its batches' losses and its validation); the loop
owns the rest: skipping a finished stage, resuming mid-stage, per-(seed, epoch) seeding, AdamW with
the task's parameter groups, the warm-up/cosine schedules of diffusers, gradient accumulation and
clipping, the non-finite check, the per-epoch history, selection on a named validation key (or the
last epoch), the best-epoch snapshot, the final checkpoint and callbacks (progress bar, the run's
epoch hook that sweeps prune on, per-step losses).

Processes (``eegbench.runtime``): ``batch_size`` is the global batch. Every process draws the same
permutation, takes its contiguous slice of each global batch (further split into ``grad_accum``
micro-batches) and scales its loss so that the gradients, averaged across processes, are those of
the global batch's mean loss. Random draws made through :meth:`Batch.draw` are drawn for the global
batch and sliced, so one process and many see the same noise. Only the main process writes.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, Literal

from eegbench import progress, runtime
from eegbench.errors import UserError
from eegbench.train.checkpoint import optimizer_from_tensors, optimizer_to_tensors

SCHEDULES = ("constant", "constant_with_warmup", "cosine")


@dataclass(frozen=True)
class Selection:
    """Which epoch is kept: the best value of history key ``key`` (``min`` or ``max``), or the last when
    ``key`` is None. Validation keys only: the loop never sees test data."""

    key: str | None
    mode: Literal["min", "max"] = "min"

    def better(self, value: float, best: float | None) -> bool:
        if self.key is None or best is None:
            return True
        return value < best if self.mode == "min" else value > best


@dataclass(frozen=True)
class Optim:
    """AdamW and its schedule: ``lr`` peak (parameter groups may carry their own ``lr``), ``schedule`` one of
    :data:`SCHEDULES`, warm-up over ``warmup`` steps plus ``warmup_epochs`` epochs, optional gradient-norm clipping."""

    lr: float
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "constant"
    warmup: int = 0
    warmup_epochs: int = 0
    grad_clip: float | None = None


@dataclass
class Batch:
    """This process's share of one global batch: item ids ``idx``, its rows ``part`` of the global batch of
    ``size`` items."""

    idx: "torch.Tensor"  # noqa: F821
    size: int
    part: slice

    def draw(self, fn: Callable, *shape: int, **kwargs):
        """``fn(size, *shape)`` (e.g. ``torch.rand``) drawn for the whole global batch on the CPU generator,
        this process's rows, on the runtime's device: the same numbers on one process or many."""
        return fn(self.size, *shape, **kwargs)[self.part].to(runtime.current().device)


@dataclass
class Task:
    """What a stage trains: ``losses(model, batch) -> {name: scalar}`` over ``n_items`` training items,
    ``validate(model) -> {key: float}`` after each epoch.

    ``weights`` weigh the losses into the objective (default 1 each); ``param_groups(model)`` gives AdamW's
    groups (``{"params", "lr"?, "weight_decay"?}``; default: every trainable parameter); ``min_batch`` skips
    a step whose per-process micro-batch would be smaller (BatchNorm needs 2); ``drop_last`` drops the last
    partial batch; ``start_epoch(model, epoch)`` runs before each epoch's steps.
    """

    losses: Callable
    validate: Callable
    n_items: int
    batch_size: int
    weights: dict[str, float] = field(default_factory=dict)
    param_groups: Callable | None = None
    min_batch: int = 1
    drop_last: bool = False
    start_epoch: Callable | None = None


def finished(run, name: str, model) -> dict | None:
    """The final checkpoint's metadata, loaded into ``model``, when stage ``name`` already finished."""
    done = run.load_checkpoint(name)
    if done is None:
        return None
    model.load_state_dict(done[0])
    return done[1]


def fit(model, make_task: Callable[[], Task], *, run, name: str, seed: int, epochs: int, optim: Optim,
        selection: Selection, meta: dict | None = None, lr_key: str | None = None,
        callbacks: tuple[Callable, ...] = ()) -> dict:
    """Train ``model`` on ``make_task()`` for ``epochs``, keep the selected epoch's weights in ``model`` and
    return the final checkpoint's metadata (``selected_on``, ``best_epoch``, the selection value, ``history``,
    plus ``meta``). A finished stage is loaded and returned without building its task; an interrupted one
    resumes after its last finished epoch and ends as an uninterrupted one would.

    ``lr_key`` names the config key the non-finite error points to (default ``stages.<name>.lr``);
    ``callbacks`` get ``(name, step record)`` after every optimiser step.
    """
    import torch

    done = finished(run, name, model)
    if done is not None:
        return done
    rt = runtime.current()
    task = make_task()
    model.to(rt.device)
    groups = task.param_groups(model) if task.param_groups else [{"params": [p for p in model.parameters()
                                                                                if p.requires_grad]}]
    groups = [g for g in groups if g["params"]]
    raw = torch.optim.AdamW(groups, lr=optim.lr, weight_decay=optim.weight_decay, betas=optim.betas)
    per_epoch = steps_per_epoch(task)
    wrapped, opt = rt.prepare(objective(model, task.losses), raw)
    best, history, start = _resume(run, name, model, raw)
    scheduler = _scheduler(raw, optim, per_epoch, epochs, last_step=start * per_epoch - 1)
    trainable = [p for g in opt.param_groups for p in g["params"]]
    key = lr_key or f"stages.{name}.lr"

    for epoch in progress.track(range(start, epochs), f"{name}: training", total=epochs - start):
        if task.start_epoch:
            task.start_epoch(model, epoch)
        torch.manual_seed(seed * 100_003 + epoch)
        wrapped.train()
        order = torch.randperm(task.n_items)
        sums = dict.fromkeys(task.weights, 0.0)  # a weighted loss not yet on (consistency) records 0
        steps = 0
        for i in range(per_epoch):
            global_idx = order[i * task.batch_size:(i + 1) * task.batch_size]
            parts = micro_batches(len(global_idx), rt)
            if min(p.stop - p.start for p in parts) < task.min_batch:
                scheduler.step()  # a skipped step keeps the schedule on its step count
                continue
            losses = _step(wrapped, task, global_idx, parts, rt, optim, trainable, opt)
            if not all(math.isfinite(v) for v in losses.values()):
                raise UserError(f"{key}: the training loss became {losses} in epoch {epoch} of stage {name} "
                                f"(training diverged); lower {key} or add warm-up")
            scheduler.step()
            steps += 1
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v
            run.log_step(name, {"epoch": epoch, "step": epoch * per_epoch + i, **losses})
            for callback in callbacks:
                callback(name, {"epoch": epoch, "step": epoch * per_epoch + i, "lr": opt.param_groups[0]["lr"], **losses})
        model.eval()
        scores = task.validate(model)
        if not all(math.isfinite(v) for v in scores.values()):
            raise UserError(f"{key}: validation gave {scores} after epoch {epoch} of stage {name} "
                            f"(training diverged); lower {key} or add warm-up")
        record = {"epoch": epoch, **{f"train_{k}": v / max(steps, 1) for k, v in sums.items()}, **scores,
                  "lr": opt.param_groups[0]["lr"]}
        history.append(record)
        run.log(f"{name}: epoch {epoch} " + " ".join(f"{k} {v:.5g}" for k, v in record.items() if k != "epoch"))
        value = record.get(selection.key) if selection.key else None
        if selection.better(value, best["value"]):
            best = {"value": value, "epoch": epoch,
                    "state": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}}
        _save_epoch(run, name, model, opt, best, epoch, history)

    del wrapped, opt
    rt.release()
    model.load_state_dict(best["state"])
    out = {"selected_on": "val" if selection.key else "last", "best_epoch": best["epoch"], "history": history,
           **(meta or {})}
    if selection.key:
        out |= {"selected_by": selection.key, selection.key: best["value"]}
    run.save_checkpoint(name, model.state_dict(), out)
    run.drop_checkpoint(name, resume=True)
    rt.wait()
    run.log(f"{name}: selected epoch {best['epoch']} "
            + (f"on val ({selection.key} {best['value']:.5g})" if selection.key else "(the last)"))
    return out


def objective(model, losses: Callable):
    """A module whose forward is ``losses(model, batch)``: what DDP wraps, so every stage's own calls
    (``model.tokens``, heads, ...) run inside one DDP forward and their gradients are averaged."""
    from torch import nn

    class Objective(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, batch: Batch):
            return losses(self.model, batch)

    return Objective()


def steps_per_epoch(task: Task) -> int:
    if task.drop_last:
        return max(task.n_items // task.batch_size, 1)
    return math.ceil(task.n_items / task.batch_size)


def micro_batches(size: int, rt) -> list[slice]:
    """Rows of the global batch for this process at each accumulation step: the global batch cut into
    ``processes x grad_accum`` contiguous pieces, piece ``a * processes + rank`` at micro-step ``a``."""
    pieces = rt.world * rt.config.grad_accum
    base, extra = divmod(size, pieces)
    bounds = [k * base + min(k, extra) for k in range(pieces + 1)]
    return [slice(bounds[a * rt.world + rt.rank], bounds[a * rt.world + rt.rank + 1]) for a in range(rt.config.grad_accum)]


def _step(wrapped, task: Task, global_idx, parts: list[slice], rt, optim: Optim, trainable, opt) -> dict:
    """One optimiser step over this process's micro-batches; returns the losses averaged over processes."""
    losses = accumulate(wrapped, task, global_idx, parts, rt)
    if optim.grad_clip is not None:
        rt.accelerator.clip_grad_norm_(trainable, optim.grad_clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return losses


def accumulate(wrapped, task: Task, global_idx, parts: list[slice], rt) -> dict:
    """Forward and backward of this process's micro-batches ``parts`` of the global batch ``global_idx``,
    leaving in every trainable parameter's ``.grad`` the gradient of the global batch's mean loss (averaged
    across processes by DDP on the last micro-batch); returns each loss's global-batch mean."""
    import torch

    totals: dict[str, torch.Tensor] = {}
    start = torch.get_rng_state() if len(parts) > 1 else None
    for a, part in enumerate(parts):
        if a:  # every micro-batch draws from the step's generator state: Batch.draw slices the same global draws
            torch.set_rng_state(start)
        batch = Batch(global_idx[part], len(global_idx), part)
        sync = a == len(parts) - 1
        with (nullcontext() if sync else rt.accelerator.no_sync(wrapped)), rt.autocast():
            losses = wrapped(batch)
            loss = sum(task.weights.get(k, 1.0) * v for k, v in losses.items())
            # this process's share of the global mean: DDP averages over processes
            rt.accelerator.backward(loss * (rt.world * (part.stop - part.start) / len(global_idx)))
        for k, v in losses.items():
            totals[k] = totals.get(k, 0.0) + v.detach().float() * (part.stop - part.start)
    local = sum(p.stop - p.start for p in parts)
    stacked = torch.stack([totals[k] / local for k in sorted(totals)])
    reduced = rt.accelerator.reduce(stacked, "mean") if rt.world > 1 else stacked
    return dict(zip(sorted(totals), reduced.tolist()))


def _scheduler(opt, optim: Optim, per_epoch: int, epochs: int, last_step: int):
    """diffusers' schedule ``optim.schedule`` over ``epochs`` of ``per_epoch`` steps, positioned after ``last_step``."""
    from diffusers import optimization as sched

    if optim.schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {optim.schedule}")
    if last_step >= 0:  # resuming: LambdaLR reads each group's initial_lr
        for group in opt.param_groups:
            group.setdefault("initial_lr", group["lr"])
    warmup = optim.warmup + optim.warmup_epochs * per_epoch
    if optim.schedule == "constant":
        return sched.get_constant_schedule(opt, last_epoch=last_step)
    if optim.schedule == "constant_with_warmup":
        return sched.get_constant_schedule_with_warmup(opt, warmup, last_epoch=last_step)
    return sched.get_cosine_schedule_with_warmup(opt, warmup, max(per_epoch * epochs, 1), last_epoch=last_step)


def _resume(run, name: str, model, opt) -> tuple[dict, list, int]:
    """``(best, history, first epoch)``: fresh, or restored from the stage's resume checkpoint."""
    saved = run.load_checkpoint(name, resume=True)
    if saved is None:
        return {"value": None, "epoch": -1, "state": None}, [], 0
    tensors, meta = saved
    model.load_state_dict(_strip(tensors, "model."))
    optimizer_from_tensors(opt, tensors, meta["optimizer"])
    run.log(f"{name}: resuming after epoch {meta['epoch']}")
    return {**meta["best"], "state": _strip(tensors, "best.")}, meta["history"], meta["epoch"] + 1


def _save_epoch(run, name: str, model, opt, best: dict, epoch: int, history: list) -> None:
    """End-of-epoch resume checkpoint (weights, best so far, optimiser state); then the run's epoch hook."""
    opt_tensors, opt_meta = optimizer_to_tensors(opt)
    tensors = {**{f"model.{k}": v for k, v in model.state_dict().items()},
               **{f"best.{k}": v for k, v in best["state"].items()}, **opt_tensors}
    scores = {k: v for k, v in best.items() if k != "state"}
    run.save_checkpoint(name, tensors, {"epoch": epoch, "history": history, "best": scores, "optimizer": opt_meta},
                        resume=True)
    runtime.current().wait()
    run.epoch_done(name, history[-1])


def _strip(tensors: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
