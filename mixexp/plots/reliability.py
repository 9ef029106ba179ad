"""Reliability diagrams: accuracy against confidence in 15 equal-width bins, ECE in the legend.

The bins are torchmetrics' (and so ``metrics.json``'s ``test_ece``'s): boundaries
linspace(0, 1, 16), a prediction of confidence c falls in bin floor(15 c), and the few of confidence
exactly 1 (torchmetrics counts them in a 16th slot of zero width) are drawn in the last bin.
The legend's ECE is torchmetrics' own number, as reported in ``metrics.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch

from mixexp.evaluation.metrics import ECE_BINS, classification_metrics
from mixexp.plots.common import plt, save_figure


def reliability_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS) -> Dict[str, np.ndarray]:
    """Per bin b of the top-1 confidence c = max_k p_k: ``count``, ``accuracy`` = mean [argmax p = y] and
    ``confidence`` = mean c over its predictions (0 in empty bins), and the bin ``lower``/``upper`` edges."""
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(float)
    index = np.minimum(np.floor(confidence * n_bins).astype(int), n_bins - 1)
    count = np.bincount(index, minlength=n_bins).astype(float)
    safe = np.maximum(count, 1.0)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return {"lower": edges[:-1], "upper": edges[1:], "count": count,
            "accuracy": np.bincount(index, correct, minlength=n_bins) / safe,
            "confidence": np.bincount(index, confidence, minlength=n_bins) / safe}


def reliability_diagram(predictions: Dict[str, Tuple[torch.Tensor, torch.Tensor]], out_dir: Path,
                        name: str = "reliability", title: str = "Reliability diagram") -> List[Path]:
    """One panel per entry of ``predictions`` (label -> (logits, labels)): bars of accuracy per
    confidence bin, the gap to the diagonal shaded, ECE (torchmetrics, 15 bins) in the legend."""
    n = len(predictions)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.6), squeeze=False, sharey=True)
    rows = []
    for ax, (label, (logits, labels)) in zip(axes[0], predictions.items()):
        ece = classification_metrics(logits.float().cpu(), labels.cpu())["test_ece"]
        bins = reliability_bins(logits.float().softmax(dim=1).cpu().numpy(), labels.cpu().numpy())
        width = bins["upper"] - bins["lower"]
        filled = bins["count"] > 0
        ax.bar(bins["lower"][filled], bins["accuracy"][filled], width=width[filled], align="edge",
               edgecolor="black", linewidth=0.5, label=f"accuracy (ECE {ece:.4f})")
        low = np.minimum(bins["accuracy"], bins["confidence"])
        ax.bar(bins["lower"][filled], np.abs(bins["confidence"] - bins["accuracy"])[filled], bottom=low[filled],
               width=width[filled], align="edge", facecolor="none", edgecolor="tab:red", hatch="///",
               linewidth=0.5, label="gap between accuracy and mean confidence")
        ax.plot([0, 1], [0, 1], "k--", linewidth=0.8, label="perfect calibration")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (max softmax probability)", title=label)
        ax.legend(fontsize=7, loc="lower right")
        rows += [{"model": label, "bin": b, "lower": bins["lower"][b], "upper": bins["upper"][b],
                  "count": int(bins["count"][b]), "accuracy": bins["accuracy"][b],
                  "confidence": bins["confidence"][b], "ece": ece} for b in range(len(width))]
    axes[0][0].set_ylabel("accuracy (fraction correct)")
    fig.suptitle(f"{title} ({ECE_BINS} bins)")
    fig.tight_layout()
    return save_figure(fig, out_dir, name, rows)
