"""Peak GPU memory of one training step of each eegbench stage at paper scale, estimated without a GPU.

Run: ``HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_memory.py [--quick] [--skip-measure] [--json PATH]``.
Every model is built from its published config with random weights (nothing is downloaded). Stages, each at
its paper batch: ``msm`` (DreamDiffusion's MAE pretraining, 1024/24/16 encoder + 512/8/16 decoder, batch 100),
``generative`` (the MAE encoder + conditioner + Stable Diffusion v1.5 at 512 px, batch 25; trained: encoder,
conditioner, the UNet's ``attn2``/``norm2``; VAE and CLIP text frozen and never run, latents precomputed),
``contrastive`` (EEG-CLIP: dense Deep4 + a frozen ClinicalBERT-shaped BERT, report embeddings cached, batch
64), ``contrastive-tuned-text`` (its tuned-text variant: BERT trained on 256-token reports), ``projector``
(Thought2Text: a trainable ``PrefixLMHead`` projector before a frozen Mistral-7B, batch 32 x 64 tokens).
For each precision and gradient checkpointing setting the estimate is :data:`FORMULA`; activations are
measured on fake tensors (see :func:`activation_terms`). Then one real fp32 step (msm: also bf16) of the same
models at a reduced size runs on the CPU and its peak allocation (torch.profiler, see :func:`measure`) is printed
beside the estimate at that size. ``--quick`` uses tiny widths everywhere (the test's mode).
"""

from __future__ import annotations

import argparse
import functools
import json
import time
import warnings
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Callable

GIB = 2 ** 30
GPUS_GIB = (24, 40, 80)
CUDA_CONTEXT_GIB = 1.0
FRAGMENTATION = 0.10
FORMULA = ("step = weights + grads + AdamW state + max(activations, AdamW step buffer)\n"
           "activations = saved + max(checkpoint recompute + backward working set, held weight copies)\n"
           f"GPU peak = step x {1 + FRAGMENTATION:.2f} (allocator fragmentation) + {CUDA_CONTEXT_GIB:.1f} GiB "
           "(CUDA context)")
TERMS = """\
  weights      trainable params 4 B (fp32 master weights under mixed precision); frozen params in the run's weight
               dtype (4 B fp32, 2 B bf16/fp16; int8: the LM's Linear weights 1 B, the rest fp16); buffers as built
  grads        4 B per trainable param: the stages call zero_grad after the forward, so the previous step's
               gradients are still allocated while it runs
  AdamW state  8 B per trainable param (exp_avg, exp_avg_sq); the foreach step allocates one more fp32 copy
               (sqrt of exp_avg_sq): the AdamW step buffer, 4 B per trainable param
  activations  the distinct storages autograd saves for backward in the step's forward, weights excluded, measured
               on fake tensors (meta storage, CPU dispatch: autocast and SDPA's fused attention apply as on a
               device); mixed precision runs under autocast with frozen weights already in the low dtype, so the
               low-precision copies autocast keeps of trainable weights are counted
  recompute    with checkpointing: the bytes the largest checkpointed segment saves, rebuilt during backward
  working set  2 x the largest single saved storage: the gradients of an op's output and input, alive together
               while autograd runs its backward (plus kernel workspace); the one term not measured on fake tensors
  held copies  checkpointing under autocast: the low-precision copies of trainable weights that autocast caches
               until the forward ends, though only checkpointed segments saved them (the forward's end peak)
  fits         GPU peak <= 24 / 40 / 80 GiB"""

MAE_PAPER = dict(embed_dim=1024, depth=24, heads=16, mlp_ratio=4.0, decoder_embed_dim=512, decoder_depth=8,
                 decoder_heads=16)
SD15_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
SD15_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
                layers_per_block=2, down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4, sample_size=512)
CLIP_L14_TEXT = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                     max_position_embeddings=77, vocab_size=49408, hidden_act="quick_gelu", projection_dim=768)
CLINICAL_BERT = dict(vocab_size=28996, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                     intermediate_size=3072, max_position_embeddings=512)
MISTRAL_7B = dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                  intermediate_size=14336, vocab_size=32000, max_position_embeddings=32768, sliding_window=4096,
                  rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False)
