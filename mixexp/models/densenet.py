"""DenseNet-BC for small images."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mixexp.errors import require
from mixexp.models.base import ClassifierModel, ModelConfig


class DenseBottleneck(nn.Module):
    """DenseNet-BC layer: BN-ReLU-1x1 conv (4k) then BN-ReLU-3x3 conv (k), output appended to the input, Huang et al. 2017."""

    def __init__(self, in_planes: int, growth_rate: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, 4 * growth_rate, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth_rate)
        self.conv2 = nn.Conv2d(4 * growth_rate, growth_rate, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([x, out], dim=1)


class Transition(nn.Module):
    """DenseNet transition: BN-ReLU-1x1 conv that compresses channels, then 2x2 average pool, Huang et al. 2017."""

    def __init__(self, in_planes: int, out_planes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_planes)
        self.conv = nn.Conv2d(in_planes, out_planes, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)


class DenseNet(ClassifierModel):
    """DenseNet-BC with a CIFAR stem (3x3 stride-1 conv of 2k channels, no max-pool), Huang et al. 2017, as in the mixup CIFAR code."""

    def __init__(
        self,
        block_config: Sequence[int],
        growth_rate: int,
        num_classes: int,
        in_channels: int = 3,
        compression: float = 0.5,
    ) -> None:
        super().__init__()
        planes = 2 * growth_rate
        self.conv1 = nn.Conv2d(in_channels, planes, 3, padding=1, bias=False)
        stages = []
        for i, n_layers in enumerate(block_config):
            layers = []
            for _ in range(n_layers):
                layers.append(DenseBottleneck(planes, growth_rate))
                planes += growth_rate
            if i < len(block_config) - 1:
                out_planes = int(planes * compression)
                layers.append(Transition(planes, out_planes))
                planes = out_planes
            stages.append(nn.Sequential(*layers))
        self.dense = nn.Sequential(*stages)
        self.bn = nn.BatchNorm2d(planes)
        self.feature_dim = planes
        self.classifier = nn.Linear(planes, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dense(self.conv1(x))
        out = F.relu(self.bn(out))
        return torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)

    def mixing_layers(self) -> List[nn.Module]:
        return list(self.dense)


@dataclass
class DenseNet121Config(ModelConfig):
    name: str = "densenet121"
    growth_rate: int = 32

    def check(self, cfg) -> None:
        require(self.growth_rate > 0, "model.growth_rate", self.growth_rate, "must be a whole number > 0")

    def build(self, num_classes: int, in_channels: int, input_size: int) -> DenseNet:
        return DenseNet((6, 12, 24, 16), self.growth_rate, num_classes, in_channels)
