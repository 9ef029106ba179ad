"""Regularizers add a term to the mixing loss, e.g. on the model's representations.

``none`` adds nothing; the papers' regularizers (SEM) register here.
"""

from typing import Callable, Dict, Optional

from mixexp.regularizers.sem import SemanticEquivarianceLoss, equivariance_target, feature_distance

REGULARIZERS: Dict[str, Callable] = {
    "none": lambda cfg: None,
    "sem": lambda cfg: SemanticEquivarianceLoss(cfg.gamma, cfg.distance, cfg.detach_target),
}


def build_regularizer(cfg) -> Optional[Callable]:
    if cfg.name not in REGULARIZERS:
        raise ValueError(f"regularizer.name={cfg.name!r} is not allowed: choose one of {', '.join(sorted(REGULARIZERS))}")
    return REGULARIZERS[cfg.name](cfg)
