"""LaMix, "Bypassing the Random Input Mixing in Mixup" (ICLR 2021 submission).

The input pair is always mixed at ratio 1/2, x~ = 0.5 x_i + 0.5 x_j (or by PuzzleMix at lambda = 0.5:
``mixer.inputs``), and the randomness moves to the label: for S = f(x~) and prediction softmax(W_l S),

    target = beta * (lam y_i + (1 - lam) y_j) + (1 - beta) * p,   p = softmax(sigmoid(W_t S)),

with lam drawn afresh per pair and W_t an extra head of W_l's shape. p is not detached, so W_t learns
through this loss. Mini-batches alternate: original inputs (target beta y_i + (1 - beta) p), then mixed.
The method is :class:`LaMix` (input side) plus :class:`LaMixCriterion` (the target, which owns W_t).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

import torch
from torch import nn

from mixexp.errors import require
from mixexp.losses import SOFT_TARGET_LOSSES, mixed_target
from mixexp.method import Method
from mixexp.mixers.base import MixedBatch, Mixer, MixingConfig, random_partner, sample_lambda
from mixexp.mixers.mixup import mixup


# LaMix Figs 2-3: what a run records of its soft targets every ``mixer.lamix_record_every`` epochs
SOFT_TARGETS_CSV = "soft_targets.csv"
TOP = 5  # Fig 2 shows the five largest targets
HIST_BINS = 20  # value histograms on [0, 1] (Fig 3)


def soft_target_summary(target: torch.Tensor, global_label: Optional[torch.Tensor] = None,
                        top: int = TOP, bins: int = HIST_BINS) -> Dict[str, float]:
    """Summary of a batch of soft targets t (B, K) and, optionally, global soft labels p (B, K).

    ``top{k}_mean`` = (1/B) sum_b t_b,(k) (the k-th largest entry of each row, k = 1..min(top, K));
    ``target_hist_{i}`` = share of all B*K entries of t in the value bin [i/bins, (i+1)/bins) (the last
    bin closed); with p: ``p_class_{c}`` = (1/B) sum_b p_b,c and ``p_hist_{i}`` likewise for p's entries.
    One host sync (the returned floats).
    """
    t = target.detach().float()
    parts = {f"top{k + 1}_mean": v for k, v in enumerate(t.topk(min(top, t.shape[1]), dim=1).values.mean(dim=0))}
    parts.update({f"target_hist_{i}": v for i, v in enumerate(_value_hist(t, bins))})
    if global_label is not None:
        p = global_label.detach().float()
        parts.update({f"p_class_{c}": v for c, v in enumerate(p.mean(dim=0))})
        parts.update({f"p_hist_{i}": v for i, v in enumerate(_value_hist(p, bins))})
    values = torch.stack(list(parts.values())).tolist()
    return dict(zip(parts, values))


def _value_hist(values: torch.Tensor, bins: int) -> torch.Tensor:
    index = (values.flatten() * bins).long().clamp_(0, bins - 1)
    return torch.bincount(index, minlength=bins).float() / index.numel()


def global_soft_label(head: nn.Linear, features: torch.Tensor) -> torch.Tensor:
    """p = softmax(sigmoid(W_t S))."""
    return torch.softmax(torch.sigmoid(head(features).float()), dim=1)


def lamix_target(y: torch.Tensor, partner: torch.Tensor, lam: torch.Tensor, global_label: Optional[torch.Tensor],
                 beta: float, num_classes: int) -> torch.Tensor:
    """beta * (lam y_i + (1 - lam) y_j) + (1 - beta) * p; the local label alone when p is None."""
    local = mixed_target(y, partner, lam, num_classes)
    return local if global_label is None else beta * local + (1.0 - beta) * global_label


def average_pair(x: torch.Tensor, y: torch.Tensor, model: nn.Module, partner: torch.Tensor):
    """(0.5 x_i + 0.5 x_partner(i), no extra loss)."""
    return mixup(x, partner, torch.full((x.shape[0],), 0.5, device=x.device)), None


class LaMix(Mixer):
    """Fixed input ratio 1/2, random label ratio lam ~ Beta(alpha, alpha) per pair (alpha=1: uniform)."""

    def __init__(self, alpha: float = 1.0, original_batches: bool = True,
                 mix_inputs: Optional[Callable[..., torch.Tensor]] = None) -> None:
        super().__init__()
        self.alpha, self.original_batches = alpha, original_batches
        # (x, y, model, partner) -> (mixed inputs at ratio 0.5, extra loss or None)
        self.mix_inputs = mix_inputs or average_pair
        self.steps = 0  # host-side counter that decides original vs mixed; checkpointed as extra state

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None, model=None) -> MixedBatch:
        b = x.shape[0]
        original = self.original_batches and self.steps % 2 == 0
        self.steps += 1
        if original:
            return MixedBatch.unmixed(x)
        partner = random_partner(b, x.device)
        lam = sample_lambda(self.alpha, b, per_sample=True, prob=1.0, device=x.device)
        inputs, extra = self.mix_inputs(x, y, model, partner)
        return MixedBatch(inputs, partner, lam, extra)

    def get_extra_state(self) -> Any:
        return {"steps": self.steps}

    def set_extra_state(self, state: Any) -> None:
        self.steps = int(state["steps"])


class LaMixCriterion(nn.Module):
    """The run's loss (``loss.form``: cross-entropy, or PuzzleMix's BCE on softmax outputs) against LaMix's
    target; owns the global head W_t (shaped like the classifier W_l).

    The loss form is the run's, as for every other method: LaMix on PuzzleMix inputs (Tables 3-4) kept "all
    the settings" of PuzzleMix's main.py, which trains every method with ``bce_loss(softmax(output), target)``.
    The head is kept without the global label too, so that checkpoints have one layout; it then gets
    no gradient.
    """

    def __init__(self, feature_dim: int, num_classes: int, beta: float = 0.5, global_label: bool = True,
                 record_every: int = 0, form: str = "ce") -> None:
        super().__init__()
        self.num_classes, self.beta, self.use_global_label = num_classes, beta, global_label
        self.target_loss = SOFT_TARGET_LOSSES[form]
        self.head = nn.Linear(feature_dim, num_classes)
        # Figs 2-3: summarise the targets of the first mixed mini-batch of every record_every-th epoch
        self.record_every, self.epoch, self._record = record_every, 0, None

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self._record = epoch, None

    def pop_records(self) -> Dict[str, Dict[str, float]]:
        record, self._record = self._record, None
        return {SOFT_TARGETS_CSV: record} if record else {}

    def forward(self, logits: torch.Tensor, features: torch.Tensor, y: torch.Tensor, mixed: MixedBatch) -> torch.Tensor:
        p = global_soft_label(self.head, features) if self.use_global_label else None
        target = lamix_target(y, mixed.partner, mixed.lam, p, self.beta, self.num_classes)
        due = self.record_every and (self.epoch + 1) % self.record_every == 0 and self._record is None
        if due and mixed.mixed:  # one host sync, every record_every epochs
            self._record = soft_target_summary(target, p)
        return self.target_loss(logits, target)


@dataclass
class LaMixConfig(MixingConfig):
    """``mixer=lamix``; ``inputs``: null (the pixel average) or a mixer node (``/mixer@mixer.inputs: puzzlemix``)
    whose mixing at lambda = 1/2 replaces the average (LaMix Tables 3-4)."""

    name: str = "lamix"
    # target = beta * local label + (1 - beta) * global soft label
    lamix_beta: float = 0.5
    # alternate mini-batches of original and mixed inputs (false: mixed only, Table 7)
    lamix_original_batches: bool = True
    # use the global soft label (false: local label only, Table 8)
    lamix_global_label: bool = True
    inputs: Optional[Any] = None
    # LaMix Figs 2-3: every N epochs, summarise one mixed mini-batch's soft targets into soft_targets.csv (0: off)
    lamix_record_every: int = 0

    def label(self) -> str:
        # spelt as in the papers' tables: LaMix on PuzzleMix inputs is "lamix_puzzle"
        name = "lamix" if self.inputs is None else {"puzzlemix": "lamix_puzzle"}.get(self.inputs.name, f"lamix_{self.inputs.name}")
        name += "" if self.lamix_original_batches else "-no_original"
        name += "" if self.lamix_global_label else "-no_global_label"
        return name + ("+es" if self.stop_epoch_for(1) is not None else "")

    def check(self, cfg) -> None:
        super().check(cfg)
        require(0.0 <= self.lamix_beta <= 1.0, "mixer.lamix_beta", self.lamix_beta, "must lie in [0, 1]")
        require(self.lamix_record_every >= 0, "mixer.lamix_record_every", self.lamix_record_every, "must be >= 0 (0: off)")
        require(cfg.loss.label_smoothing == 0.0, "loss.label_smoothing", cfg.loss.label_smoothing,
                "is not defined for mixer=lamix (its target already has a global soft label); use 0")
        if self.inputs is not None:
            require(hasattr(self.inputs.build(), "mix_at_half"), "mixer.inputs", self.inputs.name,
                    "choose an input mixer that can mix a given pair at lambda = 1/2 (puzzlemix) or null")
            self.inputs.check(cfg)

    def build(self, num_classes: int, feature_dim: int) -> LaMix:
        mix_inputs = None if self.inputs is None else self.inputs.build(num_classes, feature_dim).mix_at_half
        return LaMix(self.alpha, self.lamix_original_batches, mix_inputs)

    def build_method(self, criterion, regularizers, num_classes: int, feature_dim: int, epochs: int) -> Method:
        lamix = LaMixCriterion(feature_dim, num_classes, self.lamix_beta, self.lamix_global_label,
                               self.lamix_record_every, criterion.form)
        return Method(self.build(num_classes, feature_dim), lamix, regularizers, self.stop_epoch_for(epochs),
                      erm_criterion=criterion)
