"""Each dataset read from tiny files in its released format, through the real code path."""

from __future__ import annotations

import pytest
import torch

from fixtures_data import (  # noqa: F401  (pytest fixtures)
    C_PER_SEVERITY, IMAGENET_WNIDS, N_TEST, N_TRAIN, TINY_TRAIN_PER_CLASS, compose, data_root, fixture_tree,
)
from mixexp.config import ConfigError
from mixexp.data import FolderSet, build_loader, load_dataset
from mixexp.data.evalsets import EVAL_SETS, load_eval_set, objectnet_allowed_ids, objectnet_mapping
from mixexp.data.folder import StreamingLoader
from mixexp.data.sources import CORRUPTIONS, read_objectnet_mapping
from mixexp.data.store import SOURCES, load_split


def dataset(name, root, *overrides):
    cfg = compose([f"dataset={name}", f"paths.data_dir={root}", *overrides])
    return load_dataset(cfg.dataset, cfg.paths.data_dir), cfg


def test_cifar10_pickles_give_uint8_nchw_with_labels_in_file_order(data_root):
    data, cfg = dataset("cifar10", data_root)
    assert data.train.images.shape == (N_TRAIN, 3, 32, 32) and data.train.images.dtype == torch.uint8
    assert data.train.labels.dtype == torch.int64
    assert data.train.labels.tolist() == [i % 10 for i in range(N_TRAIN)]
    assert data.train.images[:, :, 5, 7].tolist() == [[i] * 3 for i in range(N_TRAIN)]  # image i is filled with i
    assert data.test.images[:, 0, 0, 0].tolist() == list(range(100, 100 + N_TEST))
    assert data.num_classes == 10 and data.mean == (0.4914, 0.4822, 0.4465) and data.std == (0.2470, 0.2435, 0.2616)
    assert (cfg.dataset.crop_padding, cfg.dataset.flip, cfg.dataset.resize) == (4, True, None)


def test_cifar100_uses_fine_labels(data_root):
    data, _ = dataset("cifar100", data_root)
    assert data.num_classes == 100 and data.train.shape == (3, 32, 32)
    assert data.train.labels.tolist() == [i * 7 % 100 for i in range(N_TRAIN)]


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_mnist_style_idx_resized_to_32_with_one_or_three_channels(data_root, name):
    grey, cfg = dataset(name, data_root)
    assert grey.train.images.shape == (N_TRAIN, 1, 32, 32) and grey.test.images.shape == (N_TEST, 1, 32, 32)
    assert grey.train.images[3].unique().tolist() == [3]  # a flat 28x28 image stays flat when resized
    assert grey.train.labels.tolist() == [i % 10 for i in range(N_TRAIN)] and len(grey.mean) == 1
    assert cfg.dataset.flip is False
    rgb, _ = dataset(name, data_root, "dataset.channels=3")
    assert rgb.train.shape == (3, 32, 32) and rgb.mean == grey.mean * 3
    raw = load_split(name, "train", data_root)
    assert raw.shape == (1, 28, 28)


def test_svhn_mat_is_transposed_and_label_10_is_digit_0(data_root):
    data, cfg = dataset("svhn", data_root)
    assert data.train.images.shape == (N_TRAIN, 3, 32, 32)
    assert data.train.labels.tolist() == [(i % 10 + 1) % 10 for i in range(N_TRAIN)]
    assert data.train.images[:, :, 0, 31].tolist() == [[i] * 3 for i in range(N_TRAIN)]
    assert cfg.dataset.flip is False and cfg.dataset.crop_padding == 4


def test_tinyimagenet_folders_sorted_wnid_labels_and_val_annotations(data_root):
    data, _ = dataset("tinyimagenet", data_root)
    assert data.train.images.shape == (3 * TINY_TRAIN_PER_CLASS, 3, 64, 64) and data.num_classes == 3
    assert data.train.labels.tolist() == sum([[k] * TINY_TRAIN_PER_CLASS for k in range(3)], [])
    assert data.test.labels.tolist() == [0, 1, 2, 0, 1, 2]
    grey = data.train.images[0].float()  # a greyscale JPEG comes back as three equal channels
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    red = data.train.images[TINY_TRAIN_PER_CLASS * 2 + 1, 0].float().mean().item()  # class 2 has red = 80
    assert abs(red - 80) < 3


