"""Datasets as device-resident uint8 tensors, and the loader that batches them."""

from mixexp.data.imageset import ImageSet
from mixexp.errors import ConfigError
from mixexp.data.registry import DATASETS, Dataset, load_dataset, register_dataset
from mixexp.data.loader import DeviceLoader
from mixexp.data import builtin  # noqa: F401  (registers digits and synthetic)
from mixexp.data import datasets  # noqa: F401  (registers the released datasets: cifar10, ..., imagenet)
from mixexp.data.folder import FolderSet, StreamingLoader


def build_loader(data, batch_size: int, **kwargs):
    """The loader for a dataset split: device-resident for an :class:`ImageSet`; streamed from disk by
    DataLoader workers for a :class:`~mixexp.data.folder.FolderSet` (ImageNet, ObjectNet), same interface."""
    if isinstance(data, ImageSet):
        loader = DeviceLoader(data, batch_size, **kwargs)
    elif isinstance(data, FolderSet):
        loader = StreamingLoader(data, batch_size, **kwargs)
    else:
        raise TypeError(f"no loader for {type(data).__name__}")
    if kwargs.get("train") and len(loader) == 0:  # an epoch without a step would report NaN and learn nothing
        raise ConfigError(
            f"the training set holds {len(data)} example(s), too few for one step of trainer.batch_size="
            f"{batch_size} (a final batch of one is dropped): raise dataset.train_size or lower trainer.batch_size")
    return loader


__all__ = ["DATASETS", "Dataset", "DeviceLoader", "FolderSet", "build_loader", "ImageSet", "load_dataset", "register_dataset"]
