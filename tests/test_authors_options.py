"""Options that make a recipe compute what its authors' code computes: BatchNorm over fixed groups of the batch
(uncertainty-baselines' per-replica BatchNorm), the rescaling's mean image over the augmented training
pipeline, and a rescaled result recomputed when that choice changes."""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F
from torch import nn

from conftest import FAST, compose_cfg
from mixexp.config import validate
from mixexp.models.ghost_batchnorm import GhostBatchNorm2d, convert_ghost_batchnorm


def _bn_with_statistics(channels=3, group=4):
    torch.manual_seed(0)
    bn = GhostBatchNorm2d(channels, group)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 1.5)
    return bn


def test_ghost_batchnorm_normalises_each_group_with_its_own_statistics():
    bn = _bn_with_statistics()
    start_mean, start_var = bn.running_mean.clone(), bn.running_var.clone()
    x = torch.randn(12, 3, 5, 5) * 3 + 1
    out = bn(x)
    # each replica of 4 images: (x - its mean) / sqrt(its biased variance + eps) * weight + bias
    groups = x.view(3, 4, 3, 5, 5)
    mean, var = groups.mean(dim=(1, 3, 4), keepdim=True), groups.var(dim=(1, 3, 4), unbiased=False, keepdim=True)
    direct = ((groups - mean) / torch.sqrt(var + bn.eps)).view_as(x) * bn.weight.view(1, 3, 1, 1) + bn.bias.view(1, 3, 1, 1)
    torch.testing.assert_close(out, direct)
    # the replicas' running averages, each moved from the same start by its own group, then averaged
    n = 4 * 25
    unbiased = groups.var(dim=(1, 3, 4), unbiased=True)
    torch.testing.assert_close(bn.running_mean, 0.9 * start_mean + 0.1 * mean.view(3, 3).mean(0))
    torch.testing.assert_close(bn.running_var, 0.9 * start_var + 0.1 * unbiased.mean(0))
    assert n > 1 and int(bn.num_batches_tracked) == 1


def test_ghost_batchnorm_is_plain_batchnorm_in_evaluation_and_for_a_small_batch():
    bn = _bn_with_statistics()
    plain = nn.BatchNorm2d(3)
    plain.load_state_dict(bn.state_dict())
    x = torch.randn(12, 3, 5, 5)
    torch.testing.assert_close(bn.eval()(x), plain.eval()(x))
    small = torch.randn(4, 3, 5, 5)
    torch.testing.assert_close(bn.train()(small), F.batch_norm(small, None, None, bn.weight, bn.bias, True, 0.1, bn.eps))
    ragged = torch.randn(10, 3, 5, 5)  # 4 + 4 + 2: the last group is smaller
    expected = torch.cat([F.batch_norm(p, None, None, bn.weight, bn.bias, True, 0.1, bn.eps) for p in ragged.split(4)])
    torch.testing.assert_close(bn(ragged), expected)


