"""MAE training-step throughput: eegbench's MAE-ViT vs a plain re-implementation built from timm ``Block``s.

Config (``CONFIG``, ``BATCH``): 128 channels x 512 samples, patch 4 (128 tokens), encoder 256 wide,
6 deep, 8 heads; decoder 128/2/4; mlp_ratio 4; mask ratio 0.75; batch 32. The baseline is the
reference MAE structure that DreamDiffusion's ``MAEforEEG`` follows: Conv1d patch embedding of all
tokens, masking by gather, timm ``Block(qkv_bias=True)`` encoder and decoder (timm's Attention
already uses a fused QKV and SDPA), unshuffle by gather, prediction head on every token, per-token
MSE weighted by the mask. Both get the same weights and masks; their losses are checked to agree
and their FLOPs counted before timing. A step is forward + backward + AdamW step; warm-up steps
are excluded, and the implementations are interleaved over rounds (alternating the order)
because the machine is shared. ``--bf16`` adds both under CPU bf16 autocast (fp32 weights,
optimiser, norms and loss) and prints how closely eegbench's bf16 loss and gradient follow fp32.

Usage: ``.venv/bin/python scripts/bench_mae.py [--bf16] [--rounds 5] [--steps 4] [--threads 1]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import torch
from timm.models.vision_transformer import Block
from torch import nn

from eegbench.models.mae import MAEEncoder, sincos_table

CONFIG = dict(n_chans=128, n_times=512, patch=4, embed_dim=256, depth=6, heads=8, mlp_ratio=4.0,
              decoder_embed_dim=128, decoder_depth=2, decoder_heads=4, mask_ratio=0.75)
BATCH = 32


class TimmMAE(nn.Module):
    """The reference MAE over 1-D EEG tokens, written with timm Blocks (as DreamDiffusion does)."""

    def __init__(self, n_chans, n_times, patch, embed_dim, depth, heads, mlp_ratio,
                 decoder_embed_dim, decoder_depth, decoder_heads, mask_ratio):
        super().__init__()
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.patch, self.mask_ratio, self.n_tokens = patch, mask_ratio, n_times // patch
        self.patch_embed = nn.Conv1d(n_chans, embed_dim, kernel_size=patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.register_buffer("pos_embed", sincos_table(self.n_tokens, embed_dim)[None], persistent=False)
        self.blocks = nn.ModuleList(Block(embed_dim, heads, mlp_ratio, qkv_bias=True, norm_layer=norm)
                                    for _ in range(depth))
        self.norm = norm(embed_dim)
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.register_buffer("decoder_pos_embed", sincos_table(self.n_tokens, decoder_embed_dim)[None],
                             persistent=False)
        self.decoder_blocks = nn.ModuleList(Block(decoder_embed_dim, decoder_heads, mlp_ratio, qkv_bias=True,
                                                  norm_layer=norm) for _ in range(decoder_depth))
        self.decoder_norm = norm(decoder_embed_dim)
        self.decoder_pred = nn.Linear(decoder_embed_dim, n_chans * patch)

    def patchify(self, x):
        b, c, t = x.shape
        return x.view(b, c, t // self.patch, self.patch).transpose(1, 2).reshape(b, t // self.patch, c * self.patch)

    def random_masking(self, x):
        b, n, d = x.shape
        n_keep = int(n * (1 - self.mask_ratio))
        ids_shuffle = torch.rand(b, n, device=x.device).argsort(dim=1)
        ids_restore = ids_shuffle.argsort(dim=1)
        kept = torch.gather(x, 1, ids_shuffle[:, :n_keep, None].expand(-1, -1, d))
        mask = torch.ones(b, n, device=x.device)
        mask[:, :n_keep] = 0
        return kept, torch.gather(mask, 1, ids_restore), ids_restore

    def forward(self, x):
        h = self.patch_embed(x).transpose(1, 2) + self.pos_embed[:, 1:]
        h, mask, ids_restore = self.random_masking(h)
        h = torch.cat([(self.cls_token + self.pos_embed[:, :1]).expand(h.shape[0], -1, -1), h], dim=1)
        for block in self.blocks:
            h = block(h)
        h = self.decoder_embed(self.norm(h))
        b, n_vis, d = h.shape
        tail = torch.cat([h[:, 1:], self.mask_token.repeat(b, self.n_tokens + 1 - n_vis, 1)], dim=1)
        tail = torch.gather(tail, 1, ids_restore[..., None].expand(-1, -1, d))
        h = torch.cat([h[:, :1], tail], dim=1) + self.decoder_pos_embed
        for block in self.decoder_blocks:
            h = block(h)
        pred = self.decoder_pred(self.decoder_norm(h))[:, 1:]
        per_token = ((pred.float() - self.patchify(x)) ** 2).mean(dim=-1)
        return (per_token * mask).sum() / mask.sum(), pred, mask


def train_flops(loss_of, x) -> int:
    """FLOPs of one forward + backward (matmuls, convolutions, attention), counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        loss_of(x).backward()
    return counter.get_total_flops()


