"""LaMix, "Bypassing the Random Input Mixing in Mixup" (ICLR 2021 submission).

The input pair is always averaged, x~ = 0.5 x_i + 0.5 x_j (or mixed by PuzzleMix at lambda = 0.5), and
the randomness moves to the label: for S = f(x~) and prediction softmax(W_l S),

    target = beta * (lam y_i + (1 - lam) y_j) + (1 - beta) * p,   p = softmax(sigmoid(W_t S)),

with lam drawn afresh per pair and W_t an extra head of W_l's shape. p is not detached, so W_t learns
through this loss. Mini-batches alternate: original inputs (target beta y_i + (1 - beta) p), then mixed.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from mixexp.losses import soft_cross_entropy
from mixexp.mixers.base import MixedBatch, Mixer, random_partner, sample_lambda
from mixexp.mixers.mixup import mixup


def global_soft_label(head: nn.Linear, features: torch.Tensor) -> torch.Tensor:
    """p = softmax(sigmoid(W_t S))."""
    return torch.softmax(torch.sigmoid(head(features).float()), dim=1)


def lamix_target(y: torch.Tensor, partner: torch.Tensor, lam: torch.Tensor, global_label: Optional[torch.Tensor],
                 beta: float, num_classes: int) -> torch.Tensor:
    """beta * (lam y_i + (1 - lam) y_j) + (1 - beta) * p; the local label alone when p is None."""
    one_hot = F.one_hot(y, num_classes).float()
    local = torch.lerp(one_hot[partner], one_hot, lam.float()[:, None])
    return local if global_label is None else beta * local + (1.0 - beta) * global_label


class LaMix(Mixer):
    """Fixed input average, random label ratio lam ~ Beta(alpha, alpha) per pair (alpha=1: uniform)."""

    def __init__(self, feature_dim: int, num_classes: int, alpha: float = 1.0, beta: float = 0.5,
                 original_batches: bool = True, global_label: bool = True,
                 mix_inputs: Optional[Callable[..., torch.Tensor]] = None) -> None:
        super().__init__()
        self.num_classes, self.alpha, self.beta = num_classes, alpha, beta
        self.original_batches, self.use_global_label = original_batches, global_label
        # W_t, shaped like the model's classifier W_l. Kept even without the global label so that
        # checkpoints have one layout; it then gets no gradient.
        self.head = nn.Linear(feature_dim, num_classes)
        # (x, y, model, partner) -> mixed inputs at ratio 0.5; default the pixel-wise average.
        self.mix_inputs = mix_inputs or (lambda x, y, model, partner: mixup(x, partner, torch.full_like(y, 0.5, dtype=x.dtype)))
        self.steps = 0  # host-side counter that decides original vs mixed; checkpointed as extra state

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None, model=None) -> MixedBatch:
        b = x.shape[0]
        original = self.original_batches and self.steps % 2 == 0
        self.steps += 1
        if original:
            return MixedBatch.unmixed(x)
        partner = random_partner(b, x.device)
        lam = sample_lambda(self.alpha, b, per_sample=True, prob=1.0, device=x.device)
        return MixedBatch(self.mix_inputs(x, y, model, partner), partner, lam)

    def loss(self, logits: torch.Tensor, features: torch.Tensor, y: torch.Tensor, mixed: MixedBatch) -> torch.Tensor:
        p = global_soft_label(self.head, features) if self.use_global_label else None
        return soft_cross_entropy(logits, lamix_target(y, mixed.partner, mixed.lam, p, self.beta, self.num_classes))

    def get_extra_state(self) -> Any:
        return {"steps": self.steps}

    def set_extra_state(self, state: Any) -> None:
        self.steps = int(state["steps"])