DEEP4_EEGCLIP = dict(final_conv_length=2, stride_before_pool=True, dense=True)

EEGCLIP = dict(n_chans=21, n_times=1200, deep4=DEEP4_EEGCLIP, bert=CLINICAL_BERT, tokens=256)
PAPER = {
    "msm": dict(batch=100, n_chans=128, n_times=512, mae=MAE_PAPER, mask_ratio=0.75),
    "generative": dict(batch=25, image=512, n_chans=128, n_times=512, mae=MAE_PAPER, unet=SD15_UNET, vae=SD15_VAE,
                       text=CLIP_L14_TEXT, clip_dim=768),
    "contrastive": dict(batch=64, tuned_text=False, **EEGCLIP),
    "contrastive-tuned-text": dict(batch=64, tuned_text=True, **EEGCLIP),
    "projector": dict(batch=32, seq=64, in_dim=512, prefix_tokens=1, lm=MISTRAL_7B),
}
# The CPU check: paper widths at a smaller batch / resolution / depth (what a 24 GiB, 2-core machine runs).
MEASURED = {
    "msm": dict(batch=4),
    "generative": dict(batch=1, image=256),
    "contrastive": dict(batch=16),
    "contrastive-tuned-text": dict(batch=4, tokens=128),
    "projector": dict(batch=4, lm={**MISTRAL_7B, "num_hidden_layers": 2}),
}

MEASURED_PRECISIONS = {"msm": ("fp32", "bf16")}  # the MSM stage trains under CPU bf16 autocast too

MAE_TINY = dict(embed_dim=32, depth=2, heads=4, mlp_ratio=4.0, decoder_embed_dim=16, decoder_depth=1, decoder_heads=4)
EEGCLIP_TINY = dict(n_chans=21, n_times=1200, tokens=32,
                    deep4=dict(DEEP4_EEGCLIP, n_filters_time=10, n_filters_spat=10, n_filters_2=20, n_filters_3=40,
                               n_filters_4=80),
                    bert=dict(vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                              intermediate_size=64, max_position_embeddings=64))
QUICK = {
    "msm": dict(batch=8, n_chans=16, n_times=64, mae=MAE_TINY, mask_ratio=0.75),
    "generative": dict(batch=2, image=32, n_chans=16, n_times=64, mae=MAE_TINY, clip_dim=32,
                       unet=dict(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
                                 block_out_channels=(32, 64), cross_attention_dim=32, attention_head_dim=8,
                                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                 up_block_types=("UpBlock2D", "CrossAttnUpBlock2D")),
                       vae=dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64),
                                layers_per_block=1, down_block_types=("DownEncoderBlock2D",) * 2,
                                up_block_types=("UpDecoderBlock2D",) * 2, sample_size=32),
                       text=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                                 max_position_embeddings=77, vocab_size=1000, projection_dim=32)),
    "contrastive": dict(batch=8, tuned_text=False, **EEGCLIP_TINY),
    "contrastive-tuned-text": dict(batch=8, tuned_text=True, **EEGCLIP_TINY),
    "projector": dict(batch=4, seq=16, in_dim=32, prefix_tokens=1,
                      lm=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                              intermediate_size=128, vocab_size=1000, max_position_embeddings=128,
                              tie_word_embeddings=False)),
}


@dataclass
class Step:
    """A stage's resident modules and ``loss()``, the training loss of one fresh random batch.

    ``checkpointing(fn)`` routes the checkpointable segments through ``fn(callable, *args)`` (None: off);
    ``checkpointing`` is None where nothing is checkpointable. ``quantizable`` lists the params an 8-bit run
    stores in one byte (empty: no int8 row).
    """

    modules: list
    loss: Callable
    checkpointing: Callable | None = None
    quantizable: tuple = ()

    def parameters(self) -> list:
        return list({id(p): p for m in self.modules for p in m.parameters()}.values())

    def buffers(self) -> list:
        return list({id(b): b for m in self.modules for b in m.buffers()}.values())

    def trainable(self) -> list:
        return [p for p in self.parameters() if p.requires_grad]


