"""TUAB through braindecode's TUHAbnormal: the synthetic tree, a tree of real EDF files, and bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eegbench.data.tuab import DEFAULT_SECTIONS, TUH_CHANNELS, Recipe, load, report_sections
from eegbench.errors import UserError
from eegbench.synthetic.tuab import TUABSpec, ensure

FIXTURE = Path(__file__).parent / "data" / "edf" / "test_edf_stim_channel.edf"  # real EEG, 19 10-20 channels, 9.6 s
TINY = TUABSpec(train_subjects=10, eval_subjects=5, duration_s=70)
SHORT = Recipe(crop_s=70, start_s=10, stop_s=70, stride=1200)  # 5 windows of 12 s per recording
FIXTURE_RECIPE = Recipe(channels=[c for c in TUH_CHANNELS if c not in ("EEG A1-REF", "EEG A2-REF")],
                        crop_s=9, start_s=0, stop_s=9, window=200, stride=200)


def _load(root, cache, recipe=SHORT, **kw):
    args = dict(version="v3.0.1", recipe=recipe, reports=root / "reports", sections=list(DEFAULT_SECTIONS),
                label_lines=False, val_fraction=0.2, split_seed=0, on_bad_file="fail", cache_dir=cache, n_jobs=2)
    return load(root, **(args | kw))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return ensure(TINY, tmp_path_factory.mktemp("tuab-world"))


def test_synthetic_tree_labels_windows_and_splits(world, tmp_path):
    data = _load(world, tmp_path)
    truth = {r["edf"]: r for r in json.loads((world / "world.json").read_text())["recordings"]}
    assert len(data.table) == len(truth) and not data.skipped
    for row in data.table.itertuples():
        t = truth[row.path]
        assert row.pathological == t["pathological"] and row.medication == t["medication"]
        assert row.age == int(t["age"] < 50) and row.gender == {"M": 0, "F": 1}[t["gender"]]
        assert (row.split == "test") == (t["split"] == "eval")
    assert data.eeg.shape[1:] == (21, 1200) and np.isfinite(data.eeg).all()
    assert len(data.eeg) == 5 * len(data.table)
    subjects = {s: set(data.table["subject"][data.table["split"] == s]) for s in ("train", "val", "test")}
    assert subjects["val"] and not subjects["train"] & subjects["val"]
    assert np.array_equal(data.label, data.task("pathological")[data.recording])


def test_warm_run_reads_no_edf(world, tmp_path, monkeypatch):
    cold = _load(world, tmp_path)

    def refuse(*a, **k):
        raise AssertionError("an EDF file was opened on a warm run")
    import braindecode.datasets
    import mne

    monkeypatch.setattr(mne.io, "read_raw_edf", refuse)
    monkeypatch.setattr(braindecode.datasets, "TUHAbnormal", refuse)
    warm = _load(world, tmp_path)
    assert np.array_equal(cold.eeg, warm.eeg) and cold.table["text"].equals(warm.table["text"])


def test_label_lines_flagged_and_sections_chosen(world, tmp_path):
    data = _load(world, tmp_path, label_lines=True, sections=["IMPRESSION"])
    row = data.table.iloc[0]
    assert data.table["text"].str.startswith("age: ").all()
    assert f"pathological: {bool(row.pathological)}" in row.text
    assert row.text.split(", ", 4)[-1].startswith("IMPRESSION: ") and "MEDICATIONS" not in row.text
    assert data.warnings and "label-leaking" in data.warnings[0]
    assert not _load(world, tmp_path).warnings


def test_sections_parser():
    parts = report_sections("CLINICAL HISTORY: 63 y/o man.\n\nMEDICATIONS: Keppra\n\nIMPRESSION: Normal EEG.\n")
    assert parts == {"CLINICAL HISTORY": "63 y/o man.", "MEDICATIONS": "Keppra", "IMPRESSION": "Normal EEG."}


# --- a tree of real EDF files ------------------------------------------------------------------


def tuh_copy(src: Path, dst: Path, number: int, age: int, sex: str) -> None:
    """``src`` with TUH channel names ('EEG Fp1' -> 'EEG FP1-REF') and a TUH patient field."""
    blob = bytearray(src.read_bytes())
    blob[8:88] = f"{number:08d} {sex} 01-JAN-1960 {number:08d} Age:{age}".ljust(80).encode()
    for i in range(int(blob[252:256])):
        at = 256 + 16 * i
        label = blob[at:at + 16].decode().strip()
        if label.startswith("EEG "):
            blob[at:at + 16] = f"EEG {label[4:].upper()}-REF".ljust(16).encode()
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(blob)


@pytest.fixture
def fixture_tree(tmp_path) -> Path:
    root = tmp_path / "tuab"
    for i, (split, status, age, sex, meds) in enumerate((("train", "normal", 30, "M", "None."),
                                                         ("train", "abnormal", 70, "F", "Keppra 500 mg."),
                                                         ("eval", "abnormal", 45, "F", "Aspirin."),
                                                         ("train", "normal", 52, "M", "Dilantin."))):
        subject = f"aaaaaaa{'abcd'[i]}"
        tuh_copy(FIXTURE, root / f"v3.0.1/edf/{split}/{status}/01_tcp_ar/{subject}_s001_t000.edf", i + 1, age, sex)
        (root / "reports").mkdir(exist_ok=True)
        (root / "reports" / f"{subject}_s001.txt").write_text(
            f"CLINICAL HISTORY: A {age} year old.\n\nMEDICATIONS: {meds}\n\nDESCRIPTION OF THE RECORD: Alpha.\n\n"
            f"IMPRESSION: {status.title()} EEG.\n\nCLINICAL CORRELATION: None.\n")
    return root


def test_fixture_tree_reads_through_the_same_path(fixture_tree, tmp_path):
    data = _load(fixture_tree, tmp_path / "cache", recipe=FIXTURE_RECIPE)
    table = data.table.set_index("subject").sort_index()
    assert list(table["age_years"]) == [30, 70, 45, 52] and list(table["gender"]) == [0, 1, 1, 0]
    assert list(table["pathological"]) == [0, 1, 1, 0] and list(table["medication"]) == [0, 1, 0, 1]
    assert list(table["split"] == "test") == [False, False, True, False] and data.eeg.shape == (16, 19, 200)

    import mne
    from mne.filter import resample

    raw = mne.io.read_raw_edf(FIXTURE, verbose="error")
    original = {f"EEG {name[4:].upper()}-REF": name for name in raw.ch_names}
    picks = [original[c] for c in FIXTURE_RECIPE.channels]
    x = np.clip(raw.get_data(picks=picks, stop=9 * 128) * 1e6, -800, 800)
    x = resample((x - x.mean(0)) / 30, up=100, down=128, axis=-1)
    first = data.eeg[data.recording == data.table.index[data.table["subject"] == "aaaaaaab"][0]]
    assert np.allclose(first[1], x[:, 200:400], atol=1e-4)


def test_missing_channels_are_named(fixture_tree, tmp_path):
    with pytest.raises(UserError, match=r"01_tcp_ar/aaaaaaac_s001_t000.edf: missing channel\(s\) EEG A1-REF, EEG A2-REF"):
        _load(fixture_tree, tmp_path, recipe=Recipe(crop_s=9, start_s=0, stop_s=9, window=200, stride=200))


def test_too_short_recording_is_named(fixture_tree, tmp_path):
    with pytest.raises(UserError, match=r"too short for one 12-s window between 60 s and 180 s"):
        _load(fixture_tree, tmp_path, recipe=FIXTURE_RECIPE.model_copy(update={"window": 1200, "start_s": 60,
                                                                                "stop_s": 180, "crop_s": 180}))


def test_truncated_edf_fails_or_is_skipped(fixture_tree, tmp_path):
    bad = fixture_tree / "v3.0.1/edf/train/abnormal/01_tcp_ar/aaaaaaab_s001_t000.edf"
    bad.write_bytes(bad.read_bytes()[:-5000])
    cache = tmp_path / "cache"
    with pytest.raises(UserError, match=r"aaaaaaab_s001_t000.edf: truncated EDF .*--on-bad-file skip"):
        _load(fixture_tree, cache, recipe=FIXTURE_RECIPE)
    assert not list(cache.rglob("*.tmp*")), "a partial cache entry was left behind"
    data = _load(fixture_tree, cache, recipe=FIXTURE_RECIPE, on_bad_file="skip")
    assert len(data.table) == 3 and [s["path"] for s in data.skipped] == [str(bad.relative_to(fixture_tree))]
    assert "truncated" in data.skipped[0]["reason"]

    bad.write_bytes(b"not an edf")
    with pytest.raises(UserError, match=r"aaaaaaab_s001_t000.edf: unreadable EDF header"):
        _load(fixture_tree, tmp_path / "other", recipe=FIXTURE_RECIPE)


def test_not_a_tuab_tree_names_the_expected_path(tmp_path):
    with pytest.raises(UserError, match=r"not a TUAB tree; expected .*v3.0.1/edf/train"):
        _load(tmp_path, tmp_path / "cache")


def test_report_problems_are_named(fixture_tree, tmp_path):
    report = fixture_tree / "reports" / "aaaaaaac_s001.txt"
    report.write_bytes(b"IMPRESSION: \xff\xfe abnormal")
    with pytest.raises(UserError, match=r"aaaaaaac_s001.txt: cannot decode the report as utf-8.*report_encoding"):
        _load(fixture_tree, tmp_path, recipe=FIXTURE_RECIPE)
    table = _load(fixture_tree, tmp_path, recipe=FIXTURE_RECIPE, report_encoding="latin-1").table.set_index("subject")
    assert "abnormal" in table.loc["aaaaaaac", "report"]
    report.unlink()
    with pytest.raises(UserError, match=r"aaaaaaac_s001_t000.edf: no report aaaaaaac_s001.txt"):
        _load(fixture_tree, tmp_path, recipe=FIXTURE_RECIPE)


def test_labels_do_not_depend_on_where_the_cache_lives(fixture_tree, tmp_path):
    data = _load(fixture_tree, tmp_path / "train" / "abnormal" / "cache", recipe=FIXTURE_RECIPE)
    table = data.table.set_index("subject").sort_index()
    assert list(table["pathological"]) == [0, 1, 1, 0] and list(table["split"] == "test") == [False, False, True, False]


def test_a_failed_cache_write_leaves_nothing_behind(fixture_tree, tmp_path, monkeypatch):
    from eegbench.data import tuab

    def half_written(path, array):
        Path(path).write_bytes(b"\x93NUMPY partial")
        raise OSError("No space left on device")
    monkeypatch.setattr(tuab.np, "save", half_written)
    with pytest.raises(UserError, match=r"cannot preprocess \(OSError: No space left on device\)"):
        _load(fixture_tree, tmp_path / "cache", recipe=FIXTURE_RECIPE, n_jobs=1)
    assert not list((tmp_path / "cache").rglob("*.npy")) and not list((tmp_path / "cache").rglob("index-*"))
    monkeypatch.undo()
    assert len(_load(fixture_tree, tmp_path / "cache", recipe=FIXTURE_RECIPE, n_jobs=1).table) == 4


def test_a_file_outside_the_layout_is_named(fixture_tree, tmp_path):
    stray = fixture_tree / "v3.0.1" / "edf" / "train" / "extra.edf"
    stray.write_bytes(FIXTURE.read_bytes())
    with pytest.raises(UserError, match=r"v3.0.1/edf/train/extra.edf: not under edf/\{train,eval\}/\{normal,abnormal\}/"):
        _load(fixture_tree, tmp_path, recipe=FIXTURE_RECIPE)


def test_recipe_must_fit_a_window():
    with pytest.raises(ValueError, match="must span at least one 1200-sample window"):
        Recipe(start_s=60, stop_s=65)


def test_v2_layout_with_per_session_folders(tmp_path):
    root = tmp_path / "tuab"
    for i, (split, status, age, sex) in enumerate((("train", "normal", 30, "M"), ("train", "abnormal", 70, "F"),
                                                   ("eval", "abnormal", 45, "F"), ("train", "normal", 52, "M"))):
        subject = f"0000000{i + 1}"
        session = root / f"v2.0.0/edf/{split}/{status}/01_tcp_ar/000/{subject}/s001_2013_08_1{i}"
        tuh_copy(FIXTURE, session / f"{subject}_s001_t000.edf", i + 1, age, sex)
        (session / f"{subject}_s001.txt").write_text(
            "CLINICAL HISTORY: x.\n\nMEDICATIONS: None.\n\nDESCRIPTION OF THE RECORD: Alpha.\n\n"
            f"IMPRESSION: {status.title()} EEG.\n\nCLINICAL CORRELATION: None.\n")
    data = _load(root, tmp_path / "cache", recipe=FIXTURE_RECIPE, version="v2.0.0", reports=None)
    table = data.table.set_index("subject").sort_index()
    assert list(table["age_years"]) == [30, 70, 45, 52] and list(table["pathological"]) == [0, 1, 1, 0]
    assert list(table["split"] == "test") == [False, False, True, False]
    assert table["text"].str.contains("IMPRESSION: Normal EEG.").tolist() == [True, False, False, True]


def test_a_tree_without_reports_names_dataset_reports(fixture_tree, tmp_path):
    import shutil

    shutil.rmtree(fixture_tree / "reports")
    for mode in ("fail", "skip"):
        with pytest.raises(UserError) as info:
            _load(fixture_tree, tmp_path, recipe=FIXTURE_RECIPE, reports=None, on_bad_file=mode)
        message = str(info.value)
        assert "4 of 4 readable recording(s) have no report" in message, message
        assert "set dataset.reports" in message and "<subject>_s<NNN>.txt" in message and "e.g. aaaaaaac_s001.txt" in message
        assert ("no usable recording" in message) == (mode == "skip")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "aaaaaaaa_s001.txt").write_text("IMPRESSION: Normal EEG.\n\nMEDICATIONS: None.\n")
    with pytest.raises(UserError, match=r"aaaaaaac_s001_t000.edf: no report aaaaaaac_s001.txt .*\(and 2 more\).*"
                                        r"3 of 4 readable .*set dataset.reports.*--on-bad-file skip"):
        _load(fixture_tree, tmp_path, recipe=FIXTURE_RECIPE, reports=tmp_path / "reports")
