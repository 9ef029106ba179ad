"""Losses on mixed batches."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean_i -sum_k target_ik log softmax(z_i)_k, for any soft target whose rows sum to 1."""
    return -(target * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()


def mixed_correct(logits: torch.Tensor, targets: torch.Tensor, partner: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Training accuracy on a mixed batch, summed: lam_i [pred = y_i] + (1 - lam_i) [pred = y_j]."""
    pred = logits.argmax(dim=1)
    return (lam * (pred == targets) + (1.0 - lam) * (pred == targets[partner])).sum()
