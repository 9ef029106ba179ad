"""Datasets as device-resident uint8 tensors, and the loader that batches them."""

from mixexp.data.imageset import ImageSet
from mixexp.data.registry import DATASETS, Dataset, load_dataset, register_dataset
from mixexp.data.loader import DeviceLoader
from mixexp.data import builtin  # noqa: F401  (registers digits and synthetic)
from mixexp.data import datasets  # noqa: F401  (registers the released datasets: cifar10, ..., imagenet)
from mixexp.data.folder import FolderSet, StreamingLoader


def build_loader(data, batch_size: int, **kwargs):
    """The loader for a dataset split: device-resident for an :class:`ImageSet`; streamed from disk by
    DataLoader workers for a :class:`~mixexp.data.folder.FolderSet` (ImageNet, ObjectNet), same interface."""
    if isinstance(data, ImageSet):
        return DeviceLoader(data, batch_size, **kwargs)
    if isinstance(data, FolderSet):
        return StreamingLoader(data, batch_size, **kwargs)
    raise TypeError(f"no loader for {type(data).__name__}")


__all__ = ["DATASETS", "Dataset", "DeviceLoader", "FolderSet", "build_loader", "ImageSet", "load_dataset", "register_dataset"]
