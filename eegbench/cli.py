"""The ``eegbench`` command: thin, it parses arguments, calls the library and prints with rich.

Bad input surfaces as one line on stderr and exit code 2. Nothing here imports torch at start-up,
so ``eegbench --help`` and ``eegbench list`` stay fast.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from eegbench import config, registry
from eegbench.errors import UserError
from eegbench.runtime import is_main_process

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Benchmark EEG decoding into images and text; every number beside its control, chance and CI.")
data_app = typer.Typer(no_args_is_help=True, help="Prepare datasets: generate synthetic worlds, build array caches.")
app.add_typer(data_app, name="data")
score_app = typer.Typer(no_args_is_help=True, help="Score predictions made elsewhere with the benchmark's metrics.")
app.add_typer(score_app, name="score")
console = Console(quiet=not is_main_process())  # launched processes: only the main one prints
err = Console(stderr=True)


@app.command()
def run(
    suite: str = typer.Option(..., "--suite", help="Suite name (`eegbench list suites`) or a YAML path."),
    variant: str = typer.Option(config.DEFAULT_VARIANT, help="Variant (ablation) to run, or 'all'."),
    scale: str = typer.Option(config.DEFAULT_SCALE, help="ci | small | paper."),
    data_root: Optional[Path] = typer.Option(None, help="Folder with the real dataset files; default: the synthetic world."),
    sd_weights: Optional[Path] = typer.Option(None, help="Stable Diffusion folder in diffusers format (e.g. v1.5)."),
    clip_weights: Optional[Path] = typer.Option(None, help="open_clip folder: <name>.json + checkpoint."),
    judge_weights: Optional[Path] = typer.Option(None, help="n-way judge folder: vit_h_14.pth + classes.json."),
    text_weights: Optional[Path] = typer.Option(None, help="Text encoder: a transformers BERT-type folder (e.g. ClinicalBERT)."),
    lm_weights: Optional[Path] = typer.Option(None, help="Language model: a transformers causal LM folder (e.g. gpt2)."),
    captioner_weights: Optional[Path] = typer.Option(None, help="Image captioner: a transformers BLIP folder "
                                                     "(e.g. blip-image-captioning-base)."),
    on_bad_file: Optional[str] = typer.Option(None, help="fail | skip: what an unreadable recording does (TUAB)."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key, e.g. --set stages.classify.lr=1e-4."),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda (runtime.device; auto: CUDA when present)."),
    precision: Optional[str] = typer.Option(None, help="fp32 | bf16 | fp16 (runtime.precision; fp16 needs CUDA)."),
    grad_accum: Optional[int] = typer.Option(None, help="Micro-batches per optimiser step (runtime.grad_accum)."),
    seed: Optional[int] = typer.Option(None, help="Seed (default: the suite's)."),
    seeds: Optional[str] = typer.Option(None, help="Several seeds, each a run: 0,1,2 or a range 0-4 (with "
                                        "--variant all: every variant x seed; finished runs are reused)."),
    out: Path = typer.Option(Path("runs"), help="Run store folder."),
    force: bool = typer.Option(False, help="Rerun even if a finished run with the same id exists."),
    wandb: Optional[bool] = typer.Option(None, "--wandb/--no-wandb",
                                         help="W&B: offline files in the run folder by default; --wandb online; --no-wandb off."),
    as_json: bool = typer.Option(False, "--json", help="Print each run's metrics summary (metrics.json) as one JSON "
                                 "line on stdout instead of the tables and bars, for scripts."),
):
    """Run a suite (one variant or all) and print each metric with its CI, control and chance."""
    from eegbench import paths, progress
    from eegbench.runner import execute

    paths.configure_environment()
    wandb_mode = {None: "offline", True: "online", False: "disabled"}[wandb]
    if wandb_mode == "online":
        from eegbench.track.wandb_log import check_online_credentials

        check_online_credentials()
    overrides = config.parse_set(set_)
    for key, value in (("device", device), ("precision", precision), ("grad_accum", grad_accum)):
        if value is not None:
            overrides[f"runtime.{key}"] = value
    if on_bad_file is not None:
        if on_bad_file not in ("fail", "skip"):
            raise UserError(f"--on-bad-file {on_bad_file!r}: use fail or skip")
        overrides["dataset.on_bad_file"] = on_bad_file
    names = config.variants(suite) if variant == "all" else [variant]
    if data_root is not None and not data_root.is_dir():
        raise UserError(f"--data-root {data_root}: no such folder; point it at the folder holding the dataset files")
    weights = {"sd": sd_weights, "clip": clip_weights, "judge": judge_weights, "text": text_weights, "lm": lm_weights,
               "captioner": captioner_weights}
    for name, folder in weights.items():
        if folder is not None and not folder.is_dir():
            raise UserError(f"--{name}-weights {folder}: no such folder; point it at the local {name} model folder")
    if seed is not None and seeds is not None:
        raise UserError("--seed and --seeds: give one of them (--seeds 0,1,2 runs each seed)")
    resolved = [config.resolve(suite, variant=v, scale=scale, overrides=overrides, seed=s,
                               data_root=str(data_root) if data_root else None,
                               weights={k: str(v) for k, v in weights.items() if v is not None})
                for v in names for s in (parse_seeds(seeds) if seeds is not None else [seed])]
    for cfg in resolved:
        if as_json:
            outcome = execute(cfg, out=out, cache_dir=paths.cache_dir(), force=force, wandb=wandb_mode)
            if is_main_process():
                print(json.dumps(outcome.metrics, sort_keys=True), flush=True)
            continue
        console.rule(f"{cfg.suite} / {cfg.variant}  (scale {cfg.scale}, seed {cfg.seed}, run {cfg.hash()})")
        with progress.bars():
            outcome = execute(cfg, out=out, cache_dir=paths.cache_dir(), force=force, wandb=wandb_mode)
        if outcome.reused:
            console.print("[dim]finished run with this id found; reusing it (--force to rerun)[/dim]")
        print_metrics(outcome.metrics)
        console.print(f"run folder: {outcome.run_dir}")


def parse_seeds(text: str) -> list[int]:
    """``--seeds``: comma-separated seeds or ranges (``0,1,2``, ``0-4``, ``0-2,7``), in the order given, once each."""
    out: list[int] = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        if not low.isdigit() or (dash and not high.isdigit()) or (dash and int(high) < int(low)):
            raise UserError(f"--seeds {text!r}: {part.strip()!r} is not a seed or a range; write e.g. 0,1,2 or 0-4")
        out += [s for s in range(int(low), int(high or low) + 1) if s not in out]
    return out


def print_metrics(summary: dict) -> None:
    """Each metric with its definition, CI, every control beside it, the chance interval, and published
    numbers: beside a metric only when computed with its definition, else marked "other definition"."""
    from eegbench.track import baselines

    published = baselines.load(summary["suite"])
    definitions = {m["metric"]: m.get("definition") for m in summary["metrics"]}
    reported: dict[str, list[str]] = {}
    for row in published.rows if published else []:
        if row.variant == summary["variant"]:
            same = row.definition == definitions.get(row.metric)
            reported.setdefault(row.metric, []).append(f"{row.value:.3f} \\[{published.tag}]" if same
                                                       else f"other definition ({row.definition})")
    table = Table(title=f"{summary['suite']} / {summary['variant']}")
    notes = {note: i + 1 for i, note in enumerate(dict.fromkeys(m["note"] for m in summary["metrics"] if m.get("note")))}
    columns = ["metric (split, n)", "value [95% CI]", "control: value [95% CI]", "gap [95% CI]", "p vs control",
               "chance [95% interval]"]
    for col in columns + (["published"] if reported else []):
        table.add_column(col)
    for m in summary["metrics"]:
        controls = [f"{c['name']}: {_num(c['value'], c['ci'])}" for c in m["controls"]] or ["-"]
        gaps = [_num(c["gap"], c["gap_ci"], sign="+") if "gap" in c else "-" for c in m["controls"]] or ["-"]
        pvals = [f"{c['p_vs_control']:.4f}" for c in m["controls"]] or ["-"]
        name = (f"{m['metric']} ({m['split']}, {m['n']}" + (f"; {m['definition']}" if m.get("definition") else "") + ")"
                + ("" if m.get("higher_is_better", True) else " (lower is better)")
                + (f" [dim]({notes[m['note']]})[/dim]" if m.get("note") else ""))
        table.add_row(name, _num(m["value"], m["ci"]), "\n".join(controls), "\n".join(gaps), "\n".join(pvals),
                      _num(m["chance"], m["chance_ci"]), *(["\n".join(reported.get(m["metric"], ["-"]))] if reported else []))
    print_whole(table)
    if reported:
        console.print(f"[dim]published: {published.source}; {published.setting}; reported, not reproduced[/dim]")
    for note, i in notes.items():
        console.print(f"[dim]({i}) {note}[/dim]")
    for warning in dict.fromkeys(m["warning"] for m in summary["metrics"] if m.get("warning")):
        console.print(f"[bold yellow]warning:[/bold yellow] {warning}")
    if summary.get("skipped"):
        console.print(f"[bold yellow]skipped {len(summary['skipped'])} recording(s)[/bold yellow] (listed in the run's "
                      f"log.txt and metrics.json), first: {summary['skipped'][0]['path']}: {summary['skipped'][0]['reason']}")


def print_whole(table: Table) -> None:
    """Print ``table`` at its natural width where no terminal is attached (a log, CI, a pipe), so no name is cut
    to fit rich's default 80 columns; in a terminal it fits the terminal as usual."""
    if console.is_terminal:
        console.print(table)
        return
    natural = console.measure(table, options=console.options.update_width(100_000)).maximum
    Console(file=console.file, width=max(console.width, natural), quiet=console.quiet).print(table)


