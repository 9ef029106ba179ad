"""Batched train augmentation on uint8 images, on whatever device the batch lives on.

Every function takes a whole batch (B, C, H, W) and draws its randomness from torch's generator for
that device, so there is no per-image Python and no host round trip.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def random_crop(x: torch.Tensor, padding: int) -> torch.Tensor:
    """Zero-pad each side by ``padding`` and cut back an H x W window at a uniform offset per image.

    Same distribution as torchvision's ``RandomCrop(size, padding)`` applied image by image:
    offsets (dy, dx) are independent and uniform on {0, ..., 2 * padding}.
    """
    if padding == 0:
        return x
    b, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (b, 1), device=x.device)
    dx = torch.randint(0, 2 * padding + 1, (b, 1), device=x.device)
    rows = (dy + torch.arange(h, device=x.device)).view(b, 1, h, 1)
    cols = (dx + torch.arange(w, device=x.device)).view(b, 1, 1, w)
    batch = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    chans = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return padded[batch, chans, rows, cols]


def random_flip(x: torch.Tensor) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < 0.5
    return torch.where(flip, x.flip(3), x)


class Normalize:
    """uint8 -> float: (x / 255 - mean) / std per channel, as one multiply-add."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], device) -> None:
        std_t = torch.tensor(list(std), dtype=torch.float32, device=device).view(1, -1, 1, 1)
        mean_t = torch.tensor(list(mean), dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.scale = 1.0 / (255.0 * std_t)
        self.shift = -mean_t / std_t

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.shift, x.float(), self.scale)
