"""The run store: one folder per run, atomic writes, safetensors checkpoints, an index across runs.

Layout::

    <out>/index.sqlite                       runs and metrics of every finished run (leaderboards read it)
    <out>/<suite>/<variant>/<run-id>/
        config.yaml  environment.json  run.json  metrics.json  log.txt
        checkpoints/<stage>.safetensors      best-on-validation weights of each finished stage
        checkpoints/<stage>.resume.safetensors  last epoch of an unfinished stage (for resume)
        predictions/<name>.npz               per-trial scores of every metric and control
        samples/                             image grids (PNG) and texts (JSONL)

Every file is written to a temporary name in its folder and renamed into place, so a reader or
an interrupted run never sees half a file. Under several processes only the main one writes a run
folder (``eegbench.runtime``); the others read it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from eegbench.io import atomic_write_bytes, atomic_write_json, atomic_write_text, json_default
from eegbench.runtime import is_main_process

RUNNING, TRAINED, FINISHED = "running", "trained", "finished"  # trained: stages done, test never scored (sweeps)


class Run:
    """One run folder. Created only once the run's inputs have been validated.

    ``on_epoch(stage, record)``, when set, hears every finished epoch of every stage (sweeps prune on it).
    """

    def __init__(self, path: Path, on_epoch=None):
        self.path = path
        self.on_epoch = on_epoch

    def epoch_done(self, stage: str, record: dict) -> None:
        if self.on_epoch is not None:
            self.on_epoch(stage, record)

    @property
    def status(self) -> str | None:
        info = self.path / "run.json"
        return json.loads(info.read_text())["status"] if info.exists() else None

    def write_json(self, name: str, obj: Any) -> None:
        if is_main_process():
            atomic_write_json(self.path / name, obj)

    def write_bytes(self, name: str, data: bytes) -> None:
        if is_main_process():
            atomic_write_bytes(self.path / name, data)

    def write_text(self, name: str, text: str) -> None:
        if is_main_process():
            atomic_write_text(self.path / name, text)

    def read_json(self, name: str) -> Any:
        return json.loads((self.path / name).read_text())

    def log(self, message: str) -> None:
        if is_main_process():
            with open(self.path / "log.txt", "a") as fh:
                fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    def log_step(self, stage: str, record: dict) -> None:
        """Append one optimiser step's losses to ``steps/<stage>.jsonl`` (W&B mirrors them per step)."""
        if is_main_process():
            path = self.path / "steps" / f"{stage}.jsonl"
            path.parent.mkdir(exist_ok=True)
            with open(path, "a") as fh:
                fh.write(json.dumps(record, sort_keys=True) + "\n")

    def save_predictions(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        import io

        if not is_main_process():
            return
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(self.path / "predictions" / f"{name}.npz", buf.getvalue())

    # checkpoints -------------------------------------------------------------------------

    def checkpoint_path(self, stage: str, resume: bool = False) -> Path:
        return self.path / "checkpoints" / f"{stage}{'.resume' if resume else ''}.safetensors"

    def save_checkpoint(self, stage: str, tensors: dict, meta: dict, resume: bool = False) -> None:
        """Write ``tensors`` (name -> torch.Tensor) with JSON ``meta`` as one safetensors file."""
        from safetensors.torch import save

        if not is_main_process():
            return
        blob = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()},
                    metadata={"eegbench": json.dumps(meta, default=json_default)})
        atomic_write_bytes(self.checkpoint_path(stage, resume), blob)

    def load_checkpoint(self, stage: str, resume: bool = False) -> tuple[dict, dict] | None:
        from safetensors import safe_open

        path = self.checkpoint_path(stage, resume)
        if not path.exists():
            return None
        with safe_open(str(path), framework="pt") as fh:
            meta = json.loads(fh.metadata()["eegbench"])
            return {k: fh.get_tensor(k) for k in fh.keys()}, meta

    def checkpoint_meta(self, stage: str) -> dict | None:
        """The JSON metadata of a stage's checkpoint (its history, selection), without reading the tensors."""
        from safetensors import safe_open

        path = self.checkpoint_path(stage)
        if not path.exists():
            return None
        with safe_open(str(path), framework="pt") as fh:
            return json.loads(fh.metadata()["eegbench"])

    def drop_checkpoint(self, stage: str, resume: bool = False) -> None:
        if is_main_process():
            self.checkpoint_path(stage, resume).unlink(missing_ok=True)


