"""The model zoo: every architecture a config can name, behind one builder signature.

``MODELS[name](cfg, num_classes, in_channels, input_size)`` returns a :class:`ClassifierModel`,
whose ``features`` and ``classifier`` regularizers may call separately.
"""

from __future__ import annotations

from typing import Callable, Dict

from mixexp.errors import ConfigError
from mixexp.models.base import ClassifierModel, count_parameters
from mixexp.models.bottleneck import bottleneck
from mixexp.models.densenet import densenet121
from mixexp.models.lenet import lenet
from mixexp.models.preact_resnet import preactresnet18
from mixexp.models.resnet import resnet50
from mixexp.models.simple_cnn import simplecnn
from mixexp.models.wide_resnet import wrn

MODELS: Dict[str, Callable[..., ClassifierModel]] = {
    "preactresnet18": preactresnet18,
    "wrn28_10": wrn,
    "resnet50": resnet50,
    "lenet": lenet,
    "densenet121": densenet121,
    "simplecnn": simplecnn,
    "bottleneck": bottleneck,  # LaMix Fig 8: model.backbone + a 2-unit tanh bottleneck
}


def build_model(cfg, num_classes: int, in_channels: int, input_size: int) -> ClassifierModel:
    """Build the model ``cfg.name`` for images of ``in_channels`` x ``input_size`` x ``input_size``."""
    builder = MODELS.get(cfg.name)
    if builder is None:
        raise ConfigError(
            f"model.name={cfg.name!r} is not allowed: choose one of " + ", ".join(sorted(MODELS))
        )
    return builder(cfg, int(num_classes), int(in_channels), int(input_size))


__all__ = ["MODELS", "ClassifierModel", "build_model", "count_parameters"]
