"""Mixup (Zhang et al., 2018): convex combinations of input pairs and of their labels."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mixexp.mixers.base import MixedBatch, PairMixer, PairMixingConfig


def mixup(x: torch.Tensor, partner: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """x~_i = lam_i * x_i + (1 - lam_i) * x_partner(i)."""
    lam = lam.to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
    return torch.lerp(x.index_select(0, partner), x, lam)


class Mixup(PairMixer):
    """lambda ~ Beta(alpha, alpha), partner = a random permutation of the batch."""

    def forward(self, x: torch.Tensor, y=None, model=None) -> MixedBatch:
        lam, partner = self.draw(x)
        return MixedBatch(mixup(x, partner, lam), partner, lam)


@dataclass
class MixupConfig(PairMixingConfig):
    name: str = "mixup"

    def build(self, num_classes: int, feature_dim: int) -> Mixup:
        return Mixup(self.alpha, self.per_sample, self.prob)
