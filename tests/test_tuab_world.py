"""Synthetic TUAB world: real EDF and report formats, braindecode compatibility, labels, cache."""

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from eegbench.synthetic import tuab
from eegbench.data.tuab import MEDICATION, TUH_CHANNELS
from eegbench.synthetic.tuab import TUABSpec, ensure, generate

SMALL = dict(train_subjects=6, eval_subjects=4)
MAIN_SECTIONS = ("CLINICAL HISTORY", "MEDICATIONS", "INTRODUCTION", "DESCRIPTION OF THE RECORD", "IMPRESSION",
                 "CLINICAL CORRELATION")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return generate(TUABSpec(**SMALL), tmp_path_factory.mktemp("w") / "world")


def recordings(root: Path) -> list[dict]:
    return json.loads((root / "world.json").read_text())["recordings"]


def sections(text: str) -> dict[str, str]:
    """Report sections by heading (capitals and a colon at a line start)."""
    parts = re.split(r"^([A-Z][A-Z ]+):", text, flags=re.M)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2])}


def test_imports_stay_light():
    code = "import sys, eegbench.synthetic.tuab; assert not {'torch', 'mne', 'scipy'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_spec_key_is_stable_and_strict():
    assert TUABSpec().key() == TUABSpec().key() and len(TUABSpec().key()) == 12
    assert TUABSpec(seed=1).key() != TUABSpec().key()
    with pytest.raises(ValueError):
        TUABSpec(subjects=3)
    with pytest.raises(ValueError):
        TUABSpec(sfreq=250.5)


def test_generation_is_deterministic(world, tmp_path):
    calls = []
    again = generate(TUABSpec(**SMALL), tmp_path / "again", progress=lambda d, t: calls.append((d, t)))
    rows = recordings(world)
    assert calls[-1] == (len(rows), len(rows)) and [p.name for p in tmp_path.iterdir()] == ["again"]
    for key in ("edf", "report"):
        assert (world / rows[0][key]).read_bytes() == (again / rows[0][key]).read_bytes()
    assert recordings(again) == rows
    other = generate(TUABSpec(**SMALL, seed=1), tmp_path / "other")
    first = recordings(other)[0]
    assert first["subject"] != rows[0]["subject"]
    assert (other / first["edf"]).read_bytes()[256 * 26:] != (world / rows[0]["edf"]).read_bytes()[256 * 26:]


def test_layout_and_labels(world):
    rows = recordings(world)
    assert len(rows) >= 10 and {r["split"] for r in rows} == {"train", "eval"}
    for r in rows:
        folder = "abnormal" if r["pathological"] else "normal"
        assert r["edf"] == f"v3.0.1/edf/{r['split']}/{folder}/01_tcp_ar/{r['subject']}_s{r['session']:03d}_t000.edf"
        assert r["report"] == f"reports/{r['subject']}_s{r['session']:03d}.txt"
        assert re.fullmatch(r"[a-z]{8}", r["subject"]) and r["gender"] in "FM" and 18 <= r["age"] <= 95
    by_subject = {}
    for r in rows:
        by_subject.setdefault(r["subject"], set()).add(r["split"])
    assert all(len(splits) == 1 for splits in by_subject.values()) and len(by_subject) == 10
    assert sorted(p.relative_to(world).as_posix() for p in world.rglob("*.edf")) == sorted(r["edf"] for r in rows)


def test_edf_header_and_scaling_round_trip(world):
    import mne

    spec = TUABSpec(**SMALL)
    model = tuab._Model(spec)
    rows = recordings(world)
    for i, r in enumerate(rows):
        header = (world / r["edf"]).read_bytes()[:256].decode("ascii")
        assert re.fullmatch(rf"\d{{8}} {r['gender']} 01-JAN-\d{{4}} \d{{8}} Age:{r['age']} *", header[8:88])
        raw = mne.io.read_raw_edf(world / r["edf"], verbose="error")
        assert raw.ch_names == list(tuab.FILE_CHANNELS) and raw.info["sfreq"] == 250.0
        assert raw.n_times == 190 * 250 and 2010 <= raw.info["meas_date"].year <= 2018
        x = raw.get_data(picks=list(TUH_CHANNELS)) * 1e6
        assert np.all((x.std(1) > 5) & (x.std(1) < 100))
        assert x.std(1).mean() == pytest.approx(r["rms_uv"], rel=1e-4)
        if i == 0:  # the file holds the synthesised microvolts to within half a quantisation step
            assert np.abs(raw.get_data() * 1e6 - model.signal(r)).max() <= tuab._LSB / 2 + 1e-3


