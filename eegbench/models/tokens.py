"""Any feature encoder as a token encoder: its pooled vector as one token.

The image head's conditioner and the joint model read tokens ``[B, n_tokens, width]`` (the MAE-ViT
gives one per patch). :func:`as_token_encoder` leaves a token encoder as it is and wraps a feature
encoder (EEG -> ``[B, out_dim]``, e.g. Deep4 or the EEG-CLIP encoder) in :class:`PooledTokens`, so
every registered encoder can condition Stable Diffusion or feed a text head.
"""

from __future__ import annotations

import torch
from torch import nn


class PooledTokens(nn.Module):
    """``encoder``'s features ``[B, out_dim]`` as a single token ``[B, 1, out_dim]``."""

    n_tokens = 1

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.embed_dim = encoder.out_dim

    def forward(self, eeg: torch.Tensor) -> torch.Tensor:
        return self.encoder(eeg)

    def tokens(self, eeg: torch.Tensor) -> torch.Tensor:
        return self.encoder(eeg)[:, None, :]


def as_token_encoder(encoder: nn.Module) -> nn.Module:
    """``encoder`` itself when it gives tokens, else its pooled features as one token."""
    return encoder if hasattr(encoder, "tokens") else PooledTokens(encoder)


def unpooled(encoder: nn.Module) -> nn.Module:
    """The encoder :func:`as_token_encoder` was given: inside a :class:`PooledTokens`, else ``encoder`` itself."""
    return encoder.encoder if isinstance(encoder, PooledTokens) else encoder
