"""SaliencyMix (Uddin et al., ICLR 2021): CutMix whose box is centred on the partner's most salient pixel.

Saliency is the spectral residual of Hou & Zhang (CVPR 2007), as OpenCV's StaticSaliencySpectralResidual
that the official code calls: on the grey image resized to 64 x 64, with F = FFT(image),

    R = log|F| - box3x3(log|F|),      S = GaussianBlur(|IFFT(exp(R + i angle(F)))|^2),

resized back to H x W. The official code computes S for the first partner image of the batch and
pastes one box (sides floor(H sqrt(1 - lam)), floor(W sqrt(1 - lam)), centred on argmax S, clipped)
into every image from its partner; lambda is then the exact kept share, as in CutMix. ``per_sample``
centres one box per image on its own partner's saliency.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mixexp.mixers.base import MixedBatch, PairMixer, PairMixingConfig
from mixexp.mixers.cutmix import cutmix_box_mask, paste_box

# OpenCV's spectral-residual defaults: working resolution, and the Gaussian blur of the saliency map
_SR_SIZE = 64
_BLUR_KSIZE, _BLUR_SIGMA = 5, 8.0


def _gaussian_kernel(size: int, sigma: float, device) -> torch.Tensor:
    r = torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2
    k = torch.exp(-r.pow(2) / (2 * sigma * sigma))
    return k / k.sum()


def spectral_residual_saliency(x: torch.Tensor) -> torch.Tensor:
    """Saliency maps (B, H, W) of images (B, C, H, W) by the spectral residual (see the module docstring)."""
    b, _, h, w = x.shape
    grey = F.interpolate(x.float().mean(dim=1, keepdim=True), size=(_SR_SIZE, _SR_SIZE), mode="bilinear",
                         align_corners=False)
    spectrum = torch.fft.fft2(grey)
    log_amp = torch.log(spectrum.abs().clamp_min(1e-12))
    residual = log_amp - F.avg_pool2d(log_amp, 3, stride=1, padding=1, count_include_pad=False)
    saliency = torch.fft.ifft2(torch.exp(torch.complex(residual, torch.angle(spectrum)))).abs().pow(2)
    k = _gaussian_kernel(_BLUR_KSIZE, _BLUR_SIGMA, x.device)
    pad = _BLUR_KSIZE // 2
    saliency = F.conv2d(F.pad(saliency, (pad, pad, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    saliency = F.conv2d(F.pad(saliency, (0, 0, pad, pad), mode="reflect"), k.view(1, 1, -1, 1))
    return F.interpolate(saliency, size=(h, w), mode="bilinear", align_corners=False).squeeze(1)


def salient_centres(saliency: torch.Tensor):
    """(rows, cols) of each map's maximum, (B,) each."""
    w = saliency.shape[-1]
    flat = saliency.flatten(1).argmax(dim=1)
    return flat // w, flat % w


class SaliencyMix(PairMixer):
    """lambda ~ Beta(alpha, alpha); a box of area about 1 - lambda around the partner's salient peak."""

    def forward(self, x: torch.Tensor, y=None, model=None) -> MixedBatch:
        lam, partner = self.draw(x)
        n = x.shape[0] if self.per_sample else 1
        sources = partner[:n]
        rows, cols = salient_centres(spectral_residual_saliency(x.index_select(0, sources)))
        mask = cutmix_box_mask(lam, x.shape[-2], x.shape[-1], self.per_sample, centre=(rows, cols))
        mixed, kept = paste_box(x, partner, mask)
        return MixedBatch(mixed, partner, kept)


@dataclass
class SaliencyMixConfig(PairMixingConfig):
    """``mixer=saliencymix``."""

    name: str = "saliencymix"

    def build(self, num_classes: int, feature_dim: int) -> SaliencyMix:
        return SaliencyMix(self.alpha, self.per_sample, self.prob)


__all__ = ["SaliencyMix", "SaliencyMixConfig", "salient_centres", "spectral_residual_saliency"]
