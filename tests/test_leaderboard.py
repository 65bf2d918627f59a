"""Leaderboards from a run index: pooling over seeds, controls and their marks, Borda with coverage, the
md/csv/html trio, and the HTML page rendered in headless Chromium."""

import csv
import io
import os
import shutil

import numpy as np
import pytest
import torch

from eegbench import config
from eegbench.errors import UserError
from eegbench.track import leaderboard
from eegbench.track.store import Index, Run

# variant -> {seed: {metric: (value, control value)}}; no-clip lacks ssim; no-msm's ssim does not beat its control
RUNS = {
    "default": {0: {"image_nway_top1": (0.50, 0.10), "image_ssim_2way": (0.60, 0.50)},
                1: {"image_nway_top1": (0.54, 0.11), "image_ssim_2way": (0.62, 0.50)},
                2: {"image_nway_top1": (0.52, 0.09), "image_ssim_2way": (0.58, 0.49)}},
    "no-msm": {0: {"image_nway_top1": (0.40, 0.10), "image_ssim_2way": (0.51, 0.50)},
               1: {"image_nway_top1": (0.44, 0.10), "image_ssim_2way": (0.49, 0.50)}},
    "no-clip": {0: {"image_nway_top1": (0.45, 0.12)}},
}


def stored_config(seed, lr):
    """What a run stores: its resolved configuration, here dreamdiffusion's at ci with the joint stage's lr set."""
    dump = config.resolve("dreamdiffusion", scale="ci", seed=seed).model_dump()
    dump["stages"]["generate"]["lr"] = lr
    return dump


def record(index, root, variant, seed, metrics, lr=1e-3, stored=None):
    run_id = f"{variant}-{seed}-{lr}"
    path = root / variant / run_id
    records = []
    for name, (value, control) in metrics.items():
        gap = value - control
        definition = {"definition": "dreamdiffusion"} if variant == "default" else {}  # the others predate definitions
        records.append({"metric": name, "split": "test", "n": 100, "value": value, "ci": [value - 0.05, value + 0.05],
                        "higher_is_better": True, **definition,
                        "chance": 0.1 if "nway" in name else 0.5, "chance_ci": [0.05, 0.15],
                        "controls": [{"name": "shuffled_eeg", "value": control, "ci": [control - 0.05, control + 0.05],
                                      "gap": gap, "gap_ci": [gap - 0.04, gap + 0.04], "p_vs_control": 0.001 if gap > 0.04 else 0.4}]})
    summary = {"run_id": run_id, "suite": "dreamdiffusion", "variant": variant, "scale": "ci", "seed": seed,
               "path": str(path), "config": stored or stored_config(seed, lr), "metrics": records}
    run = Run(path)
    run.write_json("metrics.json", summary)
    run.save_checkpoint("generate", {"w": torch.zeros(1)}, {"history": [{"epoch": e, "val_loss": 1 / (e + 1)} for e in range(4)]})
    index.record(summary)


@pytest.fixture()
def index(tmp_path):
    index = Index(tmp_path / "runs" / "index.sqlite")
    record(index, tmp_path / "runs", "default", 0, {"image_nway_top1": (0.9, 0.1)}, lr=1.0)  # an older config: hidden
    for variant, seeds in RUNS.items():
        for seed, metrics in seeds.items():
            record(index, tmp_path / "runs", variant, seed, metrics)
    return index


def test_pooling_over_seeds_marks_and_borda_with_coverage(index):
    board = leaderboard.build(index, "dreamdiffusion")
    part = board.scales["ci"]
    assert part["hidden"] == 1
    rows = {(r["variant"], r["metric"]): r for r in part["rows"]}
    nway = rows[("default", "image_nway_top1")]
    values = [0.50, 0.54, 0.52]
    half = 4.302653 * np.std(values, ddof=1) / np.sqrt(3)  # t(0.975, 2)
    assert nway["seeds"] == 3 and nway["ci_over"] == "seeds"
    assert nway["value"] == pytest.approx(0.52) and nway["ci_low"] == pytest.approx(0.52 - half, abs=1e-5)
    assert rows[("no-clip", "image_nway_top1")]["ci_over"] == "trials"  # one seed: its own bootstrap interval
    assert rows[("no-clip", "image_nway_top1")]["ci_low"] == pytest.approx(0.40)
    assert rows[("no-msm", "image_ssim_2way")]["not_beaten"] == ["shuffled_eeg"]
    assert rows[("default", "image_ssim_2way")]["not_beaten"] == []
    ranking = {r["variant"]: r for r in part["ranking"]}
    assert ranking["default"]["rank"] == 1 and ranking["no-msm"]["rank"] == 2
    assert ranking["no-clip"]["rank"] is None and ranking["no-clip"]["coverage"] == "1/2"
    assert {(p["variant"], p["value"], p["definition"]) for p in board.published} >= {("default", 0.458, "dreamdiffusion")}


