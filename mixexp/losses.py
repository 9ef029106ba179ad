"""Losses on mixed batches, and the criterion a method trains with (``loss`` config group)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mixexp.errors import one_of, require



def mixed_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, partner: torch.Tensor, lam: torch.Tensor,
                        label_smoothing: float = 0.0) -> torch.Tensor:
    """mean_i [ lam_i * CE(z_i, y_i) + (1 - lam_i) * CE(z_i, y_partner(i)) ], optionally smoothed.

    Equal to the cross-entropy against the mixed one-hot target lam*y_i + (1-lam)*y_j, since CE is
    linear in the target. With uniform label smoothing eps the target becomes
    (1 - eps) * (mixed one-hot) + eps / K, i.e. the loss (1 - eps) * mixed CE + eps * mean_k(-log p_k).
    With lam = 1 and eps = 0 it is the plain cross-entropy.
    """
    logp = F.log_softmax(logits.float(), dim=1)
    own = logp.gather(1, targets[:, None]).squeeze(1)
    other = logp.gather(1, targets[partner][:, None]).squeeze(1)
    loss = -(lam * own + (1.0 - lam) * other).mean()
    if label_smoothing:
        loss = (1.0 - label_smoothing) * loss - label_smoothing * logp.mean()
    return loss


def mixed_target(targets: torch.Tensor, partner: torch.Tensor, lam: torch.Tensor, num_classes: int,
                 label_smoothing: float = 0.0) -> torch.Tensor:
    """The soft target (1 - eps) * (lam * onehot(y_i) + (1 - lam) * onehot(y_partner(i))) + eps / K, (B, K)."""
    one_hot = F.one_hot(targets, num_classes).float()
    target = torch.lerp(one_hot.index_select(0, partner), one_hot, lam.float()[:, None])
    return target * (1.0 - label_smoothing) + label_smoothing / num_classes if label_smoothing else target


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean_i -sum_k target_ik log softmax(z_i)_k, for any soft target whose rows sum to 1."""
    return -(target * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()


def bce_on_softmax(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean_{i,k} -[t_ik log p_ik + (1 - t_ik) log(1 - p_ik)], p = softmax(z): binary cross-entropy on the
    softmax outputs, averaged over batch and classes, as PuzzleMix's official ``main.py`` trains every method
    (``bce_loss(softmax(output), reweighted_target)`` with ``nn.BCELoss()``)."""
    p = torch.softmax(logits.float(), dim=1)
    return F.binary_cross_entropy(p, target.float())


# loss.form -> the loss of logits against a soft target whose rows sum to 1. Every method's target goes
# through it: the mixed one-hot of mixup/CutMix/PuzzleMix and LaMix's target alike.
SOFT_TARGET_LOSSES = {"ce": soft_cross_entropy, "bce_softmax": bce_on_softmax}


def mixed_correct(logits: torch.Tensor, targets: torch.Tensor, partner: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Training accuracy on a mixed batch, summed: lam_i [pred = y_i] + (1 - lam_i) [pred = y_j]."""
    pred = logits.argmax(dim=1)
    return (lam * (pred == targets) + (1.0 - lam) * (pred == targets[partner])).sum()


class MixedCriterion:
    """The loss of a (mixed) batch against lam * y_i + (1 - lam) * y_partner, label-smoothed by ``eps``.

    ``form="ce"``: cross-entropy (:func:`mixed_cross_entropy`); ``form="bce_softmax"``: PuzzleMix's
    binary cross-entropy on softmax outputs (:func:`bce_on_softmax`).
    """

    def __init__(self, num_classes: int, form: str = "ce", label_smoothing: float = 0.0) -> None:
        self.num_classes, self.form, self.label_smoothing = num_classes, form, label_smoothing

    def __call__(self, logits: torch.Tensor, features: torch.Tensor, y: torch.Tensor, mixed) -> torch.Tensor:
        if self.form == "ce":  # equal to the CE against the mixed target, without forming the (B, K) target
            return mixed_cross_entropy(logits, y, mixed.partner, mixed.lam, self.label_smoothing)
        target = mixed_target(y, mixed.partner, mixed.lam, self.num_classes, self.label_smoothing)
        return SOFT_TARGET_LOSSES[self.form](logits, target)


@dataclass
class LossConfig:
    """``loss`` group: the criterion."""

    # "ce" (cross-entropy) or "bce_softmax" (binary cross-entropy on softmax outputs, PuzzleMix's main.py).
    form: str = "ce"
    # Uniform label smoothing epsilon: target = (1 - eps) * (mixed) one-hot + eps / num_classes.
    label_smoothing: float = 0.0

    def check(self, cfg) -> None:
        one_of("loss.form", self.form, SOFT_TARGET_LOSSES)
        require(0.0 <= self.label_smoothing < 1.0, "loss.label_smoothing", self.label_smoothing, "must lie in [0, 1)")

    def build(self, num_classes: int) -> MixedCriterion:
        return MixedCriterion(num_classes, self.form, self.label_smoothing)

    def label(self) -> str:
        return f"+ls{self.label_smoothing:g}" if self.label_smoothing else ""
