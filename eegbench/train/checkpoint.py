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