def test_a_run_stored_before_an_option_was_added_or_a_stage_renamed_pools_with_todays(tmp_path):
    """A newer eegbench reuses such a run (same run id), so the leaderboard must count it too."""
    index = Index(tmp_path / "index.sqlite")
    before = stored_config(0, 1e-3)
    for key in ("encoder", "init_from"):  # options added later, at their defaults
        del before["stages"]["generate"][key]
    before["stages"]["generate"]["kind"] = "generative"  # the joint stage's first name
    record(index, tmp_path, "default", 0, {"image_nway_top1": (0.50, 0.10)}, stored=before)
    record(index, tmp_path, "default", 1, {"image_nway_top1": (0.54, 0.10)})
    part = leaderboard.build(index, "dreamdiffusion").scales["ci"]
    assert part["hidden"] == 0
    assert part["rows"][0]["seeds"] == 2


def test_each_variant_is_paired_with_the_default_seed_by_seed(index):
    """no-msm shares seeds 0 and 1 with the default: differences -0.10 and -0.10 on n-way (no spread, so no
    t-test), -0.09 and -0.13 on SSIM; no-clip shares seed 0 only: a difference without an interval."""
    from scipy.stats import ttest_1samp

    board = leaderboard.build(index, "dreamdiffusion")
    versus = {(d["variant"], d["metric"]): d for d in board.scales["ci"]["versus_default"]}
    assert set(versus) == {("no-msm", "image_nway_top1"), ("no-msm", "image_ssim_2way"), ("no-clip", "image_nway_top1")}
    ssim = versus[("no-msm", "image_ssim_2way")]
    diffs = [0.51 - 0.60, 0.49 - 0.62]
    half = 12.7062 * np.std(diffs, ddof=1) / np.sqrt(2)  # t(0.975, 1)
    assert ssim["seeds"] == 2 and ssim["difference"] == pytest.approx(np.mean(diffs))
    assert ssim["ci_high"] == pytest.approx(np.mean(diffs) + half, abs=1e-4)
    assert ssim["p"] == pytest.approx(ttest_1samp(diffs, 0).pvalue)
    assert np.isnan(versus[("no-msm", "image_nway_top1")]["p"])
    one = versus[("no-clip", "image_nway_top1")]
    assert one["seeds"] == 1 and one["difference"] == pytest.approx(-0.05) and np.isnan(one["ci_low"])
    md = leaderboard.markdown(board)
    assert "### Against the default, paired by seed" in md and "| default | 3.0 | 2/2 | 3 (0, 1, 2) |" in md


def test_a_published_number_stands_beside_ours_only_under_the_same_definition(index, tmp_path):
    board = leaderboard.build(index, "dreamdiffusion")
    rows = {(r["variant"], r["metric"]): r for r in board.scales["ci"]["rows"]}
    same, other = rows[("default", "image_nway_top1")], rows[("no-msm", "image_nway_top1")]
    assert same["definition"] == "dreamdiffusion" and leaderboard.published_cell(same) == "0.458 [reported]"
    assert other["definition"] is None  # a run from before definitions: its number is hidden, the mark says why
    assert leaderboard.published_cell(other) == "other definition (dreamdiffusion); other definition (dreamdiffusion)"
    assert leaderboard.published_cell(rows[("default", "image_ssim_2way")]) == "-"  # nothing published
    md = leaderboard.markdown(board)
    assert "| 0.458 [reported] |" in md and "other definition (dreamdiffusion)" in md
    assert "| default | image_nway_top1 | 0.458 | dreamdiffusion | reported | full model |" in md  # the published table


