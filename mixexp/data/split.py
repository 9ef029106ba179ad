"""The validation split (``dataset.val_fraction``): part of the training set held out for tuning.

For every class c with n_c training images, round(val_fraction * n_c) of them, drawn by a generator
seeded with :data:`VAL_SEED`, form the validation set; the rest stay for training. The draw depends only
on the labels and the fraction, never on the run's seed, so every run (every seed, every method) of a
sweep is tuned and trained on the same split; the test set is never touched.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence, Tuple

import torch

VAL_SEED = 20_240_601  # fixed: the split must not change with the run seed


def stratified_split(labels: torch.Tensor, fraction: float, seed: int = VAL_SEED) -> Tuple[torch.Tensor, torch.Tensor]:
    """(train indices, validation indices), each sorted; per class, round(fraction * n_c) go to validation."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"dataset.val_fraction={fraction} is not allowed: must lie in [0, 1)")
    labels = labels.cpu()
    gen = torch.Generator().manual_seed(seed)
    val = []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        chosen = members[torch.randperm(len(members), generator=gen)[: round(fraction * len(members))]]
        val.append(chosen)
    val_idx = torch.sort(torch.cat(val)).values if val else torch.empty(0, dtype=torch.long)
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[val_idx] = False
    return torch.nonzero(keep).flatten(), val_idx


def subset(data, index: torch.Tensor):
    """The images of ``data`` (an ImageSet in memory or a FolderSet on disk) at ``index``."""
    if hasattr(data, "images"):
        return type(data)(data.images[index], data.labels[index])
    return dataclasses.replace(data, files=[data.files[i] for i in index.tolist()], labels=data.labels[index])


def keep_classes(data, classes: Sequence[int]):
    """The images of ``data`` whose label is in ``classes``, relabelled: label ``classes[i]`` becomes ``i``
    (``dataset.classes``); their order is kept."""
    wanted = torch.tensor(list(classes), dtype=torch.long)
    labels = data.labels.cpu()
    part = subset(data, torch.nonzero(torch.isin(labels, wanted)).flatten())
    relabel = torch.full((int(max(labels.max().item(), wanted.max().item())) + 1,), -1, dtype=torch.long)
    relabel[wanted] = torch.arange(len(wanted))
    new_labels = relabel[part.labels.cpu()].to(part.labels.device)
    if hasattr(part, "images"):
        return type(part)(part.images, new_labels)
    return dataclasses.replace(part, labels=new_labels)
