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
    offsets (dy, dx) are independent and uniform on {0, ..., 2 * padding}. The padded batch is
    viewed (no copy) as every window at every offset, (B, C, 2p+1, 2p+1, H, W), and one gather picks
    each image's window.
    """
    if padding == 0:
        return x
    b, c, h, w = x.shape
    span = 2 * padding + 1
    padded = F.pad(x, (padding, padding, padding, padding))  # contiguous
    hp, wp = h + 2 * padding, w + 2 * padding
    windows = padded.as_strided((b, c, span, span, h, w), (c * hp * wp, hp * wp, wp, 1, wp, 1))
    dy = torch.randint(0, span, (b,), device=x.device)
    dx = torch.randint(0, span, (b,), device=x.device)
    return windows[torch.arange(b, device=x.device), :, dy, dx]


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
