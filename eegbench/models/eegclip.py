"""EEG-CLIP (arXiv 2503.16531): an EEG encoder and text features projected into one space.

Both sides end in a 3-layer projection head; the loss is CLIP's symmetric cross-entropy over
EEG-text similarities with a learnable scale. ``normalised`` is standard CLIP (L2-normalised
features, ``exp`` of a learnt log-scale); the authors' variant uses raw features and the raw scale.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def projection(in_dim: int, hidden: int, out_dim: int, dropout: float) -> nn.Sequential:
    """Three Linear layers with BatchNorm, ReLU and Dropout between them."""
    def block(a, b):
        return [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*block(in_dim, hidden), *block(hidden, hidden), nn.Linear(hidden, out_dim))


class EEGCLIP(nn.Module):
    """EEG encoder + EEG and text projection heads + the similarity scale.

    ``text_encoder`` is a submodule only when it is tuned; a frozen one stays outside the weights.
    """

    def __init__(self, encoder: nn.Module, eeg_dim: int, text_dim: int, *, dim: int = 64, hidden: int = 128,
                 dropout: float = 0.1, loss: str = "normalised", temperature: float = 0.07,
                 text_encoder: nn.Module | None = None):
        super().__init__()
        self.encoder = encoder
        self.eeg_head = projection(eeg_dim, hidden, dim, dropout)
        self.text_head = projection(text_dim, hidden, dim, dropout)
        self.loss_kind = loss
        start = math.log(1 / temperature) if loss == "normalised" else 1.0
        self.scale = nn.Parameter(torch.tensor(start))
        if text_encoder is not None:
            self.text_encoder = text_encoder

    def embed_eeg(self, eeg: torch.Tensor) -> torch.Tensor:
        return self.eeg_head(self.encoder(eeg))

    def embed_text(self, features: torch.Tensor) -> torch.Tensor:
        """Projected text; ``features`` are the text encoder's pooled outputs."""
        return self.text_head(features)

    def logits(self, eeg_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        if self.loss_kind == "normalised":
            return F.normalize(eeg_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T * self.scale.exp().clamp(max=100)
        return eeg_emb @ text_emb.T * self.scale

    def eeg_encoder(self) -> "EEGCLIPEncoder":
        """The EEG side (encoder + projection into the shared space) as a feature encoder; shares the weights."""
        return EEGCLIPEncoder(self.encoder, self.eeg_head)


class EEGCLIPEncoder(nn.Module):
    """EEG-CLIP's EEG side as a feature encoder: ``[B, channels, times]`` -> the shared space ``[B, out_dim]``.

    Its weights are named as in :class:`EEGCLIP` (``encoder.*``, ``eeg_head.*``), so an EEG-CLIP checkpoint loads
    into it; :meth:`EEGCLIP.eeg_encoder` gives the one a contrastive stage trained.
    """

    def __init__(self, encoder: nn.Module, eeg_head: nn.Sequential):
        super().__init__()
        self.encoder, self.eeg_head = encoder, eeg_head
        self.out_dim = eeg_head[-1].out_features

    def forward(self, eeg: torch.Tensor) -> torch.Tensor:
        return self.eeg_head(self.encoder(eeg))


def eegclip_encoder(n_chans: int, n_times: int, out_dim: int = 64, embed_dim: int = 128, hidden: int = 128,
                    dropout: float = 0.1, **deep4_kwargs) -> EEGCLIPEncoder:
    """Deep4 + EEG-CLIP's projection head (untrained), EEG -> ``[B, out_dim]``: the registered ``eegclip`` encoder."""
    from eegbench.models.deep4 import Deep4Encoder

    return EEGCLIPEncoder(Deep4Encoder(n_chans, n_times, out_dim=embed_dim, **deep4_kwargs),
                          projection(embed_dim, hidden, out_dim, dropout))


def contrastive_loss(logits: torch.Tensor, pair_id: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE where every column with the same ``pair_id`` (windows of one report, trials of one image) is a
    positive."""
    positive = pair_id[:, None] == pair_id[None, :]
    masked = logits.masked_fill(~positive, float("-inf"))
    eeg_to_text = torch.logsumexp(logits, 1) - torch.logsumexp(masked, 1)
    text_to_eeg = torch.logsumexp(logits, 0) - torch.logsumexp(masked, 0)
    return (eeg_to_text.mean() + text_to_eeg.mean()) / 2
