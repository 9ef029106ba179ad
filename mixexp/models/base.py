"""The interface every classifier in the zoo shares.

Mixup-style regularizers need the penultimate representation as well as the logits (manifold
mixing, feature-space penalties), so each model splits into a feature extractor and a last linear
layer; ``forward`` is only their composition and is defined here once so that no model can drift
from ``classifier(features(x))``.
"""

from __future__ import annotations

import torch
from torch import nn


class ClassifierModel(nn.Module):
    """Base class of the zoo: ``forward(x) == classifier(features(x))``."""

    # Set by subclasses: the width D of the pooled penultimate vector and the head Linear(D, C).
    feature_dim: int
    classifier: nn.Linear

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the pooled penultimate representation, shape (B, feature_dim)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    @property
    def num_classes(self) -> int:
        return self.classifier.out_features


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars in ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
