"""One global batch's gradients for each training loss, through the loop's own ``accumulate``.

Run alone, or under ``torchrun --nproc_per_node N`` (gloo on CPU): ``python multiprocess_grads.py OUT [GRAD_ACCUM]``.
Rank 0 writes ``OUT/<case>.safetensors`` (every trainable parameter's gradient) and ``OUT/<case>.json``
(the loss and the process count actually used). ``tests/test_multiprocess.py`` compares the runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import torch

from eegbench import runtime
from eegbench.train import loop

B = 12  # the global batch


class CharTokenizer:
    """Characters as token ids: enough of a tokenizer for PrefixLMHead on a random GPT-2."""

    eos_token_id = pad_token_id = 0

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [1 + ord(ch) % 60 for ch in text]}


def mae():
    from eegbench.models.mae import MAEEncoder

    model = MAEEncoder(n_chans=4, n_times=32, patch=4, embed_dim=16, depth=1, heads=2, decoder_embed_dim=16,
                       decoder_depth=1, decoder_heads=2)
    x = torch.randn(B, 4, 32)
    return model, lambda m, batch: {"mse": m.masked_loss(x[batch.idx], noise=batch.draw(torch.rand, m.n_tokens))[0]}


def diffusion():
    from diffusers import DDPMScheduler, UNet2DConditionModel

    from eegbench.models.image_head import ImageHead

    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16),
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), layers_per_block=1,
                                cross_attention_dim=8, attention_head_dim=2, norm_num_groups=4)
    scheduler = DDPMScheduler(num_train_timesteps=100)
    latents, context = torch.randn(B, 4, 8, 8), torch.randn(B, 3, 8)
    head = SimpleNamespace(pipe=SimpleNamespace(unet=unet))

    def losses(m, batch):
        t = batch.draw(lambda size: torch.randint(100, (size,)))
        noise = batch.draw(torch.randn, 4, 8, 8)
        return {"diffusion": ImageHead.diffusion_loss(head, latents[batch.idx], context[batch.idx], scheduler,
                                                      t=t, noise=noise)}
    return unet, losses


def text():
    from transformers import GPT2Config, GPT2LMHeadModel

    from eegbench.models.text_heads import PrefixLMHead

    lm = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=64, n_embd=16, n_layer=1, n_head=2)).eval()
    lm.requires_grad_(False)
    head = PrefixLMHead(8, lm, CharTokenizer(), prefix_tokens=2)
    features = torch.randn(B, 8)
    captions = ["a red circle", "a blue square in the corner", "green", "a small yellow star"] * (B // 4)
    return head, lambda m, batch: {"text": m.loss(features[batch.idx], {"captions": [captions[i] for i in batch.idx]})}


def infonce():
    from eegbench.models.text_heads import text_space_infonce

    model = torch.nn.ModuleDict({"proj": torch.nn.Linear(8, 6)})
    model.register_parameter("scale", torch.nn.Parameter(torch.tensor(2.0)))
    features = torch.randn(B, 8)
    text_emb = torch.nn.functional.normalize(torch.randn(B, 6), dim=-1)
    pair = torch.arange(B) % 5  # repeated ids: several positives per row

    def losses(m, batch):
        rt = runtime.current()
        return {"infonce": text_space_infonce(m["proj"](features[batch.idx]), text_emb[batch.idx], m.scale,
                                              pair[batch.idx], gather=rt.gather_with_grad)}
    return model, losses


def gradients(case, rt) -> tuple[dict, float, int]:
    """Every trainable parameter's gradient after one global batch, the loss, and the number of trainable tensors.
    The DDP wrapper dies with this frame, while the process group still lives (``Runtime.release``)."""
    torch.manual_seed(0)
    model, losses = case()
    params = [p for p in model.parameters() if p.requires_grad]
    wrapped, _ = rt.prepare(loop.objective(model, losses), torch.optim.SGD(params, lr=0.0))
    task = loop.Task(losses, validate=None, n_items=B, batch_size=B)
    torch.manual_seed(1)
    value = loop.accumulate(wrapped, task, torch.arange(B), loop.micro_batches(B, rt), rt)
    rt.release()
    return {n: p.grad.contiguous() for n, p in model.named_parameters() if p.grad is not None}, value, len(params)


def main(out: Path, grad_accum: int) -> None:
    from safetensors.torch import save_file

    with runtime.use({"device": "cpu", "grad_accum": grad_accum}) as rt:
        for name, case in (("mae", mae), ("diffusion", diffusion), ("text", text), ("infonce", infonce)):
            grads, value, trainable = gradients(case, rt)
            if rt.is_main:
                out.mkdir(parents=True, exist_ok=True)
                save_file(grads, out / f"{name}.safetensors")
                (out / f"{name}.json").write_text(json.dumps({"loss": value, "processes": rt.world,
                                                              "trainable": trainable}))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 1)