def test_converting_keeps_parameters_statistics_and_checkpoint_keys():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Sequential(nn.BatchNorm2d(4)))
    model[1].running_mean.fill_(0.3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    converted = convert_ghost_batchnorm(model, 2)
    assert isinstance(converted[1], GhostBatchNorm2d) and isinstance(converted[3][0], GhostBatchNorm2d)
    assert converted[1].group_size == 2 and converted.state_dict().keys() == before.keys()
    assert all(torch.equal(converted.state_dict()[k], v) for k, v in before.items())


def test_trainer_applies_bn_group_size(tmp_path):
    from mixexp.trainer import Trainer

    cfg = compose_cfg([*FAST, "trainer.bn_group_size=4", "trainer.epochs=1"])
    validate(cfg)
    trainer = Trainer(cfg, tmp_path / "run")
    norms = [m for m in trainer.model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(isinstance(m, GhostBatchNorm2d) and m.group_size == 4 for m in norms)
    trainer.fit()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"] == 1


def test_rescaling_mean_image_over_the_augmented_pipeline(tmp_path):
    from mixexp.data import load_dataset
    from mixexp.evaluation.rescaling import training_statistics

    # flips only: every image is a left-to-right ramp, so its mirror image differs everywhere but the middle
    cfg = compose_cfg([*FAST, "mixer=mixup", "eval.rescaled=true", "dataset.crop_padding=0", "dataset.flip=true"])
    validate(cfg)
    data = load_dataset(cfg.dataset, cfg.paths.data_dir)
    ramp = torch.arange(8, dtype=torch.uint8).mul(30).view(1, 1, 1, 8).expand_as(data.train.images).contiguous()
    data.train.images = ramp
    plain = training_statistics(cfg, data, torch.device("cpu"))
    cfg.eval.rescaling_mean = "augmented"
    torch.manual_seed(5)
    augmented = training_statistics(cfg, data, torch.device("cpu"))
    assert (plain.view, augmented.view) == ("unaugmented", "augmented")
    normalised = (ramp[:1].float() / 255 - torch.tensor(data.mean).view(-1, 1, 1)) / torch.tensor(data.std).view(-1, 1, 1)
    torch.testing.assert_close(plain.x_bar, normalised[0])
    # about half of the 64 images are mirrored: the mean image is close to the average of the ramp and its mirror
    mirrored = (normalised[0] + normalised[0].flip(-1)) / 2
    assert (augmented.x_bar - mirrored).abs().max() < (plain.x_bar - mirrored).abs().max() / 3
    assert not torch.allclose(augmented.x_bar, plain.x_bar)


def test_rescaled_results_of_another_mean_image_are_recomputed():
    from omegaconf import OmegaConf

    from mixexp.evaluation.suite import RESCALING_VIEW_KEY, current_results, missing_results

    ev = OmegaConf.create({"rescaled": True, "rescaling_mean": "augmented", "shift": ["cifar10_1"], "ood": [],
                           "severities": [1], "corruptions": [], "imagenet_c_crop": "none"})
    old = {"test_acc": 90.0, "rescaled_test_acc": 91.0, "cifar10_1_acc": 80.0, "rescaled_cifar10_1_acc": 81.0}
    # written before the key existed: the un-augmented mean image, so its rescaled results are stale
    assert current_results(old, ev) == {"test_acc": 90.0, "cifar10_1_acc": 80.0}
    assert missing_results(old, ev) == ["rescaled test", "cifar10_1"]
    current = {**old, RESCALING_VIEW_KEY: "augmented"}
    assert current_results(current, ev) == current and missing_results(current, ev) == []


def test_ghost_batchnorm_keeps_channels_last_and_computes_in_float32_under_autocast():
    bn = _bn_with_statistics()
    x = torch.randn(12, 3, 5, 5)
    expected = bn(x)
    bn.running_mean.zero_()
    out = bn(x.contiguous(memory_format=torch.channels_last))
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = bn(x.bfloat16())
    assert low.dtype == torch.bfloat16 and (low.float() - expected).abs().max() < 0.05


def test_converting_a_batchnorm_subclass_with_more_to_it_is_refused():
    from mixexp.errors import ConfigError

    class BatchNormAct(nn.BatchNorm2d):  # like timm's BatchNormAct2d: normalisation and an activation
        def forward(self, x):
            return torch.relu(super().forward(x))

    import pytest

    with pytest.raises(ConfigError, match=r"trainer.bn_group_size=4 is not allowed for this model: its BatchNormAct"):
        convert_ghost_batchnorm(nn.Sequential(nn.Conv2d(3, 4, 1), BatchNormAct(4)), 4)


def test_an_augmented_run_records_its_mean_image_and_is_not_evaluated_again(tmp_path):
    import torch as _torch

    from mixexp.checkpoint import CHECKPOINT
    from mixexp.evaluation.cli import cli as evaluate
    from mixexp.evaluation.suite import RESCALING_VIEW_KEY, missing_results
    from mixexp.trainer import Trainer

    cfg = compose_cfg([*FAST, "mixer=mixup", "eval.rescaled=true", "eval.rescaling_mean=augmented"])
    validate(cfg)
    run = tmp_path / "run"
    Trainer(cfg, run).fit()
    metrics = json.loads((run / "metrics.json").read_text())
    stored = _torch.load(run / CHECKPOINT, weights_only=True)["rescaling"]
    assert metrics[RESCALING_VIEW_KEY] == stored["x_bar_view"] == "augmented"
    assert missing_results(metrics, cfg.eval) == []  # a relaunch has nothing to add
    before = (run / "metrics.json").read_bytes()
    evaluate([str(run)])  # re-evaluation reuses the stored mean image: the rescaled results stay as they are
    after = json.loads((run / "metrics.json").read_text())
    assert after["rescaled_test_acc"] == metrics["rescaled_test_acc"] and before
    # asked for the other mean image, it is computed again and the rescaled results are replaced
    evaluate([str(run), "eval.rescaling_mean=unaugmented"])
    again = json.loads((run / "metrics.json").read_text())
    assert again[RESCALING_VIEW_KEY] == "unaugmented"
