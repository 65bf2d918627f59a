"""Heads that map encoder features to task outputs."""

from __future__ import annotations

from torch import nn


class LinearClassifier(nn.Module):
    """A linear layer from ``in_dim`` encoder features to ``n_classes`` logits."""

    role, needs = "classifier", ()

    def __init__(self, in_dim: int, n_classes: int):
        super().__init__()
        self.linear = nn.Linear(in_dim, n_classes)

    def forward(self, features):
        return self.linear(features)
