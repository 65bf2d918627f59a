"""The one training loop on toy tasks: schedules, selection, the non-finite check, resume, accumulation."""

from __future__ import annotations

import math

import pytest
import torch

from eegbench import runtime
from eegbench.errors import UserError
from eegbench.track.store import Run
from eegbench.train.loop import Optim, Selection, Task, fit, micro_batches

X = torch.linspace(-1, 1, 40)[:, None]
Y = 3 * X + 0.5


def regression(validate=None, **kwargs) -> Task:
    """Least squares of a line on 40 points, batches of 8; val: the fit's MSE (or ``validate``)."""
    def losses(model, batch):
        return {"mse": ((model(X[batch.idx]) - Y[batch.idx]) ** 2).mean()}

    def val(model):
        with torch.no_grad():
            return {"val_mse": float(((model(X) - Y) ** 2).mean())}

    return Task(losses, validate or val, n_items=40, batch_size=8, **kwargs)


def line(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Linear(1, 1)


def train(tmp_path, task=None, epochs=6, optim=Optim(lr=0.1), selection=Selection("val_mse"), **kwargs):
    tmp_path.mkdir(parents=True, exist_ok=True)
    model = line()
    meta = fit(model, lambda: task or regression(), run=Run(tmp_path), name="toy", seed=0, epochs=epochs,
               optim=optim, selection=selection, **kwargs)
    return model, meta


def test_training_fits_and_the_checkpoint_holds_the_selected_epoch(tmp_path):
    model, meta = train(tmp_path)
    history = meta["history"]
    assert history[-1]["val_mse"] < 0.1 * history[0]["val_mse"]
    best = min(range(len(history)), key=lambda e: history[e]["val_mse"])
    assert meta["best_epoch"] == best and meta["val_mse"] == history[best]["val_mse"]
    assert meta["selected_on"] == "val" and meta["selected_by"] == "val_mse"
    tensors, saved = Run(tmp_path).load_checkpoint("toy")
    assert torch.equal(tensors["weight"], model.weight) and saved["best_epoch"] == best
    assert not Run(tmp_path).checkpoint_path("toy", resume=True).exists()
    steps = (tmp_path / "steps" / "toy.jsonl").read_text().splitlines()
    assert len(steps) == 6 * 5  # one record per optimiser step


@pytest.mark.parametrize("selection, pick", [
    (Selection("val_score", "max"), lambda scores: max(range(len(scores)), key=scores.__getitem__)),
    (Selection("val_score", "min"), lambda scores: min(range(len(scores)), key=scores.__getitem__)),
    (Selection(None), lambda scores: len(scores) - 1),
])
def test_selection_keeps_the_named_best_or_the_last_epoch(tmp_path, selection, pick):
    scores = [0.3, 0.9, 0.1, 0.5]
    count = iter(range(4))
    _, meta = train(tmp_path, regression(lambda model: {"val_score": scores[next(count)]}), epochs=4, selection=selection)
    assert meta["best_epoch"] == pick(scores)
    assert meta["selected_on"] == ("last" if selection.key is None else "val")


def test_the_schedule_is_diffusers_warmup_then_cosine(tmp_path):
    lrs = []
    train(tmp_path, epochs=4, optim=Optim(lr=0.1, schedule="cosine", warmup_epochs=1),
          callbacks=(lambda name, step: lrs.append(step["lr"]),))
    warm, total = 5, 20
    expected = [0.1 * (s / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / (total - warm))))
                for s in range(1, total + 1)]  # the lr after each step: the next step's
    assert lrs == pytest.approx(expected)


def test_a_non_finite_loss_names_the_learning_rate_key(tmp_path):
    with pytest.raises(UserError, match=r"^stages\.toy\.lr: the training loss became .*(nan|inf).*lower stages\.toy\.lr"):
        train(tmp_path, optim=Optim(lr=1e30))


