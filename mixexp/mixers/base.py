"""What every mixer returns, the lambda sampling they share, and the config keys they share.

A mixer option is a config schema (a dataclass: its fields are the option's keys and defaults, its
``check`` holds the range checks, its ``build`` makes the :class:`Mixer`) plus ``conf/mixer/<name>.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
from omegaconf import MISSING
from torch import nn

from mixexp.errors import FINITE, finite, require
from mixexp.method import Criterion, MixedBatch, Method


def sample_lambda(alpha: float, batch_size: int, per_sample: bool, prob: float, device) -> torch.Tensor:
    """lambda ~ Beta(alpha, alpha), one per batch (broadcast to (B,)) or one per example.

    ``alpha == 0`` means no mixing (lambda = 1), as in the reference mixup code. With ``prob < 1``
    a batch (or an example, when ``per_sample``) is left unmixed with probability 1 - prob; this is
    done with ``torch.where`` so the decision never leaves the device.
    """
    n = batch_size if per_sample else 1
    if alpha <= 0:
        return torch.ones(batch_size, device=device)
    concentration = torch.full((n,), float(alpha), device=device)
    # validate_args=False: the argument check would wait for the device on every step
    lam = torch.distributions.Beta(concentration, concentration, validate_args=False).sample()
    if prob < 1.0:
        lam = torch.where(torch.rand(n, device=device) < prob, lam, torch.ones_like(lam))
    return lam.expand(batch_size).contiguous() if n == 1 else lam


def random_partner(batch_size: int, device) -> torch.Tensor:
    """The partner of example i is ``perm[i]`` for a uniform random permutation of the batch."""
    return torch.randperm(batch_size, device=device)


@dataclass
class MixerConfig:
    """The keys of every mixer option."""

    name: str = MISSING
    # lambda ~ Beta(alpha, alpha); alpha = 0 turns mixing off (lambda = 1). Every mixer has the key (``none``
    # ignores it) so that a recipe can set one alpha for all the methods of a table.
    alpha: float = 1.0
    # True where lambda is the share of example i in the mixed input (what SEM's target needs)
    lam_is_input_ratio: ClassVar[bool] = False

    def label(self) -> str:
        """The mixer's part of the method's name as the papers spell it (``none`` is ``erm``)."""
        return self.name

    def check(self, cfg) -> None:
        """Range checks; ``cfg`` is the whole run config (some limits depend on trainer.epochs)."""
        require(finite(self.alpha), "mixer.alpha", self.alpha, FINITE)
        require(self.alpha >= 0, "mixer.alpha", self.alpha, "must be >= 0 (0 turns mixing off)")

    def build(self, num_classes: int, feature_dim: int) -> "Mixer":
        raise NotImplementedError

    def stop_epoch_for(self, epochs: int) -> Optional[int]:
        """ES: the first epoch trained without mixing (None: mixing never stops)."""
        return None

    def build_method(self, criterion: Criterion, regularizers, num_classes: int, feature_dim: int,
                     epochs: int) -> Method:
        """The method this mixer trains with: by default mix, one forward pass, ``criterion``."""
        return Method(self.build(num_classes, feature_dim), criterion, regularizers, self.stop_epoch_for(epochs))


@dataclass
class MixingConfig(MixerConfig):
    """The keys of every option that mixes: ES."""

    # ES: stop mixing (and every term that needs a mixed batch) for the last part of training and
    # train plain ERM from epoch stop_epoch on, or from round(stop_fraction * epochs). null: never.
    stop_fraction: Optional[float] = None
    stop_epoch: Optional[int] = None

    def label(self) -> str:
        return self.name + ("+es" if self.stop_epoch is not None or self.stop_fraction is not None else "")

    def check(self, cfg) -> None:
        super().check(cfg)
        key, epochs = "mixer", cfg.trainer.epochs
        require(self.stop_fraction is None or 0.0 < self.stop_fraction <= 1.0, f"{key}.stop_fraction",
                self.stop_fraction, "must lie in (0, 1] or be null")
        require(self.stop_epoch is None or 0 <= self.stop_epoch <= epochs, f"{key}.stop_epoch", self.stop_epoch,
                f"must lie in [0, trainer.epochs={epochs}] or be null")
        require(self.stop_epoch is None or self.stop_fraction is None, f"{key}.stop_epoch", self.stop_epoch,
                "set either mixer.stop_epoch or mixer.stop_fraction, not both")

    def stop_epoch_for(self, epochs: int) -> Optional[int]:
        if self.stop_epoch is not None:
            return int(self.stop_epoch)
        if self.stop_fraction is not None:
            return int(round(self.stop_fraction * epochs))
        return None


@dataclass
class PairMixingConfig(MixingConfig):
    """Random pairs: one lambda per batch (as the reference codes) or per example, applied with ``prob``."""

    lam_is_input_ratio: ClassVar[bool] = True
    per_sample: bool = False
    # Probability that a batch is mixed at all (CutMix's "cutmix_prob").
    prob: float = 1.0

    def check(self, cfg) -> None:
        super().check(cfg)
        require(0.0 <= self.prob <= 1.0, "mixer.prob", self.prob, "must be a probability in [0, 1]")


class Mixer(nn.Module):
    """A mixing method: how a batch is mixed (``forward``) and how its loss is formed (``loss``).

    ``mixer(x, y, model)`` returns a :class:`MixedBatch`; ``y`` and ``model`` are there for methods
    that look at labels or gradients (e.g. saliency-based mixing) and are ignored by the others.
    A mixer is an ``nn.Module`` so that a method with parameters or state (an extra head, a step
    counter) is optimised and checkpointed with the model.
    """

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None, model: Optional[nn.Module] = None) -> MixedBatch:
        raise NotImplementedError

    def check_input_shape(self, shape: tuple) -> None:
        """Raise a one-line ValueError naming the key if images of ``shape`` (C, H, W) cannot be mixed."""


class PairMixer(Mixer):
    """A mixer of random pairs: lambda ~ Beta(alpha, alpha) (per batch, or per example), the partner of
    example i a uniform random permutation of the batch, and a batch left unmixed with prob 1 - prob."""

    def __init__(self, alpha: float = 1.0, per_sample: bool = False, prob: float = 1.0) -> None:
        super().__init__()
        self.alpha, self.per_sample, self.prob = alpha, per_sample, prob

    def draw(self, x: torch.Tensor) -> tuple:
        """(lambda (B,), partner (B,)) for the batch ``x``."""
        lam = sample_lambda(self.alpha, x.shape[0], self.per_sample, self.prob, x.device)
        return lam, random_partner(x.shape[0], x.device)


class NoMixing(Mixer):
    """ERM: the batch is returned untouched with lambda = 1 and each example its own partner."""

    def forward(self, x: torch.Tensor, y=None, model=None) -> MixedBatch:
        return MixedBatch.unmixed(x)


@dataclass
class NoMixingConfig(MixerConfig):
    """``mixer=none``: ERM."""

    name: str = "none"

    def label(self) -> str:
        return "erm"

    def build(self, num_classes: int, feature_dim: int) -> Mixer:
        return NoMixing()