def checkpoint_forwards(modules, fn) -> None:
    """Run each module's ``forward`` through ``fn(forward, *args)`` (None: restore the plain forward)."""
    for m in modules:
        if fn is None:
            m.__dict__.pop("forward", None)
        else:
            m.forward = functools.partial(fn, type(m).forward.__get__(m))


# builders ---------------------------------------------------------------------------------------------------


def build_msm(s: dict) -> Step:
    """DreamDiffusion's MAE pretraining step: masked-token MSE, every parameter trained."""
    import torch

    from eegbench.models.mae import MAEEncoder

    mae = MAEEncoder(s["n_chans"], s["n_times"], mask_ratio=s["mask_ratio"], **s["mae"]).train()

    def loss():
        return mae.masked_loss(torch.randn(s["batch"], s["n_chans"], s["n_times"]))[0]

    return Step([mae], loss, lambda fn: checkpoint_forwards([*mae.blocks, *mae.decoder_blocks], fn))


def build_generative(s: dict) -> Step:
    """DreamDiffusion's fine-tune step (``train/generative.py``): diffusion MSE + CLIP alignment, no CFG drop."""
    import torch
    import torch.nn.functional as F
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from eegbench.models.image_head import EEGConditioner, attach_time_branch, trainable_unet_parameters
    from eegbench.models.mae import MAEEncoder

    encoder = MAEEncoder(s["n_chans"], s["n_times"], **s["mae"])
    encoder.drop_decoder()
    unet, vae = UNet2DConditionModel(**s["unet"]), AutoencoderKL(**s["vae"])
    text = CLIPTextModel(CLIPTextConfig(**s["text"]))
    for frozen in (unet, vae, text):
        frozen.eval().requires_grad_(False)
    for p in trainable_unet_parameters(unet):
        p.requires_grad_(True)
    conditioner = EEGConditioner(encoder.n_tokens, encoder.embed_dim, s["text"]["max_position_embeddings"],
                                 unet.config.cross_attention_dim, s["clip_dim"],
                                 unet.time_embedding.linear_2.out_features)
    attach_time_branch(unet, conditioner)
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    null = torch.zeros(1, conditioner.seq[1].out_channels, unet.config.cross_attention_dim)
    b, side = s["batch"], s["image"] // 2 ** (len(s["vae"]["block_out_channels"]) - 1)

    def loss():
        latents, clip_target = torch.randn(b, 4, side, side), torch.randn(b, s["clip_dim"])
        context = conditioner(encoder.tokens(torch.randn(b, s["n_chans"], s["n_times"])))
        cond = torch.where((torch.rand(b) < 0.0)[:, None, None], null, context)
        t, noise = torch.randint(1000, (b,)), torch.randn_like(latents)
        pred = unet(scheduler.add_noise(latents, noise, t), t, encoder_hidden_states=cond).sample
        clip = (1 - F.cosine_similarity(conditioner.clip_embedding(context), clip_target)).mean()
        return F.mse_loss(pred, noise) + clip

    def checkpointing(fn):
        checkpoint_forwards(encoder.blocks, fn)
        if fn is None:
            unet.disable_gradient_checkpointing()
        else:
            unet.enable_gradient_checkpointing(fn)

    return Step([encoder.train(), conditioner.train(), unet, vae, text], loss, checkpointing)


