"""Pre-activation ResNet-18 for small images."""

from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F
from torch import nn

from mixexp.models.base import ClassifierModel


class PreActBlock(nn.Module):
    """Pre-activation basic block (BN-ReLU-conv3x3 twice), He et al. 2016 "Identity Mappings"."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        # A projecting shortcut reads the normalised input, so both branches see the same scale.
        identity = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + identity


class PreActResNet(ClassifierModel):
    """Pre-activation ResNet with a CIFAR stem (3x3 conv, no max-pool), as in the mixup / PuzzleMix CIFAR code."""

    def __init__(
        self,
        num_blocks: List[int],
        num_classes: int,
        in_channels: int = 3,
        widths: tuple = (64, 128, 256, 512),
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        in_planes = widths[0]
        stages = []
        for i, (planes, blocks) in enumerate(zip(widths, num_blocks)):
            stride = 1 if i == 0 else 2
            layers = []
            for s in [stride] + [1] * (blocks - 1):
                layers.append(PreActBlock(in_planes, planes, s))
                in_planes = planes
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        # Pre-activation blocks end on a bare sum; normalise it before pooling.
        self.bn = nn.BatchNorm2d(in_planes)
        self.feature_dim = in_planes
        self.classifier = nn.Linear(in_planes, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.relu(self.bn(out))
        return torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)


def preactresnet18(cfg, num_classes: int, in_channels: int, input_size: int) -> PreActResNet:
    return PreActResNet([2, 2, 2, 2], num_classes, in_channels)
