"""Semantic equivariance (SEM, arXiv 2308.06451): mixing inputs should mix representations alike."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mixexp.errors import FINITE, finite, one_of, require
from mixexp.method import MixedBatch
from mixexp.regularizers.base import RegularizerConfig

DISTANCES = ("mse", "cosine", "nmse")


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
    raise ValueError(f"regularizer.distance={kind!r} is not allowed: choose one of {', '.join(sorted(DISTANCES))}")


def equivariance_target(clean_features: torch.Tensor, partner: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """lam_i * g(x_i) + (1 - lam_i) * g(x_partner(i)), from one clean forward pass, permuted."""
    return torch.lerp(clean_features[partner], clean_features, lam.to(clean_features.dtype)[:, None])


@contextlib.contextmanager
def frozen_bn_statistics(model: nn.Module):
    """BatchNorm layers normalise with the batch's statistics as usual but leave their running averages
    untouched (momentum 0 makes the running update r <- (1 - 0) r + 0 * batch a no-op)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(norms, saved):
            m.momentum = momentum
            m.num_batches_tracked.copy_(tracked)


class SemanticEquivarianceLoss(nn.Module):
    """gamma * D( g(x~), lam * g(x_i) + (1 - lam) * g(x_j) ), g = ``model.features``.

    ``lam`` is the mixer's per-example lambda: for CutMix the exact kept share of the image. The
    clean batch costs one extra forward pass; g(x_j) is that pass permuted by the partner index.
    With ``detach_target`` (the default) the target is a constant for the step, so only g(x~) is pulled
    towards it and the clean pass needs no backward; otherwise gradients flow through both passes.
    ``update_bn_stats=True`` (the default) makes the clean pass a plain training-mode forward pass, which
    updates BatchNorm's running statistics as any forward pass does (SEM's Algorithm 1 computes g(x_i) and
    g(x_j) with the network being trained; the paper says no more); ``False`` keeps them those of the mixed
    batches alone, as in plain mixup training.
    """

    def __init__(self, gamma: float = 1.0, distance: str = "mse", detach_target: bool = True,
                 update_bn_stats: bool = True) -> None:
        super().__init__()
        self.gamma, self.distance, self.detach_target = gamma, distance, detach_target
        self.update_bn_stats = update_bn_stats

    def forward(self, model: nn.Module, x: torch.Tensor, mixed: MixedBatch, mixed_features: torch.Tensor) -> torch.Tensor:
        # A detached target needs no graph: the clean pass then costs a forward only.
        bn = contextlib.nullcontext() if self.update_bn_stats else frozen_bn_statistics(model)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.detach_target), bn:
            target = equivariance_target(model.features(x), mixed.partner, mixed.lam)
        return self.gamma * feature_distance(mixed_features.float(), target.float(), self.distance)


@dataclass
class SEMConfig(RegularizerConfig):
    """``regularizer=sem``. The surviving paper text gives neither D, gamma nor whether the target is
    detached; the defaults are our choices (conf/regularizer/sem.yaml and the reports say so)."""

    name: str = "sem"
    gamma: float = 1.0
    # D: "mse" (mean squared error over feature dimensions), "cosine" (1 - cosine similarity),
    # "nmse" (mean squared error between L2-normalised vectors)
    distance: str = "mse"
    # Stop the gradient through the target lam * g(x_i) + (1 - lam) * g(x_j) (the clean pass is then
    # forward-only: about 1.3x a mixup step instead of about 2x)
    detach_target: bool = True
    # The clean pass updates BatchNorm's running statistics, as a plain forward pass in training mode does
    # (false: only the mixed pass does, as in mixup training)
    update_bn_stats: bool = True

    def check(self, cfg, mixer) -> None:
        require(finite(self.gamma), "regularizer.gamma", self.gamma, FINITE)
        require(self.gamma >= 0, "regularizer.gamma", self.gamma, "must be >= 0")
        one_of("regularizer.distance", self.distance, DISTANCES)
        require(getattr(mixer, "lam_is_input_ratio", False), "regularizer", self.name,
                f"sem needs a mixer whose lambda is the input mixing ratio (mixup, cutmix, puzzlemix, ...), "
                f"not mixer={mixer.name}")

    def build(self) -> SemanticEquivarianceLoss:
        return SemanticEquivarianceLoss(self.gamma, self.distance, self.detach_target, self.update_bn_stats)
