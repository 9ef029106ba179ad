"""Each model a table trains as "the authors' network" computes the authors' function.

Every test writes the authors' forward pass directly from the fact (file and line of their code), runs it
with our module's own weights and BatchNorm statistics, and asserts equal outputs, in training mode (batch
statistics) and in evaluation mode (running statistics). A parameter count cannot do this: fb's ResNet18
and a pre-activation ResNet whose identity path adds x have the same 11,171,274 parameters.

Sources (local mirrors of the public repositories):
- fb: facebookresearch/mixup-cifar10 @ eaff31a, models/resnet.py, models/lenet.py, models/densenet.py
- puzzle: snu-mllab/PuzzleMix @ e2dbf3a, models/preresnet.py, main.py
"""

from __future__ import annotations

from typing import List

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mixexp.models import MODELS


def build(name: str, num_classes: int = 10, in_channels: int = 3, input_size: int = 32, **keys):
    model = MODELS[name](**keys).build(num_classes, in_channels, input_size)
    randomise_batchnorm(model)
    return model


def randomise_batchnorm(model: nn.Module) -> None:
    """Scale, shift and running statistics far from (1, 0, 0, 1), so that relu(bn(x)) is nowhere near x."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            with torch.no_grad():
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(torch.randn(n, generator=g) * 0.5)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))


def bn(x: torch.Tensor, m: nn.BatchNorm2d, train: bool, channels: List[int] | None = None) -> torch.Tensor:
    """BatchNorm with module ``m``'s parameters (optionally its channels in the order ``channels``); the
    running statistics are copies, so that the reference pass leaves ``m`` as it was."""
    idx = slice(None) if channels is None else torch.tensor(channels)
    return F.batch_norm(x, m.running_mean[idx].clone(), m.running_var[idx].clone(), m.weight[idx], m.bias[idx],
                        train, 0.0, m.eps)


def conv(x: torch.Tensor, m: nn.Conv2d, in_channels: List[int] | None = None) -> torch.Tensor:
    w = m.weight if in_channels is None else m.weight[:, torch.tensor(in_channels)]
    return F.conv2d(x, w, m.bias, m.stride, m.padding)


def assert_same_function(model: nn.Module, reference, x: torch.Tensor) -> None:
    for train in (True, False):
        model.train(train)
        with torch.no_grad():
            ours, theirs = model(x), reference(model, x, train)
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4, msg=f"train={train}")


# ----------------------------------------------------------------------------------- PreAct ResNet-18


def fb_resnet18(model, x, train):
    """fb models/resnet.py ResNet.forward (lines ~158-174) with PreActBlock (lines ~47-69):
    out = relu(bn1(conv1(x))); each block: out = relu(bn1(x)); shortcut = self.shortcut(out) where
    ``self.shortcut = nn.Sequential()`` (identity) when shapes match, else a 1x1 conv; then
    conv2(relu(bn2(conv1(out)))) + shortcut; finally avg_pool2d(out, 4) and the linear layer."""
    out = F.relu(bn(conv(x, model.conv1), model.stem_bn, train))
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        for block in stage:
            a = F.relu(bn(out, block.bn1, train))
            shortcut = a if block.shortcut is None else conv(a, block.shortcut)
            out = conv(F.relu(bn(conv(a, block.conv1), block.bn2, train)), block.conv2) + shortcut
    return model.classifier(torch.flatten(F.avg_pool2d(out, 4), 1))


def puzzlemix_preactresnet18(model, x, train):
    """puzzle models/preresnet.py PreActResNet.forward (lines ~150-167) with PreActBlock.forward (lines ~38-44):
    no BN after conv1 (stride 1, or 2 for tiny-imagenet-200: main.py ~519); each block:
    out = relu(bn1(x)); shortcut = self.shortcut(out) if it has one else x (the raw input); then
    conv2(relu(bn2(conv1(out)))) + shortcut; finally avg_pool2d(out, 4) and the linear layer."""
    out = conv(x, model.conv1)
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        for block in stage:
            a = F.relu(bn(out, block.bn1, train))
            shortcut = out if block.shortcut is None else conv(a, block.shortcut)
            out = conv(F.relu(bn(conv(a, block.conv1), block.bn2, train)), block.conv2) + shortcut
    return model.classifier(torch.flatten(F.avg_pool2d(out, 4), 1))


def test_fb_variant_computes_fbs_resnet18_with_the_activated_identity():
    model = build("preactresnet18", variant="fb")
    assert_same_function(model, fb_resnet18, torch.randn(4, 3, 32, 32))


def test_fb_and_puzzlemix_identity_paths_differ():
    # the same weights through the two authors' functions give different outputs: the tests above and
    # below tell the variants apart (a shortcut that adds x would fail the fb test)
    model = build("preactresnet18", variant="fb").eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        activated = fb_resnet18(model, x, False)
        raw = puzzlemix_preactresnet18(_without_stem_bn(model), x, False)
    assert (activated - raw).abs().max() > 1e-2


def _without_stem_bn(model):
    """The fb model seen by the PuzzleMix reference: its stem BN skipped by the reference itself, so only
    the identity path differs when comparing the two functions on fb's weights."""
    class View:
        conv1, classifier = model.conv1, model.classifier
        layer1, layer2, layer3, layer4 = model.layer1, model.layer2, model.layer3, model.layer4
    return View()


