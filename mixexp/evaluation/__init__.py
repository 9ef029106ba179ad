"""Evaluation in one package: metrics (:mod:`.metrics`), metric keys (:mod:`.keys`), the suite of
evaluation sets (:mod:`.suite`), test-time rescaling (:mod:`.rescaling`), config checks (:mod:`.checks`),
loading a finished run (:mod:`.run`) and ``mixexp-eval`` (:mod:`.cli`)."""

from mixexp.evaluation.metrics import ECE_BINS, accuracy_percent, classification_metrics, predict_logits
from mixexp.evaluation.rescaling import Rescaling, rescale_inputs, rescale_logits, theta_bar

__all__ = ["ECE_BINS", "Rescaling", "accuracy_percent", "classification_metrics", "predict_logits",
           "rescale_inputs", "rescale_logits", "theta_bar"]
