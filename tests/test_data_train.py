"""Acceptance: with a fixture tree as the data root, every training set trains an epoch and every
evaluation set evaluates, through the Trainer and ``evaluate_sets``."""

from __future__ import annotations

import json

import pytest
import torch

from fixtures_data import compose, data_root, fixture_tree  # noqa: F401  (pytest fixtures)
from mixexp.config import validate
from mixexp.data import load_dataset
from mixexp.data.evalsets import EVAL_SETS
from mixexp.data.sources import CORRUPTIONS
from mixexp.evaluation.suite import EvalContext, evaluate_sets

FAST = ["model=simplecnn", "model.width=8", "trainer.epochs=1", "trainer.batch_size=8", "trainer.eval_batch_size=16",
        "trainer.device=cpu", "trainer.progress=log", "trainer.checkpoint=false", "sched=cosine"]
TRAIN_SETS = {
    "cifar10": ["eval.shift=[cifar10_c,cifar10_1,cifar10_2]", "eval.ood=[svhn,lsun_crop]", "eval.severities=[1,5]"],
    "cifar100": ["eval.shift=[cifar100_c]", "eval.corruptions=[fog,snow]"],
    "tinyimagenet": [],
    "mnist": ["dataset.channels=3"],
    "fashion_mnist": [],
    "svhn": ["eval.ood=[lsun_crop]"],
    "imagenet": ["dataset.resize=32", "dataset.num_workers=0", "eval.shift=[objectnet]"],
}


def train(name, root, tmp_path, extra):
    from mixexp.trainer import Trainer

    cfg = compose([f"dataset={name}", f"paths.data_dir={root}", *FAST, *extra])
    validate(cfg)
    trainer = Trainer(cfg, tmp_path / "run")
    metrics = trainer.fit()
    return cfg, trainer, metrics


@pytest.mark.parametrize("name", sorted(TRAIN_SETS))
def test_every_training_set_trains_one_epoch_and_its_eval_sets_evaluate(name, data_root, tmp_path):
    cfg, trainer, metrics = train(name, data_root, tmp_path, TRAIN_SETS[name])
    assert metrics["epochs"] == 1 and 0.0 <= metrics["test_acc"] <= 100.0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"] == 1
    data = load_dataset(cfg.dataset, cfg.paths.data_dir)  # from the caches the Trainer built
    ctx = EvalContext(cfg, trainer.device, data.mean, data.std, data.image_shape)
    results = evaluate_sets(trainer.model, ctx, [*cfg.eval.shift, *cfg.eval.ood])
    assert list(results) == [*cfg.eval.shift, *cfg.eval.ood]
    for set_name, per in results.items():
        for sub, r in per.items():
            if EVAL_SETS[set_name].kind == "ood":
                assert r["msp"].shape == (r["n"],) and bool(((r["msp"] > 0) & (r["msp"] <= 1)).all())
            else:
                assert 0.0 <= r["acc"] <= 100.0 and r["n"] > 0
    # the Trainer wrote the suite's keys into metrics.json
    keys = {"cifar10": {"cifar10_c_acc", "cifar10_1_acc", "cifar10_2_acc", "ood_svhn_auroc", "ood_lsun_crop_auroc"},
            "cifar100": {"cifar100_c_acc"}, "svhn": {"ood_lsun_crop_auroc"}, "imagenet": {"objectnet_top1"}}
    assert keys.get(name, set()) <= set(metrics)
    if name == "cifar10":
        assert len(results["cifar10_c"]) == len(CORRUPTIONS) * 2 and "cifar10_c/fog/5" not in results
        assert sorted(results["cifar10_c"])[0] == "brightness/1"
        parts = json.loads((tmp_path / "run" / "eval_breakdown.json").read_text())["cifar10_c"]
        assert metrics["cifar10_c_acc"] == pytest.approx(sum(parts.values()) / len(parts))
        assert metrics["cifar10_1_acc"] == pytest.approx(results["cifar10_1"]["test"]["acc"])
    if name == "cifar100":
        assert list(results["cifar100_c"]) == [f"{c}/{s}" for c in ("fog", "snow") for s in range(1, 6)]
    if name == "imagenet":
        assert results["objectnet"]["test"]["n"] == 5
        assert metrics["objectnet_top1"] == pytest.approx(results["objectnet"]["test"]["acc"])


def test_objectnet_accuracy_counts_any_mapped_id_and_ignores_other_classes(data_root):
    """A model that always predicts torchvision id 1 (goldfish) is right on every 'fish' image and wrong
    on every 'shark' image; one that prefers an id outside the 125 is restricted to the allowed ones."""

    class Fixed(torch.nn.Module):
        def __init__(self, logits):
            super().__init__()
            self.logits = torch.tensor(logits)

        def forward(self, x):
            return self.logits.expand(x.shape[0], -1)

    cfg = compose(["dataset=imagenet", f"paths.data_dir={data_root}", "eval.shift=[objectnet]", "dataset.num_workers=0",
                   "trainer.eval_batch_size=4"])
    ctx = EvalContext(cfg, torch.device("cpu"), (0.5,) * 3, (0.25,) * 3, (3, 16, 16))
    fish = evaluate_sets(Fixed([0.0, 5.0, 1.0, 9.0]), ctx, ["objectnet"])  # id 3 is not mapped: ignored
    assert fish["objectnet"]["test"]["acc"] == pytest.approx(60.0)  # 3 fish images of 5
    shark = evaluate_sets(Fixed([0.0, 1.0, 2.0, 0.0]), ctx, ["objectnet"])
    assert shark["objectnet"]["test"]["acc"] == pytest.approx(40.0)
