"""Model zoo: parameter counts, the features/classifier contract, shapes and config errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from mixexp.config import CONF_DIR
from mixexp.models import MODELS, ClassifierModel, count_parameters


def make(name: str, num_classes: int = 10, in_channels: int = 3, input_size: int = 32, **overrides) -> ClassifierModel:
    if name == "bottleneck":
        overrides.setdefault("backbone", MODELS["preactresnet18"]())
    return MODELS[name](**overrides).build(num_classes, in_channels, input_size)


# Counts for 10 classes, 3 x 32 x 32 input, and the tolerance each is checked to.
# preactresnet18 is 1,024 above the mixup code's 11,171,146: it carries the PuzzleMix-style final BN.
PARAM_COUNTS = {
    "preactresnet18": (11_171_146, 0.005),
    "wrn28_10": (36_479_194, 0.005),
    "resnet50": (23_520_842, 0.0),
    "lenet": (62_006, 0.0),
    "densenet121": (6_956_298, 0.01),
    "simplecnn": (94_762, 0.0),
    # LaMix Fig 8: preactresnet18 (11,172,170 with its final BN) without its head + Linear(512, 2), Linear(2, 100), Linear(100, 512) + head
    "bottleneck": (11_172_170 + 1_026 + 300 + 51_712, 0.0),
}
FEATURE_DIMS = {"preactresnet18": 512, "wrn28_10": 640, "resnet50": 2048, "lenet": 84, "densenet121": 1024, "simplecnn": 128,
                "bottleneck": 512}


def test_registry_names():
    assert sorted(MODELS) == sorted([*PARAM_COUNTS, "timm"])


@pytest.mark.parametrize("name", sorted(PARAM_COUNTS))
def test_param_count_10_classes(name):
    expected, rel = PARAM_COUNTS[name]
    model = make(name)
    n = count_parameters(model)
    assert abs(n - expected) <= rel * expected, f"{name}: {n:,} params, expected {expected:,}"
    assert model.feature_dim == FEATURE_DIMS[name]
    assert isinstance(model.classifier, torch.nn.Linear)
    assert (model.classifier.in_features, model.classifier.out_features) == (model.feature_dim, 10)


@pytest.mark.parametrize("name", ["preactresnet18", "resnet50", "lenet", "densenet121", "simplecnn"])
def test_param_count_100_classes(name):
    # Only the head grows: 90 more classes cost 90 * (D + 1) parameters.
    d = FEATURE_DIMS[name]
    assert count_parameters(make(name, 100)) - count_parameters(make(name, 10)) == 90 * (d + 1)


def test_preactresnet18_exact_count():
    # The mixup code's 11,171,146 plus the final BatchNorm over 512 channels (weight and bias).
    assert count_parameters(make("preactresnet18")) == 11_171_146 + 2 * 512


def test_resnet50_imagenet_count():
    assert count_parameters(make("resnet50", 1000, 3, 224, stem="imagenet")) == 25_557_032


def test_wrn_depth_and_width_follow_config():
    # WRN-16-4: 2 blocks per stage, widths 64, 128, 256; 2,748,890 parameters for 10 classes.
    model = make("wrn28_10", depth=16, widen_factor=4)
    assert model.feature_dim == 256
    assert count_parameters(model) == 2_748_890
    assert sum(1 for m in model.modules() if isinstance(m, torch.nn.Conv2d)) == 1 + 2 * 6 + 3
    with pytest.raises(ValueError, match="model.depth"):
        make("wrn28_10", depth=27)


def test_lenet_fc_follows_input_size():
    assert make("lenet", 10, 3, 32).fc1.in_features == 16 * 5 * 5
    assert make("lenet", 10, 1, 28).fc1.in_features == 16 * 4 * 4
    assert make("lenet", 10, 1, 16).fc1.in_features == 16


# (name, in_channels, input_size, batch, overrides)
SHAPE_CASES = [
    (name, c, size, 1 if (name == "wrn28_10" and size == 64) else 2, {})
    for name, sizes in [
        ("preactresnet18", (32, 64)),
        ("wrn28_10", (32, 64)),
        ("resnet50", (32, 64)),
        ("lenet", (28, 32)),
        ("densenet121", (32,)),
        ("simplecnn", (8,)),
    ]
    for c in (1, 3)
    for size in sizes
] + [("resnet50", 1, 64, 2, {"stem": "imagenet"})]


@pytest.mark.parametrize(
    "name,in_channels,size,batch,overrides",
    SHAPE_CASES,
    ids=[f"{n}-c{c}-{s}px" + ("-" + "-".join(o.values()) if o else "") for n, c, s, _, o in SHAPE_CASES],
)
def test_forward_matches_features_then_classifier(name, in_channels, size, batch, overrides):
    torch.manual_seed(0)
    num_classes = 7
    model = make(name, num_classes, in_channels, size, **overrides).eval()
    x = torch.randn(batch, in_channels, size, size)
    with torch.no_grad():
        feats = model.features(x)
        logits = model(x)
        assert feats.shape == (batch, model.feature_dim)
        assert logits.shape == (batch, num_classes)
        assert torch.allclose(logits, model.classifier(feats), atol=1e-5)


def test_channels_last_matches_contiguous():
    torch.manual_seed(0)
    model = make("preactresnet18").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        out_input = model(x.contiguous(memory_format=torch.channels_last))
        model = model.to(memory_format=torch.channels_last)
        out_both = model(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(ref, out_input, atol=1e-4)
    assert torch.allclose(ref, out_both, atol=1e-4)


def test_simplecnn_trains():
    torch.manual_seed(0)
    model = make("simplecnn", 10, 1, 8)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
    losses = []
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_unknown_name_raises():
    from mixexp.config import option

    with pytest.raises(ValueError, match=r"model\.name") as info:
        option(OmegaConf.create({"model": {"name": "vgg16"}}), "model")
    assert "preactresnet18" in str(info.value)


@pytest.mark.parametrize("variant,count", [("preact", 11_172_170), ("puzzlemix", 11_171_146), ("fb", 11_171_274)])
def test_preactresnet18_variants_have_their_code_bases_parameter_counts(variant, count):
    # puzzlemix: snu-mllab/PuzzleMix models/preresnet.py; fb: facebookresearch/mixup-cifar10 models/resnet.py ResNet18
    assert count_parameters(make("preactresnet18", variant=variant)) == count


def test_stride2_stem_halves_64px_inputs_before_the_first_stage():
    model = make("preactresnet18", input_size=64, variant="puzzlemix", stem="stride2")
    seen = {}
    model.layer1.register_forward_hook(lambda m, i, o: seen.update(shape=tuple(o.shape)))
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)
    assert seen["shape"] == (2, 64, 32, 32)


def test_lenet_too_small_raises():
    with pytest.raises(ValueError, match="model=lenet") as info:
        make("lenet", 10, 1, 8)
    assert ">= 16" in str(info.value)


@pytest.mark.parametrize("name", sorted(PARAM_COUNTS))
def test_yaml_matches_schema(name):
    path = Path(CONF_DIR) / "model" / f"{name}.yaml"
    node = OmegaConf.load(path)
    # Merging onto the schema rejects unknown keys and wrong types, as Hydra does when composing.
    cfg = OmegaConf.merge(OmegaConf.structured(MODELS[name]), {k: v for k, v in node.items() if k != "defaults"})
    assert cfg.name == name
    assert node.defaults[0] == f"/schema/model/{name}@_here_" and "_self_" in node.defaults
