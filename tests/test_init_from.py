"""``init_from``: a fresh encoder starts from the weights an earlier run saved, found wherever they are nested."""

import json

import pytest
import torch
import yaml
from safetensors.torch import save_file

from eegbench.errors import UserError
from eegbench.models.deep4 import Deep4Encoder
from eegbench.models.eegclip import eegclip_encoder
from eegbench.train.checkpoint import load_encoder


def fake_run(folder, checkpoints: dict[str, dict], status="finished"):
    """A run folder as the store writes it: run.json, config.yaml's stages in order, one checkpoint per stage."""
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"status": status}))
    (folder / "config.yaml").write_text(yaml.safe_dump({"stages": {name: {} for name in checkpoints}}, sort_keys=False))
    for name, tensors in checkpoints.items():
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / "checkpoints" / f"{name}.safetensors"))
    return folder


def deep4():
    return Deep4Encoder(n_chans=4, n_times=512, out_dim=8)


def test_the_latest_stage_that_holds_the_encoder_wins_wherever_it_is_nested(tmp_path):
    torch.manual_seed(0)
    aligned = eegclip_encoder(4, 512, out_dim=8, embed_dim=8)  # an EEG-CLIP stage: encoder.* and eeg_head.*
    tuned = deep4()  # the same Deep4 after a joint stage: encoder (pooled) > EEG side > Deep4
    folder = fake_run(tmp_path / "run", {
        "align": {**{f"{k}": v for k, v in aligned.state_dict().items()}, "scale": torch.tensor(1.0)},
        "generate": {f"encoder.encoder.encoder.{k}": v for k, v in tuned.state_dict().items()},
    })
    fresh = deep4()
    assert load_encoder(fresh, folder) == "stage 'generate', weights under 'encoder.encoder.encoder.'"
    assert all(torch.equal(v, tuned.state_dict()[k]) for k, v in fresh.state_dict().items())
    side = eegclip_encoder(4, 512, out_dim=8, embed_dim=8)  # only align holds the projection head too
    assert load_encoder(side, folder) == "stage 'align'"
    assert all(torch.equal(v, aligned.state_dict()[k]) for k, v in side.state_dict().items())


def test_a_run_without_the_encoder_or_unfinished_is_refused(tmp_path):
    folder = fake_run(tmp_path / "run", {"classify": {f"0.{k}": v for k, v in deep4().state_dict().items()}})
    with pytest.raises(UserError, match=r"no stage's checkpoint holds this encoder's .* weights with matching shapes"):
        load_encoder(Deep4Encoder(n_chans=6, n_times=512, out_dim=8), folder)  # other channels: other shapes
    assert load_encoder(deep4(), folder) == "stage 'classify', weights under '0.'"
    unfinished = fake_run(tmp_path / "half", {"classify": {}}, status="running")
    with pytest.raises(UserError, match=r"half: init_from names no finished run"):
        load_encoder(deep4(), unfinished)
