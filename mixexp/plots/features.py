"""Inputs and representations the model-based figures share: a fixed set of test images, the
activation of the last convolutional block, penultimate features."""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import nn


def test_batch(test_loader, count: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The first ``count`` test images and labels (test loaders are not shuffled: a fixed set)."""
    xs, ys, seen = [], [], 0
    for x, y in test_loader:
        xs.append(x)
        ys.append(y)
        seen += len(y)
        if seen >= count:
            break
    return torch.cat(xs)[:count], torch.cat(ys)[:count]


def one_per_class(test_loader, classes) -> Tuple[torch.Tensor, torch.Tensor]:
    """The first test image of each class in ``classes`` (a count n: the classes 0..n-1), in that order;
    the fixed set of Grad-CAM maps. A class the test set lacks is left out."""
    wanted = list(range(classes)) if isinstance(classes, int) else [int(c) for c in classes]
    chosen = {}
    for x, y in test_loader:
        for image, label in zip(x, y.tolist()):
            if label in wanted and label not in chosen:
                chosen[label] = image
        if len(chosen) == len(wanted):
            break
    labels = [c for c in wanted if c in chosen]
    if not labels:
        raise ValueError(f"the test set holds no image of the classes {wanted}")
    return torch.stack([chosen[c] for c in labels]), torch.tensor(labels)


def last_conv_block(model: nn.Module) -> nn.Module:
    """The last Conv2d or BatchNorm2d registered in ``model``: the output of the last convolutional block
    before global pooling (modules register in forward order in every model of the zoo)."""
    layers: List[nn.Module] = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no Conv2d or BatchNorm2d layer to take a class activation map from")
    return layers[-1]


@torch.no_grad()
def penultimate_features(model, loader, limit: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``model.features`` of the first ``limit`` test images, and their labels (CPU, float32)."""
    model.eval()
    feats, labels, seen = [], [], 0
    for x, y in loader:
        feats.append(model.features(x).float().cpu())
        labels.append(y.cpu())
        seen += len(y)
        if seen >= limit:
            break
    return torch.cat(feats)[:limit], torch.cat(labels)[:limit]
