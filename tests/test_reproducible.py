"""Same commit, config and seed, two fresh caches and two processes (different hash seeds, as two fresh clones
would have): byte-identical world models and identical metrics."""

import hashlib
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def fresh_process(tmp_path, name: str, hash_seed: str, *args: str) -> subprocess.CompletedProcess:
    cache = tmp_path / name
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "EEGBENCH_CACHE": str(cache)}
    return subprocess.run([sys.executable, *args], check=True, env=env, capture_output=True, text=True)


BUILD = """
import sys
from pathlib import Path
from eegbench.synthetic import foundation
from eegbench.synthetic.imagenet_eeg import WorldSpec, ensure
cache = Path(sys.argv[1])
world = ensure(WorldSpec(classes=3, images_per_class=6, subjects=1, image_size=16), cache)
foundation.ensure_foundation(world, cache, scale="tiny", names=("clip", "lm"))
"""


def digests(cache):
    """sha256 of every file of the foundation models, ``done.json`` (which records seconds taken) aside."""
    root = next((cache / "foundation").iterdir())
    return {str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(root.rglob("*")) if f.is_file() and f.name != "done.json"}


def test_two_builds_of_clip_and_lm_are_byte_identical(tmp_path):
    for name, hash_seed in (("one", "1"), ("two", "2")):
        fresh_process(tmp_path, name, hash_seed, "-c", BUILD, str(tmp_path / name))
    one, two = digests(tmp_path / "one"), digests(tmp_path / "two")
    assert {"clip/tokenizer/merges.txt", "lm/tokenizer.json", "clip/open_clip_model.safetensors",
            "lm/model.safetensors"} <= set(one)
    assert one == two, json.dumps({k: (one[k], two.get(k)) for k in one if one[k] != two.get(k)}, indent=1)


def test_two_ci_runs_in_fresh_caches_give_identical_metrics(tmp_path):
    """The smoke suite at ci, world generated afresh in each cache: every metric, CI and control identical."""
    summaries = []
    for name, hash_seed in (("one", "1"), ("two", "2")):
        done = fresh_process(tmp_path, name, hash_seed, "-m", "eegbench", "run", "--suite", "smoke", "--scale", "ci",
                             "--out", str(tmp_path / name / "runs"), "--no-wandb", "--json")
        summaries.append(json.loads(done.stdout))
    one, two = ({k: v for k, v in s.items() if k != "path"} for s in summaries)
    assert one["metrics"] and one == two