def test_cifar_c_severity_slicing_and_corruption_choice(data_root):
    sets = load_eval_set("cifar10_c", data_root, severities=[2, 5], corruptions=["fog", "snow"])
    assert list(sets) == ["fog/2", "fog/5", "snow/2", "snow/5"]
    k_fog, k_snow = CORRUPTIONS.index("fog"), CORRUPTIONS.index("snow")
    assert sets["fog/2"].images.unique().tolist() == [40 + k_fog]
    assert sets["fog/5"].images.unique().tolist() == [100 + k_fog]
    assert sets["snow/5"].images.unique().tolist() == [100 + k_snow]
    assert sets["fog/5"].images.shape == (C_PER_SEVERITY, 3, 32, 32)
    assert sets["fog/5"].labels.tolist() == [(4 * C_PER_SEVERITY + i) % 10 for i in range(C_PER_SEVERITY)]
    every = load_eval_set("cifar100_c", data_root)
    assert len(every) == 75 and "jpeg_compression/1" in every and "speckle_noise/1" not in every


def test_cifar10_1_and_10_2_and_resolution_of_the_model(data_root):
    v1 = load_eval_set("cifar10_1", data_root)["test"]
    assert v1.images.shape == (N_TEST, 3, 32, 32) and v1.images[:, 0, 0, 0].tolist() == list(range(50, 60))
    v2 = load_eval_set("cifar10_2", data_root)["test"]
    assert v2.labels.tolist() == [9 - i for i in range(N_TEST)]
    small = load_eval_set("cifar10_2", data_root, size=16)["test"]
    assert small.shape == (3, 16, 16)


def test_ood_sets_have_labels_minus_one_and_lsun_is_centre_cropped(data_root):
    svhn = load_eval_set("svhn", data_root)["test"]
    assert svhn.labels.tolist() == [-1] * N_TEST and svhn.shape == (3, 32, 32)
    lsun = load_eval_set("lsun_crop", data_root)["test"]
    assert lsun.shape == (3, 32, 32) and set(lsun.labels.tolist()) == {-1}
    assert lsun.images[:, 0].float().min().item() > 150  # the black 2-pixel frame of the 36x36 files is cut
    assert {n: s.kind for n, s in EVAL_SETS.items()} == {
        "cifar10_c": "shift", "cifar100_c": "shift", "cifar10_1": "shift", "cifar10_2": "shift",
        "objectnet": "shift", "imagenet_v2": "shift", "imagenet_c": "shift", "svhn": "ood", "lsun_crop": "ood"}


def test_objectnet_class_mapping_to_imagenet_ids(data_root):
    mapping = objectnet_mapping(data_root)
    assert mapping.folders == ["fish", "shark_things"]  # chair has no ImageNet class: left out
    # fish -> tench (2012 id 1 -> torchvision 0) and goldfish (2012 id 0 -> torchvision 1)
    assert mapping.imagenet_ids == [[0, 1], [2]]
    assert objectnet_allowed_ids(data_root) == [0, 1, 2]
    m = mapping.membership(3)
    assert m.tolist() == [[True, True, False], [False, False, True]]
    test = load_eval_set("objectnet", data_root, size=24)["test"]
    assert isinstance(test, FolderSet) and len(test) == 5 and test.labels.tolist() == [0, 0, 0, 1, 1]
    assert test.border == 1 and test.shape == (3, 24, 24)
    loader = build_loader(test, 5, device="cpu", mean=(0, 0, 0), std=(1, 1, 1), train=False)
    x, y = next(iter(loader))
    assert x.shape == (5, 3, 24, 24) and y.tolist() == [0, 0, 0, 1, 1]
    assert x[:, 0].max().item() < 0.1 and x[:, 2].min().item() > 0.9  # the red border is gone


