"""Datasets that need no files: scikit-learn's bundled digits and class-conditional synthetic images."""

from __future__ import annotations

import math

import numpy as np
import torch

from mixexp.data.imageset import ImageSet
from mixexp.errors import ConfigError
from mixexp.data.registry import check_fits_in_memory, register_dataset


def check_stratified_split(n: int, num_classes: int, test_fraction: float) -> None:
    """ConfigError unless both sides of a stratified split of ``n`` examples hold every class:
    scikit-learn's test side has ceil(test_fraction * n) examples, the train side the rest."""
    n_test = math.ceil(test_fraction * n)
    n_train = n - n_test
    if min(n_test, n_train) < num_classes:
        lo, hi = (num_classes - 1) / n, (n - num_classes) / n
        raise ConfigError(
            f"dataset.test_fraction={test_fraction!r} is not allowed: it splits the {n} images into {n_train} train "
            f"and {n_test} test, and each side needs one image of each of the {num_classes} classes "
            f"(choose a fraction above {lo:.4f} and at most {hi:.4f})")


@register_dataset("digits")
def load_digits(cfg, data_dir):
    """The 1797 real 8x8 handwritten digits bundled with scikit-learn (values 0..16, scaled to 0..255).

    The train/test split is stratified by class and fixed (random_state=0) for a given
    ``dataset.test_fraction``, so every run and seed sees the same test set.
    """
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # (N, 1, 8, 8)
    labels = bunch.target.astype(np.int64)
    check_stratified_split(len(labels), 10, cfg.test_fraction)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=cfg.test_fraction, stratify=labels, random_state=0
    )

    def subset(idx):
        return ImageSet(torch.from_numpy(images[idx]), torch.from_numpy(labels[idx]))

    return subset(train_idx), subset(test_idx), 10


@register_dataset("synthetic")
def load_synthetic(cfg, data_dir):
    """Class-conditional random images: a fixed random prototype per class plus Gaussian noise.

    Shape (channels or 3, image_size, image_size), ``num_classes`` classes. The data come from a
    generator of their own (seed 0), so they are identical whatever the run's seed.
    """
    gen = torch.Generator().manual_seed(0)
    channels = cfg.channels or 3
    shape = (channels, cfg.image_size, cfg.image_size)
    # float32 prototypes, and per split float32 noise and images (then uint8), before anything is drawn
    values = math.prod(shape)
    check_fits_in_memory("dataset.image_size/num_classes/train_size/test_size",
                         (cfg.image_size, cfg.num_classes, cfg.train_size, cfg.test_size),
                         4 * values * cfg.num_classes + 9 * values * max(cfg.train_size, cfg.test_size))
    prototypes = torch.rand((cfg.num_classes,) + shape, generator=gen)

    def draw(n: int) -> ImageSet:
        labels = torch.arange(n) % cfg.num_classes
        labels = labels[torch.randperm(n, generator=gen)]
        noisy = prototypes[labels] + cfg.noise * torch.randn((n,) + shape, generator=gen)
        return ImageSet((noisy.clamp(0, 1) * 255).round().to(torch.uint8), labels)

    return draw(cfg.train_size), draw(cfg.test_size), cfg.num_classes