class Index:
    """SQLite index of finished runs, their scores (with each metric's direction and definition) and every
    control of each score; safe for concurrent writers (WAL, busy timeout). An index written before
    controls had their own table, or before scores had a direction and definition, is rebuilt from the
    runs' ``metrics.json`` on first open (a run that predates directions reads as higher-is-better)."""

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS runs (
        run_id TEXT PRIMARY KEY, suite TEXT, variant TEXT, scale TEXT, seed INTEGER,
        path TEXT, finished REAL, config TEXT);
    CREATE TABLE IF NOT EXISTS scores (
        run_id TEXT, metric TEXT, split TEXT, value REAL, ci_low REAL, ci_high REAL, n INTEGER,
        chance REAL, chance_low REAL, chance_high REAL, warning TEXT, higher_is_better INTEGER, definition TEXT,
        PRIMARY KEY (run_id, metric, split));
    CREATE TABLE IF NOT EXISTS controls (
        run_id TEXT, metric TEXT, split TEXT, control TEXT, value REAL, ci_low REAL, ci_high REAL,
        gap REAL, gap_low REAL, gap_high REAL, p REAL,
        PRIMARY KEY (run_id, metric, split, control));
    """
    SCORE_COLUMNS = {"higher_is_better": "INTEGER", "definition": "TEXT"}  # added after the first schema

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db:
            db.executescript(self.SCHEMA)
            legacy = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'metrics'").fetchone()
            missing = [c for c in self.SCORE_COLUMNS if c not in {r[1] for r in db.execute("PRAGMA table_info(scores)")}]
            for column in missing:
                try:
                    db.execute(f"ALTER TABLE scores ADD COLUMN {column} {self.SCORE_COLUMNS[column]}")
                except sqlite3.OperationalError as exc:  # another process added it first
                    if "duplicate column" not in str(exc):
                        raise
            db.commit()
        if legacy or missing:
            for run in self.runs():
                metrics = Path(run["path"]) / "metrics.json"
                if metrics.is_file():
                    self.record(json.loads(metrics.read_text()), finished=run["finished"])
            with closing(self._connect()) as db, db:
                db.execute("DROP TABLE IF EXISTS metrics")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=60)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def record(self, summary: dict, finished: float | None = None) -> None:
        """Insert or replace one run, its scores and their controls in a single transaction."""
        run_id = summary["run_id"]
        with closing(self._connect()) as db, db:
            for table in ("scores", "controls"):
                db.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            db.execute("INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?)", (
                run_id, summary["suite"], summary["variant"], summary["scale"], summary["seed"],
                summary["path"], finished or time.time(), json.dumps(summary["config"], sort_keys=True)))
            for m in summary["metrics"]:
                chance_ci = m.get("chance_ci", [None, None])
                db.execute("INSERT INTO scores (run_id, metric, split, value, ci_low, ci_high, n, chance, chance_low, "
                           "chance_high, warning, higher_is_better, definition) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", (
                    run_id, m["metric"], m["split"], m["value"], m["ci"][0], m["ci"][1], m["n"], m["chance"],
                    chance_ci[0], chance_ci[1], m.get("warning"), m.get("higher_is_better", True), m.get("definition")))
                for c in m["controls"]:
                    gap_ci = c.get("gap_ci", [None, None])
                    db.execute("INSERT INTO controls VALUES (?,?,?,?,?,?,?,?,?,?,?)", (
                        run_id, m["metric"], m["split"], c["name"], c["value"], *c.get("ci", [None, None]),
                        c.get("gap"), gap_ci[0], gap_ci[1], c["p_vs_control"]))

    def _query(self, sql: str, args: tuple) -> list[dict]:
        with closing(self._connect()) as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute(sql, args)]

    def runs(self, suite: str | None = None) -> list[dict]:
        """Finished runs (of ``suite``), oldest first."""
        where, args = ("WHERE suite = ?", (suite,)) if suite else ("", ())
        return self._query(f"SELECT * FROM runs {where} ORDER BY finished", args)

    def scores(self, suite: str) -> list[dict]:
        """Every score of ``suite``'s runs, with the run's variant, scale and seed."""
        return self._query("SELECT s.*, r.variant, r.scale, r.seed, r.path FROM scores s JOIN runs r USING (run_id) "
                           "WHERE r.suite = ? ORDER BY r.finished", (suite,))

    def controls(self, suite: str) -> list[dict]:
        """Every control of every score of ``suite``'s runs."""
        return self._query("SELECT c.* FROM controls c JOIN runs r USING (run_id) WHERE r.suite = ?", (suite,))