def build_contrastive(s: dict) -> Step:
    """EEG-CLIP's step (``train/contrastive.py``): symmetric InfoNCE of Deep4 EEG vs report embeddings."""
    import torch
    from transformers import BertConfig, BertModel

    from eegbench.models.deep4 import Deep4Encoder
    from eegbench.models.eegclip import EEGCLIP, contrastive_loss

    b = s["batch"]
    bert = BertModel(BertConfig(**s["bert"])).requires_grad_(s["tuned_text"]).train(s["tuned_text"])
    tuned = bert if s["tuned_text"] else None  # a submodule of the model only when tuned, as in the stage
    deep4 = Deep4Encoder(s["n_chans"], s["n_times"], 128, **s["deep4"])
    model = EEGCLIP(deep4, 128, bert.config.hidden_size, text_encoder=tuned).train()

    def text_features():
        if tuned is None:  # frozen: embeddings computed once and cached
            return torch.randn(b, bert.config.hidden_size)
        mask = torch.ones(b, s["tokens"], dtype=torch.long)
        states = bert(input_ids=torch.randint(bert.config.vocab_size, (b, s["tokens"])), attention_mask=mask)
        mask = mask.unsqueeze(-1).to(states.last_hidden_state.dtype)
        return (states.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1)

    def loss():
        eeg = model.embed_eeg(torch.randn(b, s["n_chans"], s["n_times"]))
        return contrastive_loss(model.logits(eeg, model.embed_text(text_features())), torch.arange(b))

    def checkpointing(fn):
        bert._set_gradient_checkpointing(fn is not None, fn or torch.utils.checkpoint.checkpoint)

    return Step([model, bert], loss, checkpointing if tuned is not None else None)


def build_projector(s: dict) -> Step:
    """Thought2Text's projector step (``PrefixLMHead.loss``): teacher-forced LM cross-entropy, LM frozen."""
    import torch
    import torch.nn.functional as F
    from transformers import MistralConfig, MistralForCausalLM

    from eegbench.models.text_heads import PrefixLMHead, positions

    lm = MistralForCausalLM(MistralConfig(**s["lm"])).eval().requires_grad_(False)
    head = PrefixLMHead(s["in_dim"], lm, tokenizer=None, prefix_tokens=s["prefix_tokens"]).train()
    b, n_text = s["batch"], s["seq"] - s["prefix_tokens"]

    def loss():
        prefix = head.project(torch.randn(b, s["in_dim"])).view(b, head.prefix_tokens, head.width)
        tokens = torch.randint(lm.config.vocab_size, (b, n_text))
        inputs = torch.cat([prefix, lm.get_input_embeddings()(tokens)], dim=1)
        mask = torch.ones(b, s["seq"], dtype=torch.long)
        labels = torch.cat([torch.full((b, head.prefix_tokens), -100), tokens], dim=1)
        logits = lm(inputs_embeds=inputs, attention_mask=mask, position_ids=positions(mask)).logits
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                               ignore_index=-100)

    def checkpointing(fn):
        lm.train(fn is not None)._set_gradient_checkpointing(fn is not None, fn or torch.utils.checkpoint.checkpoint)

    quantizable = tuple(m.weight for name, m in lm.named_modules()
                        if isinstance(m, torch.nn.Linear) and name != "lm_head")
    return Step([head, lm], loss, checkpointing, quantizable)


BUILDERS = {"msm": build_msm, "generative": build_generative, "contrastive": build_contrastive,
            "contrastive-tuned-text": build_contrastive, "projector": build_projector}


def size_note(stage: str, s: dict) -> str:
    """The input size of a setting, in words."""
    if stage == "generative":
        return f"{s['image']} px"
    if stage == "projector":
        return f"{s['seq']} tok, {s['lm']['num_hidden_layers']} layers"
    if stage == "contrastive-tuned-text":
        return f"{s['n_chans']}x{s['n_times']}, {s['tokens']} tok"
    return f"{s['n_chans']}x{s['n_times']}"


# estimate ---------------------------------------------------------------------------------------------------


