"""Leaderboards from the run index: variants x metrics over seeds, beside controls, chance and published rows.

For each suite and scale, the runs of each variant's latest configuration (any seed) are pooled:

- a metric's value is the mean over seeds with a 95% t-interval over seeds, or, with one seed, that
  run's bootstrap interval over test trials (the table says which);
- each control's gap (real minus control) is pooled the same way; a result *beats its controls*
  when every gap's interval lies on the metric's better side of zero (above when higher is better,
  below when lower is: ``higher_is_better`` in the runs' metrics, higher when absent), and is marked
  otherwise;
- variants are ranked by Borda count over the metrics they share (probes excluded): on each metric
  a variant earns one point per variant it beats in the metric's direction (ties share). Only
  variants scored on every metric get a rank; the others show their coverage instead of a silent rank;
- each variant is paired with the default seed by seed: per metric, the mean of the per-seed differences
  (variant minus default) with its 95% t-interval over seeds and a paired t-test's two-sided p (with
  one shared seed there is no interval: ``eegbench compare`` tests that pair trial by trial);
- published numbers from ``baselines/<suite>.yaml`` stand in their own table, marked
  "reported, not reproduced", with the definition each was computed with; beside a measured row
  they appear only when that row's metric definition is the same, else the row says
  "other definition" and hides the number.

``write`` renders ``<suite>.md``, ``<suite>.csv`` and a static ``<suite>.html`` whose plots (metric by
variant with intervals, learning curves, sample images and texts) are embedded, so the page is one file.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eegbench import config
from eegbench.errors import UserError
from eegbench.track.store import Index, Run

NOT_BEATEN = "does not beat"


@dataclass
class Board:
    """One suite's leaderboard: per scale, the pooled ``rows`` (one per variant and metric) and ``ranking``."""

    suite: str
    scales: dict[str, dict] = field(default_factory=dict)  # scale -> {"rows", "ranking", "metrics", "runs", "hidden"}
    published: list[dict] = field(default_factory=list)
    published_source: str = ""


def interval(values: list[float], single: tuple | None) -> tuple[float, float, str]:
    """95% interval of the mean of per-seed ``values``: t over seeds, or ``single`` (a run's own CI) for one seed."""
    from scipy.stats import t

    if len(values) == 1:
        low, high = single if single and single[0] is not None else (np.nan, np.nan)
        return low, high, "trials"
    half = t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values))
    return float(np.mean(values) - half), float(np.mean(values) + half), "seeds"


def build(index: Index, suite: str) -> Board:
    """The leaderboard of ``suite`` from ``index`` (UserError when the suite has no runs)."""
    from eegbench.track import baselines

    runs = index.runs(suite)
    if not runs:
        raise UserError(f"no finished runs of suite {suite!r} in {index.path}; run `eegbench run --suite {suite}` first")
    board = Board(suite)
    scores, controls = index.scores(suite), index.controls(suite)
    for scale in sorted({r["scale"] for r in runs}, key=["ci", "small", "paper"].index):
        kept, hidden = _latest_configs([r for r in runs if r["scale"] == scale])
        groups = _groups(scores, kept)
        rows = [_pool(variant, metric, group, controls) for (variant, metric), group in groups.items()]
        board.scales[scale] = {"rows": rows, "ranking": _borda(rows), "runs": kept, "hidden": hidden,
                               "metrics": list(dict.fromkeys(r["metric"] for r in rows)),
                               "versus_default": _versus_default(groups, kept, {r["metric"]: r for r in rows})}
    published = baselines.load(suite)
    if published:
        board.published = [{"variant": r.variant, "metric": r.metric, "value": r.value, "definition": r.definition,
                            "note": r.note, "tag": published.tag} for r in published.rows]
        board.published_source = f"{published.source}; {published.setting}"
    for part in board.scales.values():
        for row in part["rows"]:
            row["published"] = [p for p in board.published if (p["variant"], p["metric"]) == (row["variant"], row["metric"])]
    return board


def published_cell(row: dict) -> str:
    """The published numbers of a measured row: each value when its definition is the row's, else the mark
    "other definition" naming the published one (the number then stands only in the published table)."""
    return "; ".join(f"{p['value']:.3f} [{p['tag']}]" if p["definition"] == row.get("definition")
                     else f"other definition ({p['definition']})" for p in row.get("published", [])) or "-"


