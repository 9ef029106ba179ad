"""LeNet-5 for small images."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch
import torch.nn.functional as F
from torch import nn

from mixexp.errors import ConfigError
from mixexp.models.base import ClassifierModel, ModelConfig

# Two valid 5x5 convs each followed by a 2x2 max-pool: 16 px is the smallest input that keeps 1 px.
LENET_MIN_INPUT_SIZE = 16


def _lenet_map_size(input_size: int) -> int:
    size = input_size
    for _ in range(2):
        size = (size - 4) // 2
    return size


class LeNet(ClassifierModel):
    """LeNet-5 (LeCun et al. 1998) with ReLU and max-pooling, as used in CIFAR mixup papers."""

    def __init__(self, num_classes: int, in_channels: int = 3, input_size: int = 32) -> None:
        super().__init__()
        if input_size < LENET_MIN_INPUT_SIZE:
            raise ConfigError(
                f"model=lenet needs input_size >= {LENET_MIN_INPUT_SIZE} (got {input_size}): "
                "its two 5x5 convs and 2x2 max-pools leave no pixels; use dataset.resize or another model"
            )
        self.conv1 = nn.Conv2d(in_channels, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        # No global pooling here: the fc layer sees positions, so its width follows the input size.
        s = _lenet_map_size(input_size)
        self.fc1 = nn.Linear(16 * s * s, 120)
        self.fc2 = nn.Linear(120, 84)
        self.feature_dim = 84
        self.classifier = nn.Linear(84, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out = F.max_pool2d(F.relu(self.conv1(x)), 2)
        out = F.max_pool2d(F.relu(self.conv2(out)), 2)
        out = torch.flatten(out, 1)
        return F.relu(self.fc2(F.relu(self.fc1(out))))

    def mixing_layers(self) -> List[nn.Module]:
        return [self.conv1, self.conv2]


@dataclass
class LeNetConfig(ModelConfig):
    name: str = "lenet"

    def build(self, num_classes: int, in_channels: int, input_size: int) -> LeNet:
        return LeNet(num_classes, in_channels, input_size)
