"""Hyperparameter sweeps on Optuna: a search space in YAML, a validation objective, many workers, one study.

A sweep file names a suite (variant, scale, fixed ``set`` overrides), a ``space`` of dotted config keys,
and an ``objective``: a ``val_*`` score from one stage's per-epoch history, so test data is never seen
(trials train their stages and stop before any test prediction). Each epoch's score is reported to
Optuna, whose pruner may stop a trial early. The study lives in ``storage`` (default: SQLite in the
sweep's folder; a ``postgresql://`` URL lets workers on many machines share it); every worker runs
trials until the study holds ``trials`` finished ones, so a restarted worker resumes the study, and a
killed worker's trial is failed by heartbeat and retried with the same parameters (its run folder
then resumes from its last epoch). At the end the best trial is exported as a suite variant
(``best.yaml``) and the optimisation history and parameter importances are plotted.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from eegbench import config
from eegbench.config import StrictModel
from eegbench.errors import UserError

HEARTBEAT_S, GRACE_S = 10, 60


class Param(StrictModel):
    """One searched key: ``float: [low, high]`` (``log``), ``int: [low, high]`` or ``choices: [...]``."""

    real: tuple[float, float] | None = Field(None, alias="float")
    integer: tuple[int, int] | None = Field(None, alias="int")
    choices: list[Any] | None = None
    log: bool = False

    @model_validator(mode="after")
    def _one_kind(self):
        if sum(x is not None for x in (self.real, self.integer, self.choices)) != 1:
            raise ValueError("give exactly one of float: [low, high], int: [low, high] or choices: [...]")
        return self


class Objective(StrictModel):
    stage: str  # the stage whose per-epoch history holds the score
    key: str = Field(pattern=r"^val_")  # a validation score of that history, e.g. val_bacc, val_loss
    direction: Literal["maximize", "minimize"] = "maximize"


class Pruner(StrictModel):
    kind: Literal["median", "none"] = "median"
    startup_trials: int = Field(3, ge=0)  # trials finished before any pruning
    warmup_epochs: int = Field(2, ge=0)  # epochs of a trial before it may be pruned


class SweepFile(StrictModel):
    sweep: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    suite: str
    variant: str = config.DEFAULT_VARIANT
    scale: str = "ci"
    seed: int = 0
    trials: int = Field(10, ge=1)  # finished (complete or pruned) trials in the study
    set: dict[str, Any] = {}  # fixed overrides of every trial
    space: dict[str, Param]
    objective: Objective
    pruner: Pruner = Pruner()


def load(path: Path) -> SweepFile:
    """The validated sweep file; every trial's config is checked by resolving its lower corner now."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no such sweep file; see sweeps/ for examples") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({getattr(exc, 'problem', exc)}); fix the syntax") from None
    try:
        sweep = SweepFile.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise UserError(f"{path}: {where}: {err['msg']}; fix the sweep file (see sweeps/README.md)") from None
    if sweep.suite.endswith((".yaml", ".yml")) and not Path(sweep.suite).is_absolute():
        sweep.suite = str(path.parent / sweep.suite)
    cfg = trial_config(sweep, {k: _corner(p) for k, p in sweep.space.items()})
    if sweep.objective.stage not in cfg.stages:
        raise UserError(f"{path}: objective.stage {sweep.objective.stage!r} is not a stage of {sweep.suite}; "
                        f"use one of {', '.join(cfg.stages)}")
    return sweep


def _corner(p: Param):
    return p.real[0] if p.real else p.integer[0] if p.integer else p.choices[0]


def trial_config(sweep: SweepFile, params: dict[str, Any]) -> config.Resolved:
    return config.resolve(sweep.suite, variant=sweep.variant, scale=sweep.scale, seed=sweep.seed,
                          overrides={**sweep.set, **params})


def suggest(trial, space: dict[str, Param]) -> dict[str, Any]:
    out = {}
    for key, p in space.items():
        if p.real:
            out[key] = trial.suggest_float(key, *p.real, log=p.log)
        elif p.integer:
            out[key] = trial.suggest_int(key, *p.integer, log=p.log)
        else:
            out[key] = trial.suggest_categorical(key, p.choices)
    return out


def storage(url: str | None, folder: Path):
    """Optuna RDB storage (SQLite in ``folder`` by default) with heartbeats, so killed workers' trials are retried."""
    import optuna

    url = url or f"sqlite:///{(folder / 'study.db').resolve()}"
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    for attempt in range(5):  # workers starting together race to create the tables; the losers retry
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats: stable for years
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2))
        except Exception as exc:  # SQLAlchemy raises many types for an unreachable or malformed URL
            if attempt == 4:
                raise UserError(f"--storage {url}: cannot open the study storage ({str(exc).splitlines()[0][:160]}); "
                                "pass sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB") from None
            time.sleep(1 + attempt)