def test_the_md_csv_html_trio(index, tmp_path):
    paths = leaderboard.write(leaderboard.build(index, "dreamdiffusion"), tmp_path / "boards")
    assert [p.name for p in paths] == ["dreamdiffusion.md", "dreamdiffusion.csv", "dreamdiffusion.html"]
    md = paths[0].read_text()
    assert "**does not beat shuffled_eeg**" in md and "not ranked" in md and "Published (reported, not reproduced)" in md
    rows = list(csv.DictReader(io.StringIO(paths[1].read_text())))
    measured = [r for r in rows if r["source"] == "measured"]
    assert len(measured) == 5 and {r["source"] for r in rows} == {"measured", "reported, not reproduced"}
    page = paths[2].read_text()
    assert page.count("data:image/png;base64,") >= 2  # metric plot and learning curves, embedded
    assert "<tr class='fail'>" in page


def test_no_runs_of_a_suite_is_one_clear_line(index):
    with pytest.raises(UserError, match=r"no finished runs of suite 'eegclip'"):
        leaderboard.build(index, "eegclip")


def test_the_cli_builds_every_suite_with_runs(index, tmp_path, monkeypatch, capsys):
    from test_cli import invoke

    code, out, _ = invoke(monkeypatch, capsys, "leaderboard", "--out", str(tmp_path / "runs"), "--dest", str(tmp_path / "lb"))
    assert code == 0 and (tmp_path / "lb" / "dreamdiffusion.html").is_file()
    code, _, err = invoke(monkeypatch, capsys, "leaderboard", "--out", str(tmp_path / "nothing"))
    assert code == 2 and "no run index here" in err


def chromium():
    for browser, driver in (("chromium", "chromedriver"), ("chromium-browser", "chromedriver")):
        if shutil.which(browser) and shutil.which(driver):
            return shutil.which(browser), shutil.which(driver)
    if os.environ.get("EEGBENCH_REQUIRE_BROWSER"):  # .ci/run installs it: missing there is a failure, not a skip
        pytest.fail("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    pytest.skip("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")


def test_the_html_page_renders_its_tables_in_headless_chromium(index, tmp_path):
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.common.by import By

    browser, driver_path = chromium()
    html = leaderboard.write(leaderboard.build(index, "dreamdiffusion"), tmp_path / "boards")[2]
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=options)
    try:
        driver.get(html.as_uri())
        table = driver.find_element(By.ID, "metrics-ci")
        rows = table.find_elements(By.TAG_NAME, "tr")
        assert len(rows) == 1 + 5 and table.size["height"] > 100 and table.size["width"] > 500
        assert "does not beat shuffled_eeg" in driver.find_element(By.CSS_SELECTOR, "tr.fail").text
        images = driver.find_elements(By.TAG_NAME, "img")
        assert images and all(driver.execute_script("return arguments[0].naturalWidth", img) > 0 for img in images)
        shot = tmp_path / "page.png"
        assert driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10  # text and lines, not a blank page


def test_the_readme_tables_are_regenerated_from_the_index_and_a_hand_edit_is_caught(index, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- table: dreamdiffusion variants image_nway_top1 -->\nstale\n<!-- /table -->\n"
                      "<!-- table: dreamdiffusion metrics default image_nway_top1,image_ssim_2way -->\n<!-- /table -->\n")
    script = [sys.executable, str(Path(__file__).parents[1] / "scripts" / "readme_tables.py"),
              "--out", str(tmp_path / "runs"), "--readme", str(readme)]
    assert subprocess.run(script, capture_output=True).returncode == 0
    text = readme.read_text()
    assert "stale" not in text and "(seeds 0, 1, 2)" in text
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert lines[0] == ("| variant | seeds | image_nway_top1 [95% CI] | shuffled_eeg | difference to default [95% CI], p "
                        "| published image_nway_top1 |")
    assert lines[1].startswith("| default | 3 | 0.520 [0.470, 0.570] | 0.100 | - | 0.458 [reported] |")
    assert lines[2].startswith("| no-msm | 2 | 0.420 [") and "| -0.100 [-0.100, -0.100], p - |" in lines[2]
    assert lines[3].startswith("| no-clip | 1 | 0.450 [0.400, 0.500] | 0.120 | -0.050 [-, -], p - |")
    assert lines[5] == "| image_nway_top1 | 3 | 0.520 [0.470, 0.570] | 0.100 | 0.100 | 0.458 [reported] |"
    assert lines[6] == "| image_ssim_2way | 3 | 0.600 [0.550, 0.650] | 0.497 | 0.500 | - |"
    assert subprocess.run([*script, "--check"], capture_output=True).returncode == 0
    readme.write_text(text.replace("0.520 [0.470, 0.570]", "0.530 [0.470, 0.570]"))  # a hand-copied figure
    assert subprocess.run([*script, "--check"], capture_output=True).returncode == 1