def _latest_configs(runs: list[dict]) -> tuple[dict[str, list[dict]], int]:
    """Per variant, its runs with the configuration (seed aside) of its newest run; and how many runs that hides.
    Configurations compare as run ids do, so a run that a newer eegbench would reuse still counts."""
    def identity(run):
        return config.identity({**json.loads(run["config"]), "seed": 0})

    kept: dict[str, list[dict]] = {}
    for variant in dict.fromkeys(r["variant"] for r in runs):
        mine = [r for r in runs if r["variant"] == variant]
        newest = identity(mine[-1])
        latest_per_seed = {r["seed"]: r for r in mine if identity(r) == newest}  # runs are oldest first
        kept[variant] = list(latest_per_seed.values())
    return kept, len(runs) - sum(map(len, kept.values()))


def _groups(scores: list[dict], kept: dict[str, list[dict]]) -> dict[tuple[str, str], list[dict]]:
    ids = {r["run_id"]: variant for variant, runs in kept.items() for r in runs}
    groups: dict[tuple[str, str], list[dict]] = {}
    for s in scores:
        if s["run_id"] in ids and s["split"] == "test":
            groups.setdefault((ids[s["run_id"]], s["metric"]), []).append(s)
    return groups


def _pool(variant: str, metric: str, group: list[dict], controls: list[dict]) -> dict:
    """One row: the metric over seeds, its direction and definition, its chance, each control's gap and
    whether every gap lies on the better side of zero."""
    values = [s["value"] for s in group]
    low, high, over = interval(values, (group[0]["ci_low"], group[0]["ci_high"]))
    higher = group[-1]["higher_is_better"] is None or bool(group[-1]["higher_is_better"])  # None: predates directions
    row = {"variant": variant, "metric": metric, "higher_is_better": higher, "definition": group[-1]["definition"],
           "seeds": len(group), "value": float(np.mean(values)),
           "ci_low": low, "ci_high": high, "ci_over": over, "chance": float(np.mean([s["chance"] for s in group])),
           "warning": "; ".join(dict.fromkeys(s["warning"] for s in group if s["warning"])), "controls": []}
    ids = {s["run_id"] for s in group}
    by_name: dict[str, list[dict]] = {}
    for c in controls:
        if c["run_id"] in ids and c["metric"] == metric and c["split"] == "test":
            by_name.setdefault(c["control"], []).append(c)
    for name, cs in by_name.items():
        gaps = [c["gap"] if c["gap"] is not None else v - c["value"] for c, v in zip(cs, values)]
        g_low, g_high, _ = interval(gaps, (cs[0]["gap_low"], cs[0]["gap_high"]))
        if np.isfinite(g_low):
            beats = g_low > 0 if higher else g_high < 0
        else:
            beats = all(c["p"] < 0.05 for c in cs)  # p is one-sided in the metric's direction
        row["controls"].append({"name": name, "value": float(np.mean([c["value"] for c in cs])),
                                "gap": float(np.mean(gaps)), "gap_low": g_low, "gap_high": g_high, "beats": bool(beats)})
    row["controls"].sort(key=lambda c: c["gap"] if higher else -c["gap"])  # the hardest control first
    row["not_beaten"] = [c["name"] for c in row["controls"] if not c["beats"]]
    return row


def _versus_default(groups: dict[tuple[str, str], list[dict]], kept: dict[str, list[dict]],
                    directions: dict[str, dict]) -> list[dict]:
    """Each variant against the default, paired by seed: per metric (probes aside), the mean per-seed difference
    (variant minus default), its 95% t-interval over the shared seeds and the paired t-test's two-sided p."""
    from scipy.stats import ttest_1samp

    seed_of = {r["run_id"]: r["seed"] for runs in kept.values() for r in runs}
    value = {key: {seed_of[s["run_id"]]: s["value"] for s in group} for key, group in groups.items()}
    out = []
    for (variant, metric), mine in value.items():
        base = value.get(("default", metric), {})
        shared = sorted(set(mine) & set(base))
        if variant == "default" or metric.startswith("probe:") or not shared:
            continue
        diffs = [mine[seed] - base[seed] for seed in shared]
        low, high, _ = interval(diffs, None)
        spread = not np.allclose(diffs, diffs[0], rtol=0, atol=1e-12)
        out.append({"variant": variant, "metric": metric, "seeds": len(shared), "difference": float(np.mean(diffs)),
                    "ci_low": low, "ci_high": high, "p": float(ttest_1samp(diffs, 0.0).pvalue) if spread else np.nan,
                    "higher_is_better": directions[metric]["higher_is_better"]})
    return out