def bf16_agreement(model, x) -> tuple[float, float]:
    """Relative loss difference and gradient cosine of bf16 autocast vs fp32, same weights and masks."""
    out = []
    for bf16 in (False, True):
        model.zero_grad()
        torch.manual_seed(2)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model.masked_loss(x)[0]
        loss.backward()
        out.append((loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()])))
    model.zero_grad()
    (l32, g32), (l16, g16) = out
    return abs(l16 - l32) / l32, torch.nn.functional.cosine_similarity(g16.double(), g32.double(), dim=0).item()


def step_fn(model, loss_of, x, bf16: bool):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_of(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per implementation per round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="also time both under CPU bf16 autocast")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared machine, threads waiting at barriers for a "
                             "preempted sibling make multi-threaded timings erratic)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    ours = MAEEncoder(**CONFIG)
    base = TimmMAE(**CONFIG)
    base.load_state_dict(ours.state_dict())
    x = torch.randn(BATCH, CONFIG["n_chans"], CONFIG["n_times"])
    for model in (ours, base):
        model.train()
    torch.manual_seed(1)
    a = ours.masked_loss(x)[0].item()
    torch.manual_seed(1)
    b = base(x)[0].item()
    assert abs(a - b) <= 1e-5 * abs(b), (a, b)
    n_params = sum(p.numel() for p in ours.parameters())
    print(f"config: {CONFIG}, batch {BATCH}; {n_params / 1e6:.2f}M parameters; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"same math: loss eegbench {a:.6f} vs timm baseline {b:.6f} on the same weights and masks")
    flops = {name: train_flops(f, x) for name, f in (("eegbench", lambda v: ours.masked_loss(v)[0]),
                                                      ("timm", lambda v: base(v)[0]))}
    print(f"forward+backward GFLOP per step: eegbench {flops['eegbench'] / 1e9:.1f}, timm {flops['timm'] / 1e9:.1f} "
          f"(timm/eegbench {flops['timm'] / flops['eegbench']:.2f}x)")
    if args.bf16:
        rel, cos = bf16_agreement(ours, x)
        print(f"bf16 autocast vs fp32 (eegbench): loss differs by {rel:.1e} (relative), gradient cosine {cos:.5f}")

    runs = {"eegbench fp32": step_fn(ours, lambda v: ours.masked_loss(v)[0], x, False),
            "timm fp32": step_fn(base, lambda v: base(v)[0], x, False)}
    if args.bf16:
        runs |= {"eegbench bf16": step_fn(ours, lambda v: ours.masked_loss(v)[0], x, True),
                 "timm bf16": step_fn(base, lambda v: base(v)[0], x, True)}
    for step in runs.values():
        for _ in range(args.warmup):
            step()
    rates: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            for _ in range(args.steps):
                runs[name]()
            rates[name].append(args.steps / (time.perf_counter() - start))
    print(f"{'implementation':<16}{'steps/s':>10}{'samples/s':>12}   (median of {args.rounds} rounds x "
          f"{args.steps} steps; min-max steps/s)")
    median = {name: statistics.median(v) for name, v in rates.items()}
    for name, v in rates.items():
        print(f"{name:<16}{median[name]:>10.3f}{median[name] * BATCH:>12.1f}   ({min(v):.3f}-{max(v):.3f})")
    print(f"ratio eegbench/timm fp32: {median['eegbench fp32'] / median['timm fp32']:.2f}x")
    if args.bf16:
        print(f"ratio eegbench/timm bf16: {median['eegbench bf16'] / median['timm bf16']:.2f}x; "
              f"eegbench bf16 / timm fp32: {median['eegbench bf16'] / median['timm fp32']:.2f}x")


if __name__ == "__main__":
    main()
