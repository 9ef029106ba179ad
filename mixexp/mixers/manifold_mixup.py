"""Manifold Mixup (Verma et al., ICML 2019): mix hidden states at a random layer instead of the inputs.

Per batch: lambda ~ Beta(alpha, alpha), partner = a random permutation, and a layer k drawn uniformly
from ``layers`` (indices into [input] + ``model.mixing_layers()``; the official PreActResNet code mixes
at k in {0, 1, 2}: the input, after the first and after the second residual stage). The forward pass
runs on the clean batch; at layer k the hidden state h is replaced by lam * h_i + (1 - lam) * h_partner(i),
and the loss is the mixed criterion as for input mixup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

import torch
from torch import nn

from mixexp.errors import require
from mixexp.method import MixedBatch, Method
from mixexp.mixers.base import PairMixer, PairMixingConfig
from mixexp.mixers.mixup import mixup


class ManifoldMixup(Method):
    """A method whose mixing happens inside ``model.features`` (a forward hook on the drawn layer)."""

    def __init__(self, mixer: PairMixer, layers: List[int], *args, **kwargs) -> None:
        super().__init__(mixer, *args, **kwargs)
        self.layers = list(layers)

    def check_model(self, model: nn.Module, image_shape: tuple) -> None:
        available = len(model.mixing_layers())
        require(max(self.layers) <= available, "mixer.layers", list(self.layers),
                f"this model has {available} mixing layers: use indices 0..{available}")

    def forward_mixed(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        lam, partner = self.mixer.draw(x)
        # the layer is drawn on the host (CPU generator): no device sync
        k = self.layers[int(torch.randint(len(self.layers), ()).item())]
        if k == 0:
            inputs = mixup(x, partner, lam)
            return MixedBatch(inputs, partner, lam), model.features(inputs)
        layer = model.mixing_layers()[k - 1]
        handle = layer.register_forward_hook(lambda module, args, out: mixup(out, partner, lam))
        try:
            features = model.features(x)
        finally:
            handle.remove()
        return MixedBatch(x, partner, lam), features


@dataclass
class ManifoldMixupConfig(PairMixingConfig):
    """``mixer=manifold_mixup``."""

    name: str = "manifold_mixup"
    # 0: the input; k >= 1: the output of model.mixing_layers()[k - 1]
    layers: List[int] = field(default_factory=lambda: [0, 1, 2])

    def check(self, cfg) -> None:
        super().check(cfg)
        require(len(self.layers) > 0 and all(k >= 0 for k in self.layers), "mixer.layers", list(self.layers),
                "must be a non-empty list of layer indices >= 0 (0: the input)")

    def build(self, num_classes: int, feature_dim: int) -> PairMixer:
        return PairMixer(self.alpha, self.per_sample, self.prob)

    def build_method(self, criterion, regularizers, num_classes: int, feature_dim: int, epochs: int) -> Method:
        return ManifoldMixup(self.build(num_classes, feature_dim), self.layers, criterion, regularizers,
                             self.stop_epoch_for(epochs))