def _borda(rows: list[dict]) -> list[dict]:
    """Variants by Borda count over the metrics (probes excluded), each in its direction; rank only for
    full coverage."""
    from scipy.stats import rankdata

    scored = [r for r in rows if not r["metric"].startswith("probe:")]
    metrics = list(dict.fromkeys(r["metric"] for r in scored))
    points: dict[str, float] = {}
    covered: dict[str, int] = {}
    for metric in metrics:
        mine = [r for r in scored if r["metric"] == metric]
        better = [r["value"] if r["higher_is_better"] else -r["value"] for r in mine]
        for r, rank in zip(mine, rankdata(better)):  # 1 = worst; ties share
            points[r["variant"]] = points.get(r["variant"], 0.0) + rank - 1
            covered[r["variant"]] = covered.get(r["variant"], 0) + 1
    order = sorted(points, key=lambda v: (covered[v] < len(metrics), -points[v]))
    out, rank = [], 0
    for variant in order:
        full = covered[variant] == len(metrics)
        rank += full
        out.append({"variant": variant, "borda": points[variant], "coverage": f"{covered[variant]}/{len(metrics)}",
                    "rank": rank if full else None})
    return out


# rendering -------------------------------------------------------------------------------------

def _num(value: float, digits: int = 3) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _cells(row: dict) -> dict[str, str]:
    hardest = row["controls"][0] if row["controls"] else None
    mark = "yes" if hardest and not row["not_beaten"] else (f"**{NOT_BEATEN} {', '.join(row['not_beaten'])}**"
                                                           if row["not_beaten"] else "-")
    return {
        "variant": row["variant"], "metric": row["metric"] + ("" if row["higher_is_better"] else " (lower is better)"),
        "definition": row["definition"] or "-", "seeds": str(row["seeds"]),
        "value [95% CI]": f"{_num(row['value'])} [{_num(row['ci_low'])}, {_num(row['ci_high'])}] ({row['ci_over']})",
        "chance": _num(row["chance"]),
        "hardest control": f"{hardest['name']}: {_num(hardest['value'])}" if hardest else "-",
        "gap [95% CI]": f"{hardest['gap']:+.3f} [{_num(hardest['gap_low'])}, {_num(hardest['gap_high'])}]" if hardest else "-",
        "beats its controls": mark + (" (warning: " + row["warning"] + ")" if row["warning"] else ""),
        "published": published_cell(row),
    }


def _seeds(runs: list[dict]) -> str:
    """How many seeds, and which: ``3 (0, 1, 2)``."""
    return f"{len(runs)} ({', '.join(str(r['seed']) for r in sorted(runs, key=lambda r: r['seed']))})"


def _versus_cells(d: dict) -> dict[str, str]:
    interval_ = (f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]" if np.isfinite(d["ci_low"])
                 else "(one seed: `eegbench compare` pairs its trials)")
    return {"variant": d["variant"], "metric": d["metric"] + ("" if d["higher_is_better"] else " (lower is better)"),
            "seeds paired": str(d["seeds"]), "difference to default [95% CI over seeds]": f"{d['difference']:+.3f} "
            + interval_, "p (paired t, two-sided)": "-" if not np.isfinite(d["p"]) else f"{d['p']:.4f}"}


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    clean = [[str(c).replace("|", "\\|") for c in r] for r in rows]
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in clean]


def markdown(board: Board) -> str:
    lines = [f"# {board.suite} leaderboard", "",
             "Generated by `eegbench leaderboard` from the run index. Values are means over seeds with a 95% "
             "t-interval over seeds (or, for one seed, the run's bootstrap interval over test trials). The gap is "
             "real minus the hardest control; a result that does not beat every control is marked. Borda ranks "
             "cover only variants scored on every metric, each ranked in its direction. A published number "
             "appears beside ours only when both use the same metric definition (else: other definition).", ""]
    for scale, part in board.scales.items():
        lines += [f"## scale {scale}", ""]
        if part["hidden"]:
            lines += [f"{part['hidden']} older run(s) of other configurations are not shown.", ""]
        lines += ["### Ranking", ""] + _md_table(["rank", "variant", "Borda points", "coverage", "seeds"], [
            [str(r["rank"]) if r["rank"] else "not ranked", r["variant"], _num(r["borda"], 1), r["coverage"],
             _seeds(part["runs"][r["variant"]])] for r in part["ranking"]]) + [""]
        cells = [_cells(r) for r in part["rows"]]
        lines += ["### Metrics", ""] + (_md_table(list(cells[0]), [list(c.values()) for c in cells]) if cells else []) + [""]
        versus = [_versus_cells(d) for d in part["versus_default"]]
        if versus:
            lines += ["### Against the default, paired by seed", ""] + _md_table(
                list(versus[0]), [list(c.values()) for c in versus]) + [""]
    if board.published:
        lines += ["## Published (reported, not reproduced)", "", board.published_source, ""] + _md_table(
            ["variant", "metric", "value", "definition", "tag", "note"],
            [[p["variant"], p["metric"], _num(p["value"]), p["definition"], p["tag"], p["note"]]
             for p in board.published]) + [""]
    return "\n".join(lines)


