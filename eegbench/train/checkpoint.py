"""Optimiser state as flat tensors plus JSON, so resumable checkpoints fit in safetensors; an encoder's
weights from an earlier run's checkpoints (``init_from``)."""

from __future__ import annotations

from pathlib import Path

from eegbench.errors import UserError


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


def load_encoder(encoder, folder: Path) -> str:
    """Load into ``encoder`` the weights of the latest stage of the finished run in ``folder`` whose checkpoint
    holds all of them under one prefix (the encoder nested in a bigger model), shapes matching; returns where
    they came from. Only the matching tensors are read."""
    import yaml
    from safetensors import safe_open

    from eegbench.io import read_json

    folder = Path(folder)
    status = read_json(folder / "run.json", "init_from names a run folder of eegbench's run store").get("status")
    if status not in ("finished", "trained"):
        raise UserError(f"{folder}: init_from names no finished run; run it first (or name another run folder)")
    wanted = encoder.state_dict()
    anchor = next(iter(wanted))
    for stage in reversed(list(yaml.safe_load((folder / "config.yaml").read_text())["stages"])):
        path = folder / "checkpoints" / f"{stage}.safetensors"
        if not path.exists():
            continue
        with safe_open(str(path), framework="pt") as fh:
            names = set(fh.keys())
            prefixes = {name[:len(name) - len(anchor)] for name in names if name.endswith(anchor)}
            for prefix in sorted((p for p in prefixes if p == "" or p.endswith(".")), key=len):
                if all(prefix + k in names and fh.get_slice(prefix + k).get_shape() == list(v.shape)
                       for k, v in wanted.items()):
                    encoder.load_state_dict({k: fh.get_tensor(prefix + k) for k in wanted})
                    return f"stage {stage!r}" + (f", weights under {prefix!r}" if prefix else "")
    raise UserError(f"{folder}: no stage's checkpoint holds this encoder's {len(wanted)} weights with matching shapes "
                    f"(e.g. {anchor!r}); init_from a run of the same encoder and data shape")
