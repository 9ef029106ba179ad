"""The interface every classifier in the zoo shares, and the keys every model option has.

Mixup-style methods need the penultimate representation as well as the logits (feature-space
penalties such as SEM) and hidden states (Manifold Mixup), so each model splits into a feature
extractor and a last linear layer and names the layers whose outputs may be mixed; ``forward`` is only
the composition and is defined here once so that no model can drift from ``classifier(features(x))``.
A model option is a schema dataclass (its keys, ``check``, ``build``) plus ``conf/model/<name>.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch
from omegaconf import MISSING
from torch import nn


class ClassifierModel(nn.Module):
    """Base class of the zoo: ``forward(x) == classifier(features(x))``."""

    # Set by subclasses: the width D of the pooled penultimate vector and the head Linear(D, C).
    feature_dim: int
    classifier: nn.Linear

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the pooled penultimate representation, shape (B, feature_dim)."""
        raise NotImplementedError

    def mixing_layers(self) -> List[nn.Module]:
        """The modules, in forward order, whose outputs a hidden-state mixer (Manifold Mixup) may mix."""
        raise NotImplementedError(f"{type(self).__name__} names no mixing layers")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    @property
    def num_classes(self) -> int:
        return self.classifier.out_features


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars in ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@dataclass
class ModelConfig:
    name: str = MISSING

    def check(self, cfg) -> None:
        """Range checks of the option's keys (``cfg``: the whole run config)."""

    def build(self, num_classes: int, in_channels: int, input_size: int) -> ClassifierModel:
        raise NotImplementedError
