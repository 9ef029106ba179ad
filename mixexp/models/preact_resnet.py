"""Pre-activation ResNet-18 for small images, in the three forms the papers' code bases use.

``variant`` (each adds or drops a BatchNorm around the same pre-activation blocks):

- ``preact`` (ours): 3x3 conv stem, blocks, then BN + ReLU before pooling, as a pre-activation
  network should end (He et al. 2016, "Identity Mappings"): 11,172,170 parameters for 10 classes;
- ``puzzlemix``: snu-mllab/PuzzleMix ``models/preresnet.py`` (also the kuangliu/pytorch-cifar
  PreActResNet18): no BN after the stem and none before pooling: 11,171,146 parameters;
- ``fb``: facebookresearch/mixup-cifar10 ``models/resnet.py`` ``ResNet18()``: a conv-BN-ReLU stem, then
  pre-activation blocks whose identity path carries the *activated* input relu(bn1(x)) rather than x
  (``PreActBlock.forward``: ``shortcut = self.shortcut(out)`` with ``self.shortcut = nn.Sequential()`` when
  the shapes match), no BN before pooling: 11,171,274 parameters, the same count as a block adding x.

``stem``: ``cifar`` (3x3 stride-1 first conv) or ``stride2`` (3x3 stride-2 first conv, which PuzzleMix
uses for 64 px Tiny-ImageNet images so that layer4 sees 4x4 maps as on 32 px CIFAR).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch
import torch.nn.functional as F
from torch import nn

from mixexp.errors import one_of
from mixexp.models.base import ClassifierModel, ModelConfig

VARIANTS = ("preact", "puzzlemix", "fb")
STEM_STRIDES = {"cifar": 1, "stride2": 2}


class PreActBlock(nn.Module):
    """Pre-activation basic block (BN-ReLU-conv3x3 twice), He et al. 2016 "Identity Mappings".

    out = conv2(relu(bn2(conv1(a)))) + s, a = relu(bn1(x)), with s = x (``activated_identity=False``,
    He et al. and PuzzleMix) or s = a (fb's ResNet18) when the shapes match, and s = conv1x1(a) when they
    do not (both codes)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, activated_identity: bool = False) -> None:
        super().__init__()
        self.activated_identity = activated_identity
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
        if self.shortcut is not None:
            identity = self.shortcut(out)
        else:
            identity = out if self.activated_identity else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + identity


class PreActResNet(ClassifierModel):
    """Pre-activation ResNet with a CIFAR stem (3x3 conv, no max-pool); see the module docstring for variants."""

    def __init__(self, num_blocks: List[int], num_classes: int, in_channels: int = 3,
                 widths: tuple = (64, 128, 256, 512), variant: str = "preact", stem_stride: int = 1) -> None:
        super().__init__()
        self.variant = variant
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=stem_stride, padding=1, bias=False)
        # fb's ResNet18 normalises the stem's output (conv-BN-ReLU) before the first block.
        self.stem_bn = nn.BatchNorm2d(widths[0]) if variant == "fb" else None
        in_planes = widths[0]
        stages = []
        for i, (planes, blocks) in enumerate(zip(widths, num_blocks)):
            stride = 1 if i == 0 else 2
            layers = []
            for s in [stride] + [1] * (blocks - 1):
                layers.append(PreActBlock(in_planes, planes, s, activated_identity=variant == "fb"))
                in_planes = planes
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        # Pre-activation blocks end on a bare sum; ours normalises it before pooling.
        self.bn = nn.BatchNorm2d(in_planes) if variant == "preact" else None
        self.feature_dim = in_planes
        self.classifier = nn.Linear(in_planes, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        if self.stem_bn is not None:
            out = F.relu(self.stem_bn(out))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        if self.bn is not None:
            out = F.relu(self.bn(out))
        return torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)

    def mixing_layers(self) -> List[nn.Module]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]


@dataclass
class PreActResNet18Config(ModelConfig):
    name: str = "preactresnet18"
    # preact (ours), puzzlemix (PuzzleMix's models/preresnet.py), fb (mixup-cifar10's ResNet18)
    variant: str = "preact"
    # cifar: 3x3 stride-1 first conv; stride2: 3x3 stride-2 (PuzzleMix's Tiny-ImageNet)
    stem: str = "cifar"

    def check(self, cfg) -> None:
        one_of("model.variant", self.variant, VARIANTS)
        one_of("model.stem", self.stem, STEM_STRIDES)

    def build(self, num_classes: int, in_channels: int, input_size: int) -> PreActResNet:
        return PreActResNet([2, 2, 2, 2], num_classes, in_channels, variant=self.variant,
                            stem_stride=STEM_STRIDES[self.stem])