def test_objectnet_mapping_rejects_unknown_imagenet_names(data_root, tmp_path):
    import shutil

    maps = tmp_path / "mappings"
    shutil.copytree(data_root / "objectnet" / "mappings", maps)
    (maps / "objectnet_to_imagenet_1k.json").write_text('{"Fish": "tench; carp"}')
    with pytest.raises(ConfigError, match="ImageNet class 'carp'"):
        read_objectnet_mapping(maps)


def test_imagenet_streams_through_the_same_loader_interface(data_root):
    data, cfg = dataset("imagenet", data_root, "dataset.num_workers=0")
    assert isinstance(data.train, FolderSet) and data.image_shape == (3, 224, 224) and data.num_classes == 3
    assert data.train.classes == IMAGENET_WNIDS and data.train.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert data.mean == (0.485, 0.456, 0.406) and data.train.num_workers == 0
    train = build_loader(data.train, 4, device="cpu", mean=data.mean, std=data.std, train=True, flip=True,
                         crop_padding=0)
    # 9 images in batches of 4: the final batch of one is left out (BatchNorm cannot train on it)
    assert isinstance(train, StreamingLoader) and len(train) == 2 and train.num_examples == 9
    batches = list(train)
    assert [tuple(x.shape) for x, _ in batches] == [(4, 3, 224, 224)] * 2
    assert batches[0][0].dtype == torch.float32 and batches[0][1].dtype == torch.int64
    seen = sorted(torch.cat([y for _, y in batches]).tolist())
    assert len(seen) == 8 and set(seen) <= set(data.train.labels.tolist())
    assert len(build_loader(data.train, 3, device="cpu", mean=data.mean, std=data.std, train=True)) == 3
    test = build_loader(data.test, 4, device="cpu", mean=data.mean, std=data.std, train=False, drop_last=True)
    assert len(test) == 1 and [y.tolist() for _, y in test] == [[0, 0, 1, 1]]
    sharded = build_loader(data.train, 2, device="cpu", mean=data.mean, std=data.std, train=True, rank=1, world_size=2)
    assert sharded.num_examples == 4 and len(sharded) == 2
    x, _ = next(iter(test))  # val image 1 of class 0 is (0, 80, 120): red normalises to (0 - 0.485) / 0.229
    assert x[1, 0].mean().item() == pytest.approx(-0.485 / 0.229, abs=0.05)
    assert x[0, 0].mean().item() == pytest.approx(x[0, 1].mean().item() * 0.224 / 0.229 + (0.456 - 0.485) / 0.229,
                                                  abs=0.05)  # image 0 is a greyscale JPEG: equal channels
    small, _ = dataset("imagenet", data_root, "dataset.resize=32", "dataset.num_workers=0")
    assert small.image_shape == (3, 32, 32) and small.test.resize_size == 37
    with pytest.raises(ValueError, match="channels=1"):
        data.train.with_channels(1)


def test_every_dataset_yaml_composes_validates_and_names_a_registered_loader(data_root):
    from mixexp.config import validate
    from mixexp.data import DATASETS

    for name in ("cifar10", "cifar100", "tinyimagenet", "mnist", "fashion_mnist", "svhn", "imagenet"):
        cfg = compose([f"dataset={name}"])
        validate(cfg)
        assert cfg.dataset.name == name and name in DATASETS and cfg.dataset.download is False
        assert len(cfg.dataset.mean) == len(cfg.dataset.std) == (1 if "mnist" in name else 3)
        assert cfg.dataset.resize == (32 if "mnist" in name else None)
        assert cfg.dataset.flip == (name in ("cifar10", "cifar100", "tinyimagenet", "imagenet"))
    assert set(SOURCES) == {"cifar10", "cifar100", "mnist", "fashion_mnist", "svhn", "tinyimagenet", "cifar10_c",
                            "cifar100_c", "cifar10_1", "cifar10_2", "lsun_crop", "imagenet", "objectnet",
                            "imagenet_v2", "imagenet_c"}
