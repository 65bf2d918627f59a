"""One EEG encoder, an image head and a text head: the multitask model (DreamDiffusion + a text head).

The encoder's tokens feed the image head (``models.image_head.ImageHead``, Stable Diffusion
cross-attention), their mean feeds the text head (``models.text_heads``) and, for the EEG<->text
alignment loss, a linear map into CLIP text space. Any head may be absent (single-task variants).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from eegbench.models.text_heads import text_space_infonce


class JointModel(nn.Module):
    """``encoder`` plus optional ``image`` head, ``text`` head and EEG->CLIP-text ``text_align`` map."""

    def __init__(self, encoder: nn.Module, image: nn.Module | None = None, text: nn.Module | None = None,
                 text_align_dim: int | None = None, temperature: float = 0.07):
        super().__init__()
        self.encoder, self.image, self.text = encoder, image, text
        self.text_align = nn.Linear(encoder.embed_dim, text_align_dim) if text_align_dim else None
        self.align_scale = nn.Parameter(torch.tensor(math.log(1 / temperature))) if text_align_dim else None

    def tokens(self, eeg: torch.Tensor) -> torch.Tensor:
        return self.encoder.tokens(eeg)

    @staticmethod
    def features(tokens: torch.Tensor) -> torch.Tensor:
        """Pooled EEG features ``[B, width]``: the tokens' mean."""
        return tokens.mean(1)

    def context(self, eeg: torch.Tensor) -> torch.Tensor:
        """The image head's cross-attention context of EEG ``[B, C, T]``."""
        return self.image.context(self.tokens(eeg))

    def alignment_loss(self, features: torch.Tensor, text_emb: torch.Tensor, pair_id: torch.Tensor,
                       gather=None) -> torch.Tensor:
        """InfoNCE between projected EEG features and unit CLIP text embeddings; trials of one image are positives
        (negatives from the global batch with ``gather``)."""
        return text_space_infonce(self.text_align(features), text_emb, self.align_scale, pair_id, gather)
