"""The metrics.json keys of every evaluation, in one place (the published tables read them too).

- ``test_acc``, ``test_error`` (percent), ``test_nll`` (nats), ``test_ece`` (15 bins): the clean test set;
- ``<set>_acc`` for a shift set (``cifar10_c_acc``: mean over the corruptions x severities evaluated;
  ``cifar10_1_acc``, ``cifar10_2_acc``); ``<set>_top1`` for the ImageNet ones: ``objectnet_top1``
  (predictions restricted to its ImageNet ids), ``imagenet_v2_top1``, ``imagenet_c_top1`` (mean over the
  corruptions x severities evaluated);
- ``ood_<set>_auroc``: AUROC of the maximum softmax probability, the in-distribution test set positive;
- the same with the ``rescaled_`` prefix when the run is evaluated with test-time rescaling.
"""

from __future__ import annotations

RESCALED = "rescaled_"
# in metrics.json: the corruptions and severities each -C result was computed with
SETTINGS_KEY = "eval_settings"
# a table's metric -> the clean-test key; accuracies and errors are in percent as in the papers
CLEAN_KEYS = {"accuracy": "test_acc", "top1": "test_acc", "error": "test_error", "nll": "test_nll", "ece": "test_ece"}


# shift sets labelled with ImageNet's classes: their accuracy is "top-1", as the ImageNet papers print it
TOP1_SETS = ("objectnet", "imagenet_v2", "imagenet_c")


def shift_key(name: str, prefix: str = "") -> str:
    """The key of a distribution-shift set's accuracy."""
    return f"{prefix}{name}_{'top1' if name in TOP1_SETS else 'acc'}"


def ood_key(name: str, prefix: str = "") -> str:
    return f"{prefix}ood_{name}_auroc"