class SavedBytes:
    """Context manager summing the distinct storages autograd saves for backward, except ``exclude`` (weights);
    ``casts`` holds those that are autocast's low-precision copies of trainable weights."""

    def __init__(self, exclude: set):
        self.exclude, self.storages, self.casts = exclude, {}, {}

    @property
    def bytes(self) -> int:
        return sum(self.storages.values())

    @property
    def largest(self) -> int:
        return max(self.storages.values(), default=0)

    def pack(self, tensor):
        storage = tensor.untyped_storage()
        if storage._cdata not in self.exclude:
            self.storages[storage._cdata] = storage.nbytes()
            if is_weight_cast(tensor):
                self.casts[storage._cdata] = storage.nbytes()
        return tensor

    def __enter__(self):
        import torch

        self.hooks = torch.autograd.graph.saved_tensors_hooks(self.pack, lambda tensor: tensor)
        self.hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self.hooks.__exit__(*exc)


def is_weight_cast(tensor) -> bool:
    """Whether ``tensor`` (or the tensor it views) is a dtype copy of a leaf that requires grad (a trainable
    weight cast by autocast; the step's inputs never require grad)."""
    fn = (tensor if tensor._base is None else tensor._base).grad_fn
    return fn is not None and fn.name() == "ToCopyBackward0" and \
        any(f is not None and f.name() == "torch::autograd::AccumulateGrad" for f, _ in fn.next_functions)


class SegmentProbe:
    """A checkpoint function (non-reentrant) that also records the largest segment's saved bytes (``segment``),
    the largest single storage a segment saves (``largest``) and the autocast weight copies segments save
    (``casts``)."""

    def __init__(self, exclude: set):
        self.exclude, self.segment, self.largest, self.casts = exclude, 0, 0, {}

    def __call__(self, function, *args):
        import torch.utils.checkpoint

        with SavedBytes(self.exclude) as inner:  # nested hooks: the outer count does not see these
            function(*args)
        self.segment, self.largest = max(self.segment, inner.bytes), max(self.largest, inner.largest)
        self.casts |= inner.casts
        return torch.utils.checkpoint.checkpoint(function, *args, use_reentrant=False)


def gather_masked_mse(pred, tokens, mask):
    """``mae.masked_mse`` without boolean indexing (data-dependent shapes fake tensors cannot run); same saves."""
    import torch.nn.functional as F

    ids = mask.int().argsort(dim=1, stable=True)[:, -pred.shape[1]:]
    return F.mse_loss(pred.float(), tokens.gather(1, ids[..., None].expand(-1, -1, tokens.shape[2])))


LOW = {"fp32": None, "bf16": "bfloat16", "fp16": "float16", "int8": "float16"}


@contextmanager
def fake_mode():
    """Fake tensors (meta storage, CPU dispatch keys) with the MAE's loss made shape-static."""
    from unittest import mock

    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode(allow_non_fake_inputs=True), mock.patch("eegbench.models.mae.masked_mse", gather_masked_mse):
        yield


def activation_terms(step: Step, checkpointing: bool) -> tuple[int, int, int, int]:
    """``(saved, recompute, working set, held copies)`` bytes of ``step``'s forward on fake tensors (``TERMS``)."""
    exclude = {t.untyped_storage()._cdata for t in step.parameters() + step.buffers()}
    probe = SegmentProbe(exclude)
    if step.checkpointing:
        step.checkpointing(probe if checkpointing else None)
    with SavedBytes(exclude) as saved:
        step.loss()
    held = sum(n for key, n in probe.casts.items() if key not in saved.storages)
    return saved.bytes, probe.segment, 2 * max(saved.largest, probe.largest), held


def weight_bytes(step: Step, precision: str) -> int:
    """Parameters as stored (after :func:`set_precision`) and buffers; int8: the quantizable weights at 1 B."""
    stored = sum(t.numel() * t.element_size() for t in step.parameters() + step.buffers())
    if precision == "int8":
        stored -= sum(p.numel() * (p.element_size() - 1) for p in step.quantizable)
    return stored


