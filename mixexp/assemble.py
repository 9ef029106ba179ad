"""A run's parts from its config: the model and the method (mixer + criterion + regularizers), and the
method's name as the papers spell it."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from mixexp.config import option
from mixexp.errors import ConfigError
from mixexp.losses import LossConfig
from mixexp.method import Method
from mixexp.models import ClassifierModel


def build_model(cfg: DictConfig, num_classes: int, in_channels: int, input_size: int) -> ClassifierModel:
    return option(cfg, "model").build(int(num_classes), int(in_channels), int(input_size))


def check_model_input(model: ClassifierModel, name: str, image_shape: tuple, device: torch.device) -> None:
    """ConfigError naming the model and the image size unless ``model`` can classify images of ``image_shape``
    (C, H, W): two blank images go through it once, in eval mode without gradients (so no BatchNorm
    statistic or random draw changes), before anything trains, rather than the first step failing deep inside."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros((2, *image_shape), device=device))
    except RuntimeError as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConfigError(f"model={name} cannot take {image_shape[1]}x{image_shape[2]} px images "
                          f"({first}): choose a larger dataset.resize (or dataset.image_size), or another model") from None
    finally:
        model.train(was_training)


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
