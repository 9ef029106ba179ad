"""The in-memory form of every dataset: uint8 images (N, C, H, W) and int64 labels (N,)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class ImageSet:
    images: torch.Tensor  # uint8, (N, C, H, W)
    labels: torch.Tensor  # int64, (N,)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"ImageSet.images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"ImageSet.labels must be int64 (N,) with N={self.images.shape[0]}, got {self.labels.dtype} {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def shape(self) -> tuple:
        """(C, H, W) of one image."""
        return tuple(self.images.shape[1:])

    def rows(self, start: int, stop: int) -> "ImageSet":
        """Examples ``start .. stop - 1`` (a view, no copy)."""
        return ImageSet(self.images[start:stop], self.labels[start:stop])

    def to(self, device) -> "ImageSet":
        return ImageSet(self.images.to(device), self.labels.to(device))

    def resized(self, size: int) -> "ImageSet":
        """Resize once to size x size (bilinear, antialiased when shrinking), kept as uint8."""
        if self.images.shape[-2:] == (size, size):
            return self
        x = F.interpolate(self.images.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return ImageSet(x.round_().clamp_(0, 255).to(torch.uint8), self.labels)

    def with_channels(self, channels: int) -> "ImageSet":
        """Replicate grey images to 3 channels (or keep them); RGB cannot become grey here."""
        c = self.images.shape[1]
        if c == channels:
            return self
        if c == 1 and channels == 3:
            return ImageSet(self.images.expand(-1, 3, -1, -1).contiguous(), self.labels)
        raise ValueError(f"dataset.channels={channels} is not allowed for images with {c} channels: use {c} or null")
