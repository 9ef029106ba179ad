"""Mixup (Zhang et al., 2018): convex combinations of input pairs and of their labels."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mixexp.errors import one_of
from mixexp.mixers.base import MixedBatch, PairMixer, PairMixingConfig

# Who example i is mixed with: a uniform random permutation of the batch (facebookresearch/mixup-cifar10
# train.py mixup_data), or the batch reversed, i <-> B-1-i (google/uncertainty-baselines utils.py ``mixup``
# with use_random_shuffling=False, its default).
PAIRINGS = ("random", "reversed")


def mixup(x: torch.Tensor, partner: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """x~_i = lam_i * x_i + (1 - lam_i) * x_partner(i)."""
    lam = lam.to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
    return torch.lerp(x.index_select(0, partner), x, lam)


class Mixup(PairMixer):
    """lambda ~ Beta(alpha, alpha), or max(lambda, 1 - lambda) when ``truncated`` (lambda then follows Beta(alpha,
    alpha) restricted to [1/2, 1]: each example keeps the larger share); the partner from ``pairing``."""

    def __init__(self, alpha: float = 1.0, per_sample: bool = False, prob: float = 1.0, pairing: str = "random",
                 truncated: bool = False) -> None:
        super().__init__(alpha, per_sample, prob)
        self.pairing, self.truncated = pairing, truncated

    def forward(self, x: torch.Tensor, y=None, model=None) -> MixedBatch:
        lam, partner = self.draw(x)
        if self.truncated:
            lam = torch.maximum(lam, 1.0 - lam)
        if self.pairing == "reversed":
            partner = torch.arange(x.shape[0] - 1, -1, -1, device=x.device)
        return MixedBatch(mixup(x, partner, lam), partner, lam)


@dataclass
class MixupConfig(PairMixingConfig):
    name: str = "mixup"
    # random (a permutation of the batch) or reversed (i <-> B-1-i): PAIRINGS
    pairing: str = "random"
    # lambda = max(lambda, 1 - lambda) (uncertainty-baselines' use_truncated_beta, its default)
    truncated: bool = False

    def check(self, cfg) -> None:
        super().check(cfg)
        one_of("mixer.pairing", self.pairing, PAIRINGS)

    def build(self, num_classes: int, feature_dim: int) -> Mixup:
        return Mixup(self.alpha, self.per_sample, self.prob, self.pairing, self.truncated)
