"""MAE-ViT for EEG: DreamDiffusion's masked-signal-modelling encoder (Bai et al. 2023).

A token is ALL channels x ``patch`` consecutive samples, embedded by a ``Conv1d`` with
kernel = stride = ``patch`` (128 channels x 512 samples, patch 4 -> 128 tokens). Positions are
fixed 1-D sin-cos tables (the CLS slot gets zeros) and a learned CLS token leads the sequence.
Blocks are pre-norm transformer blocks with a fused QKV projection and
``scaled_dot_product_attention``. Pretraining hides a random ``mask_ratio`` of the tokens per
sample (argsort of uniform noise), encodes the visible ones, and a narrower decoder predicts the
hidden ones; the loss is the MSE on the masked tokens only, against the raw samples of each token
(``n_chans * patch`` values, not normalised per token: ImageNet-EEG is already standardised per
channel, and a token's offset and scale are part of the slow signal worth reconstructing).

Default ``mlp_ratio`` is 4.0, the paper's reported model (encoder ~302M parameters at
1024 wide x 24 deep; the paper says ~297M). DreamDiffusion's released code uses 1.0 (~151M);
pass ``mlp_ratio: 1.0`` to reproduce that checkpoint's shape.

The training step computes only what the loss depends on, with the same math as the reference
MAE: the patch embedding runs on visible tokens only; the decoder sequence is
``[CLS, visible..., mask tokens...]`` with each token's position added (attention is
permutation-equivariant, so no unshuffling gather is needed); the last decoder block computes
attention outputs and MLP only for the masked tokens, and the prediction head sees only those.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from eegbench.errors import UserError


def sincos_table(n_positions: int, dim: int) -> torch.Tensor:
    """Fixed 1-D sin-cos embeddings ``[n_positions + 1, dim]``; row 0 (the CLS slot) is zeros."""
    pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    table = torch.cat([torch.sin(pos * omega), torch.cos(pos * omega)], dim=1)
    return torch.cat([torch.zeros(1, dim, dtype=torch.float64), table]).float()


class Attention(nn.Module):
    """Multi-head self-attention: one fused QKV Linear, SDPA, output projection."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, n_query: int | None = None) -> torch.Tensor:
        """Attention of every token, or only of the last ``n_query`` tokens (keys: all tokens)."""
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        if n_query is not None:
            q = q[:, :, n - n_query:]
        if torch.is_autocast_enabled(x.device.type):
            # Softmax attention in fp32 under autocast: more precise, and on CPU the bf16
            # flash-attention backward is ~4x slower than the fp32 one.
            with torch.autocast(x.device.type, enabled=False):
                out = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, q.shape[2], d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block (parameter names as timm's ``Block``)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, n_query: int | None = None) -> torch.Tensor:
        """The block's output for all tokens, or for the last ``n_query`` only."""
        h = self.attn(self.norm1(x), n_query)
        x = (x if n_query is None else x[:, x.shape[1] - n_query:]) + h
        return x + self.mlp(self.norm2(x))


class MAEEncoder(nn.Module):
    """MAE-ViT over 1-D EEG tokens (all channels x ``patch`` samples), pooled to ``out_dim`` features.

    ``tokens(x)`` gives the encoder's output for every token ``[B, n_times / patch, embed_dim]``;
    ``forward(x)`` their mean, projected to ``out_dim`` when that differs from ``embed_dim``;
    ``masked_loss(x)`` the pretraining loss. ``encoder_state_dict()`` holds what later stages reuse
    (no decoder, no ``out_proj``). Paper scale: 1024/24/16 encoder, 512/8/16 decoder, the defaults.
    """

    def __init__(self, n_chans: int, n_times: int, out_dim: int | None = None, patch: int = 4,
                 embed_dim: int = 1024, depth: int = 24, heads: int = 16, mlp_ratio: float = 4.0,
                 decoder_embed_dim: int = 512, decoder_depth: int = 8, decoder_heads: int = 16,
                 mask_ratio: float = 0.75):
        super().__init__()
        if patch < 1 or n_times % patch:
            raise UserError(f"n_times={n_times} is not divisible by patch={patch}; choose a patch that divides "
                            f"n_times or resample the EEG (dataset interpolate) to a multiple of {patch}")
        if n_times // patch < 2:
            raise UserError(f"n_times={n_times} with patch={patch} gives {n_times // patch} token(s); "
                            "masking needs at least 2, use a smaller patch")
        for width, n_heads, wkey, hkey in ((embed_dim, heads, "embed_dim", "heads"),
                                           (decoder_embed_dim, decoder_heads, "decoder_embed_dim", "decoder_heads")):
            if width % n_heads or width % 2:
                raise UserError(f"{wkey}={width} must be even and a multiple of {hkey}={n_heads}; "
                                f"change {wkey} or {hkey}")
        check_mask_ratio(mask_ratio)
        self.n_chans, self.n_times, self.patch = n_chans, n_times, patch
        self.n_tokens = n_times // patch
        self.embed_dim, self.mask_ratio, self.out_dim = embed_dim, mask_ratio, out_dim or embed_dim
        self.gradient_checkpointing = False  # recompute each block in backward (set by the runtime while training)

        self.patch_embed = nn.Conv1d(n_chans, embed_dim, kernel_size=patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.register_buffer("pos_embed", sincos_table(self.n_tokens, embed_dim), persistent=False)
        self.blocks = nn.ModuleList(Block(embed_dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.out_proj = nn.Linear(embed_dim, out_dim) if out_dim not in (None, embed_dim) else nn.Identity()

        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.register_buffer("decoder_pos_embed", sincos_table(self.n_tokens, decoder_embed_dim), persistent=False)
        self.decoder_blocks = nn.ModuleList(Block(decoder_embed_dim, decoder_heads, mlp_ratio)
                                            for _ in range(decoder_depth))
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_embed_dim, n_chans * patch)
        self._init_weights()

    def _init_weights(self) -> None:
        """MAE's initialisation: Xavier-uniform Linear (and flattened patch) weights, zero biases."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.xavier_uniform_(self.patch_embed.weight.view(self.embed_dim, -1))
        nn.init.zeros_(self.patch_embed.bias)
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)

    # token layout ----------------------------------------------------------------------------

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, T]`` -> ``[B, L, C * patch]``; token ``l`` holds samples ``l*patch:(l+1)*patch`` of every channel."""
        b, c, t = x.shape
        if (c, t) != (self.n_chans, self.n_times):
            raise ValueError(f"expected EEG [B, {self.n_chans}, {self.n_times}], got {list(x.shape)}")
        return x.reshape(b, c, self.n_tokens, self.patch).transpose(1, 2).reshape(b, self.n_tokens, c * self.patch)

    def unpatchify(self, tokens: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`patchify`."""
        b = tokens.shape[0]
        return tokens.view(b, self.n_tokens, self.n_chans, self.patch).transpose(1, 2).reshape(b, self.n_chans, self.n_times)

    def _embed(self, patches: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Embeddings of ``patches`` [B, n, C*patch] at token ``positions`` [B, n] (0-based), CLS first.

        The Conv1d (kernel = stride = patch) is applied as the equivalent Linear, so that only the
        given patches are embedded.
        """
        h = F.linear(patches, self.patch_embed.weight.view(self.embed_dim, -1), self.patch_embed.bias)
        h = h + F.embedding(positions + 1, self.pos_embed)
        cls = (self.cls_token + self.pos_embed[0]).expand(h.shape[0], -1, -1)
        return torch.cat([cls, h], dim=1)

    def _block(self, block: nn.Module, h: torch.Tensor, n_query: int | None = None) -> torch.Tensor:
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, h, n_query, use_reentrant=False)
        return block(h, n_query)

    def _encode(self, h: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            h = self._block(block, h)
        return self.norm(h)

    # public API ------------------------------------------------------------------------------

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder output of every token, no masking, CLS dropped: ``[B, n_times / patch, embed_dim]``."""
        positions = torch.arange(self.n_tokens, device=x.device).expand(x.shape[0], -1)
        return self._encode(self._embed(self.patchify(x), positions))[:, 1:]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of :meth:`tokens`, projected to ``out_dim``: ``[B, out_dim]``."""
        return self.out_proj(self.tokens(x).mean(dim=1))

    def random_mask(self, batch: int, mask_ratio: float, device=None, noise: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-sample random masking: ``(keep_ids [B, K], mask_ids [B, M], mask [B, L] bool, True = masked)``.

        The kept set is the ``K = int(L * (1 - mask_ratio))`` lowest of uniform ``noise`` [B, L] (drawn
        from torch's global RNG when not given; at least one token kept and one masked); both id lists
        are in position order.
        """
        n = self.n_tokens
        n_keep = min(max(int(n * (1 - mask_ratio)), 1), n - 1)
        noise = torch.rand(batch, n, device=device) if noise is None else noise
        order = noise.argsort(dim=1)
        keep_ids = order[:, :n_keep].sort(dim=1).values
        mask_ids = order[:, n_keep:].sort(dim=1).values
        mask = torch.zeros(batch, n, dtype=torch.bool, device=device).scatter_(1, mask_ids, True)
        return keep_ids, mask_ids, mask

    def masked_loss(self, x: torch.Tensor, mask_ratio: float | None = None, noise: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Masked-signal-modelling loss of EEG ``x`` [B, C, T]: ``(loss, pred, mask)``.

        ``mask`` [B, L] is True on hidden tokens; ``pred`` [B, M, C*patch] predicts the hidden tokens
        in position order (``pred.flatten(0, 1)`` lines up with ``patchify(x)[mask]``); ``loss`` is
        :func:`masked_mse` of the two. Masks come from ``noise`` (see :meth:`random_mask`).
        """
        ratio = self.mask_ratio if mask_ratio is None else check_mask_ratio(mask_ratio)
        patches = self.patchify(x)
        b, _, width = patches.shape
        keep_ids, mask_ids, mask = self.random_mask(b, ratio, x.device, noise)
        visible = torch.gather(patches, 1, keep_ids[..., None].expand(-1, -1, width))
        latent = self._encode(self._embed(visible, keep_ids))

        h = torch.cat([self.decoder_embed(latent), self.mask_token.expand(b, mask_ids.shape[1], -1)], dim=1)
        slots = torch.cat([torch.zeros_like(keep_ids[:, :1]), keep_ids + 1, mask_ids + 1], dim=1)
        h = h + F.embedding(slots, self.decoder_pos_embed)
        n_masked, last = mask_ids.shape[1], len(self.decoder_blocks) - 1
        for i, block in enumerate(self.decoder_blocks):
            h = self._block(block, h, n_masked if i == last else None)
        pred = self.decoder_pred(self.decoder_norm(h[:, h.shape[1] - n_masked:]))
        return masked_mse(pred, patches, mask), pred, mask

    def drop_decoder(self) -> None:
        """Free the pretraining decoder (and mask token) once the encoder is handed on; ``masked_loss`` then fails."""
        for name in ("decoder_embed", "mask_token", "decoder_blocks", "decoder_norm", "decoder_pred"):
            if hasattr(self, name):
                delattr(self, name)

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The token encoder's weights (patch embedding, CLS, blocks, final norm): what pretraining
        trains and later stages reuse; neither the decoder nor ``out_proj``."""
        return {k: v for k, v in self.state_dict().items() if k.startswith(ENCODER_KEYS)}

    def load_encoder_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load the token-encoder entries of ``state`` (a full ``state_dict()`` or :meth:`encoder_state_dict`);
        the decoder and ``out_proj`` keep their own weights."""
        state = {k: v for k, v in state.items() if k.startswith(ENCODER_KEYS)}
        missing = sorted(self.encoder_state_dict().keys() - state.keys())
        if missing:
            raise ValueError(f"encoder state lacks {len(missing)} entries, e.g. {missing[0]!r}")
        self.load_state_dict(state, strict=False)


ENCODER_KEYS = ("patch_embed.", "cls_token", "blocks.", "norm.")


def masked_mse(pred: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error of ``pred`` [B, M, P] against the masked tokens of ``tokens`` [B, L, P].

    Only positions where ``mask`` [B, L] is True are read, so visible tokens cannot affect the loss.
    """
    b, _, width = tokens.shape
    return F.mse_loss(pred.float(), tokens[mask].view(b, -1, width))


def check_mask_ratio(mask_ratio: float) -> float:
    if not 0 < mask_ratio < 1:
        raise UserError(f"mask_ratio={mask_ratio}: must lie strictly between 0 and 1 (paper: 0.75); fix mask_ratio")
    return mask_ratio
