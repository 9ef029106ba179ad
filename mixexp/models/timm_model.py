"""Any timm architecture as a zoo model: ``model=timm model.arch=resnet34``.

timm splits its models the way mixup methods need: ``forward_features`` (the feature map),
``forward_head(..., pre_logits=True)`` (pooled, before the classifier) and ``get_classifier()``; the
mixing layers are the modules timm lists in ``feature_info`` (the ends of its stages). Weights are never
downloaded (``pretrained=False``): the zoo trains from scratch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List

import torch
from torch import nn

from mixexp.errors import ConfigError, require
from mixexp.models.base import ClassifierModel, ModelConfig


class TimmModel(ClassifierModel):
    def __init__(self, arch: str, num_classes: int, in_channels: int = 3, **kwargs: Any) -> None:
        super().__init__()
        import timm

        if arch not in timm.list_models():
            raise ConfigError(f"model.arch={arch!r} is not allowed: not a timm architecture (see timm.list_models())")
        self.net = timm.create_model(arch, pretrained=False, num_classes=num_classes, in_chans=in_channels, **kwargs)
        if not isinstance(self.net.get_classifier(), nn.Linear):
            raise ConfigError(f"model.arch={arch!r} is not allowed: its classifier is not one linear layer")
        self.feature_dim = self.net.get_classifier().in_features  # after any pre-logits head (MobileNetV3)

    @property
    def classifier(self) -> nn.Linear:  # the timm head itself, so the state_dict has each weight once
        return self.net.get_classifier()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_head(self.net.forward_features(x), pre_logits=True)

    def mixing_layers(self) -> List[nn.Module]:
        return [self.net.get_submodule(info["module"]) for info in self.net.feature_info]


@dataclass
class TimmConfig(ModelConfig):
    name: str = "timm"
    # a timm architecture name (timm.list_models()), e.g. resnet34, resnet50, convnext_nano
    arch: str = "resnet18"
    # further keyword arguments of timm.create_model (e.g. {drop_rate: 0.1})
    kwargs: Dict[str, Any] = field(default_factory=dict)

    def check(self, cfg) -> None:
        require(bool(self.arch), "model.arch", self.arch, "name a timm architecture")

    def build(self, num_classes: int, in_channels: int, input_size: int) -> TimmModel:
        return TimmModel(self.arch, num_classes, in_channels, **self.kwargs)
