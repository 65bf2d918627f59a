"""Run one resolved suite variant end to end; the only place that sequences stages.

Order: validate inputs, resolve and load the pretrained models, load data and run every precheck
(nothing written yet) -> create the run folder -> each stage (resuming from its checkpoints) -> the
comparison models the controls and evaluations read -> predictions on test, real and under each
control -> every evaluation scored on both -> metrics.json, per-trial predictions -> index. A bad
input found after the folder was created removes the folder, so the store never holds half a run.

The contracts it relies on: a stage is a ``train.stage.Stage`` (``run``, ``predict``, optional
``precheck``, ``needs``, ``produces`` and ``train_comparison``); an evaluation is
``fn(predictions, ctx) -> {"per_trial", "chance"}`` declared with ``evaluate.context.evaluation``
(what it reads, the models it needs).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from eegbench import contracts, registry, runtime
from eegbench.config import Resolved
from eegbench.errors import UserError
from eegbench.evaluate.context import EvalContext, higher_is_better
from eegbench.evaluate.grids import grid_rows, image_grid_png
from eegbench.evaluate.report import metric_record
from eegbench.models.pretrained import Pretrained, resolve_folders
from eegbench.track.environment import capture
from eegbench.track.store import FINISHED, RUNNING, TRAINED, Index, Run
from eegbench.track.wandb_log import log_run


@dataclass
class Outcome:
    run_dir: Path
    metrics: dict
    reused: bool


def run_dir(cfg: Resolved, out: Path) -> Path:
    return Path(out) / cfg.suite / cfg.variant / cfg.hash()


def execute(cfg: Resolved, *, out: Path, cache_dir: Path, force: bool = False, wandb: str = "disabled",
            train_only: bool = False, on_epoch=None) -> Outcome:
    """Run ``cfg`` into ``out`` on its runtime (``cfg.runtime``: device, precision, the launched processes);
    reuse a finished run with the same id unless ``force``.

    ``wandb`` is ``offline`` (files in the run folder), ``online`` or ``disabled``. ``train_only`` stops after
    the stages, before any test prediction (status ``trained``, nothing indexed): what a sweep trial runs.
    ``on_epoch(stage, record)`` hears every finished epoch. Under several processes every process runs this
    and only the main one writes (the run folder, the index, W&B).
    """
    with runtime.use(cfg.runtime) as rt:
        return _execute(cfg, rt, out=out, cache_dir=cache_dir, force=force, wandb=wandb, train_only=train_only,
                        on_epoch=on_epoch)


def _execute(cfg: Resolved, rt, *, out: Path, cache_dir: Path, force: bool, wandb: str, train_only: bool,
             on_epoch) -> Outcome:
    path = run_dir(cfg, out)
    run = Run(path, on_epoch=on_epoch)
    if (run.status == FINISHED or (train_only and run.status == TRAINED)) and not force:
        return Outcome(path, run.read_json("metrics.json") if run.status == FINISHED else {}, reused=True)

    stages = [registry.stages.get(s["kind"])(name, s, cfg.seed) for name, s in cfg.stages.items()]
    evaluations = {} if train_only else {name: registry.evaluations.get(name) for name in cfg.evaluate}
    for name, evaluate in evaluations.items():
        higher_is_better(name, evaluate)  # refused before anything is loaded or written
    needed = {m for part in [*stages, *evaluations.values()] for m in getattr(part, "needs", ())}
    dataset = registry.datasets.get(cfg.dataset["name"])(cfg.dataset, cache_dir)
    pretrained = Pretrained(resolve_folders(cfg, dataset.prepare, needed, cache_dir), cache_dir) if needed else None
    data = dataset.load()
    ctx = EvalContext(data, data.splits["test"], pretrained, cfg.seed)
    precheck(stages, evaluations, pretrained, data, ctx)

    created = force or not path.exists()
    if rt.is_main:
        if force and path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
    rt.wait()
    try:
        run.write_text("config.yaml", cfg.to_yaml())
        run.write_json("environment.json", {**capture(), "runtime": rt.describe()})
        run.write_json("run.json", {"status": RUNNING, "run_id": cfg.hash()})
        run.log(f"run {cfg.suite}/{cfg.variant} scale={cfg.scale} seed={cfg.seed}")
        for skipped in getattr(data, "skipped", []):
            run.log(f"skipped {skipped['path']}: {skipped['reason']}")
        model = None
        for stage in stages:
            model = stage.run(data, run, model, pretrained)
            if not contracts.conforms(model, stage.hands_on):
                raise RuntimeError(f"stage {stage.name!r} declares it hands on a {stage.hands_on} but returned a "
                                   f"{type(model).__name__} without that kind's methods (eegbench.contracts)")
        if train_only:
            run.write_json("run.json", {"status": TRAINED, "run_id": cfg.hash()})
            run.log("trained (test not scored)")
            return Outcome(path, {}, reused=False)

        ctx.run, ctx.stage, ctx.model = run, stages[-1], model
        ctx.comparisons = train_comparisons(cfg, stages[-1], model, data, run, pretrained, evaluations)

        def summarise(metrics: list[dict], status: str) -> dict:
            for record in metrics:
                for warning in getattr(data, "warnings", []):
                    if warning not in (record.get("warning") or ""):
                        record["warning"] = "; ".join(filter(None, (record.get("warning"), warning)))
            return {"run_id": cfg.hash(), "suite": cfg.suite, "variant": cfg.variant, "scale": cfg.scale,
                    "seed": cfg.seed, "path": str(path), "config": cfg.model_dump(), "status": status,
                    "metrics": metrics, "skipped": getattr(data, "skipped", [])}

        metrics = score(cfg, stages[-1], model, data, run, ctx, evaluations,
                        on_metrics=lambda done: run.write_json("metrics.json", summarise(done, RUNNING)))
        summary = summarise(metrics, FINISHED)
        run.write_json("metrics.json", summary)
        run.write_json("run.json", {"status": FINISHED, "run_id": cfg.hash()})
        if rt.is_main:
            Index(Path(out) / "index.sqlite").record(summary)
            log_run(run, summary, wandb)
        run.log("finished")
        rt.wait()
        return Outcome(path, summary, reused=False)
    except UserError:
        if created and rt.is_main:
            shutil.rmtree(path, ignore_errors=True)
        raise


def precheck(stages: list, evaluations: dict, pretrained: Pretrained | None, data, ctx: EvalContext) -> None:
    """Everything that can be checked before training: load each pretrained model (a corrupt file fails
    now, not after hours of training), then each stage's and evaluation's own ``precheck``."""
    for name in sorted(pretrained.folders if pretrained else ()):
        getattr(pretrained, name)()
    for stage in stages:
        if hasattr(stage, "precheck"):
            stage.precheck(data, pretrained)
    for evaluate in evaluations.values():
        if hasattr(evaluate, "precheck"):
            evaluate.precheck(ctx)


def train_comparisons(cfg: Resolved, stage, model, data, run: Run, pretrained, evaluations: dict) -> dict:
    """The comparison models the model controls and the evaluations read, trained by the last stage before any
    scoring; an evaluation's comparison gets that evaluation's arguments."""
    wanted = {name: None for name in cfg.controls if getattr(registry.controls.get(name), "model_control", False)}
    for name, evaluate in evaluations.items():
        if getattr(evaluate, "comparison", None):
            wanted[evaluate.comparison] = evaluate.Config.model_validate(cfg.evaluation_args[name])
    return {name: stage.train_comparison(name, model, data, run, pretrained, args) for name, args in wanted.items()}


def independent(scored: dict, data, trials) -> dict:
    """``scored`` with the dataset's independent units of ``trials`` as its ``groups`` (and their ``unit``), unless
    the evaluation grouped its items itself or they are not the trials (e.g. one score per recording)."""
    if "groups" not in scored and hasattr(data, "units") and len(scored["per_trial"]) == len(trials):
        scored["groups"], scored["unit"] = data.units(trials)
    return scored


def score(cfg: Resolved, stage, model, data, run: Run, ctx: EvalContext, evaluations: dict,
          on_metrics=lambda metrics: None) -> list[dict]:
    """Every evaluation on test predictions, real and under each control, then every probe.

    A control is scored by the evaluations whose inputs it predicts (a text-only control model skips
    image metrics). ``on_metrics`` receives the metrics so far after each evaluation, so a failure
    later loses no finished score. Per-trial scores go to ``predictions/test.npz`` for paired
    comparisons between runs (with ``<metric>/groups`` where trials come in groups); generated images
    also go to ``samples/test_<condition>.png`` grids (stimulus, then samples, per row) and generated
    text to ``samples/test_text.jsonl``.
    """
    import json

    import numpy as np

    eeg, labels = data.eeg[ctx.trials], data.label[ctx.trials]
    predictions = {"real": {**stage.predict(model, eeg), "label": labels, "eeg": eeg}}
    for i, control in enumerate(cfg.controls):
        fn = registry.controls.get(control)
        if getattr(fn, "model_control", False):
            predictions[control] = {**ctx.comparisons[control].predict(eeg), "label": labels}
            continue
        altered = fn(eeg, seed=cfg.seed + i + 1)
        predictions[control] = {**stage.predict(model, altered), "label": labels, "eeg": altered}
    if "images" in predictions["real"]:
        rows = grid_rows(labels)
        stimuli = ctx.stimuli(predictions["real"]["images"].shape[-1])[rows]
        for key, pred in predictions.items():
            if "images" in pred:
                run.write_bytes(f"samples/test_{key}.png", image_grid_png(stimuli, pred["images"][rows]))
    if "text" in predictions["real"]:
        refs = data.captions_of(ctx.trials)
        lines = [json.dumps({"trial": int(t), "reference": ref, **{k: str(p["text"][j]) for k, p in predictions.items()
                                                                  if "text" in p}}) for j, (t, ref) in enumerate(zip(ctx.trials, refs))]
        run.write_text("samples/test_text.jsonl", "\n".join(lines) + "\n")

    metrics, per_trial = [], {}
    for name, evaluate in evaluations.items():
        reads, direction = set(evaluate.reads), higher_is_better(name, evaluate)
        if hasattr(evaluate, "Config"):
            evaluate = partial(evaluate, args=evaluate.Config.model_validate(cfg.evaluation_args[name]))
        outputs = {key: evaluate(pred, ctx) for key, pred in predictions.items() if reads <= set(pred)}
        for file, png in outputs["real"].get("figures", {}).items():
            run.write_bytes(f"figures/{file}", png)
        for metric, scored in _parts(name, outputs).items():
            real = scored.pop("real")
            independent(real, data, ctx.trials)
            metrics.append(metric_record(metric, "test", real, {**scored, **real.get("controls", {})}, seed=cfg.seed,
                                         higher_is_better=direction))
            per_trial |= {f"{metric}/{key}": np.asarray(s["per_trial"]) for key, s in {"real": real, **scored}.items()}
            if real.get("groups") is not None:
                per_trial[f"{metric}/groups"] = np.asarray(real["groups"])
        on_metrics(metrics)
    for name in cfg.probes:
        scored = independent(registry.probes.get(name)(data, seed=cfg.seed), data, ctx.trials)
        record = metric_record(f"probe:{name}", "test", scored, {}, seed=cfg.seed)
        if record["ci"][0] > record["chance_ci"][1]:
            record["warning"] = (f"the {name} probe decodes above chance from confound-only features; "
                                 "decoding on this split may not reflect stimulus content")
            run.log(f"WARNING: {record['warning']}")
        metrics.append(record)
        per_trial[f"probe:{name}/real"] = np.asarray(scored["per_trial"])
    run.save_predictions("test", per_trial)
    return metrics


def _parts(name: str, outputs: dict[str, dict]) -> dict[str, dict[str, dict]]:
    """``{metric name: {condition: scored}}``: one metric, or ``name/<part>`` for each part."""
    if "parts" not in outputs["real"]:
        return {name: outputs}
    return {f"{name}/{part}": {key: out["parts"][part] for key, out in outputs.items()} for part in outputs["real"]["parts"]}
