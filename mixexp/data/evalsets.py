"""Evaluation sets: distribution shift (``eval.shift``) and out-of-distribution data (``eval.ood``).

Each set is read by the same code as the training sets (:func:`~mixexp.data.store.load_split`) and comes
back as ``{sub_name: split}``, at the resolution and channel count the model trains on:

==============  =====  =====================================================  ======================
name            kind   sub names                                              labels
==============  =====  =====================================================  ======================
cifar10_c       shift  ``<corruption>/<severity>``, 15 x 5 (``eval.severities``,  CIFAR-10 classes
                       ``eval.corruptions`` select)
cifar100_c      shift  same                                                   CIFAR-100 classes
cifar10_1       shift  ``test`` (v6, 2,000 images)                            CIFAR-10 classes
cifar10_2       shift  ``test`` (2,000 images)                                CIFAR-10 classes
objectnet       shift  ``test`` (113 classes shared with ImageNet; streamed)  ObjectNet class index
imagenet_v2     shift  ``test`` (matched-frequency, 10,000 images; streamed)  ImageNet classes
imagenet_c      shift  ``<corruption>/<severity>``, 15 x 5 (streamed; 224 px   ImageNet classes
                       centre crops: ``eval.imagenet_c_crop`` says whether to
                       crop them again)
svhn            ood    ``test`` (26,032 images)                               -1
lsun_crop       ood    ``test`` (10,000 images)                               -1
==============  =====  =====================================================  ======================

ObjectNet labels index :attr:`ObjectNetMapping.folders`; a prediction is correct when its ImageNet id is
one of ``imagenet_ids[label]``, with predictions restricted to :func:`objectnet_allowed_ids`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple

import torch

from mixexp.errors import ConfigError, one_of
from mixexp.data.folder import FolderSet
from mixexp.data.imageset import ImageSet
from mixexp.data.sources import CORRUPTIONS, ObjectNetMapping
from mixexp.data.store import (
    MissingDataError, ensure_verified, get_source, load_split, missing_message, resolve_root,
)

SEVERITIES = (1, 2, 3, 4, 5)
IMAGENET_C_CROPS = ("none", "center")  # eval.imagenet_c_crop: see iter_eval_set


@dataclass(frozen=True)
class EvalSet:
    name: str
    kind: str  # "shift": labelled with the classes of ``base``; "ood": labels -1
    source: str  # the entry of SOURCES it is read from
    base: Optional[str]  # the training dataset whose classes a shift set shares
    splits: Tuple[str, ...] = ("test",)


EVAL_SETS: Dict[str, EvalSet] = {
    "cifar10_c": EvalSet("cifar10_c", "shift", "cifar10_c", "cifar10", CORRUPTIONS),
    "cifar100_c": EvalSet("cifar100_c", "shift", "cifar100_c", "cifar100", CORRUPTIONS),
    "cifar10_1": EvalSet("cifar10_1", "shift", "cifar10_1", "cifar10"),
    "cifar10_2": EvalSet("cifar10_2", "shift", "cifar10_2", "cifar10"),
    "objectnet": EvalSet("objectnet", "shift", "objectnet", "imagenet"),
    "imagenet_v2": EvalSet("imagenet_v2", "shift", "imagenet_v2", "imagenet"),
    "imagenet_c": EvalSet("imagenet_c", "shift", "imagenet_c", "imagenet", CORRUPTIONS),
    "svhn": EvalSet("svhn", "ood", "svhn", None),
    "lsun_crop": EvalSet("lsun_crop", "ood", "lsun_crop", None),
}


def _at_resolution(data, size: Optional[int], channels: Optional[int], name: str):
    try:
        if size and tuple(data.shape[1:]) != (size, size):
            data = data.resized(size)
        if channels:
            data = data.with_channels(channels)
    except ValueError as e:
        raise ConfigError(f"eval set {name}: {e}") from None
    return data


def iter_eval_set(
    name: str,
    data_dir,
    *,
    size: Optional[int] = None,
    channels: Optional[int] = None,
    severities: Sequence[int] = SEVERITIES,
    corruptions: Sequence[str] = (),
    download: bool = False,
    num_workers: int = 0,
    imagenet_c_crop: str = "none",
) -> Iterator[Tuple[str, Any]]:
    """``(sub_name, ImageSet | FolderSet)`` pairs of one eval set, one corruption in memory at a time.

    ``imagenet_c_crop``: ``none`` evaluates ImageNet-C's 224 px files as released (Hendrycks & Dietterich);
    ``center`` gives them ImageNet's test view again, Resize(256) + CenterCrop(224), which is what
    uncertainty-baselines' ResNet preprocessing does to them (the central 224/256 of each file, scaled to 224)."""
    if name not in EVAL_SETS:
        raise ConfigError(f"eval set {name!r} is not known: choose one of {', '.join(sorted(EVAL_SETS))}")
    spec = EVAL_SETS[name]
    one_of("eval.imagenet_c_crop", imagenet_c_crop, IMAGENET_C_CROPS)
    if spec.splits == CORRUPTIONS:
        chosen = list(corruptions) or list(CORRUPTIONS)
        bad = [c for c in chosen if c not in CORRUPTIONS]
        if bad or not severities or any(s not in SEVERITIES for s in severities):
            raise ConfigError(f"{name}: corruptions {bad} / severities {list(severities)} are not allowed: "
                              f"corruptions from {', '.join(CORRUPTIONS)}; severities in 1..5")
        for corruption in chosen:
            block = load_split(spec.source, corruption, data_dir, download=download)
            if isinstance(block, FolderSet):
                block = dataclasses.replace(block.with_workers(num_workers), recrop=imagenet_c_crop == "center")
            per = len(block) // len(SEVERITIES)
            for s in severities:
                yield f"{corruption}/{s}", _at_resolution(block.rows((s - 1) * per, s * per), size, channels, name)
        return
    data = load_split(spec.source, "test", data_dir, download=download)
    if isinstance(data, FolderSet):
        data = data.with_workers(num_workers)
    elif spec.kind == "ood":
        data = ImageSet(data.images, torch.full_like(data.labels, -1))
    yield "test", _at_resolution(data, size, channels, name)