def _signed(value: float) -> str:
    return "-" if not np.isfinite(value) else f"{value:+.3f}"


def _ci(row: dict) -> str:
    return f"{_num(row['value'])} [{_num(row['ci_low'])}, {_num(row['ci_high'])}]"


def variants_table(board: Board, metrics: list[str], scale: str = "ci") -> list[str]:
    """A compact markdown table for a README: one row per variant (default first), per metric its mean and
    95% interval over seeds, its controls' means, and its paired difference to the default with p; the
    published number of the first metric where its definition matches."""
    part = board.scales[scale]
    rows = {(r["variant"], r["metric"]): r for r in part["rows"]}
    versus = {(d["variant"], d["metric"]): d for d in part["versus_default"]}
    variants = sorted(part["runs"], key=lambda v: v != "default")
    controls = {m: sorted({c["name"] for v in variants for c in rows.get((v, m), {"controls": []})["controls"]})
                for m in metrics}
    header = ["variant", "seeds"]
    for metric in metrics:
        header += [f"{metric} [95% CI]", " / ".join(controls[metric]) or "controls", "difference to default [95% CI], p"]
    lines = []
    for variant in variants:
        cells = [variant, str(len(part["runs"][variant]))]
        for metric in metrics:
            row, d = rows.get((variant, metric)), versus.get((variant, metric))
            if row is None:
                cells += ["-", "-", "-"]
                continue
            mine = {c["name"]: c["value"] for c in row["controls"]}
            cells += [_ci(row), " / ".join(_num(mine.get(n)) for n in controls[metric]) or "-",
                      "-" if d is None else f"{d['difference']:+.3f} [{_signed(d['ci_low'])}, {_signed(d['ci_high'])}], "
                                            f"p {_num(d['p'], 3)}"]
        lines.append(cells)
    published = [published_cell(rows[(v, metrics[0])]) if (v, metrics[0]) in rows else "-" for v in variants]
    if set(published) != {"-"}:
        header.append(f"published {metrics[0]}")
        lines = [cells + [c] for cells, c in zip(lines, published)]
    return _md_table(header, lines)


def metrics_table(board: Board, variant: str, metrics: list[str], scale: str = "ci") -> list[str]:
    """A compact markdown table for a README: one row per metric of ``variant``, its mean and 95% interval
    over seeds, each control's mean, the chance level and the published number where definitions match."""
    part = board.scales[scale]
    rows = {r["metric"]: r for r in part["rows"] if r["variant"] == variant}
    missing = [m for m in metrics if m not in rows]
    if missing:
        raise UserError(f"{board.suite}/{variant}: no {missing[0]} in its runs; pick from {', '.join(rows)}")
    names = sorted({c["name"] for m in metrics for c in rows[m]["controls"]})
    header = ["metric", "seeds", "value [95% CI]", *names, "chance"]
    lines = []
    for metric in metrics:
        row = rows[metric]
        mine = {c["name"]: c for c in row["controls"]}
        lines.append([metric, str(row["seeds"]), _ci(row)]
                     + [_num(mine[n]["value"]) + ("" if mine[n]["beats"] else " (not beaten)") if n in mine else "-"
                        for n in names] + [_num(row["chance"])])
    published = [published_cell(rows[m]) for m in metrics]
    if set(published) != {"-"}:
        header.append("published")
        lines = [cells + [c] for cells, c in zip(lines, published)]
    return _md_table(header, lines)


CSV_FIELDS = ["suite", "scale", "variant", "metric", "higher_is_better", "definition", "seeds", "value", "ci_low",
              "ci_high", "ci_over", "chance",
              "control", "control_value", "gap", "gap_low", "gap_high", "beats_controls", "not_beaten", "warning",
              "borda", "rank", "coverage", "source"]