class Surplus(Exception):
    """The study already had its trials when this one started (two workers raced for the last one)."""


def run(sweep: SweepFile, *, out: Path, cache_dir: Path, storage_url: str | None = None,
        progress=lambda message: None) -> dict:
    """Run trials of ``sweep`` until its study holds ``sweep.trials`` finished ones; export and plot the best."""
    import optuna
    from optuna.trial import TrialState

    from eegbench.runner import execute
    from eegbench.track.store import Run

    folder = Path(out) / "sweeps" / sweep.sweep
    folder.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=sweep.pruner.startup_trials,
                                          n_warmup_steps=sweep.pruner.warmup_epochs)
              if sweep.pruner.kind == "median" else optuna.pruners.NopPruner())
    study = optuna.create_study(study_name=sweep.sweep, storage=storage(storage_url, folder), load_if_exists=True,
                                direction=sweep.objective.direction, pruner=pruner)
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    goal = sweep.objective

    def count(before: int | None = None) -> int:
        """Finished trials, plus the running ones (those numbered below ``before``, when given)."""
        return sum(t.state in finished or (t.state == TrialState.RUNNING and (before is None or t.number < before))
                   for t in study.get_trials(deepcopy=False))

    def objective(trial) -> float:
        if count(before=trial.number) >= sweep.trials:  # another worker took the last trial meanwhile
            trial.set_user_attr("surplus", True)
            study.stop()
            raise Surplus
        params = suggest(trial, sweep.space)
        cfg = trial_config(sweep, params)
        trial.set_user_attr("run_id", cfg.hash())

        def on_epoch(stage: str, record: dict) -> None:
            if stage == goal.stage and goal.key in record:
                trial.report(record[goal.key], record["epoch"])
                if trial.should_prune():
                    raise optuna.TrialPruned(f"{goal.key} {record[goal.key]:.4f} after epoch {record['epoch']}")

        progress(f"trial {trial.number}: {params}")
        outcome = execute(cfg, out=folder / "trials", cache_dir=cache_dir, train_only=True, on_epoch=on_epoch)
        history = (Run(outcome.run_dir).checkpoint_meta(goal.stage) or {}).get("history") or []
        scores = [h[goal.key] for h in history if goal.key in h]
        if not scores:
            raise UserError(f"objective.key {goal.key!r}: stage {goal.stage!r} records no such score; "
                            f"it records {', '.join(k for k in (history[0] if history else {}) if k.startswith('val_'))}")
        return max(scores) if goal.direction == "maximize" else min(scores)

    def enough(study, _trial) -> None:
        if count() >= sweep.trials:  # finished or being run by another worker
            study.stop()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # a killed worker's trial: failed and queued again with its parameters
    if count() < sweep.trials:
        study.optimize(objective, callbacks=[enough], catch=(Surplus,), gc_after_trial=True)
    return export(study, sweep, folder)


def export(study, sweep: SweepFile, folder: Path) -> dict:
    """Write ``best.yaml`` (the best trial as a variant of the suite) and the sweep's plots; return a summary."""
    from optuna.trial import TrialState

    from eegbench.io import atomic_write_text

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        raise UserError(f"sweep {sweep.sweep}: no trial completed; see {folder / 'trials'} for their logs")
    best = study.best_trial
    base = config.variant_overrides(sweep.suite, sweep.variant)
    name = f"sweep-{sweep.sweep}"
    suite_file = Path(config.suite_path(sweep.suite)).resolve()
    text = (f"# Best trial of sweep {sweep.sweep}: trial {best.number}, {sweep.objective.key} = {best.value:.4f} on "
            f"validation data (test never seen).\n# Run it: eegbench run --suite {folder / 'best.yaml'} --variant {name} "
            f"--scale {sweep.scale}\n")
    text += yaml.safe_dump({"include": [str(suite_file)], "variants": {name: {**base, **sweep.set, **best.params}}},
                           sort_keys=False)
    atomic_write_text(folder / "best.yaml", text)
    plots(study, folder)
    states = ["SURPLUS" if t.user_attrs.get("surplus") else t.state.name for t in trials]
    return {"folder": folder, "best": best.params, "value": best.value, "number": best.number,
            "states": {s: states.count(s) for s in dict.fromkeys(states)}}


def plots(study, folder: Path) -> None:
    """``optimization_history.png`` and, with two completed trials and two parameters, ``param_importances.png``."""
    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as ovm

    from eegbench.io import atomic_write_bytes, figure_png

    figures = {"optimization_history": ovm.plot_optimization_history}
    if sum(t.state.name == "COMPLETE" for t in study.trials) >= 2 and len(study.best_trial.params) >= 2:
        figures["param_importances"] = ovm.plot_param_importances
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
        for name, plot in figures.items():
            atomic_write_bytes(folder / f"{name}.png", figure_png(plot(study).figure))
