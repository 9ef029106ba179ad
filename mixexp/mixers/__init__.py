"""Mixers: each takes a batch and returns the mixed batch, the partner index and lambda per example."""

from typing import Callable, Dict

from mixexp.mixers.base import MixedBatch, Mixer, NoMixing, PairMixer, random_partner, sample_lambda
from mixexp.mixers.cutmix import CutMix, cutmix, cutmix_box_mask
from mixexp.mixers.lamix import LaMix, global_soft_label, lamix_target
from mixexp.mixers.mixup import Mixup, mixup
from mixexp.mixers.puzzlemix import PuzzleMix, graph_cut_mask, puzzle_mix


def _lamix(cfg, feature_dim: int, num_classes: int, **_) -> LaMix:
    mix_inputs = None
    if cfg.lamix_inputs == "puzzlemix":
        mix_inputs = MIXERS["puzzlemix"](cfg, feature_dim=feature_dim, num_classes=num_classes).mix_at_half
    return LaMix(feature_dim, num_classes, cfg.alpha, cfg.lamix_beta, cfg.lamix_original_batches,
                 cfg.lamix_global_label, mix_inputs)


# name -> builder(mixer config, feature_dim=..., num_classes=...)
MIXERS: Dict[str, Callable[..., Mixer]] = {
    "none": lambda cfg, **_: NoMixing(),
    "mixup": lambda cfg, **_: Mixup(cfg.alpha, cfg.per_sample, cfg.prob),
    "cutmix": lambda cfg, **_: CutMix(cfg.alpha, cfg.per_sample, cfg.prob),
    "lamix": _lamix,
    "puzzlemix": lambda cfg, **_: PuzzleMix.from_config(cfg),
}


def build_mixer(cfg, feature_dim: int = 0, num_classes: int = 0, label_smoothing: float = 0.0) -> Mixer:
    """The mixer named by ``cfg.name``; ``feature_dim``/``num_classes`` size the heads of methods that have one."""
    if cfg.name not in MIXERS:
        raise ValueError(f"mixer.name={cfg.name!r} is not allowed: choose one of {', '.join(sorted(MIXERS))}")
    mixer = MIXERS[cfg.name](cfg, feature_dim=feature_dim, num_classes=num_classes)
    mixer.label_smoothing = label_smoothing
    return mixer


def mixing_stop_epoch(cfg, epochs: int) -> int:
    """ES: the first epoch trained without mixing (``epochs`` when mixing never stops)."""
    if cfg.stop_epoch is not None:
        return int(cfg.stop_epoch)
    if cfg.stop_fraction is not None:
        return int(round(cfg.stop_fraction * epochs))
    return epochs


__all__ = [
    "MIXERS", "CutMix", "LaMix", "PairMixer", "global_soft_label", "lamix_target", "mixing_stop_epoch", "MixedBatch", "Mixer", "Mixup", "NoMixing", "build_mixer",
    "cutmix", "cutmix_box_mask", "mixup", "random_partner", "sample_lambda",
    "PuzzleMix", "graph_cut_mask", "puzzle_mix",
]
