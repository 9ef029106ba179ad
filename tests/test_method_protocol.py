"""The method step protocol and the methods added through it: Manifold Mixup, SaliencyMix; timm models;
PuzzleMix's loss form; SEM's BatchNorm option; float32 evaluation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from conftest import FAST, compose_cfg
from mixexp.assemble import build_method, method_label
from mixexp.config import validate
from mixexp.errors import ConfigError
from mixexp.evaluation.metrics import predict_logits
from mixexp.losses import LossConfig, bce_on_softmax, mixed_target
from mixexp.method import MixedBatch
from mixexp.mixers import spectral_residual_saliency
from mixexp.mixers.mixup import mixup
from mixexp.models import MODELS
from mixexp.models.simple_cnn import SimpleCNN
from mixexp.regularizers.sem import SemanticEquivarianceLoss
from mixexp.trainer import Trainer


def _cnn(seed=0):
    torch.manual_seed(seed)
    return SimpleCNN(10, in_channels=1, width=4)


# ----------------------------------------------------------------------------------- Manifold Mixup

@pytest.mark.parametrize("layer", [0, 1, 2, 3])
def test_manifold_mixup_mixes_the_hidden_state_of_the_drawn_layer(layer):
    cfg = compose_cfg(FAST + ["mixer=manifold_mixup", f"mixer.layers=[{layer}]"])
    validate(cfg)
    model = _cnn().eval()  # eval: BatchNorm uses running statistics, so passes are comparable
    method = build_method(cfg, 10, model.feature_dim)
    x, y = torch.randn(6, 1, 8, 8), torch.arange(6)
    torch.manual_seed(1)
    mixed, features = method.forward_mixed(model, x, y)
    lam, partner = mixed.lam, mixed.partner
    assert lam.unique().numel() == 1 and not torch.equal(partner, torch.arange(6))
    # the same pass by hand: run the body up to the layer, mix there, run the rest
    h = x if layer == 0 else None
    modules = list(model.body)
    stop = {1: 0, 2: 1, 3: 3}.get(layer, -1)
    for i, module in enumerate(modules):
        if i == 0 and layer == 0:
            h = mixup(x, partner, lam)
        h = module(h if h is not None else x)
        if i == stop:
            h = mixup(h, partner, lam)
    torch.testing.assert_close(features, h)
    # the hook is gone afterwards: a plain pass is the clean one
    torch.testing.assert_close(model.features(x), model.body(x))


def test_manifold_mixup_refuses_a_layer_the_model_lacks(tmp_path):
    cfg = compose_cfg(FAST + ["mixer=manifold_mixup", "mixer.layers=[0,7]"])
    validate(cfg)
    with pytest.raises(ConfigError, match=r"mixer.layers=\[0, 7\] is not allowed: this model has 3 mixing layers"):
        Trainer(cfg, tmp_path / "run")


# ------------------------------------------------------------------------------------- SaliencyMix

def test_spectral_residual_saliency_peaks_on_an_odd_patch():
    torch.manual_seed(0)
    x = 0.1 * torch.rand(2, 3, 32, 32)  # a faint texture ...
    x[0, :, 4:8, 20:24] += 1.0  # ... and a lone bright patch: the spectral residual's salient spot
    x[1, :, 22:26, 6:10] += 1.0
    s = spectral_residual_saliency(x)
    assert s.shape == (2, 32, 32)
    peak = [divmod(int(i), 32) for i in s.flatten(1).argmax(1)]
    assert 2 <= peak[0][0] <= 9 and 18 <= peak[0][1] <= 25
    assert 20 <= peak[1][0] <= 27 and 4 <= peak[1][1] <= 11


def test_saliencymix_box_is_centred_on_the_partners_salient_patch_and_lambda_is_the_kept_share():
    cfg = compose_cfg(FAST + ["mixer=saliencymix", "mixer.prob=1.0"])
    validate(cfg)
    method = build_method(cfg, 10, 8)
    torch.manual_seed(0)
    x = 0.1 * torch.rand(4, 3, 32, 32) + torch.arange(4.0).view(4, 1, 1, 1)
    x[:, :, 10:14, 20:24] += 3.0  # every image has its salient patch at rows 10-13, cols 20-23
    torch.manual_seed(3)
    mixed = method.mixer(x, torch.arange(4))
    pasted = mixed.inputs != x
    assert pasted.any()
    rows, cols = pasted[0, 0].nonzero(as_tuple=True)
    centre_r, centre_c = (rows.min() + rows.max()) / 2, (cols.min() + cols.max()) / 2
    assert abs(centre_r - 11.5) <= 2.5 and abs(centre_c - 21.5) <= 2.5
    kept = 1.0 - pasted[:, 0].flatten(1).float().mean(1)
    moved = mixed.partner != torch.arange(4)
    torch.testing.assert_close(mixed.lam[moved], kept[moved])


# -------------------------------------------------------------------------------------------- timm

@pytest.mark.parametrize("arch", ["resnet18", "mobilenetv3_small_050"])
def test_timm_models_split_into_features_and_classifier(arch):
    model = MODELS["timm"](arch=arch).build(num_classes=7, in_channels=3, input_size=32).eval()
    x = torch.randn(2, 3, 32, 32)
    z = model.features(x)
    assert z.shape == (2, model.feature_dim)
    torch.testing.assert_close(model(x), model.classifier(z))
    assert model.classifier.out_features == 7 and len(model.mixing_layers()) >= 3
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in model.net.parameters())


def test_timm_rejects_an_unknown_architecture():
    with pytest.raises(ConfigError, match="model.arch='no_such_net' is not allowed: not a timm architecture"):
        MODELS["timm"](arch="no_such_net").build(10, 3, 32)


# -------------------------------------------------------------------------------------- criterion

def test_bce_on_softmax_equals_the_direct_computation():
    torch.manual_seed(0)
    logits, y, partner, lam = torch.randn(5, 4), torch.randint(0, 4, (5,)), torch.randperm(5), torch.rand(5)
    target = mixed_target(y, partner, lam, 4)
    p = logits.softmax(1)
    direct = -(target * p.log() + (1 - target) * (1 - p).log()).mean()
    torch.testing.assert_close(bce_on_softmax(logits, target), direct)
    criterion = LossConfig(form="bce_softmax").build(4)
    torch.testing.assert_close(criterion(logits, None, y, MixedBatch(logits, partner, lam)), direct)


# ------------------------------------------------------------------------------------ SEM and BN

@pytest.mark.parametrize("update", [False, True])
def test_sem_clean_pass_updates_batchnorm_statistics_only_when_asked(update):
    model = _cnn().train()
    x = torch.randn(8, 1, 8, 8)
    before = [b.clone() for b in model.buffers()]
    sem = SemanticEquivarianceLoss(update_bn_stats=update)
    loss = sem(model, x, MixedBatch(x, torch.randperm(8), torch.full((8,), 0.3)), torch.randn(8, model.feature_dim))
    assert torch.isfinite(loss)
    changed = any(not torch.equal(a, b) for a, b in zip(before, model.buffers()))
    assert changed == update
    assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, nn.BatchNorm2d))


# ------------------------------------------------------------------------------------- evaluation

def test_evaluation_runs_in_float32_inside_a_bf16_autocast_region():
    model = _cnn().eval()
    x = torch.randn(16, 1, 8, 8)
    loader = [(x, torch.zeros(16, dtype=torch.long))]
    reference, _ = predict_logits(model, loader)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside, _ = predict_logits(model, loader)
        assert model(x).dtype == torch.bfloat16  # the region would give bf16 logits
    assert inside.dtype == torch.float32
    torch.testing.assert_close(inside, reference, rtol=0, atol=0)


# ------------------------------------------------------------------------------------------ labels

@pytest.mark.parametrize("overrides,label", [
    (["method=mixup_es_sem"], "mixup+es+sem"),
    (["mixer=cutmix", "regularizer=sem", "mixer.stop_epoch=1"], "cutmix+es+sem"),
    (["mixer=none", "loss.label_smoothing=0.2"], "erm+ls0.2"),
    (["method=lamix_no_original"], "lamix-no_original"),
    (["mixer=lamix", "mixer.lamix_global_label=false"], "lamix-no_global_label"),
])
def test_method_label_from_the_preset_or_the_options(overrides, label, tmp_path):
    cfg = compose_cfg(FAST + overrides)
    assert method_label(cfg) == label
    validate(cfg)
    Trainer(cfg, tmp_path / "run")
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["label"] == label


def test_a_method_step_returns_loss_logits_and_mixing():
    cfg = compose_cfg(FAST + ["mixer=mixup", "regularizer=sem"])
    method = build_method(cfg, 10, 32)
    model = SimpleCNN(10, 1, 8)
    method.stop_epoch = 3
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    out = method.step(model, x, y)
    assert out.loss.ndim == 0 and out.logits.shape == (8, 10) and out.mixed.lam.shape == (8,)
    method.set_epoch(3)  # ES: from the stop epoch on the step is plain ERM
    plain = method.step(model, x, y)
    torch.testing.assert_close(plain.loss, F.cross_entropy(plain.logits, y))
    assert torch.equal(plain.mixed.partner, torch.arange(8))
