"""Statistics resample the units trials are independent in: subjects, images shown to several subjects, recordings.

With strong subject effects (half the variance between subjects), a bootstrap CI over trials is far too
narrow and a permutation test over trials rejects a true null far too often; resampling subjects keeps
both near their nominal level. Coverage is measured over simulated repeats with a known true mean.
"""

import numpy as np
import pandas as pd
import pytest

from eegbench.data.imagenet_eeg import Trials
from eegbench.data.tuab import Recordings
from eegbench.evaluate.report import metric_record
from eegbench.evaluate.stats import (bootstrap_ci, bootstrap_statistic_ci, effective_n, paired_permutation_p,
                                     statistic_value)

SUBJECTS, TRIALS_EACH, ICC, REPEATS = 20, 10, 0.5, 200


def world(seed: int):
    """Per-trial scores with a subject effect: value = subject effect + trial noise, true mean 0."""
    rng = np.random.default_rng(seed)
    effect = rng.normal(0, np.sqrt(ICC), SUBJECTS).repeat(TRIALS_EACH)
    return effect + rng.normal(0, np.sqrt(1 - ICC), SUBJECTS * TRIALS_EACH), np.arange(SUBJECTS).repeat(TRIALS_EACH)


def coverage(grouped: bool) -> float:
    hits = 0
    for r in range(REPEATS):
        values, subjects = world(r)
        low, high = bootstrap_ci(values, groups=subjects if grouped else None, n_boot=400, seed=r)
        hits += low <= 0.0 <= high
    return hits / REPEATS


def test_trial_level_ci_is_too_narrow_and_the_subject_level_one_is_not():
    by_trial, by_subject = coverage(grouped=False), coverage(grouped=True)
    assert by_trial < 0.75  # ~0.6: the design effect 1 + 9 x 0.5 = 5.5 shrinks the CI by sqrt(5.5)
    assert by_subject >= 0.88, by_subject  # nominal 0.95; a percentile bootstrap over 20 units runs a little under


def test_permutation_tests_hold_their_level_only_by_subject():
    """Real minus control under the null: the difference carries a subject effect but no true gap."""
    false = {True: 0, False: 0}
    for r in range(REPEATS):
        diff, subjects = world(r)
        for grouped in (True, False):
            p = paired_permutation_p(diff, np.zeros_like(diff), groups=subjects if grouped else None, n_perm=500, seed=r)
            false[grouped] += p < 0.05
    assert false[False] / REPEATS > 0.15 and false[True] / REPEATS <= 0.09, false


def test_corpus_statistics_resample_whole_groups():
    """A ratio of sums over groups of two rows that are mirror images: the grouped CI is a point."""
    rows = np.array([[1.0, 2.0], [3.0, 2.0]] * 10)  # each group (two rows) sums to [4, 4]
    groups = np.arange(10).repeat(2)
    ratio = lambda s: s[0] / s[1]  # noqa: E731
    assert bootstrap_statistic_ci(rows, ratio, groups=groups) == (1.0, 1.0)
    low, high = bootstrap_statistic_ci(rows, ratio)
    assert low < 1.0 < high and statistic_value(rows, ratio) == 1.0


def trials(subject, image) -> Trials:
    n = len(subject)
    return Trials(eeg=np.zeros((n, 1, 1)), label=np.zeros(n, int), image=np.asarray(image), subject=np.asarray(subject),
                  wnids=["n0"], image_names=[f"n0_{i}" for i in range(max(image) + 1)], splits={}, class_names=["x"],
                  captions={}, image_root=None)


def test_imagenet_eeg_units_subjects_then_images_then_trials():
    all_trials = np.arange(24)
    many = trials(np.arange(12).repeat(2), np.tile([0, 1], 12))  # 12 subjects: they are the units
    groups, unit = many.units(all_trials)
    assert np.array_equal(groups, np.arange(12).repeat(2)) and unit == "12 subjects, each with all its trials"
    two = trials(np.tile([1, 2], 12), np.arange(12).repeat(2))  # 2 subjects see the same 12 images
    groups, unit = two.units(all_trials)
    assert np.array_equal(groups, np.arange(12).repeat(2))
    assert unit == "12 images, each with all its trials (the 2 subjects held fixed)"
    one = trials(np.ones(24, int), np.arange(24))  # one subject, each image once
    assert one.units(all_trials) == (None, "24 trials, one per image (the 1 subject held fixed)")


def test_tuab_units_subjects_over_recordings_and_windows():
    table = pd.DataFrame({"subject": [f"s{i // 2}" for i in range(24)]})  # 12 subjects, 2 sessions each
    data = Recordings(eeg=np.zeros((48, 1, 1)), recording=np.arange(24).repeat(2), table=table, splits={})
    groups, unit = data.units(np.arange(48))
    assert len(np.unique(groups)) == 12 and unit == "12 subjects, each with all its recordings"
    assert np.array_equal(groups[::4], [f"s{i}" for i in range(12)])
    rows, unit = data.recording_units(np.arange(6))  # 3 subjects: too few, the recordings are the units
    assert np.array_equal(rows, np.arange(6)) and unit == "6 recordings (the 3 subjects held fixed)"


def test_the_record_names_its_unit_and_counts_it_for_chance():
    values, subjects = world(0)
    scored = {"per_trial": (values > 0).astype(float), "chance": 0.5, "groups": subjects,
              "unit": "20 subjects, each with all its trials", "note": "2-way"}
    record = metric_record("m", "test", scored, {}, seed=0)
    assert record["n_groups"] == 20 and record["unit"] == scored["unit"]
    assert record["note"] == "2-way; CIs and p-values resample 20 subjects, each with all its trials"
    assert effective_n(200, None, subjects) == pytest.approx(20)
    by_trial = metric_record("m", "test", {k: v for k, v in scored.items() if k not in ("groups", "unit")}, {}, seed=0)
    width = lambda r: r["chance_ci"][1] - r["chance_ci"][0]  # noqa: E731
    assert width(record) > 2 * width(by_trial)
