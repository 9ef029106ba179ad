"""Test-set metrics: accuracy, error, NLL and expected calibration error (torchmetrics)."""

from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import binary_auroc, multiclass_accuracy, multiclass_calibration_error

from mixexp.distributed import gather_interleaved

ECE_BINS = 15


@torch.no_grad()
def predict_logits(model, loader, transform=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 logits and labels for every batch of ``loader``, concatenated on its device.

    Always in float32, also for a model trained under bf16 autocast: bf16 logits would quantise NLL and
    ECE and create ties among AUROC scores. ``transform`` (optional) maps each input batch before the
    model sees it (e.g. test-time rescaling).
    """
    model.eval()
    logits, labels = [], []
    for x, y in loader:
        if transform is not None:
            x = transform(x)
        with torch.autocast(x.device.type, enabled=False):  # also inside a caller's autocast region
            logits.append(model(x.float()).float())
        labels.append(y)
    logits, labels = torch.cat(logits), torch.cat(labels)
    if getattr(loader, "world_size", 1) > 1 and not loader.train:
        logits, labels = gather_interleaved(logits), gather_interleaved(labels)
    return logits, labels


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor, prefix: str = "test") -> Dict[str, float]:
    """``<prefix>_acc``, ``_error`` (percent), ``_nll`` (nats, mean) and ``_ece`` (15 equal-width bins, L1)."""
    num_classes = logits.shape[1]
    acc = multiclass_accuracy(logits, labels, num_classes=num_classes, average="micro").item() * 100.0
    nll = F.cross_entropy(logits, labels).item()
    ece = multiclass_calibration_error(
        logits.softmax(dim=1), labels, num_classes=num_classes, n_bins=ECE_BINS, norm="l1"
    ).item()
    return {f"{prefix}_acc": acc, f"{prefix}_error": 100.0 - acc, f"{prefix}_nll": nll, f"{prefix}_ece": ece}


def accuracy_percent(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(dim=1) == labels).float().mean().item() * 100.0


def max_softmax(logits: torch.Tensor) -> torch.Tensor:
    return logits.softmax(dim=1).amax(dim=1)


def ood_auroc(in_scores: torch.Tensor, ood_scores: torch.Tensor) -> float:
    """AUROC (percent) of telling in-distribution (positive) from OOD inputs by their score."""
    scores = torch.cat([in_scores.float().cpu(), ood_scores.float().cpu()])
    target = torch.cat([torch.ones(len(in_scores), dtype=torch.long), torch.zeros(len(ood_scores), dtype=torch.long)])
    return binary_auroc(scores, target).item() * 100.0
