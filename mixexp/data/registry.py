"""Name -> loader for every training dataset, and the one place that turns a loader's output into
what a run trains on (resize, channels, normalisation statistics)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from mixexp.data.imageset import ImageSet
from mixexp.errors import ConfigError, require

# A loader takes (dataset config, data directory) and returns (train, test, num_classes).
Loader = Callable[..., Tuple[ImageSet, ImageSet, int]]
DATASETS: Dict[str, Loader] = {}


def register_dataset(name: str):
    def add(fn: Loader) -> Loader:
        DATASETS[name] = fn
        return fn

    return add


@dataclass
class Dataset:
    train: ImageSet
    test: ImageSet
    num_classes: int
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    # held out of the training set by dataset.val_fraction (None: no split); see mixexp.data.split
    val: Optional[ImageSet] = None

    @property
    def image_shape(self) -> Tuple[int, int, int]:
        return self.train.shape


# Bytes per value of the resized images while they are computed: a float32 input, a float32 output, uint8 kept.
RESIZE_BYTES_PER_VALUE = 9


def physical_memory() -> int:
    """This machine's memory in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_fits_in_memory(key: str, value, nbytes: int) -> None:
    """ConfigError naming ``key`` when what it asks for (``nbytes``) exceeds this machine's memory."""
    require(nbytes <= physical_memory(), key, value,
            f"the images would take {nbytes / 1e9:,.1f} GB, more than this machine's {physical_memory() / 1e9:,.1f} GB "
            f"of memory")


def check_split_sizes(fraction: float, n_train: int, n_val: int) -> None:
    """ConfigError unless ``dataset.val_fraction`` leaves both sides of the split some images (a training
    batch needs two): checked before training, not found empty after it."""
    n = n_train + n_val
    if n_val == 0 or n_train < 2:
        need = "hold out at least one image: choose a larger fraction" if n_val == 0 else (
            "leave at least two images to train on: choose a smaller fraction")
        raise ConfigError(f"dataset.val_fraction={fraction!r} is not allowed: it splits the {n} training images into "
                          f"{n_train} to train on and {n_val} to validate on (a stratified round(fraction x images) per "
                          f"class); it must {need}")


def channel_stats(data: ImageSet) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """Per-channel mean and std of the images in [0, 1] units."""
    x = data.images.double().div_(255.0)
    return tuple(x.mean(dim=(0, 2, 3)).tolist()), tuple(x.std(dim=(0, 2, 3)).tolist())


def load_dataset(cfg, data_dir: str) -> Dataset:
    """Load ``cfg.name`` and apply the config's resize, channel count and normalisation.

    ``dataset.mean``/``dataset.std`` give the published statistics of the released images; when
    they are empty, the training set's own statistics are used. Grey statistics are replicated when
    grey images are replicated to 3 channels.
    """
    if cfg.name not in DATASETS:
        raise ValueError(f"dataset.name={cfg.name!r} is not allowed: choose one of {', '.join(sorted(DATASETS))}")
    train, test, num_classes = DATASETS[cfg.name](cfg, data_dir)
    classes = list(cfg.get("classes", None) or [])
    if classes:  # a subset of the classes, relabelled 0..k-1 (LaMix Fig 8 trains on three CIFAR-10 classes)
        from mixexp.data.split import keep_classes

        if max(classes) >= num_classes:
            raise ConfigError(f"dataset.classes={classes} is not allowed: {cfg.name} has classes 0..{num_classes - 1}")
        train, test, num_classes = keep_classes(train, classes), keep_classes(test, classes), len(classes)
    native_channels = train.shape[0]
    val = None
    if cfg.get("val_fraction", 0.0):
        from mixexp.data.split import stratified_split, subset

        train_idx, val_idx = stratified_split(train.labels, float(cfg.val_fraction))
        check_split_sizes(cfg.val_fraction, len(train_idx), len(val_idx))
        train, val = subset(train, train_idx), subset(train, val_idx)
    if cfg.resize:
        if isinstance(train, ImageSet):  # held in memory: resized there at once
            check_fits_in_memory("dataset.resize", cfg.resize, RESIZE_BYTES_PER_VALUE * train.shape[0] * cfg.resize ** 2
                                 * (len(train) + len(test) + (len(val) if val is not None else 0)))
        train, test = train.resized(cfg.resize), test.resized(cfg.resize)
        val = val.resized(cfg.resize) if val is not None else None
    side = min(train.shape[1:])
    require(cfg.get("crop_padding", 0) < side, "dataset.crop_padding", cfg.get("crop_padding", 0),
            f"must be smaller than the image side ({side} px here): a crop could otherwise miss the image entirely")
    if list(cfg.mean):
        mean, std = tuple(cfg.mean), tuple(cfg.std)
        if len(mean) != native_channels:
            raise ConfigError(
                f"dataset.mean has {len(mean)} values but {cfg.name} images have {native_channels} channels"
            )
    elif isinstance(train, ImageSet):
        mean, std = channel_stats(train)
    else:
        raise ConfigError(f"dataset.mean/std must be given for {cfg.name}: its images are streamed from disk")
    if cfg.channels:
        train, test = train.with_channels(cfg.channels), test.with_channels(cfg.channels)
        val = val.with_channels(cfg.channels) if val is not None else None
        if cfg.channels != native_channels:
            mean, std = mean * cfg.channels, std * cfg.channels
    return Dataset(train, test, num_classes, mean, std, val)
