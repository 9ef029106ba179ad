"""A loader for datasets that live, as uint8, on the training device.

Each epoch draws one device ``randperm``; each batch is a gather from the resident tensor, a batched
crop and flip, and a normalising multiply-add. Nothing leaves the device and nothing waits for it.
"""

from __future__ import annotations

from typing import Iterator, Sequence, Tuple

import torch

from mixexp.data.augment import Normalize, random_crop, random_flip
from mixexp.data.imageset import ImageSet
from mixexp.distributed import broadcast_from_main


def shard_size(n: int, train: bool, rank: int, world_size: int) -> int:
    """Examples a rank sees of ``n``: an equal ``n // world_size`` in training (a remainder is left out
    of the epoch, so every rank takes as many steps); all of ``rank::world_size`` in evaluation."""
    return n // world_size if train else len(range(rank, n, world_size))


def drops_last_batch(num_examples: int, batch_size: int, train: bool, drop_last: bool) -> bool:
    """Whether an epoch leaves out its final partial batch: when asked to, and in training whenever
    that batch would hold a single example (BatchNorm cannot normalise a batch of one)."""
    return drop_last or (train and num_examples % batch_size == 1)


class DeviceLoader:
    """Batches of (normalised float images, int64 labels) from an :class:`ImageSet`.

    ``train=True`` shuffles every epoch, applies crop/flip, and shards the permutation across
    ``world_size`` ranks (every rank takes every ``world_size``-th index of rank 0's permutation, so the
    shards are disjoint and equal in size). ``train=False`` with ``world_size > 1`` yields rows
    ``rank::world_size`` in order (:func:`~mixexp.distributed.gather_interleaved` puts them back together).
    """

    def __init__(
        self,
        data: ImageSet,
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
        self.data = data.to(self.device)
        self.batch_size = batch_size
        self.train = train
        self.crop_padding = crop_padding if train else 0
        self.flip = flip and train
        self.drop_last = drop_last
        self.channels_last = channels_last
        self.rank, self.world_size = rank, world_size
        self.normalize = Normalize(mean, std, self.device)

    @property
    def num_examples(self) -> int:
        """Examples this rank sees per epoch."""
        return shard_size(len(self.data), self.train, self.rank, self.world_size)

    def __len__(self) -> int:
        n = self.num_examples
        if drops_last_batch(n, self.batch_size, self.train, self.drop_last):
            return n // self.batch_size
        return -(-n // self.batch_size)

    def _order(self) -> torch.Tensor:
        n = len(self.data)
        if not self.train:
            return torch.arange(self.rank, n, self.world_size, device=self.device)
        perm = torch.randperm(n, device=self.device)  # drawn on every rank: the random streams stay in step
        if self.world_size > 1:  # rank 0's draw, so the shards are disjoint even if a rank's stream drifted
            perm = broadcast_from_main(perm)
        return perm[self.rank :: self.world_size][: self.num_examples]

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        order = self._order()
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            idx = order[start : start + self.batch_size]
            # index_select, not x[idx]: the same gather, far faster for uint8 on CPU
            x, y = self.data.images.index_select(0, idx), self.data.labels.index_select(0, idx)
            if self.crop_padding:
                x = random_crop(x, self.crop_padding)
            if self.flip:
                x = random_flip(x)
            x = self.normalize(x)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y