def _num(value: float, ci, sign: str = "") -> str:
    return f"{value:{sign}.3f} [{ci[0]:{sign}.3f}, {ci[1]:{sign}.3f}]"


@app.command()
def leaderboard(
    suite: Optional[str] = typer.Option(None, "--suite", help="One suite; default: every suite with runs."),
    out: Path = typer.Option(Path("runs"), help="Run store whose index to read."),
    dest: Path = typer.Option(Path("leaderboards"), help="Folder for <suite>.md, .csv and .html."),
):
    """Build leaderboards from the run index: variants x metrics over seeds, controls, Borda rank, published rows."""
    from eegbench.track import leaderboard as board
    from eegbench.track.store import Index

    path = out / "index.sqlite"
    if not path.is_file():
        raise UserError(f"{path}: no run index here; run a suite first or point --out at the run store")
    index = Index(path)
    for name in [suite] if suite else sorted({r["suite"] for r in index.runs()}):
        files = board.write(board.build(index, name), dest)
        console.print(f"{name}: " + "  ".join(str(f) for f in files))


@app.command()
def compare(
    run_a: str = typer.Argument(..., help="A run folder, a run id, or suite/variant (all its seeds)."),
    run_b: str = typer.Argument(..., help="The same kind of reference as RUN_A."),
    out: Path = typer.Option(Path("runs"), help="Run store whose index resolves run ids and suite/variant."),
    metric: list[str] = typer.Option([], help="Only these metrics (repeatable); default: every metric both have."),
):
    """Paired comparison: per test trial (two runs) or per seed (two variants); test, effect size, a verdict each."""
    from eegbench.track import compare as cmp
    from eegbench.track.store import Index

    index = Index(out / "index.sqlite") if (out / "index.sqlite").is_file() else None
    a, b = cmp.side(run_a, index), cmp.side(run_b, index)
    paired, units = cmp.pairs(a, b)
    unknown = [m for m in metric if m not in paired]
    if unknown:
        raise UserError(f"--metric {unknown[0]}: not scored by both sides; pick from {', '.join(paired)}")
    results = {m: cmp.paired_test(*paired[m]) for m in (metric or paired)}
    table = Table(title=f"{run_a} vs {run_b} (paired per {a['by']})")
    for col in ("metric", "n", "A - B [95% CI]", "test", "p", "effect size"):
        table.add_column(col)
    for m, r in results.items():
        table.add_row(m, f"{r['n']} {units[m]}", f"{r['difference']:+.3f} [{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}]", r["test"],
                      f"{r['p']:.4f}", f"{r['effect_name']} {r['effect']:.2f}")
    print_whole(table)
    for m, r in results.items():
        console.print(cmp.verdict(m, r, "A", "B", units[m], cmp.higher_is_better(a, m)), soft_wrap=True)