def test_an_interrupted_fit_resumes_to_the_same_weights(tmp_path):
    reference, ref_meta = train(tmp_path / "a", optim=Optim(lr=0.1, schedule="cosine", warmup=3, grad_clip=0.5))

    def dying(model):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(1)
        with torch.no_grad():
            return {"val_mse": float(((model(X) - Y) ** 2).mean())}

    calls: list = []
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "b", regression(dying), optim=Optim(lr=0.1, schedule="cosine", warmup=3, grad_clip=0.5))
    assert Run(tmp_path / "b").checkpoint_path("toy", resume=True).exists()
    resumed, meta = train(tmp_path / "b", optim=Optim(lr=0.1, schedule="cosine", warmup=3, grad_clip=0.5))
    assert torch.equal(resumed.weight, reference.weight) and torch.equal(resumed.bias, reference.bias)
    assert meta["history"] == ref_meta["history"]
    again, _ = train(tmp_path / "b")  # finished: loaded, not trained
    assert torch.equal(again.weight, reference.weight)


def test_gradient_accumulation_gives_the_whole_batch_step(tmp_path):
    one, _ = train(tmp_path / "a")
    with runtime.use({"device": "cpu", "grad_accum": 2}):
        two, _ = train(tmp_path / "b")
    assert torch.allclose(one.weight, two.weight, atol=1e-6) and torch.allclose(one.bias, two.bias, atol=1e-6)


def test_micro_batches_cut_the_global_batch_into_contiguous_pieces():
    class Fake:
        def __init__(self, rank, world, accum):
            self.rank, self.world, self.config = rank, world, runtime.RuntimeConfig(grad_accum=accum)

    for size in (1, 7, 8, 25):
        pieces = sorted(((p.start, p.stop) for r in range(2) for p in micro_batches(size, Fake(r, 2, 2))))
        assert pieces[0][0] == 0 and pieces[-1][1] == size
        assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))  # contiguous, no overlap
        assert max(b - a for a, b in pieces) - min(b - a for a, b in pieces) <= 1


def test_runtime_rejects_what_this_machine_cannot_do():
    if torch.cuda.is_available():
        pytest.skip("a CUDA machine can run these")
    with pytest.raises(UserError, match=r"runtime\.device: cuda, but torch sees no CUDA device"):
        runtime.Runtime(runtime.RuntimeConfig(device="cuda")).accelerator
    with pytest.raises(UserError, match=r"runtime\.precision: fp16 needs a CUDA device"):
        runtime.Runtime(runtime.RuntimeConfig(precision="fp16")).accelerator


def test_leaving_a_runtime_lets_go_of_what_it_prepared():
    """A prepared (DDP under torchrun) model must not outlive the runtime: freed after destroy_process_group, a
    reducer holding the last reference to a gloo group hangs the process at exit (Runtime.release)."""
    import weakref

    with runtime.use({"device": "cpu"}) as rt:
        model = torch.nn.Linear(2, 1)
        wrapped, opt = rt.prepare(model, torch.optim.SGD(model.parameters(), lr=0.1))
        refs = weakref.ref(wrapped), weakref.ref(opt)
        del model, wrapped, opt
    assert rt is not None and [ref() for ref in refs] == [None, None]  # rt, still held, lets go of both


def test_the_run_id_ignores_device_and_checkpointing_but_not_precision():
    from eegbench import config

    base = config.resolve("smoke", scale="ci").hash()
    assert config.resolve("smoke", scale="ci", overrides={"runtime.device": "cpu"}).hash() == base
    assert config.resolve("smoke", scale="ci", overrides={"runtime.gradient_checkpointing": True}).hash() == base
    assert config.resolve("smoke", scale="ci", overrides={"runtime.precision": "bf16"}).hash() != base
    with pytest.raises(UserError, match=r"runtime\.precison: unknown key; did you mean 'precision'"):
        config.resolve("smoke", scale="ci", overrides={"runtime.precison": "bf16"})


# --- every stage kind resumes to the same result ---------------------------------------------

