"""A small CNN for 8x8 digits and for tests."""

from __future__ import annotations

import torch
from torch import nn

from mixexp.models.base import ClassifierModel


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


def simplecnn(cfg, num_classes: int, in_channels: int, input_size: int) -> SimpleCNN:
    return SimpleCNN(num_classes, in_channels, int(cfg.width))
