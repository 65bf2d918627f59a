"""MAE-ViT encoder and the msm pretraining stage, on tiny models and a small fake Trials."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from eegbench import registry
from eegbench.data.imagenet_eeg import Trials
from eegbench.errors import UserError
from eegbench.models.mae import MAEEncoder, masked_mse
from eegbench.track.store import Run
from eegbench.train.msm import MSMStage, load_extra_eeg, val_mse

C, T = 8, 64
ENC = dict(patch=4, embed_dim=32, depth=2, heads=4, mlp_ratio=2.0, decoder_embed_dim=32, decoder_depth=1,
           decoder_heads=4)
STAGE = dict(encoder_args=ENC, epochs=4, batch_size=8, lr=3e-3, warmup_epochs=1)
EDF_DIR = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "edf" / "mne"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread; on a busy machine more threads stall at OpenMP barriers."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sinusoids(n: int, seed: int = 0) -> np.ndarray:
    """[n, C, T] learnable EEG: a 2-cycle sine with a per-channel gain and lag, times a per-trial amplitude."""
    rng = np.random.default_rng(seed)
    amplitude = rng.uniform(0.5, 1.5, (n, 1, 1))
    gain = np.linspace(0.5, 1.5, C)[None, :, None]
    lag = np.linspace(0, 3, C)[None, :, None]
    return (amplitude * gain * np.sin(4 * np.pi * np.arange(T) / T + lag)).astype(np.float32)


def fake_trials(n_train: int = 32, n_val: int = 8, n_test: int = 8) -> Trials:
    """Sinusoid trials whose TEST rows are NaN, so any read of a test trial poisons the losses."""
    n = n_train + n_val + n_test
    eeg = sinusoids(n)
    positions = np.random.default_rng(1).permutation(n)
    splits = {"train": positions[:n_train], "val": positions[n_train:n_train + n_val],
              "test": positions[n_train + n_val:]}
    eeg[splits["test"]] = np.nan
    zeros = np.zeros(n, dtype=np.int64)
    return Trials(eeg=eeg, label=zeros, image=zeros, subject=zeros + 1, wnids=["n0"], image_names=["n0_0"],
                  splits=splits, class_names=["thing"], captions={}, image_root=None)


def new_run(path: Path) -> Run:
    """A run folder, as the runner creates it before any stage runs."""
    path.mkdir(parents=True, exist_ok=True)
    return Run(path)


def tiny(**kw) -> MAEEncoder:
    torch.manual_seed(0)
    return MAEEncoder(n_chans=C, n_times=T, **{**ENC, **kw})


# --- the module ------------------------------------------------------------------------------


def test_loss_reads_only_masked_targets_and_encoder_never_sees_masked_inputs():
    model, x = tiny(), torch.from_numpy(sinusoids(4))
    torch.manual_seed(3)
    loss, pred, mask = model.masked_loss(x)
    tokens = model.patchify(x)
    assert torch.allclose(loss, masked_mse(pred, tokens, mask))

    visible_changed = tokens.clone()
    visible_changed[~mask] += 100.0
    assert torch.equal(masked_mse(pred, visible_changed, mask), masked_mse(pred, tokens, mask))
    masked_changed = tokens.clone()
    masked_changed[mask] += 1.0
    assert masked_mse(pred, masked_changed, mask) > masked_mse(pred, tokens, mask)

    torch.manual_seed(3)  # same masks; hidden inputs altered: predictions must not move, the loss must
    loss2, pred2, mask2 = model.masked_loss(model.unpatchify(masked_changed))
    assert torch.equal(mask2, mask) and torch.allclose(pred2, pred, atol=1e-6) and loss2 > loss


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75, 0.9])
def test_mask_ratio_is_respected(ratio):
    model, x = tiny(mask_ratio=ratio), torch.from_numpy(sinusoids(6))
    _, pred, mask = model.masked_loss(x)
    n_masked = 16 - int(16 * (1 - ratio))
    assert mask.shape == (6, 16) and (mask.sum(1) == n_masked).all()
    assert pred.shape == (6, n_masked, C * 4)
    assert len({tuple(m.tolist()) for m in mask}) > 1  # drawn per sample
    assert (model.masked_loss(x, mask_ratio=0.5)[2].sum(1) == 8).all()


def test_shapes_and_pooling():
    x = torch.from_numpy(sinusoids(3))
    model = tiny(out_dim=10)
    assert model.tokens(x).shape == (3, T // 4, 32)
    assert model(x).shape == (3, 10)
    plain = tiny()
    assert torch.allclose(plain(x), plain.tokens(x).mean(1))
    assert torch.equal(plain.unpatchify(plain.patchify(x)), x)


def test_bad_shapes_are_user_errors_naming_the_keys():
    with pytest.raises(UserError, match=r"n_times=66 .*patch=4"):
        MAEEncoder(n_chans=C, n_times=66, **ENC)
    with pytest.raises(UserError, match="embed_dim=30 .*heads=4"):
        MAEEncoder(n_chans=C, n_times=T, **{**ENC, "embed_dim": 30})
    with pytest.raises(UserError, match=r"stages\.pre\.encoder_args: n_times=64 .*patch=5"):
        MSMStage("pre", {**STAGE, "encoder_args": {**ENC, "patch": 5}}, seed=0).build(C, T)
    with pytest.raises(UserError, match=r"stages\.pre\.encoder_args: .*depht"):
        MSMStage("pre", {**STAGE, "encoder_args": {**ENC, "depht": 2}}, seed=0).build(C, T)


def test_encoder_weights_travel_without_the_decoder():
    pretrained, x = tiny(), torch.from_numpy(sinusoids(2))
    state = pretrained.encoder_state_dict()
    assert state and not any(k.startswith(("decoder_", "mask_token", "out_proj")) for k in state)
    fresh = MAEEncoder(n_chans=C, n_times=T, out_dim=6, **ENC)  # a later stage's encoder with its own head
    head = {k: v.clone() for k, v in fresh.out_proj.state_dict().items()}
    fresh.load_encoder_state_dict(pretrained.state_dict())  # decoder entries are ignored
    assert torch.equal(fresh.tokens(x), pretrained.tokens(x))
    assert all(torch.equal(v, fresh.out_proj.state_dict()[k]) for k, v in head.items())
    with pytest.raises(ValueError, match="lacks"):
        fresh.load_encoder_state_dict({k: v for k, v in state.items() if not k.startswith("blocks.1.")})


def test_bf16_autocast_tracks_fp32():
    model, x = tiny(), torch.from_numpy(sinusoids(8))
    grads = {}
    for bf16 in (False, True):
        model.zero_grad()
        torch.manual_seed(5)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model.masked_loss(x)[0]
        assert loss.dtype == torch.float32
        loss.backward()
        grads[bf16] = (loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert abs(grads[True][0] - grads[False][0]) < 1e-2 * grads[False][0]
    assert torch.nn.functional.cosine_similarity(grads[True][1].double(), grads[False][1].double(), dim=0) > 0.99


def test_registered_and_usable_by_the_supervised_stage():
    from eegbench.train.supervised import SupervisedStage

    assert registry.encoders.get("mae-vit") is MAEEncoder
    assert registry.stages.get("msm") is MSMStage
    clf = SupervisedStage("clf", {"encoder": "mae-vit", "encoder_args": ENC, "embed_dim": 16}, seed=0).build(C, T, 5)
    assert clf(torch.from_numpy(sinusoids(3))).shape == (3, 5)


# --- the stage -------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_pretraining_lowers_val_mse_and_never_reads_test(tmp_path, precision):
    data = fake_trials()
    from eegbench import runtime

    stage = MSMStage("pre", {**STAGE, "epochs": 20}, seed=0)
    x_val = torch.from_numpy(data.eeg[data.splits["val"]])
    before = val_mse(stage.build(C, T), x_val, 8, seed=0)
    with runtime.use({"device": "cpu", "precision": precision}):  # bf16: autocast matmuls, fp32 master weights
        model = stage.run(data, new_run(tmp_path))
    assert isinstance(model, MAEEncoder)

    _, meta = Run(tmp_path).load_checkpoint("pre")
    losses = [h[k] for h in meta["history"] for k in ("train_mse", "val_mse")]
    assert np.isfinite(losses).all()  # test rows are NaN: any read of them would show here
    # far below both the untrained model and predicting zeros (the signal's power)
    assert meta["selected_on"] == "val" and meta["val_mse"] < 0.3 * min(before, float((x_val ** 2).mean()))
    assert val_mse(model, x_val, 8, seed=0) == meta["val_mse"]  # the returned model is the selected one
    assert meta["train_items"] == {"trials": 32, "extra": 0}
    names = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")}
    assert "samples/pre_reconstruction.png" in names
    assert not any(".tmp-" in n or n.endswith(".resume.safetensors") for n in names)
    assert (tmp_path / "samples" / "pre_reconstruction.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_after_interruption_equals_uninterrupted(tmp_path, monkeypatch):
    data = fake_trials()
    straight = MSMStage("pre", STAGE, seed=7).run(data, new_run(tmp_path / "a"))

    real_log = Run.log

    def dying_log(self, message):
        real_log(self, message)
        if "epoch 2 " in message:  # after epoch 2's log line, before its checkpoint
            raise KeyboardInterrupt

    monkeypatch.setattr(Run, "log", dying_log)
    with pytest.raises(KeyboardInterrupt):
        MSMStage("pre", STAGE, seed=7).run(data, new_run(tmp_path / "b"))
    monkeypatch.setattr(Run, "log", real_log)
    assert Run(tmp_path / "b").checkpoint_path("pre", resume=True).exists()

    resumed = MSMStage("pre", STAGE, seed=7).run(data, Run(tmp_path / "b"))
    assert "resuming after epoch 1" in (tmp_path / "b" / "log.txt").read_text()
    a, b = straight.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert Run(tmp_path / "a").load_checkpoint("pre")[1] == Run(tmp_path / "b").load_checkpoint("pre")[1]

    again = MSMStage("pre", STAGE, seed=7).run(data, Run(tmp_path / "b"))  # finished: loaded, not retrained
    assert all(torch.equal(a[k], v) for k, v in again.state_dict().items())


def test_extra_npy_eeg_is_used_and_wrong_channels_are_named(tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    np.save(extra / "a.npy", np.concatenate([sinusoids(3, seed=2), sinusoids(3, seed=3)], axis=2)[..., :130])
    np.save(extra / "b.npy", sinusoids(1, seed=4)[0])
    (extra / "notes.txt").write_text("ignored")
    stage = MSMStage("pre", {**STAGE, "epochs": 1, "extra_eeg": str(extra)}, seed=0)
    stage.run(fake_trials(), new_run(tmp_path / "run"))
    assert Run(tmp_path / "run").load_checkpoint("pre")[1]["train_items"] == {"trials": 32, "extra": 3 * 2 + 1}

    np.save(extra / "c.npy", np.zeros((2, C - 1, T), dtype=np.float32))
    with pytest.raises(UserError, match=r"c\.npy: 7 EEG channels, but the encoder takes 8"):
        MSMStage("pre", {**STAGE, "extra_eeg": str(extra)}, seed=0).run(fake_trials(), new_run(tmp_path / "run2"))
    with pytest.raises(UserError, match="stages.pre.extra_eeg: .* is not a folder"):
        load_extra_eeg(tmp_path / "missing", C, T, key="stages.pre.extra_eeg")


@pytest.mark.skipif(not EDF_DIR.is_dir(), reason="shared/fixtures/edf beside the repo is absent")
@pytest.mark.parametrize("name, n_eeg, n_samples", [("test.edf", 138, 3072), ("test.bdf", 72, 2048)])
def test_edf_and_bdf_are_read_as_extra_eeg(tmp_path, name, n_eeg, n_samples):
    shutil.copy(EDF_DIR / name, tmp_path / name)
    windows = load_extra_eeg(tmp_path, n_eeg, T)
    assert windows.shape == (n_samples // T, n_eeg, T) and windows.dtype == np.float32
    assert np.isfinite(windows).all() and abs(float(windows.std()) - 1) < 0.2  # standardised, not volts
    with pytest.raises(UserError) as err:
        load_extra_eeg(tmp_path, C, T)
    message = str(err.value)
    assert "\n" not in message and name in message and f"{n_eeg} EEG channels" in message


def test_msm_stage_refuses_to_predict_and_comes_first():
    """Taking a model from a stage before it is refused when the config resolves (test_config's chain tests)."""
    stage = MSMStage("pre", STAGE, seed=0)
    with pytest.raises(UserError, match="predicts nothing"):
        stage.predict(tiny(), np.zeros((1, C, T), np.float32))
    assert stage.consumes == (None,) and stage.hands_on == "token-encoder"
