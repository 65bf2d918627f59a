"""Where training runs: device, precision and processes, through one Hugging Face ``Accelerator``.

A run's ``runtime:`` section (and the ``--device``/``--precision``/``--grad-accum`` flags) selects
it; :func:`use` makes it the active runtime for the run, and everything else asks :func:`current`.
This is the only module that names a device. Launched with ``accelerate launch`` or ``torchrun``,
each process holds a slice of every global batch (``batch_size`` in a suite is the global batch),
gradients are averaged across processes, only the main process writes, and predictions are split
by trial and gathered back in order.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from functools import cached_property
from typing import Literal

from pydantic import Field

from eegbench.config import StrictModel
from eegbench.errors import UserError

PRECISIONS = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


class RuntimeConfig(StrictModel):
    """The ``runtime:`` section of a suite."""

    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when present; not part of the run id
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # bf16/fp16: autocast, fp32 master weights; fp16 scales losses
    grad_accum: int = Field(1, ge=1)  # micro-batches per optimiser step (the global batch is split further)
    gradient_checkpointing: bool = False  # recompute activations of the UNet and MAE blocks in backward


class Runtime:
    """One configured ``Accelerator`` and the process-group helpers the loop, stages and runner use."""

    def __init__(self, config: RuntimeConfig | None = None):
        self.config = config or RuntimeConfig()

    @cached_property
    def accelerator(self):
        import torch
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState, GradientState

        c = self.config
        if c.device == "cuda" and not torch.cuda.is_available():
            raise UserError("runtime.device: cuda, but torch sees no CUDA device; use --device cpu or auto")
        cpu = c.device == "cpu" or not torch.cuda.is_available()
        if c.precision == "fp16" and cpu:
            raise UserError("runtime.precision: fp16 needs a CUDA device (loss scaling); use --precision bf16 on CPU")
        # deterministic kernels on the CPU (no cost beyond noise at ci, README); CUDA's are slower, some ops lack them
        torch.use_deterministic_algorithms(cpu)
        AcceleratorState._reset_state(reset_partial_state=False)  # one run after another in one process
        GradientState._reset_state()
        # DDP as it comes (no unused-parameter search): every stage's loss reaches every trainable parameter
        return Accelerator(cpu=cpu, mixed_precision=PRECISIONS[c.precision])

    @property
    def device(self):
        return self.accelerator.device

    @property
    def world(self) -> int:
        return self.accelerator.num_processes

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def weight_dtype(self):
        """dtype of frozen models (VAE, text encoders, LM, judge): the autocast dtype, fp32 under fp32."""
        import torch

        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.config.precision]

    def autocast(self):
        return self.accelerator.autocast()

    def wait(self) -> None:
        """Barrier: every process arrives before any goes on (after the main process wrote something)."""
        self.accelerator.wait_for_everyone()

    def shard(self, n: int) -> slice:
        """This process's contiguous slice of ``n`` items (sizes differ by at most one)."""
        base, extra = divmod(n, self.world)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def gather_rows(self, local):
        """Concatenate every process's numpy array (or list) in rank order: the inverse of :meth:`shard`."""
        if self.world == 1:
            return local
        import numpy as np
        from accelerate.utils import gather_object

        parts = gather_object([local])
        if isinstance(local, np.ndarray):
            return np.concatenate([part for part in parts if len(part)] or [local])
        return [x for part in parts for x in part]

    def gather_with_grad(self, x):
        """Every process's rows of tensor ``x`` in rank order, differentiable (the gradient of each row flows back
        to the process that made it): the global batch of an in-batch contrastive loss."""
        if self.world == 1:
            return x
        import torch
        import torch.distributed as dist
        import torch.distributed.nn.functional as dist_fn

        sizes = [torch.zeros((), dtype=torch.long, device=x.device) for _ in range(self.world)]
        dist.all_gather(sizes, torch.tensor(len(x), device=x.device))
        longest = int(max(sizes))
        padded = torch.cat([x, x.new_zeros(longest - len(x), *x.shape[1:])]) if len(x) < longest else x
        parts = dist_fn.all_gather(padded)
        return torch.cat([part[:int(n)] for part, n in zip(parts, sizes)])

    def prepare(self, model, optimizer):
        """``(wrapped model, optimizer)``: DDP across processes (SyncBatchNorm on CUDA), loss scaling for fp16."""
        import torch

        if self.world > 1 and self.device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return self.accelerator.prepare(model, optimizer)

    def release(self) -> None:
        """Drop the accelerator's references to what :meth:`prepare` wrapped (a finished stage's DDP model and
        optimizer). A gloo process group must outlive every DDP reducer: the last reference to the group held by
        a reducer freed after ``destroy_process_group`` deadlocks the process at exit (pytorch/pytorch#56297)."""
        if "accelerator" in self.__dict__:  # never built: nothing was prepared
            self.accelerator.free_memory()

    def describe(self) -> dict:
        """What ``environment.json`` records of the runtime."""
        import accelerate

        return {"device": str(self.device), "processes": self.world, "precision": self.config.precision,
                "grad_accum": self.config.grad_accum, "gradient_checkpointing": self.config.gradient_checkpointing,
                "accelerate": accelerate.__version__}


_active: Runtime | None = None


def is_main_process() -> bool:
    """Whether this process writes the run store: rank 0 of a launch (``torchrun``, ``accelerate launch``),
    or the only process; answered from the launcher's environment, without building an ``Accelerator``."""
    return int(os.environ.get("RANK", "0")) == 0


def map_rows(fn, rows, batch_size: int = 256, split: bool = False):
    """``fn`` (a module, put in eval mode, or a function of a float32 batch on the runtime's device) over numpy
    ``rows`` in batches, without gradients, as a float32 numpy array. ``split``: each process computes its shard
    of the rows and every process gets all of them back in order (test predictions)."""
    import numpy as np
    import torch

    rt = current()
    if isinstance(fn, torch.nn.Module):
        fn.eval()
    part = rows[rt.shard(len(rows))] if split else rows
    with torch.no_grad(), rt.autocast():
        out = [fn(torch.from_numpy(np.ascontiguousarray(part[i:i + batch_size], dtype=np.float32)).to(rt.device))
               .float().cpu() for i in range(0, len(part), batch_size)]
    local = torch.cat(out).numpy() if out else np.zeros((0,), np.float32)
    return rt.gather_rows(local) if split else local


def current() -> Runtime:
    """The active runtime; outside :func:`use`, a default one (auto device, fp32, this process)."""
    global _active
    if _active is None:
        _active = Runtime()
    return _active


@contextmanager
def use(config: RuntimeConfig | dict | None):
    """Make ``config`` the active runtime inside the block."""
    global _active
    config = config if isinstance(config, RuntimeConfig) else RuntimeConfig.model_validate(config or {})
    previous = _active
    fresh = previous is None or previous.config != config
    _active = Runtime(config) if fresh else previous
    try:
        yield _active
    finally:
        if fresh:
            _active.release()
        _active = previous
