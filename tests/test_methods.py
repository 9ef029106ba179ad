"""The papers' methods: SEM, ES, LaMix, label smoothing and test-time rescaling prove their math."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import FAST, compose_cfg
from mixexp.config import ConfigError, validate
from mixexp.losses import mixed_cross_entropy
from mixexp.config import option
from mixexp.mixers import CutMix, LaMix, LaMixCriterion, Mixup, lamix_target
from mixexp.models.base import ClassifierModel
from mixexp.regularizers import SemanticEquivarianceLoss, feature_distance
from mixexp.evaluation.rescaling import Rescaling, rescale_inputs, rescale_logits, theta_bar
from mixexp.trainer import Trainer


class LinearFeatures(ClassifierModel):
    """g(x) = W vec(x) + b: affine, so g(lam x_i + (1-lam) x_j) = lam g(x_i) + (1-lam) g(x_j)."""

    def __init__(self, in_dim: int, dim: int = 6, classes: int = 3) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, dim)
        self.classifier = nn.Linear(dim, classes)
        self.feature_dim = dim

    def features(self, x):
        return self.proj(x.flatten(1))


class ChannelMeans(LinearFeatures):
    """g(x) = spatial mean per channel (linear)."""

    def features(self, x):
        return x.mean(dim=(2, 3))


class Distorting(LinearFeatures):
    """An affine map followed by a nonlinearity of adjustable strength."""

    strength = 1.0

    def features(self, x):
        z = self.proj(x.flatten(1))
        return z + self.strength * z.pow(2)


def _batch(b=8, c=3, h=8, w=8):
    torch.manual_seed(0)
    return torch.randn(b, c, h, w)


# ------------------------------------------------------------------------------------------- SEM

@pytest.mark.parametrize("distance", ["mse", "cosine", "nmse"])
@pytest.mark.parametrize("per_sample", [False, True])
def test_sem_is_zero_for_a_linear_feature_map_under_mixup(distance, per_sample):
    x = _batch()
    model = LinearFeatures(3 * 8 * 8)
    mixed = Mixup(alpha=1.0, per_sample=per_sample)(x)
    loss = SemanticEquivarianceLoss(gamma=2.0, distance=distance)(model, x, mixed, model.features(mixed.inputs))
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_sem_grows_with_the_distortion_and_gradients_reach_g():
    x = _batch()
    model = Distorting(3 * 8 * 8)
    mixed = Mixup(alpha=1.0)(x)
    sem = SemanticEquivarianceLoss(gamma=1.0)
    losses = []
    for strength in (0.0, 0.1, 0.5):
        model.strength = strength
        losses.append(sem(model, x, mixed, model.features(mixed.inputs)).item())
    assert losses[0] == pytest.approx(0.0, abs=1e-6) and 0 < losses[1] < losses[2]
    model.zero_grad()
    sem(model, x, mixed, model.features(mixed.inputs)).backward()
    assert model.proj.weight.grad.abs().sum().item() > 0


@pytest.mark.parametrize("detach", [True, False])
def test_sem_detach_target_decides_whether_the_clean_pass_gets_gradient(detach):
    x = _batch()
    model = Distorting(3 * 8 * 8)
    model.strength = 0.3
    mixed = Mixup(alpha=1.0)(x)
    sem = SemanticEquivarianceLoss(detach_target=detach)
    # the mixed-side features are constant here: any gradient must come through the clean pass
    loss = sem(model, x, mixed, model.features(mixed.inputs).detach())
    assert loss.item() > 0
    assert loss.requires_grad is (not detach)


def test_sem_with_cutmix_uses_the_corrected_area_ratio():
    # constant images: any box of x_j carries x_j's channel means, so g(x~) = lam g(x_i) + (1-lam) g(x_j)
    # holds exactly when lam is the true kept share of the pixels
    x = _batch(16, 3, 1, 1).expand(16, 3, 10, 10).contiguous()
    model = ChannelMeans(1, dim=3)
    torch.manual_seed(3)
    mixed = CutMix(alpha=1.0, per_sample=True)(x)
    sem = SemanticEquivarianceLoss(gamma=1.0)
    assert sem(model, x, mixed, model.features(mixed.inputs)).item() == pytest.approx(0.0, abs=1e-12)
    # the uncorrected lambda (box area before clipping) would not satisfy the equation
    wrong = type(mixed)(mixed.inputs, mixed.partner, (mixed.lam + 0.05).clamp(max=1.0))
    assert sem(model, x, wrong, model.features(mixed.inputs)).item() > 1e-6


def test_feature_distance_values():
    a, b = torch.tensor([[3.0, 4.0]]), torch.tensor([[0.0, 5.0]])
    assert feature_distance(a, b, "mse").item() == pytest.approx((9 + 1) / 2)
    assert feature_distance(a, b, "cosine").item() == pytest.approx(1 - 20 / 25)
    assert feature_distance(a, b, "nmse").item() == pytest.approx(((0.6 - 0) ** 2 + (0.8 - 1) ** 2) / 2)


# -------------------------------------------------------------------------------------------- ES

def test_es_stop_epoch_from_fraction_or_epoch():
    cfg = compose_cfg(["mixer=mixup", "mixer.stop_fraction=0.9", "trainer.epochs=200"])
    assert option(cfg, "mixer").stop_epoch_for(200) == 180
    cfg = compose_cfg(["mixer=mixup", "mixer.stop_epoch=150"])
    assert option(cfg, "mixer").stop_epoch_for(200) == 150
    assert option(compose_cfg(["mixer=mixup"]), "mixer").stop_epoch_for(200) is None  # mixing never stops
    with pytest.raises(ConfigError, match="set either mixer.stop_epoch or mixer.stop_fraction"):
        validate(compose_cfg(["mixer=mixup", "mixer.stop_epoch=1", "mixer.stop_fraction=0.5"]))


class Recording:
    """Wraps a loader; keeps every batch it yields, by epoch."""

    def __init__(self, loader, trainer):
        self.loader, self.trainer, self.batches = loader, trainer, {}

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for x, y in self.loader:
            self.batches.setdefault(self.trainer.epoch, []).append(x.clone())
            yield x, y


@pytest.mark.parametrize("extra", [["mixer=mixup"], ["mixer=cutmix", "regularizer=sem"], ["mixer=lamix"]])
def test_es_after_the_stop_point_the_model_sees_the_clean_batch(tmp_path, extra):
    cfg = compose_cfg(FAST + extra + ["trainer.epochs=3", "mixer.stop_epoch=2"])
    validate(cfg)
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.train_loader = Recording(trainer.train_loader, trainer)
    seen, features = {}, trainer.model.features

    def spy(inputs):
        if trainer.model.training:
            seen.setdefault(trainer.epoch, []).append(inputs.detach().clone())
        return features(inputs)

    trainer.model.features = spy
    trainer.fit()
    clean = trainer.train_loader.batches
    # the forward passes on training inputs: one per batch (two with SEM: mixed, then clean)
    passes = 2 if "regularizer=sem" in extra else 1
    assert len(seen[0]) == passes * len(clean[0])
    assert any(not torch.equal(a, b) for a, b in zip(seen[0][::passes], clean[0]))  # mixing before the stop
    assert len(seen[2]) == len(clean[2])  # one pass per batch after it: SEM is off too
    assert all(torch.equal(a, b) for a, b in zip(seen[2], clean[2]))  # and the model sees the clean batch


# ----------------------------------------------------------------------------------------- LaMix

def _lamix(**kw):
    torch.manual_seed(0)
    return LaMix(**kw)


def _lamix_criterion(**kw):
    torch.manual_seed(0)
    return LaMixCriterion(feature_dim=6, num_classes=4, **kw)


def test_lamix_inputs_are_the_half_average_and_batches_alternate():
    mixer = _lamix()
    x, y = _batch(8), torch.randint(0, 4, (8,))
    first, second, third = mixer(x, y), mixer(x, y), mixer(x, y)
    assert torch.equal(first.inputs, x) and torch.equal(first.lam, torch.ones(8))  # original
    torch.testing.assert_close(second.inputs, 0.5 * x + 0.5 * x[second.partner])  # mixed
    assert second.lam.unique().numel() > 1  # lambda drawn per pair
    assert torch.equal(third.inputs, x)
    no_original = _lamix(original_batches=False)
    assert not torch.equal(no_original(x, y).inputs, x)


def test_lamix_target_rows_sum_to_one_and_beta_one_is_the_local_label():
    torch.manual_seed(0)
    y, partner, lam = torch.randint(0, 4, (8,)), torch.randperm(8), torch.rand(8)
    p = torch.softmax(torch.randn(8, 4), 1)
    target = lamix_target(y, partner, lam, p, beta=0.5, num_classes=4)
    torch.testing.assert_close(target.sum(1), torch.ones(8))
    local = lam[:, None] * F.one_hot(y, 4) + (1 - lam[:, None]) * F.one_hot(y[partner], 4)
    torch.testing.assert_close(lamix_target(y, partner, lam, p, beta=1.0, num_classes=4), local.float())
    torch.testing.assert_close(target, 0.5 * local.float() + 0.5 * p)


def test_lamix_global_head_receives_gradient_and_can_be_switched_off():
    mixer, criterion = _lamix(), _lamix_criterion()
    x, y = _batch(8), torch.randint(0, 4, (8,))
    features = torch.randn(8, 6, requires_grad=True)
    logits = torch.randn(8, 4, requires_grad=True)
    criterion(logits, features, y, mixer(x, y)).backward()
    assert criterion.head.weight.grad.abs().sum().item() > 0
    plain = _lamix_criterion(global_label=False)
    mixed = mixer(x, y)
    loss = plain(logits, features, y, mixed)
    torch.testing.assert_close(loss, mixed_cross_entropy(logits, y, mixed.partner, mixed.lam))


def test_lamix_step_counter_is_checkpointed():
    mixer = _lamix()
    x, y = _batch(8), torch.randint(0, 4, (8,))
    mixer(x, y)
    state = mixer.state_dict()
    fresh = _lamix()
    fresh.load_state_dict(state)
    assert fresh.steps == 1 and not torch.equal(fresh(x, y).inputs, x)  # resumes on a mixed batch


# ------------------------------------------------------------------------------- label smoothing

def test_label_smoothing_matches_torch_on_unmixed_batches():
    torch.manual_seed(0)
    logits, y = torch.randn(8, 5), torch.randint(0, 5, (8,))
    ours = mixed_cross_entropy(logits, y, torch.arange(8), torch.ones(8), label_smoothing=0.1)
    torch.testing.assert_close(ours, F.cross_entropy(logits, y, label_smoothing=0.1))


def test_label_smoothing_of_a_mixed_target():
    torch.manual_seed(0)
    logits, y, partner, lam = torch.randn(8, 5), torch.randint(0, 5, (8,)), torch.randperm(8), torch.rand(8)
    mixed = lam[:, None] * F.one_hot(y, 5) + (1 - lam[:, None]) * F.one_hot(y[partner], 5)
    target = 0.8 * mixed + 0.2 / 5
    expected = -(target * F.log_softmax(logits, 1)).sum(1).mean()
    torch.testing.assert_close(mixed_cross_entropy(logits, y, partner, lam, 0.2), expected)


# ------------------------------------------------------------------------------------- rescaling

def test_theta_bar_published_values():
    assert round(theta_bar(1.0), 4) == 0.75
    assert round(theta_bar(0.2), 4) == 0.8988
    # Monte Carlo cross-check: E[theta | theta >= 1/2] for theta ~ Beta(0.5, 0.5)
    torch.manual_seed(0)
    t = torch.distributions.Beta(0.5, 0.5).sample((400000,))
    assert theta_bar(0.5) == pytest.approx(t[t >= 0.5].mean().item(), abs=2e-3)


def test_rescaling_formulas_on_a_hand_built_example():
    x_bar = torch.tensor([[[1.0]], [[-1.0]]])  # (C=2, 1, 1)
    x = torch.tensor([[[[3.0]], [[1.0]]]])  # (1, 2, 1, 1)
    torch.testing.assert_close(rescale_inputs(x, x_bar, 0.75), torch.tensor([[[[1 + 0.75 * 2]], [[-1 + 0.75 * 2]]]]))
    z, y_bar = torch.tensor([[2.0, 0.0]]), torch.tensor([0.25, 0.75])
    torch.testing.assert_close(rescale_logits(z, y_bar, 0.8), torch.tensor([[0.25 + 1.75 / 0.8, 0.75 - 0.75 / 0.8]]))


def test_theta_one_leaves_inputs_and_logits_unchanged():
    torch.manual_seed(0)
    x, x_bar, z, y_bar = torch.randn(4, 3, 5, 5), torch.randn(3, 5, 5), torch.randn(4, 7), torch.rand(7)
    assert torch.equal(rescale_inputs(x, x_bar, 1.0), x)
    torch.testing.assert_close(rescale_logits(z, y_bar, 1.0), z)


def test_rescaling_statistics_from_the_training_set():
    from mixexp.data import DeviceLoader, ImageSet

    images = torch.tensor([0, 255, 255, 255], dtype=torch.uint8).view(4, 1, 1, 1)
    data = ImageSet(images, torch.tensor([0, 1, 1, 1]))
    loader = DeviceLoader(data, 3, device="cpu", mean=[0.0], std=[1.0], train=False)
    r = Rescaling.from_training_set(1.0, loader, num_classes=3)
    assert r.theta == 0.75
    torch.testing.assert_close(r.x_bar, torch.tensor([[[0.75]]]))
    torch.testing.assert_close(r.y_bar, torch.tensor([0.25, 0.75, 0.0]))


def test_a_mixup_run_reports_rescaled_metrics_and_stores_the_statistics(tmp_path):
    cfg = compose_cfg(FAST + ["mixer=mixup", "mixer.alpha=0.2", "eval.rescaled=true"])
    validate(cfg)
    trainer = Trainer(cfg, tmp_path / "run")
    metrics = trainer.fit()
    for key in ["rescaled_test_acc", "rescaled_test_nll", "rescaled_test_ece", "test_acc", "test_nll", "test_ece"]:
        assert key in metrics
    assert metrics["rescaling_theta_bar"] == pytest.approx(0.8988, abs=1e-4)
    saved = torch.load(tmp_path / "run" / "last.pt", weights_only=False)["rescaling"]
    assert saved["theta_bar"] == metrics["rescaling_theta_bar"] and saved["x_bar"].shape == (3, 8, 8)
    assert saved["y_bar"].sum().item() == pytest.approx(1.0)
    # the rescaled NLL is computed from the formulas on the same test set
    from mixexp.evaluation.metrics import predict_logits
    z, labels = predict_logits(trainer.model, trainer.test_loader, transform=trainer.rescaling.inputs)
    nll = F.cross_entropy(rescale_logits(z, trainer.rescaling.y_bar, trainer.rescaling.theta), labels).item()
    assert metrics["rescaled_test_nll"] == pytest.approx(nll, rel=1e-6)


def test_rescaling_requires_a_mixup_run():
    with pytest.raises(ConfigError, match="eval.rescaled=True is not allowed: needs a mixup-trained run"):
        validate(compose_cfg(["mixer=cutmix", "eval.rescaled=true"]))


def test_rescaling_statistics_do_not_change_the_runs_random_stream(tmp_path):
    _, plain = train_run(tmp_path, ["mixer=mixup", "seed=3"], "plain")
    _, rescaled = train_run(tmp_path, ["mixer=mixup", "seed=3", "eval.rescaled=true"], "rescaled")
    for key in ["test_acc", "test_nll", "test_ece"]:
        assert rescaled[key] == plain[key]


def test_rescaling_statistics_are_restored_from_the_checkpoint(tmp_path):
    trainer, _ = train_run(tmp_path, ["mixer=mixup", "eval.rescaled=true"], "run")
    cfg = compose_cfg(FAST + ["mixer=mixup", "eval.rescaled=true", "resume=true"])
    again = Trainer(cfg, tmp_path / "run")
    assert torch.equal(again.rescaling.x_bar.cpu(), trainer.rescaling.x_bar.cpu())
    assert again.rescaling.theta == trainer.rescaling.theta


def train_run(tmp_path, overrides, name):
    cfg = compose_cfg(FAST + overrides)
    validate(cfg)
    trainer = Trainer(cfg, tmp_path / name)
    return trainer, trainer.fit()
