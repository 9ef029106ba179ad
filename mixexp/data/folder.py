"""Datasets too large for the device (ImageNet, ObjectNet): image files decoded by DataLoader workers.

A :class:`FolderSet` is the file index of a split (paths and labels); :class:`StreamingLoader` gives it
the interface of :class:`~mixexp.data.loader.DeviceLoader`: iterate for (normalised float images, int64
labels) on the device, ``len()`` batches, ``num_examples``. Workers decode and crop to uint8 tensors, the
main process pins them and copies them without blocking, and normalisation runs on the device.

Train: RandomResizedCrop(size) (+ horizontal flip). Test: Resize(size * 256/224) + CenterCrop(size), or,
for sets released as centre crops already (ImageNet-C, ``recrop=False``), Resize to size x size only.
ObjectNet images first lose their ``border`` pixels on every side.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import torch

from mixexp.data.augment import Normalize
from mixexp.data.loader import drops_last_batch, shard_size
from mixexp.distributed import broadcast_from_main

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


def decode_rgb(path) -> torch.Tensor:
    """One image file as uint8 (3, H, W), whatever its mode (grey, CMYK, palette, alpha): PIL via torchvision."""
    from torchvision.datasets.folder import pil_loader
    from torchvision.transforms.v2.functional import pil_to_tensor

    return pil_to_tensor(pil_loader(str(path)))


def list_images(folder: Path) -> List[str]:
    """Image file names directly in ``folder``, sorted (names only: no per-file stat)."""
    try:
        return sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_SUFFIXES) and not n.startswith("."))
    except FileNotFoundError:
        return []


def class_folders(folder: Path) -> List[str]:
    try:
        return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    except FileNotFoundError:
        return []


@dataclass
class FolderSet:
    """A split as files on disk: ``root/files[i]`` has label ``labels[i]``."""

    root: str
    files: List[str]
    labels: torch.Tensor  # int64 (N,)
    classes: List[str]
    size: int = 224  # side of the square images the loader yields
    resize_size: int = 256  # test-time resize before the centre crop
    border: int = 0  # pixels cut from every side first (ObjectNet: 1)
    # False: the files are centre crops already (ImageNet-C: 224 x 224); the test view only resizes them
    recrop: bool = True
    num_workers: int = 8
    # ObjectNet: the ImageNet class ids that count as correct for each of ``classes``
    class_ids: Optional[List[List[int]]] = field(default=None)

    def __post_init__(self) -> None:
        if self.labels.dtype != torch.int64 or self.labels.shape != (len(self.files),):
            raise ValueError(f"FolderSet.labels must be int64 ({len(self.files)},), got {self.labels.dtype} {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return len(self.files)

    @property
    def shape(self) -> Tuple[int, int, int]:
        return (3, self.size, self.size)

    def resized(self, size: int) -> "FolderSet":
        """Yield size x size images (the test resize keeps ImageNet's 256/224 ratio)."""
        return dataclasses.replace(self, size=int(size), resize_size=round(size * 256 / 224))

    def with_channels(self, channels: int) -> "FolderSet":
        if channels == 3:
            return self
        raise ValueError(f"dataset.channels={channels} is not allowed for RGB image folders: use 3 or null")

    def with_workers(self, num_workers: int) -> "FolderSet":
        return dataclasses.replace(self, num_workers=int(num_workers))

    def rows(self, start: int, stop: int) -> "FolderSet":
        """Files ``start .. stop - 1`` of the index."""
        return dataclasses.replace(self, files=self.files[start:stop], labels=self.labels[start:stop])

    def path(self, i: int) -> str:
        return os.path.join(self.root, self.files[i])


class _Decoded(torch.utils.data.Dataset):
    """What a worker does for one index: decode, cut the border, crop/resize to uint8 (3, size, size)."""

    def __init__(self, data: FolderSet, train: bool, flip: bool) -> None:
        from torchvision.transforms import v2

        self.data = data
        if train:
            steps = [v2.RandomResizedCrop(data.size, antialias=True)]
            if flip:
                steps.append(v2.RandomHorizontalFlip())
        elif data.recrop:
            steps = [v2.Resize(data.resize_size, antialias=True), v2.CenterCrop(data.size)]
        else:
            steps = [v2.Resize([data.size, data.size], antialias=True)]
        self.transform = v2.Compose(steps)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        img = decode_rgb(self.data.path(i))
        b = self.data.border
        if b:
            img = img[:, b:-b, b:-b]
        return self.transform(img), self.data.labels[i]


class _EpochOrder(torch.utils.data.Sampler):
    """Indices for one epoch: a fresh permutation (rank 0's, sharded by rank) when training, the rank's
    rows ``rank::world_size`` in order otherwise."""

    def __init__(self, n: int, train: bool, rank: int, world_size: int) -> None:
        self.n, self.train, self.rank, self.world_size = n, train, rank, world_size

    def __len__(self) -> int:
        return shard_size(self.n, self.train, self.rank, self.world_size)

    def __iter__(self):
        if not self.train:
            return iter(range(self.rank, self.n, self.world_size))
        perm = torch.randperm(self.n)  # drawn on every rank: the random streams stay in step
        if self.world_size > 1:  # rank 0's draw, so the shards are disjoint
            perm = broadcast_from_main(perm)
        return iter(perm[self.rank :: self.world_size][: len(self)].tolist())


class StreamingLoader:
    """Batches of (normalised float images, int64 labels) on ``device`` from a :class:`FolderSet`.

    Same constructor and interface as :class:`~mixexp.data.loader.DeviceLoader`; ``crop_padding`` is
    ignored (random-resized crops replace it). Decoding runs in ``data.num_workers`` worker processes
    (0: in this process).
    """

    def __init__(
        self,
        data: FolderSet,
        batch_size: int,
        *,
        device,
        mean: Sequence[float],
        std: Sequence[float],
        train: bool,
        crop_padding: int = 0,
        flip: bool = False,
        drop_last: bool = False,
        channels_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.device = torch.device(device)
        self.data = data
        self.batch_size = batch_size
        self.train = train
        self.channels_last = channels_last
        self.normalize = Normalize(mean, std, self.device)
        self.rank, self.world_size = rank, world_size
        self.sampler = _EpochOrder(len(data), train, rank, world_size)
        workers = int(data.num_workers)
        self.loader = torch.utils.data.DataLoader(
            _Decoded(data, train, flip and train),
            batch_size=batch_size,
            sampler=self.sampler,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            drop_last=drops_last_batch(len(self.sampler), batch_size, train, drop_last),
            persistent_workers=workers > 0,
            prefetch_factor=4 if workers > 0 else None,
        )

    @property
    def num_examples(self) -> int:
        return len(self.sampler)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.loader:
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            x = self.normalize(x)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y
