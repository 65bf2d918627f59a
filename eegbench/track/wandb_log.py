"""Mirror a finished run into Weights & Biases: offline files in the run folder unless asked online."""

from __future__ import annotations

import json
import netrc
import os

from eegbench.errors import UserError
from eegbench.track.store import Run

MODES = ("offline", "online", "disabled")


def check_online_credentials() -> None:
    """Fail before any work when online logging is asked for without a W&B API key."""
    if os.environ.get("WANDB_API_KEY"):
        return
    try:
        if netrc.netrc().authenticators("api.wandb.ai"):
            return
    except (OSError, netrc.NetrcParseError):
        pass
    raise UserError("--wandb logs online and needs a W&B API key; set WANDB_API_KEY or run `wandb login`, "
                    "or drop --wandb to log offline into the run folder")


def log_run(run: Run, summary: dict, mode: str) -> None:
    """Log config, each stage's per-epoch history and per-step losses, the run's sample images, its generated texts as tables
    and every metric with its CI, controls (value, gap, p) and chance."""
    if mode == "disabled":
        return
    import wandb

    cfg = summary["config"]
    with wandb.init(project="eegbench", dir=run.path, mode=mode, group=summary["suite"], job_type=summary["variant"],
                    name=f"{summary['suite']}/{summary['variant']}/{summary['run_id']}", config=cfg,
                    settings=wandb.Settings(silent=True)) as wb:
        step = 0
        for stage in cfg["stages"]:
            checkpoint = run.load_checkpoint(stage)
            for epoch in (checkpoint[1].get("history", []) if checkpoint else []):
                wb.log({f"{stage}/{k}": v for k, v in epoch.items()}, step=step)
                step += 1
        for steps in sorted(run.path.glob("steps/*.jsonl")):  # every optimiser step's losses, on its own axis
            axis = f"{steps.stem}/step"
            wb.define_metric(axis)
            wb.define_metric(f"{steps.stem}/steps/*", step_metric=axis)
            for line in steps.read_text().splitlines():
                record = json.loads(line)
                wb.log({axis: record["step"], **{f"{steps.stem}/steps/{k}": v for k, v in record.items()
                                                 if k not in ("step", "epoch")}}, step=step)
                step += 1
        for png in sorted([*run.path.glob("samples/*.png"), *run.path.glob("figures/*.png")]):  # grids, plots, curves
            wb.log({f"{png.parent.name}/{png.stem}": wandb.Image(str(png))}, step=step)
        for texts in sorted(run.path.glob("samples/*.jsonl")):  # generated text per trial and condition
            rows = [json.loads(line) for line in texts.read_text().splitlines()]
            columns = list(rows[0]) if rows else []
            wb.log({f"samples/{texts.stem}": wandb.Table(columns=columns, data=[[r[c] for c in columns] for r in rows])},
                   step=step)
        for m in summary["metrics"]:
            key = f"{m['split']}/{m['metric']}"
            wb.summary.update({key: m["value"], f"{key}/ci_low": m["ci"][0], f"{key}/ci_high": m["ci"][1],
                               f"{key}/chance": m["chance"], **({f"{key}/warning": m["warning"]} if m.get("warning") else {})})
            for c in m["controls"]:
                wb.summary.update({f"{key}/control/{c['name']}": c["value"],
                                   f"{key}/control/{c['name']}/p": c["p_vs_control"],
                                   **({f"{key}/control/{c['name']}/gap": c["gap"]} if "gap" in c else {})})
