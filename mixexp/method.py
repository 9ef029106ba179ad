"""The method step protocol: a method composes a mixer, a criterion and regularizers and owns the step.

    out = method.step(model, x, y)       # mix, forward, loss (+ regularizers); no backward
    out.loss.backward()

The trainer only loops: it calls ``method.set_epoch(e)`` at the start of each epoch (ES switches
mixing off there), ``step`` on each batch, and optimises ``model`` and ``method`` parameters together
(a method may own parameters, e.g. LaMix's global head). A method that mixes inside the network
(Manifold Mixup) overrides :meth:`Method.forward_mixed`; everything else is shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence

import torch
from torch import nn


@dataclass
class MixedBatch:
    """A mixed batch: ``inputs[i]`` blends example i with example ``partner[i]``.

    ``lam[i]`` is the weight of example i's own label, so the mixed target is
    ``lam * y_i + (1 - lam) * y_partner``. An unmixed batch has ``lam == 1`` everywhere.
    """

    inputs: torch.Tensor  # (B, C, H, W)
    partner: torch.Tensor  # int64 (B,)
    lam: torch.Tensor  # float32 (B,)
    # A loss the mixer computed on the way (e.g. the clean loss of a saliency pass), added as is.
    extra_loss: Optional[torch.Tensor] = None
    # Known on the host: whether anything was mixed (False for an original batch), so no device sync asks it.
    mixed: bool = True

    @classmethod
    def unmixed(cls, x: torch.Tensor) -> "MixedBatch":
        """The batch as it is: each example its own partner, lambda = 1."""
        b = x.shape[0]
        return cls(x, torch.arange(b, device=x.device), torch.ones(b, device=x.device), mixed=False)


@dataclass
class StepOutput:
    loss: torch.Tensor  # scalar, with its graph
    logits: torch.Tensor  # (B, K) of the (mixed) batch
    mixed: MixedBatch  # partner and lambda per example (for the training accuracy)


# criterion(logits, features, y, mixed) -> scalar loss
Criterion = Callable[..., torch.Tensor]


class Method(nn.Module):
    """mixer + criterion + regularizers, with ES: from ``stop_epoch`` on the batch is left unmixed, the
    regularizers (which need a mixed batch) are off and ``erm_criterion`` replaces ``criterion``."""

    def __init__(self, mixer: nn.Module, criterion: Criterion, regularizers: Sequence[nn.Module] = (),
                 stop_epoch: Optional[int] = None, erm_criterion: Optional[Criterion] = None) -> None:
        super().__init__()
        self.mixer = mixer
        self.criterion = criterion
        self.erm_criterion = erm_criterion or criterion
        self.regularizers = nn.ModuleList(regularizers)
        self.stop_epoch = stop_epoch
        self.mixing = True

    def check_model(self, model: nn.Module, image_shape: tuple) -> None:
        """Raise a one-line ValueError naming the key if this method cannot train ``model`` on images of
        ``image_shape`` (C, H, W)."""
        check = getattr(self.mixer, "check_input_shape", None)
        if check is not None:
            check(image_shape)

    def set_epoch(self, epoch: int) -> None:
        """ES: mixing is on before ``stop_epoch`` (always, when it is None). Parts that keep per-epoch
        records (LaMix's soft-target summaries) are told the epoch too."""
        self.mixing = self.stop_epoch is None or epoch < self.stop_epoch
        for part in (self.mixer, self.criterion):
            if hasattr(part, "set_epoch"):
                part.set_epoch(epoch)

    def pop_records(self) -> Dict[str, Dict[str, float]]:
        """What the parts recorded this epoch, by file name (e.g. ``{"soft_targets.csv": row}``), then cleared."""
        records = {}
        for part in (self.mixer, self.criterion):
            if hasattr(part, "pop_records"):
                records.update(part.pop_records())
        return records

    def forward_mixed(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        """(mixed batch, features of the mixed inputs): mix in input space, then one forward pass."""
        mixed = self.mixer(x, y, model)
        return mixed, model.features(mixed.inputs)

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        if not self.mixing:
            features = model.features(x)
            logits = model.classifier(features)
            mixed = MixedBatch.unmixed(x)
            return StepOutput(self.erm_criterion(logits, features, y, mixed), logits, mixed)
        mixed, features = self.forward_mixed(model, x, y)
        logits = model.classifier(features)
        loss = self.criterion(logits, features, y, mixed)
        if mixed.extra_loss is not None:
            loss = loss + mixed.extra_loss
        for regularizer in self.regularizers:
            loss = loss + regularizer(model, x, mixed, features)
        return StepOutput(loss, logits, mixed)
