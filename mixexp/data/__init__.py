"""Datasets as device-resident uint8 tensors, and the loader that batches them."""

from mixexp.data.imageset import ImageSet
from mixexp.data.registry import DATASETS, Dataset, load_dataset, register_dataset
from mixexp.data.loader import DeviceLoader, build_loader
from mixexp.data import builtin  # noqa: F401  (registers digits and synthetic)
from mixexp.data import datasets  # noqa: F401  (registers the released datasets: cifar10, ..., imagenet)
from mixexp.data.folder import FolderSet

__all__ = ["DATASETS", "Dataset", "DeviceLoader", "FolderSet", "build_loader", "ImageSet", "load_dataset", "register_dataset"]
