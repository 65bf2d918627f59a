"""DreamDiffusion's image head: EEG encoder tokens become a Stable Diffusion cross-attention context.

Encoder tokens ``[B, L, D]`` -> two 1x1 Conv1d over the token axis (L -> L/2 -> the text encoder's
context length, 77 for SD v1.5) -> Linear to the UNet's cross-attention width = the context that
replaces the caption's. An optional branch maps the mean context to the UNet's timestep-embedding
width and adds it to the timestep embedding (DreamDiffusion's extra conditioning path); it is
attached with hooks, so the UNet stays a stock diffusers UNet2DConditionModel. ``clip_head``
maps the context's mean over tokens to the CLIP image-embedding width for the alignment loss (a
head on the flattened context memorises training trials). :class:`ImageHead` joins the
conditioner and a pipeline's UNet into the image head of ``models.joint.JointModel``.
"""

from __future__ import annotations

import torch
from torch import nn

from eegbench import runtime


class EEGConditioner(nn.Module):
    """Maps ``[B, tokens, width]`` encoder output to ``[B, context_length, cross_attention_dim]``."""

    def __init__(self, tokens: int, width: int, context_length: int, cross_attention_dim: int,
                 clip_dim: int, time_embed_dim: int | None = None):
        super().__init__()
        middle = max(tokens // 2, 1)
        self.seq = nn.Sequential(nn.Conv1d(tokens, middle, 1, bias=True), nn.Conv1d(middle, context_length, 1, bias=True))
        self.proj = nn.Linear(width, cross_attention_dim)
        self.clip_head = nn.Linear(cross_attention_dim, clip_dim)
        self.time_branch = nn.Linear(cross_attention_dim, time_embed_dim) if time_embed_dim else None

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.proj(self.seq(tokens))

    def clip_embedding(self, context: torch.Tensor) -> torch.Tensor:
        return self.clip_head(context.mean(1))


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


class ImageHead(nn.Module):
    """Encoder tokens -> a Stable Diffusion pipeline's cross-attention context, and that UNet's losses.

    ``state_dict()`` holds only what trains: the conditioner and the UNet's cross-attention
    parameters (under ``unet_params``, the same tensors the UNet uses), so checkpoints stay small
    next to the frozen pipeline they apply to.
    """

    role, needs = "image", ("sd",)

    def __init__(self, pipe, tokens: int, width: int, clip_dim: int, time_branch: bool = True):
        super().__init__()
        with torch.no_grad():
            null = pipe.encode_prompt([""], pipe.text_encoder.device, 1, False)[0].float()
        unet = pipe.unet
        self.pipe = pipe  # not a module: the pipeline's frozen parts stay out of state_dict()
        self.conditioner = EEGConditioner(
            tokens, width, null.shape[1], unet.config.cross_attention_dim, clip_dim,
            unet.time_embedding.linear_2.out_features if time_branch else None)
        chosen = {id(p) for p in trainable_unet_parameters(unet)}
        trainable = {name: p for name, p in unet.named_parameters() if id(p) in chosen}
        for p in trainable.values():
            p.requires_grad_(True)
        dtype = runtime.current().weight_dtype
        for p in unet.parameters():  # frozen weights in the run's weight dtype; trained ones stay fp32
            if id(p) not in chosen:
                p.data = p.data.to(dtype)
        self.unet_params = nn.ParameterDict({name.replace(".", "-"): p for name, p in trainable.items()})
        self.register_buffer("null_context", null, persistent=False)
        self.hooks = attach_time_branch(unet, self.conditioner) if time_branch else []

    def context(self, tokens: torch.Tensor) -> torch.Tensor:
        """Cross-attention context ``[B, context_length, cross_attention_dim]`` of encoder tokens ``[B, L, D]``."""
        return self.conditioner(tokens)

    def clip_embedding(self, context: torch.Tensor) -> torch.Tensor:
        return self.conditioner.clip_embedding(context)

    def diffusion_loss(self, latents: torch.Tensor, context: torch.Tensor, scheduler,
                       stratum: tuple[int, int] | None = None, t: torch.Tensor | None = None,
                       noise: torch.Tensor | None = None) -> torch.Tensor:
        """Noise-prediction MSE (or v-prediction, as the scheduler says) of the UNet under ``context``.

        Timesteps ``t`` are uniform at random, or with ``stratum=(k, K)`` all at the centre of the k-th
        of K equal bins (for a low-variance validation loss). ``t`` and ``noise`` not given come from
        torch's global RNG.
        """
        import torch.nn.functional as F

        n = scheduler.config.num_train_timesteps
        if stratum is not None:
            t = torch.full((len(latents),), int((stratum[0] + 0.5) * n / stratum[1]), device=latents.device)
        elif t is None:
            t = torch.randint(n, (len(latents),), device=latents.device)
        noise = torch.randn_like(latents) if noise is None else noise
        pred = self.pipe.unet(scheduler.add_noise(latents, noise, t), t, encoder_hidden_states=context).sample
        kind = scheduler.config.get("prediction_type", "epsilon")
        target = noise if kind == "epsilon" else scheduler.get_velocity(latents, noise, t)
        return F.mse_loss(pred, target)
