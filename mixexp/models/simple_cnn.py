"""A small CNN for 8x8 digits and for tests."""

from __future__ import annotations

import torch

from dataclasses import dataclass
from typing import List

from torch import nn

from mixexp.errors import require
from mixexp.models.base import ClassifierModel, ModelConfig


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    # bias=False: the BatchNorm that follows has its own shift.
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SimpleCNN(ClassifierModel):
    """Three conv-BN-ReLU layers (w, 2w, 4w channels) with one max-pool; this project's own model for fast CPU runs."""

    def __init__(self, num_classes: int, in_channels: int = 1, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn_relu(in_channels, width),
            _conv_bn_relu(width, 2 * width),
            nn.MaxPool2d(2),
            _conv_bn_relu(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(1),
        )
        self.feature_dim = 4 * width
        self.classifier = nn.Linear(4 * width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def mixing_layers(self) -> List[nn.Module]:
        return [self.body[0], self.body[1], self.body[3]]


@dataclass
class SimpleCNNConfig(ModelConfig):
    name: str = "simplecnn"
    # channels of the first layer (then 2x and 4x)
    width: int = 32

    def check(self, cfg) -> None:
        require(self.width > 0, "model.width", self.width, "must be a whole number > 0")

    def build(self, num_classes: int, in_channels: int, input_size: int) -> SimpleCNN:
        return SimpleCNN(num_classes, in_channels, self.width)
