"""Mixup (Zhang et al., 2018): convex combinations of input pairs and of their labels."""

from __future__ import annotations

import torch

from mixexp.mixers.base import MixedBatch, Mixer, random_partner, sample_lambda


def mixup(x: torch.Tensor, partner: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """x~_i = lam_i * x_i + (1 - lam_i) * x_partner(i)."""
    lam = lam.to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
    return torch.lerp(x.index_select(0, partner), x, lam)


class Mixup(Mixer):
    """lambda ~ Beta(alpha, alpha), partner = a random permutation of the batch."""

    def __init__(self, alpha: float = 1.0, per_sample: bool = False, prob: float = 1.0) -> None:
        super().__init__()
        self.alpha, self.per_sample, self.prob = alpha, per_sample, prob

    def forward(self, x: torch.Tensor, y=None, model=None) -> MixedBatch:
        lam = sample_lambda(self.alpha, x.shape[0], self.per_sample, self.prob, x.device)
        partner = random_partner(x.shape[0], x.device)
        return MixedBatch(mixup(x, partner, lam), partner, lam)
