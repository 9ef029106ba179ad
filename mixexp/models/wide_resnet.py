"""Wide Residual Networks for small images."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch
import torch.nn.functional as F
from torch import nn

from mixexp.errors import ConfigError, require
from mixexp.models.base import ClassifierModel, ModelConfig


class WideBasicBlock(nn.Module):
    """Pre-activation wide basic block with dropout between its convs, Zagoruyko & Komodakis 2016."""

    def __init__(self, in_planes: int, planes: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        identity = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(self.dropout(F.relu(self.bn2(out))))
        return out + identity


class WideResNet(ClassifierModel):
    """Wide ResNet-depth-k (stages 16k, 32k, 64k), Zagoruyko & Komodakis 2016, as in the mixup CIFAR code."""

    def __init__(
        self,
        depth: int,
        widen_factor: int,
        num_classes: int,
        in_channels: int = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0 or depth < 10:
            raise ConfigError(f"model.depth={depth!r} is not allowed: Wide ResNet depth must be 6n+4 (e.g. 16, 22, 28, 40)")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        in_planes = widths[0]
        stages = []
        for planes, stride in zip(widths[1:], (1, 2, 2)):
            blocks = []
            for s in [stride] + [1] * (n - 1):
                blocks.append(WideBasicBlock(in_planes, planes, s, dropout))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.block1, self.block2, self.block3 = stages
        self.bn = nn.BatchNorm2d(in_planes)
        self.feature_dim = in_planes
        self.classifier = nn.Linear(in_planes, num_classes)

        # He init (fan_out) as in the reference WRN code; deep wide stacks train slower from torch's default.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = F.relu(self.bn(out))
        return torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)

    def mixing_layers(self) -> List[nn.Module]:
        return [self.block1, self.block2, self.block3]


@dataclass
class WideResNetConfig(ModelConfig):
    name: str = "wrn28_10"
    depth: int = 28
    widen_factor: int = 10
    dropout: float = 0.0

    def check(self, cfg) -> None:
        require((self.depth - 4) % 6 == 0 and self.depth >= 10, "model.depth", self.depth,
                "Wide ResNet depth must be 6n+4 (e.g. 16, 22, 28, 40)")
        require(self.widen_factor > 0, "model.widen_factor", self.widen_factor, "must be a whole number > 0")
        require(0.0 <= self.dropout < 1.0, "model.dropout", self.dropout, "must be a probability in [0, 1)")

    def build(self, num_classes: int, in_channels: int, input_size: int) -> WideResNet:
        return WideResNet(self.depth, self.widen_factor, num_classes, in_channels, self.dropout)
