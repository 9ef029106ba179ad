"""Mixers: how a batch is mixed. ``MIXERS`` maps each ``mixer=`` option to its schema, whose ``build``
makes the mixer and ``build_method`` the method it trains with (see :mod:`mixexp.method`)."""

from typing import Dict, Type

from mixexp.mixers.base import (
    MixedBatch, Mixer, MixerConfig, MixingConfig, NoMixing, NoMixingConfig, PairMixer, PairMixingConfig,
    random_partner, sample_lambda,
)
from mixexp.mixers.cutmix import CutMix, CutMixConfig, cutmix, cutmix_box_mask
from mixexp.mixers.lamix import LaMix, LaMixConfig, LaMixCriterion, global_soft_label, lamix_target
from mixexp.mixers.manifold_mixup import ManifoldMixup, ManifoldMixupConfig
from mixexp.mixers.mixup import Mixup, MixupConfig, mixup
from mixexp.mixers.puzzlemix import PuzzleMix, PuzzleMixConfig, graph_cut_mask, puzzle_mix
from mixexp.mixers.saliencymix import SaliencyMix, SaliencyMixConfig, spectral_residual_saliency

MIXERS: Dict[str, Type[MixerConfig]] = {
    schema.name: schema
    for schema in (NoMixingConfig, MixupConfig, CutMixConfig, PuzzleMixConfig, LaMixConfig, ManifoldMixupConfig,
                   SaliencyMixConfig)
}

__all__ = [
    "MIXERS", "CutMix", "CutMixConfig", "LaMix", "LaMixConfig", "LaMixCriterion", "ManifoldMixup",
    "ManifoldMixupConfig", "MixedBatch", "Mixer", "MixerConfig", "MixingConfig", "Mixup", "MixupConfig", "NoMixing",
    "NoMixingConfig", "PairMixer", "PairMixingConfig", "PuzzleMix", "PuzzleMixConfig", "SaliencyMix",
    "SaliencyMixConfig", "cutmix", "cutmix_box_mask", "global_soft_label", "graph_cut_mask", "lamix_target", "mixup",
    "puzzle_mix", "random_partner", "sample_lambda", "spectral_residual_saliency",
]