@pytest.mark.parametrize("stem,size", [("cifar", 32), ("stride2", 64)])
def test_puzzlemix_variant_computes_puzzlemixs_preactresnet18(stem, size):
    model = build("preactresnet18", variant="puzzlemix", stem=stem, input_size=size)
    assert_same_function(model, puzzlemix_preactresnet18, torch.randn(4, 3, size, size))


# ----------------------------------------------------------------------------------- ResNet-50


def fb_resnet50(model, x, train):
    """fb models/resnet.py ResNet50() = ResNet(Bottleneck, [3, 4, 6, 3]) (lines ~72-97, 132-174): a 3x3
    stride-1 conv-BN-ReLU stem, no max-pool; each Bottleneck: relu(bn1(conv1 1x1)), relu(bn2(conv2 3x3,
    stride)), bn3(conv3 1x1), plus the shortcut (identity, or 1x1 conv + BN when shapes change), then relu;
    finally avg_pool2d(out, 4) and the linear layer."""
    net = model.backbone
    out = F.relu(bn(conv(x, net.conv1), net.bn1, train))
    for stage in (net.layer1, net.layer2, net.layer3, net.layer4):
        for block in stage:
            o = F.relu(bn(conv(out, block.conv1), block.bn1, train))
            o = F.relu(bn(conv(o, block.conv2), block.bn2, train))
            o = bn(conv(o, block.conv3), block.bn3, train)
            shortcut = out if block.downsample is None else bn(conv(out, block.downsample[0]), block.downsample[1], train)
            out = F.relu(o + shortcut)
    return model.classifier(torch.flatten(F.avg_pool2d(out, 4), 1))


def test_resnet50_cifar_stem_computes_fbs_resnet50():
    model = build("resnet50", stem="cifar")
    assert_same_function(model, fb_resnet50, torch.randn(2, 3, 32, 32))


# ----------------------------------------------------------------------------------- LeNet, DenseNet-121


def fb_lenet(model, x, train):
    """fb models/lenet.py LeNet.forward: relu(conv1 5x5, 3->6), max_pool 2, relu(conv2 5x5, 6->16), max_pool 2,
    flatten, relu(fc1 400->120), relu(fc2 120->84), fc3 84->classes."""
    out = F.max_pool2d(F.relu(conv(x, model.conv1)), 2)
    out = F.max_pool2d(F.relu(conv(out, model.conv2)), 2)
    out = F.relu(model.fc1(torch.flatten(out, 1)))
    return model.classifier(F.relu(model.fc2(out)))


def test_lenet_computes_fbs_lenet():
    model = build("lenet")
    assert (model.conv1.in_channels, model.conv1.out_channels, model.fc1.in_features) == (3, 6, 16 * 5 * 5)
    assert_same_function(model, fb_lenet, torch.randn(4, 3, 32, 32))


def _fb_channel_order(c0: int, growth: int, layers: int) -> List[int]:
    """fb's DenseNet concatenates [new, x] (models/densenet.py Bottleneck.forward: torch.cat([out, x], 1)), ours
    [x, new]: after ``layers`` layers on ``c0`` input channels, fb's channel k is our channel order[k]."""
    order = []
    for j in range(layers, 0, -1):
        order += range(c0 + (j - 1) * growth, c0 + j * growth)
    return order + list(range(c0))


def fb_densenet121(model, x, train):
    """fb models/densenet.py DenseNet121() = DenseNet(Bottleneck, [6, 12, 24, 16], growth_rate=32): a 3x3 conv
    to 64 channels; Bottleneck: conv1 1x1 (4k) of relu(bn1(x)), conv2 3x3 (k) of relu(bn2(.)), then
    cat([out, x]); Transition: avg_pool2d(conv 1x1 of relu(bn(x)), 2) with floor(0.5 * channels); finally
    avg_pool2d(relu(bn(out)), 4) and the linear layer. Our weights are read in fb's channel order."""
    out = conv(x, model.conv1)
    k = model.dense[0][0].conv2.out_channels
    for stage in model.dense:
        c0, n = out.shape[1], 0
        for layer in stage:
            order = _fb_channel_order(c0, k, n)
            if isinstance(layer, nn.Module) and hasattr(layer, "conv2"):  # a dense layer
                h = conv(F.relu(bn(out, layer.bn1, train, order)), layer.conv1, order)
                new = conv(F.relu(bn(h, layer.bn2, train)), layer.conv2)
                out, n = torch.cat([new, out], 1), n + 1
            else:  # the transition
                out = F.avg_pool2d(conv(F.relu(bn(out, layer.bn, train, order)), layer.conv, order), 2)
    final = torch.tensor(_fb_channel_order(c0, k, n))
    pooled = torch.flatten(F.avg_pool2d(F.relu(bn(out, model.bn, train, final.tolist())), 4), 1)
    return F.linear(pooled, model.classifier.weight[:, final], model.classifier.bias)


def test_densenet121_computes_fbs_densenet121_up_to_channel_order():
    model = build("densenet121")
    assert_same_function(model, fb_densenet121, torch.randn(2, 3, 32, 32))
