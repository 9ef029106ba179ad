"""Mixers: each takes a batch and returns the mixed batch, the partner index and lambda per example."""

from typing import Callable, Dict

from mixexp.mixers.base import MixedBatch, Mixer, NoMixing, random_partner, sample_lambda
from mixexp.mixers.cutmix import CutMix, cutmix, cutmix_box_mask
from mixexp.mixers.mixup import Mixup, mixup

MIXERS: Dict[str, Callable[..., Mixer]] = {
    "none": lambda cfg: NoMixing(),
    "mixup": lambda cfg: Mixup(cfg.alpha, cfg.per_sample, cfg.prob),
    "cutmix": lambda cfg: CutMix(cfg.alpha, cfg.per_sample, cfg.prob),
}


def build_mixer(cfg) -> Mixer:
    if cfg.name not in MIXERS:
        raise ValueError(f"mixer.name={cfg.name!r} is not allowed: choose one of {', '.join(sorted(MIXERS))}")
    return MIXERS[cfg.name](cfg)


__all__ = [
    "MIXERS", "CutMix", "MixedBatch", "Mixer", "Mixup", "NoMixing", "build_mixer",
    "cutmix", "cutmix_box_mask", "mixup", "random_partner", "sample_lambda",
]
