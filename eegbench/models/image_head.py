"""DreamDiffusion's image head: EEG encoder tokens become a Stable Diffusion cross-attention context.

Encoder tokens ``[B, L, D]`` -> two 1x1 Conv1d over the token axis (L -> L/2 -> the text encoder's
context length, 77 for SD v1.5) -> Linear to the UNet's cross-attention width = the context that
replaces the caption's. An optional branch maps the mean context to the UNet's timestep-embedding
width and adds it to the timestep embedding (DreamDiffusion's extra conditioning path); it is
attached with hooks, so the UNet stays a stock diffusers UNet2DConditionModel. ``clip_head``
maps the flattened context to the CLIP image-embedding width for the alignment loss.
"""

from __future__ import annotations

import torch
from torch import nn


class EEGConditioner(nn.Module):
    """Maps ``[B, tokens, width]`` encoder output to ``[B, context_length, cross_attention_dim]``."""

    def __init__(self, tokens: int, width: int, context_length: int, cross_attention_dim: int,
                 clip_dim: int, time_embed_dim: int | None = None):
        super().__init__()
        middle = max(tokens // 2, 1)
        self.seq = nn.Sequential(nn.Conv1d(tokens, middle, 1, bias=True), nn.Conv1d(middle, context_length, 1, bias=True))
        self.proj = nn.Linear(width, cross_attention_dim)
        self.clip_head = nn.Linear(context_length * cross_attention_dim, clip_dim)
        self.time_branch = nn.Linear(cross_attention_dim, time_embed_dim) if time_embed_dim else None

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.proj(self.seq(tokens))

    def clip_embedding(self, context: torch.Tensor) -> torch.Tensor:
        return self.clip_head(context.flatten(1))


def attach_time_branch(unet, conditioner: EEGConditioner) -> list:
    """Add ``conditioner.time_branch(mean context)`` to ``unet``'s timestep embedding; returns hook handles.

    A pre-hook on the UNet reads the ``encoder_hidden_states`` of each call (so classifier-free
    guidance batches get their own rows), and a hook on ``unet.time_embedding`` adds the branch.
    """
    state: dict = {}

    def remember(_module, args, kwargs):
        context = kwargs.get("encoder_hidden_states", args[2] if len(args) > 2 else None)
        state["extra"] = conditioner.time_branch(context.mean(1))

    def add(_module, _args, output):
        return output + state["extra"].to(output.dtype)

    return [unet.register_forward_pre_hook(remember, with_kwargs=True), unet.time_embedding.register_forward_hook(add)]


def trainable_unet_parameters(unet) -> list:
    """The cross-attention layers (``attn2``) of the UNet's transformer blocks and the norms before them."""
    return [p for name, p in unet.named_parameters()
            if "transformer_blocks" in name and (".attn2." in name or ".norm2." in name)]