@app.command()
def sweep(
    file: Path = typer.Argument(..., help="A sweep file, e.g. sweeps/smoke.yaml."),
    storage: Optional[str] = typer.Option(None, help="Optuna storage URL; default SQLite in the sweep folder. "
                                                     "postgresql://USER:PASSWORD@HOST/DB shares one study across machines."),
    out: Path = typer.Option(Path("runs"), help="Run store; the sweep's folder is <out>/sweeps/<name>/."),
    trials: Optional[int] = typer.Option(None, min=1, help="Finished trials the study should hold (default: the file's)."),
):
    """Search a suite's settings on a validation objective with Optuna; many workers may share one study."""
    from eegbench import paths, progress, sweeps

    paths.configure_environment()
    spec = sweeps.load(file)
    if trials:
        spec.trials = trials
    with progress.bars():
        result = sweeps.run(spec, out=out, cache_dir=paths.cache_dir(), storage_url=storage,
                            progress=lambda message: console.print(f"[dim]{message}[/dim]", soft_wrap=True))
    console.print(f"best trial {result['number']}: {spec.objective.key} = {result['value']:.4f} (validation) with "
                  f"{result['best']}", soft_wrap=True)
    console.print(f"trials: {', '.join(f'{n} {s.lower()}' for s, n in result['states'].items())}; the best as a variant: "
                  f"{result['folder'] / 'best.yaml'}; plots in {result['folder']}", soft_wrap=True)