def set_precision(step: Step, precision: str) -> None:
    """Mixed precision: frozen floating-point parameters stored in the low dtype, the loss under CPU autocast."""
    import torch

    if LOW[precision] is None:
        return
    dtype = getattr(torch, LOW[precision])
    for p in step.parameters():
        if not p.requires_grad and p.is_floating_point():
            p.data = p.data.to(dtype)
    loss = step.loss

    def autocast_loss():
        with torch.autocast("cpu", dtype):
            return loss()

    step.loss = autocast_loss


def precisions(step: Step) -> list[str]:
    return ["fp32", "bf16", "fp16"] + ["int8"] * bool(step.quantizable)


def estimate(stage: str, setting: dict, only: tuple[str, ...] | None = None) -> list[dict]:
    """One row per precision x checkpointing of ``stage`` at ``setting`` (all on fake tensors)."""
    import torch

    rows = []
    for precision in only or ("fp32", "bf16", "fp16", "int8"):
        with fake_mode():
            torch.manual_seed(0)
            step = BUILDERS[stage](setting)
            if precision not in precisions(step):
                continue
            set_precision(step, precision)
            weights = weight_bytes(step, precision)
            n_total, trained = sum(p.numel() for p in step.parameters()), sum(p.numel() for p in step.trainable())
            for checkpointing in (False, True) if step.checkpointing else (None,):
                terms = activation_terms(step, bool(checkpointing))
                rows.append(row(stage, setting, precision, checkpointing, n_total, trained, weights, terms))
    return rows


def row(stage, setting, precision, checkpointing, n_total, trained, weights, terms) -> dict:
    """The estimate's terms and totals (bytes -> GiB) for one setting; ``terms`` from :func:`activation_terms`."""
    saved, recompute, working, held = terms
    states, activations = 12 * trained, saved + max(recompute + working, held)  # grads 4 B + AdamW 8 B
    step = weights + states + max(activations, 4 * trained)
    gpu = step / GIB * (1 + FRAGMENTATION) + CUDA_CONTEXT_GIB
    return {"stage": stage, "batch": setting["batch"], "size": size_note(stage, setting), "params_total": n_total,
            "params_trainable": trained, "precision": precision,
            "checkpointing": {None: "n/a", False: "no", True: "yes"}[checkpointing],
            "weights_gib": weights / GIB, "grads_adam_gib": states / GIB, "activations_gib": activations / GIB,
            **{f"{k}_gib": v / GIB for k, v in zip(("saved", "recompute", "working_set", "held_copies"), terms)},
            "adamw_buffer_gib": 4 * trained / GIB,
            "step_gib": step / GIB, "est_peak_gib": gpu, **{f"fits_{g}": gpu <= g for g in GPUS_GIB}}


# measurement ------------------------------------------------------------------------------------------------


def measure(stage: str, setting: dict, precision: str = "fp32") -> list[dict]:
    """Torch's CPU allocation during one real step of ``stage`` (checkpointing off, then on where possible).

    Everything runs under ``torch.profiler`` with ``profile_memory``, which reports every allocation and free
    of torch's CPU allocator: model construction; a priming AdamW step on zero gradients, so that gradients and
    AdamW state exist as in the steady state (single-tensor AdamW: on CPU the foreach one is 5x slower, and the
    state it leaves is the same); then forward, ``zero_grad``, backward with checkpointing off, the foreach
    AdamW step (the GPU default the estimate models), and forward, ``zero_grad``, backward with checkpointing
    on, each in its own window. A window's peak is the largest running sum of the events inside it; a row's
    ``measured_activations_gib`` is its forward/backward peak above the total at that window's start.
    """
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    def checkpoint(function, *args):
        return torch.utils.checkpoint.checkpoint(function, *args, use_reentrant=False)

    torch.set_flush_denormal(True)  # tiny random-batch gradients would make AdamW crawl on denormals
    try:
        quiet = warnings.catch_warnings(action="ignore")  # the profiler's notice about cycles
        with quiet, profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            torch.manual_seed(0)
            step = BUILDERS[stage](setting)
            set_precision(step, precision)
            trainable = step.trainable()
            opt = torch.optim.AdamW(trainable, lr=1e-6, foreach=False)
            for p in trainable:
                p.grad = torch.zeros_like(p)
            opt.step()
            opt.param_groups[0]["foreach"] = True
            modes = [False, True] if step.checkpointing else [None]
            for checkpointing in modes:
                if step.checkpointing:
                    step.checkpointing(checkpoint if checkpointing else None)
                with record_function(f"forward_backward_{checkpointing}"):
                    loss = step.loss()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    del loss
                if checkpointing is not True:
                    with record_function("adamw"):
                        opt.step()
    finally:
        torch.set_flush_denormal(False)  # torch's default
    windows = memory_windows(prof.profiler.kineto_results.events(),
                             ["adamw"] + [f"forward_backward_{c}" for c in modes])
    rows = []
    for c in modes:
        start, passes = windows[f"forward_backward_{c}"]
        rows.append({"stage": stage, "batch": setting["batch"], "size": size_note(stage, setting),
                     "precision": precision,
                     "checkpointing": {None: "n/a", False: "no", True: "yes"}[c],
                     "measured_gib": max(passes, windows["adamw"][1]) / GIB,
                     "measured_activations_gib": (passes - start) / GIB})
    return rows


