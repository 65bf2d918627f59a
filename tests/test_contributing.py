"""CONTRIBUTING.md stays true: its code blocks, written out as a plugin package and loaded through the
``eegbench.plugins`` entry point, add a toy encoder, a toy metric and a suite that `eegbench run` runs."""

import json
import re
import sys
from pathlib import Path

from eegbench import registry

PAGE = Path(__file__).parents[1] / "CONTRIBUTING.md"


def test_the_contributors_example_runs_as_a_plugin(tmp_path, monkeypatch, capsys):
    from test_cli import invoke

    blocks = re.findall(r"```(?:python|yaml)\n# (toy_plugin/\S+)\n(.*?)```", PAGE.read_text(), re.DOTALL)
    assert sorted(name for name, _ in blocks) == ["toy_plugin/__init__.py", "toy_plugin/encoders.py",
                                                 "toy_plugin/metrics.py", "toy_plugin/toy.yaml"]
    for name, text in blocks:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = re.search(r'toy = "toy_plugin:(\w+)"', PAGE.read_text())[1]

    class EntryPoint:  # what importlib.metadata gives for the page's pyproject.toml entry
        def load(self):
            return getattr(__import__("toy_plugin"), entry)

    monkeypatch.setattr(registry, "entry_points", lambda group: [EntryPoint()] if group == registry.PLUGIN_GROUP else [])
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    for reg in (registry.encoders, registry.evaluations, registry.suites):
        monkeypatch.setattr(reg, "_entries", dict(reg._entries))
    monkeypatch.delitem(sys.modules, "toy_plugin", raising=False)

    code, out, _ = invoke(monkeypatch, capsys, "list")
    assert code == 0 and "band-power" in out and "top2" in out and "toy" in out
    code, out, err = invoke(monkeypatch, capsys, "run", "--suite", "toy", "--out", str(tmp_path / "runs"),
                            "--no-wandb", "--json")
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    scores = {m["metric"]: m for m in summary["metrics"] if m["split"] == "test"}
    assert set(scores) == {"top2", "nway_top1"} and scores["top2"]["definition"] == "top-2"
    assert scores["top2"]["value"] >= scores["nway_top1"]["value"]  # top-2 contains top-1
    assert [c["name"] for c in scores["top2"]["controls"]] == ["shuffled_eeg"] and scores["top2"]["chance"] == 0.5
