"""Test-time rescaling of mixup models (Carratino et al., "On Mixup Regularization", JMLR 2022).

Mixup with lambda ~ Beta(alpha, alpha) equals ERM on inputs shrunk towards the data mean by
theta ~ Beta(alpha, alpha) restricted to [1/2, 1], plus zero-mean noise. So at test time

    x' = x_bar + theta_bar (x - x_bar),      z_r = y_bar + (f(x') - y_bar) / theta_bar,

with theta_bar = E[theta] = 1 - I_{1/2}(alpha + 1, alpha), x_bar the per-pixel mean of the (normalised,
un-mixed) training inputs and y_bar the training class frequencies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import torch
from scipy.special import betainc


def theta_bar(alpha: float) -> float:
    """E[theta | theta >= 1/2] for theta ~ Beta(alpha, alpha): 1 - I_{1/2}(alpha + 1, alpha).

    (The mean of Beta(a, a) on [1/2, 1] is 2 * int_{1/2}^1 t p(t) dt = 2 * (1/2) * (1 - I_{1/2}(a + 1, a)),
    using t * Beta(a, a) density = (1/2) * Beta(a + 1, a) density.)
    """
    if alpha <= 0:
        return 1.0  # alpha = 0: no mixing, nothing to undo
    return float(1.0 - betainc(alpha + 1.0, alpha, 0.5))


def rescale_inputs(x: torch.Tensor, x_bar: torch.Tensor, theta: float) -> torch.Tensor:
    """x' = x_bar + theta * (x - x_bar)."""
    return torch.lerp(x_bar.to(x.dtype), x, theta)


def rescale_logits(z: torch.Tensor, y_bar: torch.Tensor, theta: float) -> torch.Tensor:
    """z_r = y_bar + (z - y_bar) / theta."""
    return y_bar + (z - y_bar) / theta


@dataclass
class Rescaling:
    theta: float
    x_bar: torch.Tensor  # (C, H, W), normalised input units
    y_bar: torch.Tensor  # (K,), class frequencies

    @classmethod
    def from_training_set(cls, alpha: float, loader, num_classes: int) -> "Rescaling":
        """x_bar and y_bar from one un-augmented pass over the training set (``loader`` with train=False)."""
        total, count, labels = None, 0, []
        for x, y in loader:
            s = x.double().sum(dim=0)
            total = s if total is None else total + s
            count += x.shape[0]
            labels.append(y)
        y_bar = torch.bincount(torch.cat(labels), minlength=num_classes).double() / count
        return cls(theta_bar(alpha), (total / count).float(), y_bar.float())

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        return rescale_inputs(x, self.x_bar.to(x.device), self.theta)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        return rescale_logits(z, self.y_bar.to(z.device), self.theta)

    @classmethod
    def from_state_dict(cls, state: Dict[str, object]) -> "Rescaling":
        return cls(float(state["theta_bar"]), state["x_bar"], state["y_bar"])

    def state_dict(self) -> Dict[str, object]:
        return {"theta_bar": self.theta, "x_bar": self.x_bar.cpu(), "y_bar": self.y_bar.cpu()}
