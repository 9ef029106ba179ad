"""A run's parts from its config: the model and the method (mixer + criterion + regularizers), and the
method's name as the papers spell it."""

from __future__ import annotations

from omegaconf import DictConfig

from mixexp.config import option
from mixexp.losses import LossConfig
from mixexp.method import Method
from mixexp.models import ClassifierModel


def build_model(cfg: DictConfig, num_classes: int, in_channels: int, input_size: int) -> ClassifierModel:
    return option(cfg, "model").build(int(num_classes), int(in_channels), int(input_size))


def build_method(cfg: DictConfig, num_classes: int, feature_dim: int) -> Method:
    """The method of ``cfg``: its mixer decides the step (``build_method``), the loss group the criterion,
    the regularizer group the extra term; ES (mixer.stop_*) switches mixing off from its epoch on."""
    criterion = LossConfig(**cfg.loss).build(num_classes)
    regularizer = option(cfg, "regularizer").build()
    return option(cfg, "mixer").build_method(criterion, [regularizer] if regularizer is not None else [],
                                             num_classes, feature_dim, cfg.trainer.epochs)


def method_label(cfg: DictConfig) -> str:
    """``cfg.label`` (set by every conf/method preset), else the options' own spellings joined:
    ``erm``, ``mixup+es+sem``, ``mixup+ls0.2``, ``lamix_puzzle``, ``lamix-no_original`` ..."""
    if cfg.get("label"):
        return str(cfg.label)
    return option(cfg, "mixer").label() + option(cfg, "regularizer").label() + LossConfig(**cfg.loss).label()
