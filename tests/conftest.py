"""Shared fixtures: an isolated cache and run store, and the ci-scale synthetic world built once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def cache_dir(tmp_path_factory) -> Path:
    """One cache folder for the whole session (ci world generated once; HF, W&B, matplotlib caches too):
    ``$EEGBENCH_TEST_CACHE`` when set (CI shares it with the regression check), else a fresh temporary one."""
    shared = os.environ.get("EEGBENCH_TEST_CACHE")
    path = Path(shared) if shared else tmp_path_factory.mktemp("cache")
    path.mkdir(parents=True, exist_ok=True)
    os.environ["EEGBENCH_CACHE"] = str(path)
    from eegbench import paths

    paths.configure_environment()
    return path


@pytest.fixture(scope="session")
def ci_runs(tmp_path_factory) -> Path:
    """Run store of the suites' default ci runs: ``$EEGBENCH_TEST_RUNS`` when set, so that CI's regression
    check (``eegbench check --reuse``) compares the runs this session made instead of training them again."""
    shared = os.environ.get("EEGBENCH_TEST_RUNS")
    return Path(shared) if shared else tmp_path_factory.mktemp("ci-runs")


@pytest.fixture(scope="session")
def ci_smoke(cache_dir):
    """The smoke suite resolved at ci scale."""
    from eegbench import config

    return config.resolve("smoke", scale="ci")
