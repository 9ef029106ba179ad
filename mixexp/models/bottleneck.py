"""LaMix Fig 8's network: a backbone whose pooled features pass a 2-unit tanh bottleneck.

As the paper describes it (Sec. 3.1.8): after the backbone's D features (512 for PreAct ResNet-18),
a fully-connected tanh layer of 2 units (the bottleneck), then fully-connected tanh layers of 100 and
D units, then the classifier:

    e = tanh(W_1 g(x)) in (-1, 1)^2,   features = tanh(W_3 tanh(W_2 e)),   logits = W_l features.

``embedding(x)`` returns e, the 2-D representation the figure draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List

import torch
from torch import nn

from mixexp.errors import require
from mixexp.models.base import ClassifierModel, ModelConfig

BOTTLENECK_UNITS = 2
HIDDEN_UNITS = 100  # the paper's first tanh layer after the bottleneck


class Bottleneck(ClassifierModel):
    """``backbone`` features -> tanh(2) -> tanh(100) -> tanh(D) -> Linear(D, num_classes)."""

    def __init__(self, backbone: ClassifierModel, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        dim = backbone.feature_dim
        self.bottleneck = nn.Sequential(nn.Linear(dim, BOTTLENECK_UNITS), nn.Tanh())
        self.expand = nn.Sequential(nn.Linear(BOTTLENECK_UNITS, HIDDEN_UNITS), nn.Tanh(),
                                    nn.Linear(HIDDEN_UNITS, dim), nn.Tanh())
        self.feature_dim = dim
        self.classifier = nn.Linear(dim, num_classes)
        del self.backbone.classifier  # never used: the backbone only supplies its features

    def embedding(self, x: torch.Tensor) -> torch.Tensor:
        """The 2-D bottleneck representation e, shape (B, 2)."""
        return self.bottleneck(self.backbone.features(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(self.embedding(x))

    def mixing_layers(self) -> List[nn.Module]:
        return self.backbone.mixing_layers()


@dataclass
class BottleneckConfig(ModelConfig):
    """``model=bottleneck``; ``backbone`` is a nested model node (``/model@model.backbone: preactresnet18``)."""

    name: str = "bottleneck"
    backbone: Any = None

    def check(self, cfg) -> None:
        require(self.backbone is not None and self.backbone.name != "bottleneck", "model.backbone",
                getattr(self.backbone, "name", None), "name another model option (e.g. preactresnet18)")
        self.backbone.check(cfg)

    def build(self, num_classes: int, in_channels: int, input_size: int) -> Bottleneck:
        return Bottleneck(self.backbone.build(num_classes, in_channels, input_size), num_classes)