def memory_windows(events, labels: list[str]) -> dict[str, tuple[int, int]]:
    """``(running total at its start, largest running total inside)`` of the profiler's memory events per
    ``record_function`` window named in ``labels``."""
    memory = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]")
    spans = {e.name(): (e.start_ns(), e.end_ns()) for e in events if e.name() in labels}
    out = {}
    for label, (begin, end) in spans.items():
        before = sum(n for t, n in memory if t < begin)
        inside = [n for t, n in memory if begin <= t <= end]
        total, peak = before, before
        for n in inside:
            total += n
            peak = max(peak, total)
        out[label] = (before, peak)
    return out


def reductions(stages) -> str:
    """What the CPU check shrinks per stage, in words."""
    def word(stage, key, value):
        if key == "lm":
            return f"{value['num_hidden_layers']} of {PAPER[stage]['lm']['num_hidden_layers']} LM layers"
        return f"{key} {value} (paper {PAPER[stage][key]})"
    return "; ".join(f"{stage}: " + ", ".join(word(stage, k, v) for k, v in MEASURED[stage].items())
                     for stage in stages)


def note(text: str) -> None:
    """Print ``text`` in parentheses, wrapped."""
    import textwrap

    print(textwrap.fill(f"({text})", 116, subsequent_indent=" "))


def release_memory() -> None:
    """Hand freed heap memory back to the OS between measurements (glibc keeps it otherwise)."""
    import ctypes
    import gc

    gc.collect()
    with suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


# output -----------------------------------------------------------------------------------------------------


def table(rows: list[dict], columns: list[tuple[str, Callable]]) -> str:
    """Plain-text table, left-aligned first two columns, the rest right-aligned."""
    cells = [[header for header, _ in columns]] + [[fmt(r) for _, fmt in columns] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
                     for line in cells)


def millions(n: int) -> str:
    return f"{n / 1e6:,.2f}M"


ESTIMATE_COLUMNS = [
    ("stage", lambda r: r["stage"]), ("size", lambda r: r["size"]), ("batch", lambda r: str(r["batch"])),
    ("params", lambda r: millions(r["params_total"])), ("trainable", lambda r: millions(r["params_trainable"])),
    ("precision", lambda r: r["precision"]), ("ckpt", lambda r: r["checkpointing"]),
    ("weights", lambda r: f"{r['weights_gib']:.2f}"), ("grad+adam", lambda r: f"{r['grads_adam_gib']:.2f}"),
    ("activ.", lambda r: f"{r['activations_gib']:.2f}"), ("est. peak GiB", lambda r: f"{r['est_peak_gib']:.2f}"),
] + [(f"{g}GB", lambda r, g=g: "yes" if r[f"fits_{g}"] else "no") for g in GPUS_GIB]
CHECK_COLUMNS = [
    ("stage", lambda r: r["stage"]), ("measured size", lambda r: r["size"]), ("batch", lambda r: str(r["batch"])),
    ("precision", lambda r: r["precision"]), ("ckpt", lambda r: r["checkpointing"]),
    ("est. step MiB", lambda r: f"{r['step_gib'] * 1024:,.1f}"),
    ("measured MiB", lambda r: f"{r['measured_gib'] * 1024:,.1f}"),
    ("est/meas", lambda r: f"{r['step_gib'] / r['measured_gib']:.2f}"),
    ("est. activ. MiB", lambda r: f"{r['activations_gib'] * 1024:,.1f}"),
    ("measured activ. MiB", lambda r: f"{r['measured_activations_gib'] * 1024:,.1f}"),
    ("est/meas ", lambda r: f"{r['activations_gib'] / r['measured_activations_gib']:.2f}"),
]


