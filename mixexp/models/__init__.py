"""The model zoo: ``MODELS`` maps each ``model=`` option to its schema, whose ``build(num_classes,
in_channels, input_size)`` returns a :class:`ClassifierModel` (``features`` + ``classifier``)."""

from __future__ import annotations

from typing import Dict, Type

from mixexp.models.base import ClassifierModel, ModelConfig, count_parameters
from mixexp.models.bottleneck import BottleneckConfig
from mixexp.models.densenet import DenseNet121Config
from mixexp.models.lenet import LeNetConfig
from mixexp.models.preact_resnet import PreActResNet18Config
from mixexp.models.resnet import ResNet50Config
from mixexp.models.simple_cnn import SimpleCNNConfig
from mixexp.models.timm_model import TimmConfig
from mixexp.models.wide_resnet import WideResNetConfig

MODELS: Dict[str, Type[ModelConfig]] = {
    schema.name: schema
    for schema in (PreActResNet18Config, WideResNetConfig, ResNet50Config, LeNetConfig, DenseNet121Config,
                   SimpleCNNConfig, TimmConfig, BottleneckConfig)
}

__all__ = ["MODELS", "ClassifierModel", "ModelConfig", "count_parameters"]
