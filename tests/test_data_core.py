"""The device-resident loader and batched augmentation, on the digits and synthetic sets."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from mixexp.config import DatasetConfig
from mixexp.data import DeviceLoader, ImageSet, load_dataset
from mixexp.errors import ConfigError
from mixexp.data.augment import Normalize, random_crop, random_flip


def ds_cfg(**kw):
    return OmegaConf.structured(DatasetConfig(**kw))


def test_digits_is_the_real_bundled_set_with_a_fixed_stratified_split():
    data = load_dataset(ds_cfg(name="digits", test_fraction=0.2, channels=1), "unused")
    assert len(data.train) + len(data.test) == 1797
    assert len(data.test) == 360
    assert data.train.images.dtype == torch.uint8 and data.train.shape == (1, 8, 8)
    assert data.train.images.max().item() == 255 and data.num_classes == 10
    counts = torch.bincount(data.test.labels, minlength=10)
    assert counts.min().item() >= 35 and counts.max().item() <= 37  # stratified: about 36 per class
    again = load_dataset(ds_cfg(name="digits", test_fraction=0.2, channels=1), "unused")
    assert torch.equal(again.test.images, data.test.images)


def test_resize_and_channel_replication_and_stats():
    data = load_dataset(ds_cfg(name="digits", resize=32, channels=3), "unused")
    assert data.train.shape == (3, 32, 32)
    assert len(data.mean) == 3 and data.mean[0] == data.mean[2]
    x = data.train.images.double() / 255
    assert data.mean[0] == pytest.approx(x.mean().item(), rel=1e-6)


def test_synthetic_shape_classes_and_independence_from_run_seed():
    cfg = ds_cfg(name="synthetic", num_classes=7, image_size=16, channels=1, train_size=70, test_size=14)
    torch.manual_seed(1)
    a = load_dataset(cfg, "unused")
    torch.manual_seed(2)
    b = load_dataset(cfg, "unused")
    assert a.train.shape == (1, 16, 16) and a.num_classes == 7
    assert torch.bincount(a.train.labels).tolist() == [10] * 7
    assert torch.equal(a.train.images, b.train.images)


def test_imageset_checks_dtype():
    with pytest.raises(ValueError, match="uint8"):
        ImageSet(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.int64))


def test_random_crop_is_a_shifted_window_of_the_zero_padded_image():
    torch.manual_seed(0)
    x = torch.randint(1, 256, (32, 3, 8, 8), dtype=torch.uint8)
    out = random_crop(x, 2)
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    offsets = set()
    for i in range(32):
        match = [(dy, dx) for dy in range(5) for dx in range(5) if torch.equal(padded[i, :, dy:dy + 8, dx:dx + 8], out[i])]
        assert match, f"image {i} is not a window of its padded image"
        offsets.add(match[0])
    assert len(offsets) > 5  # offsets differ per image


def test_random_flip_mirrors_about_half():
    torch.manual_seed(0)
    x = torch.randint(0, 256, (1000, 1, 2, 3), dtype=torch.uint8)
    out = random_flip(x)
    flipped = (out == x.flip(3)).flatten(1).all(1) & ~(out == x).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert (flipped | kept).all()
    assert 400 < flipped.sum().item() < 600


def test_normalize_matches_formula():
    x = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 1, 1, 3)
    out = Normalize([0.5], [0.25], "cpu")(x)
    torch.testing.assert_close(out.flatten(), (torch.tensor([0, 51, 255]) / 255 - 0.5) / 0.25)


def _toy(n=100):
    return ImageSet(torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1), torch.arange(n))


def test_train_loader_shuffles_every_epoch_and_covers_the_set():
    loader = DeviceLoader(_toy(), 32, device="cpu", mean=[0.0], std=[1 / 255], train=True)
    assert len(loader) == 4
    epochs = [torch.cat([y for _, y in loader]) for _ in range(2)]
    for labels in epochs:
        assert sorted(labels.tolist()) == list(range(100))
    assert not torch.equal(epochs[0], epochs[1])
    x, y = next(iter(loader))
    torch.testing.assert_close(x.flatten(), y.float())  # image i holds value i; normalised back to i


def test_eval_loader_keeps_order_and_drop_last():
    loader = DeviceLoader(_toy(), 32, device="cpu", mean=[0.0], std=[1.0], train=False)
    assert torch.cat([y for _, y in loader]).tolist() == list(range(100))
    assert len(DeviceLoader(_toy(), 32, device="cpu", mean=[0.0], std=[1.0], train=True, drop_last=True)) == 3


def test_sharding_splits_the_epoch_into_disjoint_equal_parts():
    shards = []
    for rank in range(2):
        torch.manual_seed(5)  # every rank draws the same permutation from the same seed
        loader = DeviceLoader(_toy(101), 10, device="cpu", mean=[0.0], std=[1.0], train=True, rank=rank, world_size=2)
        shards.append(torch.cat([y for _, y in loader]).tolist())
    assert len(shards[0]) == len(shards[1]) == 50
    assert not set(shards[0]) & set(shards[1])


def test_a_final_training_batch_of_one_is_dropped_because_batchnorm_cannot_use_it():
    loader = DeviceLoader(_toy(33), 8, device="cpu", mean=[0.0], std=[1.0], train=True)
    assert len(loader) == 4 and [len(y) for _, y in loader] == [8, 8, 8, 8]
    assert len(DeviceLoader(_toy(34), 8, device="cpu", mean=[0.0], std=[1.0], train=True)) == 5
    assert len(DeviceLoader(_toy(33), 8, device="cpu", mean=[0.0], std=[1.0], train=False)) == 5  # eval keeps all


def test_class_subset_keeps_those_classes_in_train_and_test_relabelled_in_the_given_order():
    full = load_dataset(ds_cfg(name="digits"), "unused")
    part = load_dataset(ds_cfg(name="digits", classes=[5, 3, 4]), "unused")
    assert part.num_classes == 3
    for whole, sub in ((full.train, part.train), (full.test, part.test)):
        kept = (whole.labels == 5) | (whole.labels == 3) | (whole.labels == 4)
        assert torch.equal(sub.images, whole.images[kept])  # same images, same order
        assert sub.labels.tolist() == [{5: 0, 3: 1, 4: 2}[y] for y in whole.labels[kept].tolist()]
        assert torch.bincount(sub.labels).tolist() == [int((whole.labels == c).sum()) for c in (5, 3, 4)]
    with pytest.raises(ConfigError, match=r"dataset.classes=\[3, 10\] is not allowed: digits has classes 0..9"):
        load_dataset(ds_cfg(name="digits", classes=[3, 10]), "unused")