def check(stage: str, setting: dict, precision: str = "fp32") -> list[dict]:
    """Estimate (no allowance) beside the measured CPU step at the same reduced setting and precision."""
    estimated = {r["checkpointing"]: r for r in estimate(stage, setting, only=(precision,))}
    return [{**r, **{k: estimated[r["checkpointing"]][k] for k in ("step_gib", "activations_gib")}}
            for r in measure(stage, setting, precision)]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny widths everywhere (seconds; the test's mode)")
    parser.add_argument("--skip-measure", action="store_true", help="estimates only, no CPU step")
    parser.add_argument("--stages", nargs="+", choices=list(PAPER), default=list(PAPER))
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
    with warnings.catch_warnings(action="ignore"):  # transformers/diffusers deprecations
        report(args)


def report(args) -> None:
    """Print both tables (and write the JSON) for parsed command-line ``args``."""
    import torch

    settings = QUICK if args.quick else PAPER
    start = time.perf_counter()
    rows = [r for stage in args.stages for r in estimate(stage, settings[stage])]
    print(f"Estimated peak GPU memory of one training step ({'quick: tiny widths' if args.quick else 'paper scale'})")
    print(FORMULA)
    print(TERMS + "\n")
    print(table(rows, ESTIMATE_COLUMNS))
    note("params in millions; weights, grad+adam, activ. (saved + max(recompute + working set, held copies)) in GiB "
         "before the allowance; where the AdamW step buffer, 4 B x trainable, exceeds activ. the step peaks in the "
         "optimizer. generative: VAE and CLIP text are resident but never run (latents precomputed); contrastive: the "
         "frozen BERT is resident, its report embeddings cached; projector: 512-wide CLIP ViT-B/32 features, "
         "int8 = bitsandbytes-style 8-bit LM Linear weights")
    checked = []
    if not args.skip_measure:
        print("\nEstimate vs a measured CPU step (fp32; msm also bf16 autocast): peak of torch's CPU allocations "
              "(torch.profiler\nprofile_memory); est. step = the formula's step without the GPU allowance; activ. = "
              "the forward/backward peak\nabove the allocations at its start")
        reduced = {stage: settings[stage] if args.quick else {**settings[stage], **MEASURED[stage]}
                   for stage in args.stages}
        for stage in args.stages:
            for precision in MEASURED_PRECISIONS.get(stage, ("fp32",)):
                checked += check(stage, reduced[stage], precision)
                release_memory()
        print(table(checked, CHECK_COLUMNS))
        shrunk = "none, --quick sizes" if args.quick else reductions(args.stages)
        note(f"widths as in the first table; reduced: {shrunk}. Checkpointed rows can over-estimate activ.: zero_grad "
             "after the forward frees the previous gradients, which backward reallocates gradually, leaving room the "
             "formula does not credit")
    print(f"\n({time.perf_counter() - start:.0f} s on {torch.get_num_threads()} threads)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"formula": FORMULA, "cuda_context_gib": CUDA_CONTEXT_GIB, "fragmentation": FRAGMENTATION,
                       "estimates": rows, "measured": checked}, f, indent=1)


if __name__ == "__main__":
    main()