def csv_text(board: Board) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for scale, part in board.scales.items():
        ranks = {r["variant"]: r for r in part["ranking"]}
        for row in part["rows"]:
            hardest = row["controls"][0] if row["controls"] else {}
            rank = ranks.get(row["variant"], {})
            writer.writerow({
                "suite": board.suite, "scale": scale, **{k: row[k] for k in (
                    "variant", "metric", "higher_is_better", "definition", "seeds", "value", "ci_low", "ci_high",
                    "ci_over", "chance")},
                "control": hardest.get("name", ""), "control_value": hardest.get("value", ""), "gap": hardest.get("gap", ""),
                "gap_low": hardest.get("gap_low", ""), "gap_high": hardest.get("gap_high", ""),
                "beats_controls": bool(hardest) and not row["not_beaten"], "not_beaten": " ".join(row["not_beaten"]),
                "warning": row["warning"], "borda": rank.get("borda", ""), "rank": rank.get("rank") or "",
                "coverage": rank.get("coverage", ""), "source": "measured"})
    for p in board.published:
        writer.writerow({"suite": board.suite, "variant": p["variant"], "metric": p["metric"], "value": p["value"],
                         "definition": p["definition"], "source": f"{p['tag']}, not reproduced"})
    return buf.getvalue()


def _png(fig) -> str:
    from eegbench.io import figure_png

    return base64.b64encode(figure_png(fig)).decode()


def metric_plot(rows: list[dict], metrics: list[str]) -> str:
    """Base64 PNG: per metric, each variant's value with its interval, the hardest control and chance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(metrics))
    nrows = -(-len(metrics) // cols)
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 0.35 * len(variants) * nrows + 1.2 * nrows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        mine = {r["variant"]: r for r in rows if r["metric"] == metric}
        ys = [i for i, v in enumerate(variants) if v in mine]
        rs = [mine[variants[i]] for i in ys]
        err = [[r["value"] - r["ci_low"] for r in rs], [r["ci_high"] - r["value"] for r in rs]]
        colours = ["tab:blue" if not r["not_beaten"] else "tab:red" for r in rs]
        ax.errorbar([r["value"] for r in rs], ys, xerr=np.nan_to_num(err), fmt="none", ecolor="grey")
        ax.scatter([r["value"] for r in rs], ys, c=colours, zorder=3, label="value (red: does not beat a control)")
        ax.scatter([r["controls"][0]["value"] if r["controls"] else np.nan for r in rs], ys, marker="x", c="black",
                   label="hardest control")
        ax.axvline(np.mean([r["chance"] for r in rs]), ls="--", c="grey", lw=1, label="chance")
        ax.set_yticks(range(len(variants)), variants, fontsize=8)
        ax.set_title(metric, fontsize=9)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.tight_layout()
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 0), ncol=3)
    return _png(fig)


def learning_curves(runs: dict[str, list[dict]]) -> str | None:
    """Base64 PNG of every stage's validation curves (newest run per variant), one panel per stage; None if none."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves: dict[str, dict[str, tuple[str, list]]] = {}
    for variant, mine in runs.items():
        run = Run(Path(mine[-1]["path"]))
        for stage in json.loads(mine[-1]["config"]).get("stages", {}):
            history = (run.checkpoint_meta(stage) or {}).get("history") or []
            keys = [k for k in ("val_loss", "val_bacc", "val_mse") if history and k in history[0]]
            if keys:
                curves.setdefault(stage, {})[variant] = (keys[0], [h[keys[0]] for h in history])
    if not curves:
        return None
    fig, axes = plt.subplots(1, len(curves), figsize=(4.5 * len(curves), 3), squeeze=False)
    for ax, (stage, by_variant) in zip(axes.flat, curves.items()):
        for variant, (key, ys) in by_variant.items():
            ax.plot(range(len(ys)), ys, label=variant, lw=1)
            ax.set_ylabel(key)
        ax.set_title(f"{stage} (validation)", fontsize=9)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=6)
    fig.tight_layout()
    return _png(fig)


