"""The keys every regularizer option has; an option is a schema dataclass (``check``, ``build``) + a yaml."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from omegaconf import MISSING
from torch import nn


@dataclass
class RegularizerConfig:
    name: str = MISSING

    def label(self) -> str:
        """The regularizer's part of the method's name (``+sem``; nothing for ``none``)."""
        return f"+{self.name}"

    def check(self, cfg, mixer) -> None:
        """Range checks; ``mixer`` is the run's mixer schema (some regularizers need a mixed batch)."""

    def build(self) -> Optional[nn.Module]:
        raise NotImplementedError


@dataclass
class NoRegularizerConfig(RegularizerConfig):
    """``regularizer=none``: no extra loss term."""

    name: str = "none"

    def label(self) -> str:
        return ""

    def build(self) -> None:
        return None
