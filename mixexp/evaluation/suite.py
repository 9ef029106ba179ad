"""The evaluation suite of a trained model: the clean test set, distribution-shift sets, OOD detection
and ObjectNet, each also under test-time rescaling for mixup-trained runs (keys: :mod:`.keys`).

Used after training (the trainer) and on finished runs (``mixexp-eval``). The per-corruption,
per-severity accuracies go to ``eval_breakdown.json`` beside metrics.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Tuple

import torch

from mixexp.data.evalsets import EVAL_SETS, iter_eval_set
from mixexp.data.folder import FolderSet
from mixexp.data import build_loader
from mixexp.data.sources import ObjectNetMapping
from mixexp import distributed
from mixexp.evaluation import keys
from mixexp.evaluation.metrics import classification_metrics, max_softmax, ood_auroc, predict_logits
from mixexp.evaluation.rescaling import Rescaling

# {set: {sub: {"acc": percent, "n": count} or {"msp": (N,) scores, "n": count}}}
SetResults = Dict[str, Dict[str, Dict[str, Any]]]


@dataclass
class EvalContext:
    """What evaluating a model needs besides the model: the run's config, its device, and the training
    set's normalisation and image shape (evaluation sets are brought to the same)."""

    cfg: Any
    device: torch.device
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    image_shape: Tuple[int, int, int]


def set_key(name: str, prefix: str = "") -> str:
    """The metrics.json key of an evaluation set."""
    return keys.ood_key(name, prefix) if EVAL_SETS[name].kind == "ood" else keys.shift_key(name, prefix)


def _subset_result(name: str, data, logits: torch.Tensor, labels: torch.Tensor) -> Dict[str, Any]:
    if EVAL_SETS[name].kind == "ood":
        return {"msp": max_softmax(logits).cpu(), "n": len(data)}
    if isinstance(data, FolderSet) and data.class_ids is not None:
        # ObjectNet: predictions restricted to the ImageNet ids of its shared classes
        mapping = ObjectNetMapping(list(data.classes), [list(i) for i in data.class_ids])
        allowed = torch.tensor(mapping.allowed_ids, device=logits.device)
        pred = allowed[logits[:, allowed].argmax(dim=1)]
        correct = mapping.membership(logits.shape[1]).to(logits.device)[labels, pred]
    else:
        correct = logits.argmax(dim=1) == labels
    return {"acc": correct.float().mean().item() * 100.0, "n": len(data)}


def evaluate_sets(model, ctx: EvalContext, names: Iterable[str], rescaling: Optional[Rescaling] = None) -> SetResults:
    """Run ``model`` (float32) on every sub-set of each set in ``names``, inputs normalised with the
    training statistics; with ``rescaling``, inputs and logits are rescaled."""
    cfg, (channels, size) = ctx.cfg, (int(ctx.image_shape[0]), int(ctx.image_shape[1]))
    results: SetResults = {}
    for name in names:
        results[name] = {}
        for sub, data in iter_eval_set(
            name, cfg.paths.data_dir, size=size, channels=channels, severities=list(cfg.eval.severities),
            corruptions=list(cfg.eval.corruptions), download=bool(cfg.dataset.get("download", False)),
            num_workers=int(cfg.dataset.get("num_workers", 0)), imagenet_c_crop=str(cfg.eval.get("imagenet_c_crop", "none")),
        ):
            loader = build_loader(data, cfg.trainer.eval_batch_size, device=ctx.device, mean=ctx.mean, std=ctx.std,
                                  train=False)
            logits, labels = predict_logits(model, loader, rescaling.inputs if rescaling else None)
            if rescaling is not None:
                logits = rescaling.logits(logits)
            results[name][sub] = _subset_result(name, data, logits, labels)
    return results


def set_metrics(results: SetResults, in_scores: torch.Tensor, prefix: str = "") -> Dict[str, float]:
    """Summarise :func:`evaluate_sets`: mean accuracy over a set's parts (for the -C sets: over corruptions x
    severities, each part the same size), AUROC for OOD sets against the test set's ``in_scores``."""
    out: Dict[str, float] = {}
    for name, parts in results.items():
        if EVAL_SETS[name].kind == "ood":
            out[set_key(name, prefix)] = ood_auroc(in_scores, torch.cat([p["msp"] for p in parts.values()]))
        else:
            out[set_key(name, prefix)] = sum(p["acc"] for p in parts.values()) / len(parts)
    return out


def breakdown(results: SetResults, prefix: str = "") -> Dict[str, Dict[str, float]]:
    """Accuracy of every part of the shift sets: ``{"cifar10_c": {"fog/3": 71.2, ...}}``."""
    return {prefix + name: {sub: p["acc"] for sub, p in parts.items()}
            for name, parts in results.items() if EVAL_SETS[name].kind != "ood"}


