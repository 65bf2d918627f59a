"""Paper-size training steps on one CUDA GPU: the MAE pretraining step and the SD v1.5-shaped generative step.

Run by ``scripts/gpu_check.sh`` (needs CUDA; random weights, nothing downloaded):

- ``mae``: the 1024/24/16 MAE (512/8/16 decoder) on 128 x 512 EEG, batch 100, bf16 autocast with
  fp32 master weights, ``torch.compile``; samples/s and model FLOP utilisation with the formula printed.
- ``sd``: the MAE encoder + conditioner + Stable Diffusion v1.5's UNet at 512 px (64 x 64 latents),
  batch 25, bf16 with gradient checkpointing, the UNet's frozen weights in bf16 and its cross-attention
  (``attn2``/``norm2``) trained in fp32 as in ``models.image_head``; s/step and peak memory.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_memory import MAE_PAPER, SD15_UNET  # noqa: E402  (the published configs, one home)

PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12}  # dense bf16 tensor-core FLOP/s


def peak_flops(torch) -> float | None:
    name = torch.cuda.get_device_name(0)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def mae_flops(batch: int, n_tokens: int, mask_ratio: float, m: dict) -> tuple[float, str]:
    """Training FLOPs of one MAE step: 3 x forward (forward + backward), forward = 2 x multiply-adds."""
    t_enc = 1 + int(n_tokens * (1 - mask_ratio))  # CLS + visible tokens
    t_dec = 1 + n_tokens
    d, dd = m["embed_dim"], m["decoder_embed_dim"]
    enc = m["depth"] * (12 * d * d * t_enc + 2 * t_enc * t_enc * d)
    dec = m["decoder_depth"] * (12 * dd * dd * t_dec + 2 * t_dec * t_dec * dd)
    formula = (f"FLOPs/step = 3 x 2 x batch x [depth x (12 d^2 T_enc + 2 T_enc^2 d) + dec_depth x (12 d_dec^2 T_dec "
               f"+ 2 T_dec^2 d_dec)], d={d}, T_enc={t_enc}, d_dec={dd}, T_dec={t_dec} (patch embedding and "
               "prediction head left out)")
    return 6.0 * batch * (enc + dec), formula


def timed(step, warmup: int, steps: int, torch) -> float:
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def mae(args) -> list[str]:
    import torch

    from eegbench.models.mae import MAEEncoder

    torch.manual_seed(0)
    model = MAEEncoder(128, 512, mask_ratio=0.75, **MAE_PAPER).cuda().train()
    opt = torch.optim.AdamW(model.parameters(), lr=2.5e-4, fused=True)
    loss_fn = torch.compile(model.masked_loss)
    x = torch.randn(args.mae_batch, 128, 512, device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = loss_fn(x)[0]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    seconds = timed(step, 5, args.steps, torch)
    flops, formula = mae_flops(args.mae_batch, model.n_tokens, 0.75, MAE_PAPER)
    peak = peak_flops(torch)
    mfu = f"{flops / seconds / peak:.1%}" if peak else "n/a (unknown GPU peak)"
    return [f"MAE 1024/24/16 step, batch {args.mae_batch}, bf16, compiled | {args.mae_batch / seconds:.0f} samples/s | "
            f"{seconds * 1e3:.1f} ms/step | MFU {mfu} ({flops / 1e12:.2f} TFLOP/step)", f"  {formula}"]


def sd(args) -> list[str]:
    import torch
    import torch.nn.functional as F
    from diffusers import DDPMScheduler, UNet2DConditionModel

    from eegbench.models.image_head import EEGConditioner, attach_time_branch, trainable_unet_parameters
    from eegbench.models.mae import MAEEncoder

    torch.manual_seed(0)
    encoder = MAEEncoder(128, 512, **MAE_PAPER)
    encoder.drop_decoder()
    encoder.gradient_checkpointing = True
    unet = UNet2DConditionModel(**SD15_UNET).requires_grad_(False)
    chosen = {id(p) for p in trainable_unet_parameters(unet)}
    for p in unet.parameters():
        if id(p) in chosen:
            p.requires_grad_(True)
        else:
            p.data = p.data.to(torch.bfloat16)
    unet.enable_gradient_checkpointing()
    conditioner = EEGConditioner(encoder.n_tokens, encoder.embed_dim, 77, 768, 768, unet.time_embedding.linear_2.out_features)
    attach_time_branch(unet, conditioner)
    for m in (encoder, conditioner, unet):
        m.cuda().train()
    params = [p for m in (encoder, conditioner, unet) for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=5.3e-5, fused=True)
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    b = args.sd_batch
    eeg, latents = torch.randn(b, 128, 512, device="cuda"), torch.randn(b, 4, 64, 64, device="cuda")
    clip_target = torch.randn(b, 768, device="cuda")

    def step():
        t = torch.randint(1000, (b,), device="cuda")
        noise = torch.randn_like(latents)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            context = conditioner(encoder.tokens(eeg))
            pred = unet(scheduler.add_noise(latents, noise, t), t, encoder_hidden_states=context).sample
            loss = F.mse_loss(pred.float(), noise) + (1 - F.cosine_similarity(
                conditioner.clip_embedding(context).float(), clip_target)).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    torch.cuda.reset_peak_memory_stats()
    seconds = timed(step, 2, args.steps, torch)
    peak = torch.cuda.max_memory_allocated() / 2 ** 30
    trained = sum(p.numel() for p in params) / 1e6
    return [f"SD v1.5 UNet + MAE encoder step, 512 px, batch {b}, bf16, checkpointing | {seconds:.2f} s/step | "
            f"peak {peak:.1f} GiB allocated | {trained:.0f}M trained"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="*", default=["mae", "sd"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--mae-batch", type=int, default=100)
    parser.add_argument("--sd-batch", type=int, default=25)
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        sys.exit("gpu_steps.py needs a CUDA GPU")
    print(f"device: {torch.cuda.get_device_name(0)}")
    for name in args.which:
        print("\n".join({"mae": mae, "sd": sd}[name](args)), flush=True)


if __name__ == "__main__":
    main()
