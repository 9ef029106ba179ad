"""Semantic equivariance (SEM, arXiv 2308.06451): mixing inputs should mix representations alike."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mixexp.mixers.base import MixedBatch


def feature_distance(a: torch.Tensor, b: torch.Tensor, kind: str) -> torch.Tensor:
    """D(a, b) averaged over the batch; a, b are (B, D).

    - ``mse``: mean_d (a_d - b_d)^2
    - ``cosine``: 1 - cos(a, b)
    - ``nmse``: mean_d (a_d/|a| - b_d/|b|)^2, i.e. MSE between L2-normalised vectors (= (2 - 2 cos) / D)
    """
    if kind == "mse":
        return (a - b).pow(2).mean()
    if kind == "cosine":
        return (1.0 - F.cosine_similarity(a, b, dim=1)).mean()
    if kind == "nmse":
        return (F.normalize(a, dim=1) - F.normalize(b, dim=1)).pow(2).mean()
    raise ValueError(f"regularizer.distance={kind!r} is not allowed: choose one of cosine, mse, nmse")


def equivariance_target(clean_features: torch.Tensor, partner: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """lam_i * g(x_i) + (1 - lam_i) * g(x_partner(i)), from one clean forward pass, permuted."""
    return torch.lerp(clean_features[partner], clean_features, lam.to(clean_features.dtype)[:, None])


class SemanticEquivarianceLoss(nn.Module):
    """gamma * D( g(x~), lam * g(x_i) + (1 - lam) * g(x_j) ), g = ``model.features``.

    ``lam`` is the mixer's per-example lambda: for CutMix the exact kept share of the image. The
    clean batch costs one extra forward pass; g(x_j) is that pass permuted by the partner index.
    With ``detach_target`` (the default) the target is a constant for the step, so only g(x~) is pulled
    towards it and the clean pass needs no backward; otherwise gradients flow through both passes.
    """

    def __init__(self, gamma: float = 1.0, distance: str = "mse", detach_target: bool = True) -> None:
        super().__init__()
        self.gamma, self.distance, self.detach_target = gamma, distance, detach_target

    def forward(self, model: nn.Module, x: torch.Tensor, mixed: MixedBatch, mixed_features: torch.Tensor) -> torch.Tensor:
        # A detached target needs no graph: the clean pass then costs a forward only.
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.detach_target):
            target = equivariance_target(model.features(x), mixed.partner, mixed.lam)
        return self.gamma * feature_distance(mixed_features.float(), target.float(), self.distance)