WORLD = {"classes": 3, "images_per_class": 12, "subjects": 1, "image_size": 16}
MAE = {"embed_dim": 16, "depth": 1, "heads": 2, "decoder_embed_dim": 16, "decoder_depth": 1, "decoder_heads": 2}
DEEP4 = {"final_conv_length": 2, "stride_before_pool": True, "n_filters_time": 4, "n_filters_spat": 4,
         "n_filters_2": 8, "n_filters_3": 8, "n_filters_4": 16}
KINDS = {  # stage kind: (suite, overrides, the checkpoint to interrupt)
    "supervised": ("smoke", {"stages.classify.epochs": 3}, "classify"),
    "msm": ("dreamdiffusion", {"dataset.world": WORLD, "models.synthetic_recipe": "tiny", "stages.msm.encoder_args": MAE,
                               "stages.msm.epochs": 3, "stages.msm.batch_size": 8, "stages.generate.epochs": 1,
                               "stages.generate.batch_size": 8}, "msm"),
    "joint (image)": ("dreamdiffusion", {"dataset.world": WORLD, "models.synthetic_recipe": "tiny",
                                              "stages.msm.encoder_args": MAE, "stages.msm.epochs": 1,
                                              "stages.msm.batch_size": 8, "stages.generate.epochs": 3,
                                              "stages.generate.batch_size": 8}, "generate"),
    "joint (image + text)": ("multitask", {"dataset.world": WORLD, "models.synthetic_recipe": "tiny",
                                                "stages.msm.encoder_args": MAE, "stages.msm.epochs": 1,
                                                "stages.msm.batch_size": 8, "stages.joint.epochs": 3,
                                                "stages.joint.batch_size": 8}, "joint"),
    "contrastive": ("eegclip", {"dataset.world.train_subjects": 16, "dataset.world.eval_subjects": 8,
                                "stages.align.encoder_args": DEEP4, "stages.align.epochs": 3,
                                "stages.align.batch_size": 32}, "align"),
    "projector": ("thought2text", {"dataset.world": WORLD, "models.synthetic_recipe": "tiny",
                                   "stages.encode.embed_dim": 64, "stages.encode.epochs": 1, "stages.encode.batch_size": 8,
                                   "stages.describe.clip_epochs": 3, "stages.describe.eeg_epochs": 3}, "describe-clip"),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_every_stage_kind_resumes_to_the_same_checkpoint(kind, cache_dir, tmp_path, monkeypatch):
    """Interrupted in its second epoch, then rerun: every checkpoint of the run equals an uninterrupted run's."""
    from eegbench import config
    from eegbench.runner import execute

    suite, overrides, stage = KINDS[kind]
    cfg = config.resolve(suite, scale="ci", overrides=overrides)
    whole = execute(cfg, out=tmp_path / "whole", cache_dir=cache_dir, train_only=True).run_dir
    real_log = Run.log

    def dying_log(self, message):
        real_log(self, message)
        if message.startswith(f"{stage}: epoch 1 "):
            raise KeyboardInterrupt

    monkeypatch.setattr(Run, "log", dying_log)
    with pytest.raises(KeyboardInterrupt):
        execute(cfg, out=tmp_path / "resumed", cache_dir=cache_dir, train_only=True)
    monkeypatch.setattr(Run, "log", real_log)
    resumed = execute(cfg, out=tmp_path / "resumed", cache_dir=cache_dir, train_only=True).run_dir
    assert f"{stage}: resuming after epoch 0" in (resumed / "log.txt").read_text()  # epoch 1 died before its save
    names = sorted(p.name for p in (whole / "checkpoints").iterdir())
    assert names == sorted(p.name for p in (resumed / "checkpoints").iterdir()) and f"{stage}.safetensors" in names
    for name in names:
        (a, meta_a), (b, meta_b) = (Run(d).load_checkpoint(name.removesuffix(".safetensors")) for d in (whole, resumed))
        assert meta_a["history"] == meta_b["history"] and a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