def corruption_settings(eval_cfg, name: str) -> Dict[str, Any]:
    """What a corruption set's result depends on besides the model: severities, corruptions (and, for
    ImageNet-C, whether its files are centre-cropped again)."""
    out: Dict[str, Any] = {"severities": list(eval_cfg.severities), "corruptions": list(eval_cfg.corruptions)}
    if name == "imagenet_c":
        out["crop"] = str(eval_cfg.get("imagenet_c_crop", "none"))
    return out


def missing_sets(names: Iterable[str], existing: Dict[str, Any], prefixes: Iterable[str], eval_cfg=None) -> List[str]:
    """The sets whose keys (for every prefix) are not all in ``existing`` yet, and the corruption sets
    whose result was computed with other settings than ``eval_cfg``'s (:func:`corruption_settings`)."""
    done = existing.get(keys.SETTINGS_KEY, {})

    def stale(name: str) -> bool:
        return eval_cfg is not None and name.endswith("_c") and done.get(name) != corruption_settings(eval_cfg, name)

    return [n for n in dict.fromkeys(names) if stale(n) or any(set_key(n, p) not in existing for p in prefixes)]


RESCALING_VIEW_KEY = "rescaling_x_bar_view"


def current_results(existing: Dict[str, Any], eval_cfg) -> Dict[str, Any]:
    """``existing`` (a run's metrics.json) without the rescaled results computed with another mean image than
    ``eval.rescaling_mean`` asks for (runs written before the key existed used the un-augmented one)."""
    view = existing.get(RESCALING_VIEW_KEY, "unaugmented")
    if not eval_cfg.rescaled or view == eval_cfg.rescaling_mean:
        return dict(existing)
    return {k: v for k, v in existing.items() if not k.startswith(keys.RESCALED) and k != RESCALING_VIEW_KEY}


def missing_results(existing: Dict[str, Any], eval_cfg) -> List[str]:
    """What :func:`evaluate_model` would add to a run's metrics.json ``existing`` under ``eval_cfg``: the
    rescaled test set (``eval.rescaled``) and the missing or stale shift and OOD sets."""
    existing = current_results(existing, eval_cfg)
    prefixes = ["", keys.RESCALED] if eval_cfg.rescaled else [""]
    rescaled_test = ["rescaled test"] if eval_cfg.rescaled and keys.RESCALED + "test_acc" not in existing else []
    return rescaled_test + missing_sets([*eval_cfg.shift, *eval_cfg.ood], existing, prefixes, eval_cfg)


def evaluate_model(model, ctx: EvalContext, test_loader, rescaling: Optional[Rescaling] = None,
                   existing: Optional[Dict[str, Any]] = None) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(metrics, breakdown) of the whole suite: the test set (and its rescaled version), then each set of
    ``eval.shift``/``eval.ood`` that ``existing`` (a run's metrics.json) lacks. What ``existing`` reports is
    kept: a re-evaluation adds only what is missing.

    Under ``torchrun`` the test set is predicted in shards and gathered (``test_loader`` sharded by rank;
    :func:`predict_logits`), so every rank gets the test metrics; the shift and OOD sets run on rank 0
    alone (it alone writes metrics.json), one process reading and caching each set."""
    existing = current_results(existing or {}, ctx.cfg.eval)
    logits, labels = predict_logits(model, test_loader)
    metrics: Dict[str, Any] = classification_metrics(logits, labels, prefix="test")
    in_scores = {"": max_softmax(logits)}
    if rescaling is not None:
        z, _ = predict_logits(model, test_loader, rescaling.inputs)
        rescaled = rescaling.logits(z)
        metrics.update(classification_metrics(rescaled, labels, prefix=keys.RESCALED + "test"))
        metrics["rescaling_theta_bar"] = rescaling.theta
        metrics[RESCALING_VIEW_KEY] = rescaling.view
        in_scores[keys.RESCALED] = max_softmax(rescaled)
    metrics.update(existing)
    ev = ctx.cfg.eval
    todo = missing_sets([*ev.shift, *ev.ood], existing, in_scores, ev) if distributed.is_main() else []
    parts: Dict[str, Any] = {}
    if todo:
        metrics[keys.SETTINGS_KEY] = {**existing.get(keys.SETTINGS_KEY, {}),
                                      **{n: corruption_settings(ev, n) for n in todo if n.endswith("_c")}}
    for prefix in in_scores if todo else ():
        results = evaluate_sets(model, ctx, todo, rescaling if prefix else None)
        metrics.update(set_metrics(results, in_scores[prefix], prefix))
        parts.update(breakdown(results, prefix))
    return metrics, parts