@app.command()
def check(
    suite: str = typer.Option("all", "--suite", help="A suite, or all of them."),
    scale: str = typer.Option("ci", help="The scale to run (references are kept per scale)."),
    update: bool = typer.Option(False, "--update", help="Rewrite the reference figures from fresh runs (deliberately)."),
    seeds: Optional[str] = typer.Option(None, help="With --update: the reference's seeds (default 0-2). Otherwise "
                                        "each seed is one check in turn (default: the suite's seed), e.g. 3-7 to "
                                        "measure the false-alarm rate on seeds the references never saw."),
    refs: Path = typer.Option(Path("leaderboards"), help="Folder of <suite>.<scale>.reference.json."),
    out: Optional[Path] = typer.Option(None, help="Run store for the fresh runs; default: a temporary folder."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key of every suite run (a smaller subset)."),
    reuse: bool = typer.Option(False, "--reuse", help="Compare finished runs of the same config already in --out "
                                                      "(e.g. the ones CI's tests just made) instead of rerunning them."),
):
    """Run suites afresh and compare every metric and control with the committed references; exit 1 on a regression."""
    import tempfile

    from eegbench import paths, progress
    from eegbench.io import atomic_write_json
    from eegbench.runner import execute
    from eegbench.track import check as checks

    paths.configure_environment()
    names = [entry.name for entry in registry.suites] if suite == "all" else [suite]
    overrides = config.parse_set(set_)
    chosen = parse_seeds(seeds) if seeds is not None else ([0, 1, 2] if update else [None])
    for name in names:
        config.resolve(name, scale=scale, overrides=overrides)  # a bad suite or key fails before any run
    references = {} if update else {name: checks.load_reference(refs, name, scale) for name in names}
    for name, ref in references.items():
        first = config.resolve(name, scale=scale, overrides=overrides, seed=ref["seeds"][0])
        if ref["runs"][str(ref["seeds"][0])] != first.hash():
            console.print(f"[yellow]{name}: the suite's config changed since its references were written[/yellow]")
    failed = []
    with tempfile.TemporaryDirectory() as tmp:

        def summaries(name: str, at: list) -> list[dict]:
            done = []
            for seed in at:
                cfg = config.resolve(name, scale=scale, overrides=overrides, seed=seed)
                console.rule(f"check {name} (scale {scale}, seed {cfg.seed}, run {cfg.hash()})")
                with progress.bars():
                    outcome = execute(cfg, out=out or Path(tmp), cache_dir=paths.cache_dir(), force=not reuse)
                if outcome.reused:
                    console.print(f"[dim]{name}: the finished run {outcome.run_dir} of this config is compared[/dim]")
                done.append(outcome.metrics)
            return done

        if update:
            for name in names:
                new = checks.reference(summaries(name, chosen))
                atomic_write_json(checks.reference_path(refs, name, scale), new)
                console.print(f"{name}: {len(new['metrics'])} reference metrics over seeds "
                              f"{', '.join(map(str, new['seeds']))} written to {checks.reference_path(refs, name, scale)}")
            return
        for seed in chosen:
            rows = []
            for name in names:
                rows += checks.comparisons(references[name], checks.reference(summaries(name, [seed])))
            bad = [r for r in checks.judge(rows) if r["status"] != "ok"]
            label = "" if seed is None else f" at seed {seed}"
            if not bad:
                console.print(f"check passed{label}: all {len(rows)} metrics and controls of {', '.join(names)} "
                              f"within tolerance")
                continue
            failed.append((seed, sorted({r["suite"] for r in bad})))
            table = Table(title=f"regressions{label}: {len(bad)} of {len(rows)} figures")
            for col in ("suite", "metric [control]", "reference", "now", "change", "tolerance", "status"):
                table.add_column(col)
            for r in bad:
                now = "-" if r["new"] is None else f"{r['new']:.3f}"
                change = "-" if r["new"] is None else f"{r['new'] - r['ref']:+.3f}"
                table.add_row(r["suite"], r["what"], f"{r['ref']:.3f}", now, change, f"{r['tolerance']:.3f}", r["status"])
            print_whole(table)
    if len(chosen) > 1:
        suites = sum(len(s) for _, s in failed)
        console.print(f"{len(failed)} of {len(chosen)} checks failed; {suites} of {len(chosen) * len(names)} "
                      f"suite checks: " + ("; ".join(f"seed {seed}: {', '.join(s)}" for seed, s in failed) or "none"))
    if failed:
        raise typer.Exit(1)


@app.command("list")
def list_(kind: Optional[str] = typer.Argument(None, help="One of: " + ", ".join(registry.REGISTRIES))):
    """List registered datasets, encoders, heads, stages, evaluations, controls and suites."""
    kinds = registry.REGISTRIES
    if kind is not None:
        key = kind if kind in kinds else kind + "s"
        if key not in kinds:
            raise UserError(f"unknown kind {kind!r}; use one of {', '.join(kinds)}")
        kinds = {key: kinds[key]}
    for name, reg in kinds.items():
        table = Table(title=name, show_header=False, title_justify="left")
        table.add_column("name", style="bold")
        table.add_column("summary")
        for entry in reg:
            table.add_row(entry.name, entry.summary)
        print_whole(table)


@app.command()
def show(
    suite: str = typer.Argument(..., help="Suite name or YAML path."),
    variant: str = typer.Option(config.DEFAULT_VARIANT),
    scale: str = typer.Option(config.DEFAULT_SCALE),
    set_: list[str] = typer.Option([], "--set"),
):
    """Print a suite's resolved configuration and the run id it hashes to."""
    cfg = config.resolve(suite, variant=variant, scale=scale, overrides=config.parse_set(set_))
    console.print(f"# run id: {cfg.hash()}   variants: {', '.join(config.variants(suite))}")
    console.print(cfg.to_yaml(), markup=False, highlight=False)


@data_app.command("prepare")
def data_prepare(
    name: str = typer.Argument(..., help="Dataset name (`eegbench list datasets`)."),
    data_root: Optional[Path] = typer.Option(None, help="Real dataset folder; default: generate the synthetic world."),
    set_: list[str] = typer.Option([], "--set", help="Override a dataset key, e.g. --set world.classes=40."),
):
    """Generate the synthetic world (or check the real files) and build the on-disk array cache."""
    from eegbench import paths, progress

    paths.configure_environment()
    settings = config.dotted_to_tree(config.parse_set(set_))
    if data_root is not None:
        settings["root"] = str(data_root.resolve())
    dataset_cls = registry.datasets.get(name)
    config.validate_component([("--set", settings)], (), dataset_cls.Config, settings)
    with progress.bars():
        trials = dataset_cls(settings, paths.cache_dir()).load()
    console.print(f"{name}: {len(trials.label)} trials, {len(trials.wnids)} classes, "
                  f"{trials.eeg.shape[1]} channels x {trials.eeg.shape[2]} samples; "
                  + ", ".join(f"{k} {len(v)}" for k, v in trials.splits.items()), soft_wrap=True)


@data_app.command("check")
def data_check(
    name: str = typer.Argument(..., help="Dataset name (`eegbench list datasets`)."),
    data_root: Optional[Path] = typer.Option(None, help="Real dataset folder; default: the synthetic world a run uses."),
    set_: list[str] = typer.Option([], "--set", help="Override a dataset key, e.g. --set dataset.interpolate=512."),
    on_bad_file: Optional[str] = typer.Option(None, help="fail | skip: what an unreadable recording does (TUAB)."),
):
    """Show what the loader sees before any training (kept, dropped and skipped, and why); exit 2 if it cannot load."""
    from eegbench import paths, progress
    from eegbench.data import check

    paths.configure_environment()
    if data_root is not None and not data_root.is_dir():
        raise UserError(f"--data-root {data_root}: no such folder; point it at the folder holding the dataset files")
    overrides = config.parse_set(set_)
    if on_bad_file is not None:
        overrides["on_bad_file"] = on_bad_file
    with progress.bars():
        report = check.check(name, data_root, overrides, paths.cache_dir())
    check.show(report, console)
    if report.problem:
        raise UserError(report.problem)


@score_app.command("text")
def score_text(
    file: Path = typer.Argument(..., help="A CSV (header row) or JSONL (one object a line) file of texts."),
    reference: str = typer.Option(..., "--reference", help="The column holding each row's reference text."),
    prediction: str = typer.Option(..., "--prediction", help="The column holding each row's predicted text."),
    definition: str = typer.Option("sacrebleu", help="sacrebleu | thought2text | eeg-to-text | sentence "
                                                     "(evaluate/text_definitions.py)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the scores here (metric names as in metrics.json)."),
    seed: int = typer.Option(0, help="Seed of the bootstrap and of the chance pairing."),
):
    """BLEU-1..4 and ROUGE-1/2/L of predictions made elsewhere, with bootstrap 95% CIs and chance, as a run scores them."""
    from eegbench.score.text import score_file

    if json_out is not None and not json_out.parent.is_dir():
        raise UserError(f"--json {json_out}: no folder {json_out.parent}; create it or write elsewhere")
    result = score_file(file, reference, prediction, definition, seed)
    notes = list(dict.fromkeys(m["note"] for m in result["metrics"] if m.get("note")))
    print_scores(f"{file}: {result['n']} pairs, definition {result['definition']}", result, notes, json_out)


@score_app.command("images")
def score_images(
    generated: Path = typer.Argument(..., help="Folder of generated images <trial>_<k>.png (or <trial>-<k>.png; "
                                     "<trial>.png for one sample), k = 0, 1, ...; .jpg/.jpeg too."),
    stimuli: Path = typer.Argument(..., help="Folder of stimulus images <trial>.png|.jpg|.jpeg, one per trial."),
    judge_weights: Optional[Path] = typer.Option(None, help="n-way judge folder (vit_h_14.pth + classes.json, or a "
                                                 "synthetic judge); without it the n-way metrics are skipped."),
    clip_weights: Optional[Path] = typer.Option(None, help="open_clip folder (<name>.json + checkpoint) for "
                                                "image_clip_2way; without it that metric is skipped."),
    samples_per_trial: Optional[int] = typer.Option(None, min=1, help="Keep the first N generated images of each "
                                                    "trial (by k); default: all, the same number for every trial."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the scores here (metric names as in metrics.json)."),
    seed: int = typer.Option(0, help="Seed of the n-way distractor draws and the bootstrap."),
):
    """n-way top-1 (mean, DreamDiffusion's (max), oracle), SSIM, PCC and CLIP 2-way of images generated elsewhere,
    with bootstrap 95% CIs and chance, as a run scores them. Generated images are paired with stimuli by name:
    GENERATED/<trial>_<k>.png with STIMULI/<trial>.png, e.g. n02106662_1234_0.png with n02106662_1234.JPEG."""
    from eegbench import paths
    from eegbench.score.images import score_folders

    paths.configure_environment()
    if json_out is not None and not json_out.parent.is_dir():
        raise UserError(f"--json {json_out}: no folder {json_out.parent}; create it or write elsewhere")
    result = score_folders(generated, stimuli, judge_weights=judge_weights, clip_weights=clip_weights,
                           samples_per_trial=samples_per_trial, seed=seed)
    notes = [f"{m['metric']}: {m['note']}" for m in result["metrics"] if m.get("note")] + result["skipped"]
    print_scores(f"{generated}: {result['trials']} trials x {result['samples']} samples", result, notes, json_out)


def print_scores(title: str, result: dict, notes: list[str], json_out: Optional[Path]) -> None:
    """``eegbench score``'s table (value and chance of each metric), its notes, and the JSON copy if asked."""
    from eegbench.io import atomic_write_json

    table = Table(title=title)
    for col in ("metric", "value [95% CI]", "chance [95% interval]"):
        table.add_column(col)
    for m in result["metrics"]:
        table.add_row(m["metric"], _num(m["value"], m["ci"]), _num(m["chance"], m["chance_ci"]))
    print_whole(table)
    for line in notes:
        console.print(line, style="dim", soft_wrap=True, markup=False, highlight=False)
    if json_out is not None:
        atomic_write_json(json_out, result)
        console.print(f"scores written to {json_out}")


def main() -> None:
    """Console entry point: run the app, turning UserError into one line and exit code 2."""
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"  # one line
    for noisy in ("braindecode", "mne"):  # deprecation chatter a user cannot act on
        warnings.filterwarnings("ignore", category=FutureWarning, module=noisy)
    # braindecode's models ask MNE for a montage name MNE deprecates, also in the worker processes that
    # read TUAB (they start without this process's filters, but read PYTHONWARNINGS)
    warnings.filterwarnings("ignore", message="Montage name", category=FutureWarning)
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, (os.environ.get("PYTHONWARNINGS"),
                                                         "ignore:Montage name:FutureWarning")))
    try:
        app()
    except UserError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    finally:
        _end_processes()


def _end_processes() -> None:
    """Leave a launched process group cleanly (torchrun, accelerate launch); nothing to do otherwise."""
    if "torch.distributed" in sys.modules:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            gc.collect()  # DDP reducers left in reference cycles go first: the group must outlive them (runtime.release)
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
