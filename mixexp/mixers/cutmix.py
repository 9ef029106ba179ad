"""CutMix (Yun et al., 2019): paste a box of the partner image; lambda = share of the image kept."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch

from mixexp.mixers.base import MixedBatch, PairMixer, PairMixingConfig


def cutmix_box_mask(lam: torch.Tensor, height: int, width: int, per_sample: bool,
                    centre: Optional[Tuple[torch.Tensor, torch.Tensor]] = None) -> torch.Tensor:
    """Boolean mask (B, 1, H, W), True inside the box taken from the partner.

    The box has sides floor(H * sqrt(1 - lam)) x floor(W * sqrt(1 - lam)), so an area of about
    1 - lam, centred at a uniform pixel (or at ``centre`` = (rows, cols), one per box) and clipped to
    the image (as in the reference code). One box serves the whole batch unless ``per_sample``.
    """
    b, device = lam.shape[0], lam.device
    n = b if per_sample else 1
    cut = torch.sqrt(1.0 - lam[:n])
    cut_h, cut_w = (height * cut).floor().long(), (width * cut).floor().long()
    if centre is None:
        cy = torch.randint(0, height, (n,), device=device)
        cx = torch.randint(0, width, (n,), device=device)
    else:
        cy, cx = centre
    y0, y1 = (cy - cut_h // 2).clamp(0, height), (cy + cut_h // 2).clamp(0, height)
    x0, x1 = (cx - cut_w // 2).clamp(0, width), (cx + cut_w // 2).clamp(0, width)
    rows = torch.arange(height, device=device).view(1, height, 1)
    cols = torch.arange(width, device=device).view(1, 1, width)
    inside = (
        (rows >= y0.view(-1, 1, 1)) & (rows < y1.view(-1, 1, 1))
        & (cols >= x0.view(-1, 1, 1)) & (cols < x1.view(-1, 1, 1))
    )
    return inside.unsqueeze(1).expand(b, 1, height, width)


def paste_box(x: torch.Tensor, partner: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(x with the partner's pixels inside ``mask``, the exact share each image keeps of itself).

    The kept share 1 - |box| / (H * W) is what the label weights must use once the box has been clipped.
    """
    mixed = torch.where(mask, x.index_select(0, partner), x)
    return mixed, 1.0 - mask.flatten(1).float().mean(dim=1)


def cutmix(x: torch.Tensor, partner: torch.Tensor, lam: torch.Tensor, per_sample: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return (mixed batch, corrected lambda): a box of area about 1 - lam pasted from the partner."""
    return paste_box(x, partner, cutmix_box_mask(lam, x.shape[-2], x.shape[-1], per_sample))


class CutMix(PairMixer):
    """lambda ~ Beta(alpha, alpha); box area 1 - lambda; lambda then set to the true kept share."""

    def forward(self, x: torch.Tensor, y=None, model=None) -> MixedBatch:
        lam, partner = self.draw(x)
        mixed, kept = cutmix(x, partner, lam, self.per_sample)
        return MixedBatch(mixed, partner, kept)


@dataclass
class CutMixConfig(PairMixingConfig):
    name: str = "cutmix"

    def build(self, num_classes: int, feature_dim: int) -> CutMix:
        return CutMix(self.alpha, self.per_sample, self.prob)
