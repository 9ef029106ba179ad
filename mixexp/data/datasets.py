"""The training datasets of the three papers, registered by name (``dataset=<name>``).

Each loader returns the released resolution (CIFAR/SVHN 32x32 RGB, MNIST-style 28x28 grey, Tiny-ImageNet
64x64); ``load_dataset`` then applies ``dataset.resize`` (32 for MNIST and Fashion-MNIST, as LaMix does),
``dataset.channels`` and the published mean/std of ``conf/dataset/<name>.yaml``. ImageNet comes back as
a :class:`~mixexp.data.folder.FolderSet`, streamed by DataLoader workers instead of living on the device.
"""

from __future__ import annotations

from mixexp.data import sources  # noqa: F401  (fills SOURCES)
from mixexp.data.registry import register_dataset
from mixexp.data.store import get_source, load_split


def _pair(name: str, cfg, data_dir, test_split: str = "test"):
    download = bool(cfg.get("download", False))
    train = load_split(name, "train", data_dir, download=download)
    test = load_split(name, test_split, data_dir, download=download)
    return train, test, get_source(name).num_classes


def _register(name: str, test_split: str = "test") -> None:
    def load(cfg, data_dir):
        return _pair(name, cfg, data_dir, test_split)

    load.__name__ = f"load_{name}"
    load.__doc__ = f"{get_source(name).title}: (train, {test_split}, classes) from the released files."
    register_dataset(name)(load)


for _name in ("cifar10", "cifar100", "tinyimagenet", "mnist", "fashion_mnist", "svhn"):
    _register(_name)


@register_dataset("imagenet")
def load_imagenet(cfg, data_dir):
    """ILSVRC-2012 train/val as file indices; decoded by ``dataset.num_workers`` DataLoader workers."""
    train, val, num_classes = _pair("imagenet", cfg, data_dir, test_split="val")
    workers = int(cfg.get("num_workers", 8))
    return train.with_workers(workers), val.with_workers(workers), num_classes
