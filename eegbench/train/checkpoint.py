"""Optimiser state as flat tensors plus JSON, so resumable checkpoints fit in safetensors."""

from __future__ import annotations


def optimizer_to_tensors(opt) -> tuple[dict, dict]:
    """Split ``opt.state_dict()`` into ``{"optim.<param>.<key>": tensor}`` and JSON metadata."""
    import torch

    state = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, slots in state["state"].items():
        for key, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{key}"] = value
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_from_tensors(opt, tensors: dict, meta: dict) -> None:
    """Inverse of :func:`optimizer_to_tensors`."""
    state: dict = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for name, value in meta["scalars"].items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    # JSON turned tuples (e.g. Adam's betas) into lists; restore them from the live groups.
    groups = [{k: tuple(v) if isinstance(live.get(k), tuple) else v for k, v in saved.items()}
              for saved, live in zip(meta["param_groups"], opt.param_groups)]
    opt.load_state_dict({"state": state, "param_groups": groups})


def save_epoch(run, stage: str, model, opt, best: dict, meta: dict) -> None:
    """End-of-epoch resume checkpoint: weights, best-so-far ``best["state"]``, optimiser state, ``meta``;
    then the run hears of the epoch (``Run.epoch_done``).

    ``best`` holds the selection score(s), its epoch and its weights; ``meta`` needs ``epoch`` and ``history``.
    """
    opt_tensors, opt_meta = optimizer_to_tensors(opt)
    tensors = {**{f"model.{k}": v for k, v in model.state_dict().items()},
               **{f"best.{k}": v for k, v in best["state"].items()}, **opt_tensors}
    scores = {k: v for k, v in best.items() if k != "state"}
    run.save_checkpoint(stage, tensors, {**meta, "best": scores, "optimizer": opt_meta}, resume=True)
    run.epoch_done(stage, meta["history"][-1])


def load_epoch(run, stage: str, model, opt, initial: dict) -> tuple[dict, list, int]:
    """Where a stage's epoch loop starts: ``(best, history, first epoch)``.

    Fresh: ``(initial, [], 0)``, where ``initial`` holds the selection score(s) a first epoch beats.
    Resumed: the :func:`save_epoch` checkpoint is restored into ``model`` and ``opt``, and its best
    so far, history and next epoch are returned.
    """
    saved = run.load_checkpoint(stage, resume=True)
    if saved is None:
        return {**initial, "epoch": -1, "state": None}, [], 0
    tensors, meta = saved
    model.load_state_dict(_strip(tensors, "model."))
    optimizer_from_tensors(opt, tensors, meta["optimizer"])
    run.log(f"{stage}: resuming after epoch {meta['epoch']}")
    return {**meta["best"], "state": _strip(tensors, "best.")}, meta["history"], meta["epoch"] + 1


def _strip(tensors: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
