"""Regularizers add a term to a method's loss, e.g. on the model's representations (``regularizer`` group).

``REGULARIZERS`` maps each option's name to its schema; ``conf/regularizer/<name>.yaml`` selects it.
"""

from typing import Dict, Type

from mixexp.regularizers.base import NoRegularizerConfig, RegularizerConfig
from mixexp.regularizers.sem import SemanticEquivarianceLoss, SEMConfig, equivariance_target, feature_distance

REGULARIZERS: Dict[str, Type[RegularizerConfig]] = {"none": NoRegularizerConfig, "sem": SEMConfig}

__all__ = ["REGULARIZERS", "RegularizerConfig", "SemanticEquivarianceLoss", "SEMConfig", "equivariance_target",
           "feature_distance"]