def load_eval_set(name: str, data_dir, **kwargs) -> Dict[str, Any]:
    """Every sub-set of ``name`` at once: ``{"gaussian_noise/3": ImageSet, ...}`` or ``{"test": ...}``."""
    return dict(iter_eval_set(name, data_dir, **kwargs))


def objectnet_mapping(data_dir) -> ObjectNetMapping:
    src = get_source("objectnet")
    return src.mapping(src.folder(resolve_root(data_dir)))


def objectnet_allowed_ids(data_dir) -> list:
    """The ImageNet class ids (torchvision order) that ObjectNet's 113 shared classes map to (125 ids)."""
    return objectnet_mapping(data_dir).allowed_ids


def require_eval_sets(cfg, data_dir) -> None:
    """Fail before training, not after it, when an eval set of ``cfg.eval`` is missing; with
    ``dataset.download=true``, fetch and verify it now instead."""
    root = resolve_root(data_dir)
    download = bool(cfg.dataset.get("download", False))
    for name in dict.fromkeys([*cfg.eval.shift, *cfg.eval.ood]):
        src = get_source(EVAL_SETS[name].source)
        folder = src.folder(root)
        missing = src.missing(folder)
        # an image cache can stand in for removed source files; a file index (the ImageNet sets) cannot
        cache_only = src.cached and src.image_shape is not None and all(src.cache_path(root, s).is_file() for s in src.counts)
        if not missing or cache_only:
            continue
        if download and not src.manual:
            ensure_verified(src, root, download=True)
        else:
            raise MissingDataError(missing_message(src, root, folder, missing))
