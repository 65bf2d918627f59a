"""Published rows name the metric definition they were computed with; the loader refuses a row without one
or with an unknown key in one line, and the run table shows a published number only beside a metric of
the same definition."""

import io

import pytest
from rich.console import Console

from eegbench import cli
from eegbench.errors import UserError
from eegbench.track import baselines

SUITES_WITH_ROWS = ("dreamdiffusion", "eegclip", "thought2text")


def test_every_published_row_names_its_definition():
    assert sorted(p.stem for p in baselines.baselines_dir().glob("*.yaml")) == sorted(SUITES_WITH_ROWS)
    definitions = {}
    for suite in SUITES_WITH_ROWS:
        for row in baselines.load(suite).rows:
            definitions[suite, row.metric.split("/")[0]] = row.definition
    assert definitions == {
        ("dreamdiffusion", "image_nway_top1"): "dreamdiffusion",
        ("eegclip", "linear_probe"): "per-recording", ("eegclip", "baselines"): "per-recording",
        ("eegclip", "zero_shot_window"): "per-window",
        ("thought2text", "text_bleu"): "thought2text", ("thought2text", "text_rouge"): "thought2text",
        ("thought2text", "nway_top1"): "top-1"}


@pytest.mark.parametrize("edit, message", [
    (("definition: dreamdiffusion, note: \"full model\"", "note: \"full model\""),
     r"dreamdiffusion\.yaml: rows\.0\.definition: required key is missing \(the metric definition the number was "
     r"computed with\); add it; see baselines/README\.md$"),
    (("value: 0.323, definition", "value: 0.323, definiton: x, definition"),
     r"dreamdiffusion\.yaml: rows\.1\.definiton: unknown key; a row has variant, metric, value, definition, note; "),
    (("value: 0.245, definition: dreamdiffusion", "value: 0.245, definition: \"\""),
     r"dreamdiffusion\.yaml: rows\.2\.definition: String should have at least 1 character \(got ''\)"),
])
def test_a_row_without_a_definition_or_with_an_unknown_key_is_one_line_naming_file_and_row(tmp_path, edit, message):
    text = (baselines.baselines_dir() / "dreamdiffusion.yaml").read_text()
    assert text.count(edit[0]) == 1
    (tmp_path / "dreamdiffusion.yaml").write_text(text.replace(*edit))
    with pytest.raises(UserError, match=message) as info:
        baselines.load("dreamdiffusion", folder=tmp_path)
    assert "\n" not in str(info.value)


def metric(name, definition, value=0.6):
    return {"metric": name, "split": "test", "n": 80, "value": value, "ci": [value - 0.1, value + 0.1], "chance": 0.5,
            "chance_ci": [0.4, 0.6], "controls": [], "higher_is_better": True,
            **({"definition": definition} if definition else {})}


def test_the_run_table_shows_a_published_number_only_beside_the_same_definition(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=out, width=250, color_system=None))
    cli.print_metrics({"suite": "eegclip", "variant": "default", "metrics": [
        metric("zero_shot_window/age", "per-window"),  # published per window: shown
        metric("linear_probe/age", "per-window"),  # published per recording: marked, number hidden
        metric("linear_probe/gender", None)]})  # a run from before definitions: marked too
    lines = {line.split()[1]: line for line in out.getvalue().splitlines() if line.startswith("│ ")}
    assert "zero_shot_window/age (test, 80; per-window)" in lines["zero_shot_window/age"]
    assert "0.642 [reported]" in lines["zero_shot_window/age"]
    assert "other definition (per-recording)" in lines["linear_probe/age"] and "0.713" not in lines["linear_probe/age"]
    assert "other definition (per-recording)" in lines["linear_probe/gender"] and "0.687" not in lines["linear_probe/gender"]

