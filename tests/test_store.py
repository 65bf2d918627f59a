import json
import multiprocessing as mp

import numpy as np
import pytest
import torch

from eegbench.io import atomic_write_json
from eegbench.track.store import Index, Run
from eegbench.train.checkpoint import optimizer_from_tensors, optimizer_to_tensors


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "metrics.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"a": object()})  # fails while serialising: old file must survive
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_checkpoint_round_trip_in_safetensors(tmp_path):
    run = Run(tmp_path)
    tensors = {"w": torch.randn(3, 4), "b": torch.arange(5)}
    run.save_checkpoint("stage", tensors, {"epoch": 2, "history": [0.5]})
    loaded, meta = run.load_checkpoint("stage")
    assert meta == {"epoch": 2, "history": [0.5]}
    assert all(torch.equal(loaded[k], tensors[k]) for k in tensors)
    assert run.checkpoint_path("stage").read_bytes()[8:9] == b"{"  # safetensors header, not a pickle
    assert run.load_checkpoint("other") is None


def test_optimizer_state_survives_safetensors(tmp_path):
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(8, 4)).pow(2).sum().backward()
        opt.step()
    tensors, meta = optimizer_to_tensors(opt)
    Run(tmp_path).save_checkpoint("s", tensors, meta)
    tensors, meta = Run(tmp_path).load_checkpoint("s")
    fresh = torch.optim.AdamW(model.parameters(), lr=0.01)
    optimizer_from_tensors(fresh, tensors, meta)
    a, b = opt.state_dict(), fresh.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for pid in a["state"]:
        for key in a["state"][pid]:
            assert torch.equal(torch.as_tensor(a["state"][pid][key]), torch.as_tensor(b["state"][pid][key]))


def _summary(run_id: str) -> dict:
    metric = {"metric": "nway_top1", "split": "test", "value": 0.5, "ci": [0.4, 0.6], "n": 10, "chance": 0.1,
              "controls": [{"name": "shuffled_eeg", "value": 0.1, "p_vs_control": 0.01}]}
    return {"run_id": run_id, "suite": "s", "variant": "v", "scale": "ci", "seed": 0, "path": "p",
            "config": {}, "metrics": [metric]}


def _write_rows(args):
    path, worker = args
    index = Index(path)
    for i in range(15):
        index.record(_summary(f"w{worker}-{i}"))


def test_concurrent_writers_lose_no_row(tmp_path):
    path = tmp_path / "index.sqlite"
    with mp.get_context("spawn").Pool(4) as pool:
        pool.map(_write_rows, [(path, w) for w in range(4)])
    assert len(Index(path).runs()) == 60


def test_predictions_saved_as_npz(tmp_path):
    run = Run(tmp_path)
    run.save_predictions("test", {"nway_top1/real": np.array([1.0, 0.0])})
    with np.load(tmp_path / "predictions" / "test.npz") as npz:
        assert npz["nway_top1/real"].tolist() == [1.0, 0.0]


def test_atomic_folder_replaces_leftovers_keeps_finished_work_and_leaves_nothing_on_failure(tmp_path):
    from eegbench.io import atomic_folder

    target = tmp_path / "entry"
    target.mkdir()
    (target / "partial.bin").write_text("interrupted")  # no marker: a leftover
    with atomic_folder(target, "done") as tmp:
        (tmp / "done").write_text("new")
    assert [p.name for p in target.iterdir()] == ["done"]

    with atomic_folder(target, "done") as tmp:  # finished meanwhile by "another process": kept
        (tmp / "done").write_text("second")
    assert (target / "done").read_text() == "new"

    with pytest.raises(RuntimeError):
        with atomic_folder(tmp_path / "other", "done") as tmp:
            raise RuntimeError("build failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry"]


def test_every_control_is_indexed_and_a_legacy_index_is_rebuilt_from_the_run_folders(tmp_path):
    import json
    import sqlite3

    summary = _summary("r1")
    summary["metrics"][0]["controls"].append({"name": "noise_eeg", "value": 0.2, "p_vs_control": 0.02, "gap": 0.3,
                                             "gap_ci": [0.1, 0.5], "ci": [0.1, 0.3]})
    summary["path"] = str(tmp_path / "r1")
    Run(tmp_path / "r1").write_json("metrics.json", summary)
    legacy = tmp_path / "index.sqlite"
    with sqlite3.connect(legacy) as db:  # the schema before controls had a table of their own
        db.executescript("CREATE TABLE runs (run_id TEXT PRIMARY KEY, suite TEXT, variant TEXT, scale TEXT, "
                         "seed INTEGER, path TEXT, finished REAL, config TEXT); CREATE TABLE metrics (run_id TEXT);")
        db.execute("INSERT INTO runs VALUES ('r1','s','v','ci',0,?,1.0,'{}')", (summary["path"],))
    index = Index(legacy)
    assert sorted(c["control"] for c in index.controls("s")) == ["noise_eeg", "shuffled_eeg"]
    assert index.scores("s")[0]["value"] == 0.5 and index.runs("s")[0]["finished"] == 1.0
    with sqlite3.connect(legacy) as db:
        assert not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'metrics'").fetchone()
    assert json.loads((tmp_path / "r1" / "metrics.json").read_text())["run_id"] == "r1"
