"""What every mixer returns, and the lambda sampling they share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from mixexp.losses import mixed_cross_entropy


@dataclass
class MixedBatch:
    """A mixed batch: ``inputs[i]`` blends example i with example ``partner[i]``.

    ``lam[i]`` is the weight of example i's own label, so the mixed target is
    ``lam * y_i + (1 - lam) * y_partner``. An unmixed batch has ``lam == 1`` everywhere.
    """

    inputs: torch.Tensor  # (B, C, H, W)
    partner: torch.Tensor  # int64 (B,)
    lam: torch.Tensor  # float32 (B,)
    # A loss the mixer computed on the way (e.g. the clean loss of a saliency pass), added as is.
    extra_loss: Optional[torch.Tensor] = None

    @classmethod
    def unmixed(cls, x: torch.Tensor) -> "MixedBatch":
        """The batch as it is: each example its own partner, lambda = 1."""
        b = x.shape[0]
        return cls(x, torch.arange(b, device=x.device), torch.ones(b, device=x.device))


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


class Mixer(nn.Module):
    """A mixing method: how a batch is mixed (``forward``) and how its loss is formed (``loss``).

    ``mixer(x, y, model)`` returns a :class:`MixedBatch`; ``y`` and ``model`` are there for methods
    that look at labels or gradients (e.g. saliency-based mixing) and are ignored by the others.
    A mixer is an ``nn.Module`` so that a method with parameters or state (an extra head, a step
    counter) is optimised and checkpointed with the model.
    """

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None, model: Optional[nn.Module] = None) -> MixedBatch:
        raise NotImplementedError

    # Uniform label smoothing of the (mixed) one-hot target; set from ``loss.label_smoothing``.
    label_smoothing: float = 0.0

    def check_input_shape(self, shape: tuple) -> None:
        """Raise a one-line ValueError naming the key if images of ``shape`` (C, H, W) cannot be mixed."""

    def loss(self, logits: torch.Tensor, features: torch.Tensor, y: torch.Tensor, mixed: MixedBatch) -> torch.Tensor:
        """lam * CE(y_i) + (1 - lam) * CE(y_partner), averaged over the batch (label-smoothed if set)."""
        return mixed_cross_entropy(logits, y, mixed.partner, mixed.lam, self.label_smoothing)


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
