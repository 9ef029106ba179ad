"""Test-time rescaling of mixup models (Carratino et al., "On Mixup Regularization", JMLR 2022).

Mixup with lambda ~ Beta(alpha, alpha) equals ERM on inputs shrunk towards the data mean by
theta ~ Beta(alpha, alpha) restricted to [1/2, 1], plus zero-mean noise. So at test time

    x' = x_bar + theta_bar (x - x_bar),      z_r = y_bar + (f(x') - y_bar) / theta_bar,

with theta_bar = E[theta] = 1 - I_{1/2}(alpha + 1, alpha), x_bar the per-pixel mean of the (normalised,
un-mixed) training inputs and y_bar the training class frequencies. ``eval.rescaling_mean`` says which view
of the training images x_bar averages: ``unaugmented`` (as the test set is seen) or ``augmented`` (one pass of
the training pipeline's random crops and flips, as uncertainty-baselines' deterministic.py averages the batches
of its training input pipeline without mixup).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import torch
from scipy.special import betainc

from mixexp.errors import ConfigError

RESCALING_MEANS = ("unaugmented", "augmented")


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
    view: str = "unaugmented"  # which view of the training images x_bar averages (RESCALING_MEANS)

    @classmethod
    def from_training_set(cls, alpha: float, loader, num_classes: int, view: str = "unaugmented") -> "Rescaling":
        """x_bar and y_bar from one pass of ``loader`` over the training set, whose images it shows as ``view``."""
        total, count, labels = None, 0, []
        for x, y in loader:
            s = x.double().sum(dim=0)
            total = s if total is None else total + s
            count += x.shape[0]
            labels.append(y)
        y_bar = torch.bincount(torch.cat(labels), minlength=num_classes).double() / count
        return cls(theta_bar(alpha), (total / count).float(), y_bar.float(), view)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        return rescale_inputs(x, self.x_bar.to(x.device), self.theta)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        return rescale_logits(z, self.y_bar.to(z.device), self.theta)

    @staticmethod
    def state_problem(state) -> Optional[str]:
        """Why ``state`` is not what :meth:`state_dict` returns (None: it is): theta_bar in [1/2, 1], x_bar and
        y_bar finite float tensors of one image's shape and of one value per class."""
        if not isinstance(state, dict):
            return f"it is a {type(state).__name__}, not a dict"
        theta = state.get("theta_bar")
        if not isinstance(theta, float) or not 0.5 <= theta <= 1.0:
            return f"theta_bar is {theta!r}, expected a number in [0.5, 1]"
        for key, dims in (("x_bar", 3), ("y_bar", 1)):
            t = state.get(key)
            if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.dim() != dims or not torch.isfinite(t).all():
                return f"{key} is not a finite float tensor of {dims} dimension(s)"
        if state.get("x_bar_view", "unaugmented") not in RESCALING_MEANS:
            return f"x_bar_view is {state.get('x_bar_view')!r}, expected one of {', '.join(RESCALING_MEANS)}"
        return None

    @classmethod
    def from_state_dict(cls, state: Dict[str, object], image_shape: Optional[tuple] = None,
                        num_classes: Optional[int] = None) -> "Rescaling":
        """The statistics :meth:`state_dict` stored; ConfigError when they are damaged, or (given ``image_shape``
        and ``num_classes``) when they are not of this run's images and classes."""
        problem = Rescaling.state_problem(state)
        if problem is None and image_shape is not None and tuple(state["x_bar"].shape) != tuple(image_shape):
            problem = f"x_bar has shape {tuple(state['x_bar'].shape)}, the images {tuple(image_shape)}"
        if problem is None and num_classes is not None and tuple(state["y_bar"].shape) != (num_classes,):
            problem = f"y_bar has {state['y_bar'].numel()} values for {num_classes} classes"
        if problem is not None:
            raise ConfigError(f"the test-time rescaling statistics cannot be used: {problem}")
        # checkpoints written before eval.rescaling_mean existed hold the un-augmented mean
        return cls(float(state["theta_bar"]), state["x_bar"], state["y_bar"], str(state.get("x_bar_view", "unaugmented")))

    def state_dict(self) -> Dict[str, object]:
        return {"theta_bar": self.theta, "x_bar": self.x_bar.cpu(), "y_bar": self.y_bar.cpu(), "x_bar_view": self.view}


def stored_or_training_statistics(cfg, stored, data, device) -> Rescaling:
    """The rescaling a checkpoint holds (``stored``: its state dict, or None) when it averaged the view that
    ``cfg.eval.rescaling_mean`` asks for, else :func:`training_statistics`."""
    if stored is not None and (not isinstance(stored, dict) or stored.get("x_bar_view", "unaugmented")
                               == cfg.eval.rescaling_mean):
        return Rescaling.from_state_dict(stored, data.image_shape, data.num_classes)  # refuses damaged statistics
    return training_statistics(cfg, data, device)


def training_statistics(cfg, data, device) -> Rescaling:
    """The rescaling of a run of ``cfg`` trained on ``data`` (a :class:`~mixexp.data.Dataset`): x_bar over the
    view ``cfg.eval.rescaling_mean`` of the training images, y_bar their class frequencies, in a forked RNG so
    that the run's own random stream (its initial weights and batches) is the same with or without it."""
    from mixexp.data import build_loader

    augmented = cfg.eval.rescaling_mean == "augmented"
    augment = dict(crop_padding=cfg.dataset.crop_padding, flip=cfg.dataset.flip, drop_last=False) if augmented else {}
    devices = [device] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        loader = build_loader(data.train, cfg.trainer.eval_batch_size, train=augmented, device=device,
                              mean=data.mean, std=data.std, **augment)
        return Rescaling.from_training_set(cfg.mixer.alpha, loader, data.num_classes, cfg.eval.rescaling_mean)
