"""Bottleneck ResNet-50 from torchvision, with an optional CIFAR stem."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch
import torchvision
from torch import nn

from mixexp.errors import ConfigError, one_of
from mixexp.models.base import ClassifierModel, ModelConfig


# cifar: 3x3 stride-1 conv, no max-pool; imagenet: 7x7 stride-2 conv and max-pool; stride2: 3x3 stride-2, no max-pool
RESNET50_STEMS = ("cifar", "imagenet", "stride2")


class ResNet50(ClassifierModel):
    """torchvision's ResNet-50 (He et al. 2016); the "cifar" stem is the 3x3 stride-1 conv without max-pool of the CIFAR mixup code."""

    def __init__(self, num_classes: int, in_channels: int = 3, stem: str = "cifar") -> None:
        super().__init__()
        if stem not in RESNET50_STEMS:
            raise ConfigError(f"model.stem={stem!r} is not allowed: choose one of {', '.join(RESNET50_STEMS)}")
        # weights=None: never download; the zoo always trains from scratch.
        net = torchvision.models.resnet50(weights=None, num_classes=num_classes)
        if stem in ("cifar", "stride2"):
            # 32 px images would shrink to 1 px before layer4 with the 4x-downsampling ImageNet stem;
            # stride2 halves 64 px inputs once, as PuzzleMix's main.py does at 64 px (Tiny-ImageNet).
            net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=2 if stem == "stride2" else 1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        elif in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        # A replaced conv1 gets the same init torchvision gives its own convs.
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.stem = stem
        self.classifier = net.fc
        self.feature_dim = net.fc.in_features
        # torchvision's forward flattens the pooled map before fc, so an identity fc yields the features.
        net.fc = nn.Identity()
        self.backbone = net

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def mixing_layers(self) -> List[nn.Module]:
        return [self.backbone.layer1, self.backbone.layer2, self.backbone.layer3, self.backbone.layer4]


@dataclass
class ResNet50Config(ModelConfig):
    name: str = "resnet50"
    # cifar, imagenet or stride2 (RESNET50_STEMS)
    stem: str = "cifar"

    def check(self, cfg) -> None:
        one_of("model.stem", self.stem, RESNET50_STEMS)

    def build(self, num_classes: int, in_channels: int, input_size: int) -> ResNet50:
        return ResNet50(num_classes, in_channels, self.stem)
