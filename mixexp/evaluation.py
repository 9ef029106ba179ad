"""The evaluation suite after training (and ``mixexp-eval``): distribution-shift accuracy, OOD detection
AUROC and ObjectNet top-1, each also under test-time rescaling for mixup-trained runs.

Keys in metrics.json (accuracies and AUROC in percent, like the papers):
- ``<set>_acc`` for a shift set (``cifar10_c_acc``: mean over the corruptions x severities evaluated;
  ``cifar10_1_acc``, ``cifar10_2_acc``); ``objectnet_top1`` (predictions restricted to its ImageNet ids);
- ``ood_<set>_auroc``: AUROC of the maximum softmax probability, the in-distribution test set positive;
- the same with a ``rescaled_`` prefix when the run is evaluated with test-time rescaling.
The per-corruption, per-severity accuracies go to ``eval_breakdown.json`` beside metrics.json.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable

import torch
from torchmetrics.functional.classification import binary_auroc

from mixexp.data.evalsets import EVAL_SETS


def max_softmax(logits: torch.Tensor) -> torch.Tensor:
    return logits.softmax(dim=1).amax(dim=1)


def ood_auroc(in_scores: torch.Tensor, ood_scores: torch.Tensor) -> float:
    """AUROC (percent) of telling in-distribution (positive) from OOD inputs by their score."""
    scores = torch.cat([in_scores.float().cpu(), ood_scores.float().cpu()])
    target = torch.cat([torch.ones(len(in_scores), dtype=torch.long), torch.zeros(len(ood_scores), dtype=torch.long)])
    return binary_auroc(scores, target).item() * 100.0


def set_key(name: str, prefix: str = "") -> str:
    """The metrics.json key of an evaluation set."""
    if EVAL_SETS[name].kind == "ood":
        return f"{prefix}ood_{name}_auroc"
    return f"{prefix}{name}_{'top1' if name == 'objectnet' else 'acc'}"


def eval_set_metrics(results: Dict[str, Dict[str, Dict[str, Any]]], in_scores: torch.Tensor,
                     prefix: str = "") -> Dict[str, float]:
    """Summarise ``evaluate_eval_sets`` results: mean accuracy over a set's parts (for the -C sets: over
    corruptions x severities, each part the same size), AUROC for OOD sets against ``in_scores``."""
    out: Dict[str, float] = {}
    for name, parts in results.items():
        if EVAL_SETS[name].kind == "ood":
            out[set_key(name, prefix)] = ood_auroc(in_scores, torch.cat([p["msp"] for p in parts.values()]))
        else:
            out[set_key(name, prefix)] = sum(p["acc"] for p in parts.values()) / len(parts)
    return out


def breakdown(results: Dict[str, Dict[str, Dict[str, Any]]], prefix: str = "") -> Dict[str, Dict[str, float]]:
    """Accuracy of every part of the shift sets: ``{"cifar10_c": {"fog/3": 71.2, ...}}``."""
    return {prefix + name: {sub: p["acc"] for sub, p in parts.items()}
            for name, parts in results.items() if EVAL_SETS[name].kind != "ood"}


SETTINGS_KEY = "eval_settings"  # in metrics.json: the corruptions and severities each -C result used


def corruption_settings(eval_cfg) -> Dict[str, list]:
    return {"severities": list(eval_cfg.severities), "corruptions": list(eval_cfg.corruptions)}


def missing_sets(names: Iterable[str], existing: Dict[str, Any], prefixes: Iterable[str], settings=None) -> list:
    """The sets whose keys (for every prefix) are not all in ``existing`` yet, and the corruption sets
    whose result was computed with other ``settings`` (severities, corruptions)."""
    done = existing.get(SETTINGS_KEY, {})

    def stale(name: str) -> bool:
        return settings is not None and name.endswith("_c") and done.get(name) != settings

    return [n for n in dict.fromkeys(names) if stale(n) or any(set_key(n, p) not in existing for p in prefixes)]
