"""scripts/bench_memory.py: the GPU memory estimate against a measured CPU step, at tiny (--quick) sizes."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_memory.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_memory", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def quick_rows(bench):
    """Estimate rows at --quick sizes, keyed by (stage, precision, checkpointing)."""
    return {(r["stage"], r["precision"], r["checkpointing"]): r
            for stage in ("msm", "generative", "projector") for r in bench.estimate(stage, bench.QUICK[stage])}


@pytest.mark.parametrize("stage, precision", [("msm", "fp32"), ("msm", "bf16"), ("generative", "fp32"),
                                              ("contrastive", "fp32"), ("projector", "fp32")])
def test_estimate_within_30_percent_of_measured_cpu_step(bench, stage, precision):
    for r in bench.check(stage, bench.QUICK[stage], precision):
        assert r["measured_gib"] > 0
        assert abs(r["step_gib"] / r["measured_gib"] - 1) < 0.3, r
        if r["checkpointing"] != "yes":  # checkpointed rows are a deliberate upper bound (see the script)
            assert abs(r["activations_gib"] / r["measured_activations_gib"] - 1) < 0.3, r


def test_checkpointing_lowers_activations(quick_rows):
    for stage in ("msm", "generative", "projector"):
        for precision in ("fp32", "bf16"):
            on, off = quick_rows[stage, precision, "yes"], quick_rows[stage, precision, "no"]
            assert on["saved_gib"] < off["saved_gib"]
            assert on["recompute_gib"] > 0 and off["recompute_gib"] == 0


def test_low_precision_costs_less(quick_rows):
    for stage in ("generative", "projector"):
        fp32, bf16, fp16 = (quick_rows[stage, p, "no"] for p in ("fp32", "bf16", "fp16"))
        assert bf16["est_peak_gib"] < fp32["est_peak_gib"] and bf16["saved_gib"] < fp32["saved_gib"]
        assert bf16["weights_gib"] < fp32["weights_gib"]
        assert fp16["saved_gib"] == pytest.approx(bf16["saved_gib"], rel=0.05)
    int8, fp16 = quick_rows["projector", "int8", "no"], quick_rows["projector", "fp16", "no"]
    assert int8["weights_gib"] < fp16["weights_gib"] and int8["saved_gib"] == fp16["saved_gib"]


def test_trainable_weights_stay_fp32(quick_rows):
    """Mixed precision keeps fp32 master weights: the msm weights (all trainable) do not shrink."""
    assert quick_rows["msm", "bf16", "no"]["weights_gib"] == quick_rows["msm", "fp32", "no"]["weights_gib"]


def test_paper_configs_have_published_parameter_counts(bench):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, MistralConfig, MistralForCausalLM

    with bench.fake_mode():
        counts = {name: sum(p.numel() for p in model.parameters()) for name, model in (
            ("unet", UNet2DConditionModel(**bench.SD15_UNET)), ("vae", AutoencoderKL(**bench.SD15_VAE)),
            ("clip_text", CLIPTextModel(CLIPTextConfig(**bench.CLIP_L14_TEXT))),
            ("mistral", MistralForCausalLM(MistralConfig(**bench.MISTRAL_7B))))}
    assert counts == {"unet": 859_520_964, "vae": 83_653_863, "clip_text": 123_060_480, "mistral": 7_241_732_096}


def test_cli_writes_json(bench, tmp_path, capsys):
    out = tmp_path / "rows.json"
    bench.main(["--quick", "--skip-measure", "--stages", "msm", "--json", str(out)])
    rows = json.loads(out.read_text())["estimates"]
    assert len(rows) == 6 and {r["precision"] for r in rows} == {"fp32", "bf16", "fp16"}
    assert all(r["est_peak_gib"] >= bench.CUDA_CONTEXT_GIB for r in rows)
    assert "est. peak GiB" in capsys.readouterr().out