def page(board: Board) -> str:
    """The static HTML page: the tables, then the plots, sample grids and sample texts, all embedded."""
    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(board.suite)} leaderboard</title><style>"
             "body{font-family:sans-serif;margin:2em;max-width:1400px} table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px} th{background:#eee}"
             "tr.fail td{background:#fde2e2} .note{color:#555;font-size:13px}</style></head><body>",
             f"<h1>{esc(board.suite)} leaderboard</h1><p class='note'>Means over seeds with 95% intervals; gap = real "
             "minus the hardest control; rows in red do not beat every control. Borda ranks cover only variants scored "
             "on every metric, each ranked in its direction. A published number appears beside ours only when both "
             "use the same metric definition.</p>"]
    for scale, part in board.scales.items():
        parts.append(f"<h2>scale {esc(scale)}</h2><h3>Ranking</h3><table id='ranking-{esc(scale)}'><tr><th>rank</th>"
                     "<th>variant</th><th>Borda points</th><th>coverage</th><th>seeds</th></tr>")
        for r in part["ranking"]:
            parts.append(f"<tr><td>{r['rank'] or 'not ranked'}</td><td>{esc(r['variant'])}</td>"
                         f"<td>{_num(r['borda'], 1)}</td><td>{r['coverage']}</td>"
                         f"<td>{esc(_seeds(part['runs'][r['variant']]))}</td></tr>")
        parts.append("</table><h3>Metrics</h3>")
        cells = [_cells(r) for r in part["rows"]]
        if cells:
            parts.append(f"<table class='metrics' id='metrics-{esc(scale)}'><tr>"
                         + "".join(f"<th>{esc(h)}</th>" for h in cells[0]) + "</tr>")
            for row, cell in zip(part["rows"], cells):
                parts.append(f"<tr class='{'fail' if row['not_beaten'] else 'ok'}'>"
                             + "".join(f"<td>{esc(v.replace('**', ''))}</td>" for v in cell.values()) + "</tr>")
            parts.append("</table>")
            parts.append(f"<h3>Metric by variant</h3><img alt='metrics' src='data:image/png;base64,"
                         f"{metric_plot(part['rows'], part['metrics'])}'>")
        versus = [_versus_cells(d) for d in part["versus_default"]]
        if versus:
            parts.append(f"<h3>Against the default, paired by seed</h3><table id='versus-{esc(scale)}'><tr>"
                         + "".join(f"<th>{esc(h)}</th>" for h in versus[0]) + "</tr>"
                         + "".join("<tr>" + "".join(f"<td>{esc(v.replace('`', ''))}</td>" for v in c.values()) + "</tr>"
                                   for c in versus) + "</table>")
        curves = learning_curves(part["runs"])
        if curves:
            parts.append(f"<h3>Learning curves</h3><img alt='learning curves' src='data:image/png;base64,{curves}'>")
        parts += _samples(part["runs"])
    if board.published:
        parts.append(f"<h2>Published (reported, not reproduced)</h2><p class='note'>{esc(board.published_source)}</p>"
                     "<table id='published'><tr><th>variant</th><th>metric</th><th>value</th><th>definition</th>"
                     "<th>tag</th><th>note</th></tr>")
        parts += [f"<tr><td>{esc(p['variant'])}</td><td>{esc(p['metric'])}</td><td>{_num(p['value'])}</td>"
                  f"<td>{esc(p['definition'])}</td><td>{esc(p['tag'])}, not reproduced</td><td>{esc(p['note'])}</td></tr>"
                  for p in board.published]
        parts.append("</table>")
    return "\n".join(parts + ["</body></html>"])


def _samples(runs: dict[str, list[dict]], at_most: int = 6) -> list[str]:
    """Sample image grids and the first generated texts of each variant's newest run."""
    out = []
    for variant, mine in list(runs.items())[:at_most]:
        folder = Path(mine[-1]["path"]) / "samples"
        grid, texts = folder / "test_real.png", folder / "test_text.jsonl"
        if grid.is_file():
            out.append(f"<h4>{html.escape(variant)}: stimuli, then samples</h4><img alt='samples' "
                       f"src='data:image/png;base64,{base64.b64encode(grid.read_bytes()).decode()}'>")
        if texts.is_file():
            lines = [json.loads(line) for line in texts.read_text().splitlines()[:5]]
            out.append(f"<h4>{html.escape(variant)}: generated text</h4><table><tr><th>reference</th><th>generated</th></tr>"
                       + "".join(f"<tr><td>{html.escape(x['reference'])}</td><td>{html.escape(x['real'])}</td></tr>"
                                 for x in lines) + "</table>")
    return (["<h3>Samples</h3>"] + out) if out else []


def write(board: Board, dest: Path) -> list[Path]:
    """Write ``<suite>.md``, ``.csv`` and ``.html`` into ``dest``; return their paths."""
    from eegbench.io import atomic_write_text

    dest = Path(dest)
    paths = [dest / f"{board.suite}.{ext}" for ext in ("md", "csv", "html")]
    for path, text in zip(paths, (markdown(board), csv_text(board), page(board))):
        atomic_write_text(path, text)
    return paths
