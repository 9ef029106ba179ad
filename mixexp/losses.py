"""Losses on mixed batches."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mixed_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, partner: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """mean_i [ lam_i * CE(z_i, y_i) + (1 - lam_i) * CE(z_i, y_partner(i)) ].

    Equal to the cross-entropy against the mixed one-hot target lam*y_i + (1-lam)*y_j, since CE is
    linear in the target. With lam = 1 it is the plain cross-entropy.
    """
    logp = F.log_softmax(logits.float(), dim=1)
    own = logp.gather(1, targets[:, None]).squeeze(1)
    other = logp.gather(1, targets[partner][:, None]).squeeze(1)
    return -(lam * own + (1.0 - lam) * other).mean()


def mixed_correct(logits: torch.Tensor, targets: torch.Tensor, partner: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Training accuracy on a mixed batch, summed: lam_i [pred = y_i] + (1 - lam_i) [pred = y_j]."""
    pred = logits.argmax(dim=1)
    return (lam * (pred == targets) + (1.0 - lam) * (pred == targets[partner])).sum()
