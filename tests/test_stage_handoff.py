"""A pretraining stage hands its encoder to the next stage, which fine-tunes it under a head."""

import torch

from eegbench import config
from eegbench.runner import execute
from eegbench.track.store import Run

SUITE = """
suite: handoff
dataset:
  name: imagenet-eeg
  interpolate: 64
  world: {classes: 3, images_per_class: 6, subjects: 1, image_size: 16}
stages:
  pretrain:
    kind: msm
    encoder_args: {embed_dim: 32, depth: 1, heads: 4, decoder_embed_dim: 32, decoder_depth: 1, decoder_heads: 4}
    epochs: 2
    batch_size: 8
    warmup_epochs: 0
  classify: {kind: supervised, encoder: mae-vit, epochs: 1, batch_size: 8, lr: 1.0e-12}
evaluate: [nway_top1]
"""


def test_msm_encoder_reaches_the_classifier(tmp_path, cache_dir):
    path = tmp_path / "handoff.yaml"
    path.write_text(SUITE)
    outcome = execute(config.resolve(str(path)), out=tmp_path / "runs", cache_dir=cache_dir)
    run = Run(outcome.run_dir)
    pretrained, _ = run.load_checkpoint("pretrain")
    classifier, meta = run.load_checkpoint("classify")
    assert meta["selected_on"] == "val"
    shared = [k for k in pretrained if k.startswith(("patch_embed", "blocks"))]
    assert shared
    for key in shared:  # lr 1e-12: the fine-tuned encoder is still the pretrained one
        torch.testing.assert_close(classifier[f"0.{key}"], pretrained[key], atol=1e-6, rtol=0)
    assert (run.path / "samples" / "pretrain_reconstruction.png").exists()