def test_braindecode_reads_the_tree(world):
    from braindecode.datasets import TUHAbnormal

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = TUHAbnormal(str(world), version="v3.0.1", on_missing_files="warn", preload=False)
    assert [str(w.message) for w in caught if w.category is UserWarning and "Expected 2993" not in str(w.message)] == []
    truth = {(r["subject"], r["session"]): r for r in recordings(world)}
    desc = ds.description
    assert len(desc) == len(truth)
    for _, d in desc.iterrows():
        r = truth[(d["subject"], d["session"])]
        assert (d["age"], d["gender"], d["pathological"], d["train"]) == (
            r["age"], r["gender"], r["pathological"], r["split"] == "train")
    raw = ds.datasets[0].raw  # braindecode reads with infer_types=True: the "EEG " prefix is dropped
    assert raw.ch_names[:2] == ["FP1-REF", "FP2-REF"] and raw.info["sfreq"] == 250.0


def test_reports_match_the_labels(world):
    for r in recordings(world):
        text = (world / r["report"]).read_text(encoding="utf-8")
        found = sections(text)
        assert set(found) <= set(MAIN_SECTIONS) | {"HEART RATE", "FINDINGS"} and found
        assert r["medication"] == bool(MEDICATION.search(text))
        assert not re.search(r"\b(age|gender|pathological|sex)\s*:", text, re.I)
        if "IMPRESSION" in found:
            assert ("abnormal" in found["IMPRESSION"].lower()) == r["pathological"]
        if "CLINICAL HISTORY" in found:
            assert str(r["age"]) in found["CLINICAL HISTORY"]


def test_report_model_over_many_recordings():
    rows = tuab._draw_recordings(TUABSpec(train_subjects=300, eval_subjects=1))
    rng = np.random.default_rng(0)
    texts = [tuab._write_report(r, 0.1, rng) for r in rows]
    for r, text in zip(rows, texts):
        found = sections(text)
        mentions = bool(MEDICATION.search(text))
        assert mentions <= r["aed"]  # never mentioned without the drug
        if "MEDICATIONS" in found:
            assert mentions == r["aed"]
        if not r["pathological"] and "DESCRIPTION OF THE RECORD" in found:
            assert re.search(r"\d Hz", found["DESCRIPTION OF THE RECORD"])
    assert 0.2 < np.mean([bool(MEDICATION.search(t)) for t in texts]) < 0.4
    assert 0.8 < np.mean(["MEDICATIONS:" in t for t in texts]) < 0.97
    assert 0.9 < np.mean(["IMPRESSION:" in t for t in texts]) < 1 and len(set(texts)) == len(texts)
    full = [tuab._write_report(r, 0.0, rng) for r in rows[:20]]
    assert all(set(MAIN_SECTIONS) <= set(sections(t)) for t in full)


def test_ensure_is_idempotent(tmp_path, monkeypatch):
    spec = TUABSpec(train_subjects=1, eval_subjects=1)
    root = tmp_path / "worlds" / f"tuab-{spec.key()}"
    root.mkdir(parents=True)
    (root / "leftover.edf").write_bytes(b"")  # an interrupted build: no world.json
    assert ensure(spec, tmp_path) == root and (root / "world.json").is_file()
    assert not (root / "leftover.edf").exists()
    stamp = (root / "world.json").stat().st_mtime_ns
    monkeypatch.setattr(tuab, "generate", lambda *a, **k: pytest.fail("regenerated a complete world"))
    assert ensure(spec, tmp_path) == root and (root / "world.json").stat().st_mtime_ns == stamp
