"""The mixers' math: mixup is the convex combination, CutMix's lambda is the exact kept share."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from mixexp.config import option
from mixexp.losses import mixed_correct, mixed_cross_entropy
from mixexp.mixers import MIXERS, CutMix, CutMixConfig, Mixup, NoMixing, cutmix, mixup, sample_lambda


def batch(b=16, c=3, h=32, w=32, seed=0):
    torch.manual_seed(seed)
    return torch.randn(b, c, h, w)


@pytest.mark.parametrize("per_sample", [False, True])
def test_mixup_is_the_convex_combination(per_sample):
    x = batch()
    out = Mixup(alpha=1.0, per_sample=per_sample)(x)
    lam = out.lam.view(-1, 1, 1, 1)
    torch.testing.assert_close(out.inputs, lam * x + (1 - lam) * x[out.partner])
    assert sorted(out.partner.tolist()) == list(range(16))  # a permutation
    assert (out.lam.unique().numel() == 1) != per_sample  # one lambda per batch unless per_sample


def test_mixup_function_on_hand_values():
    x = torch.tensor([[1.0], [3.0]]).view(2, 1, 1, 1)
    out = mixup(x, torch.tensor([1, 0]), torch.tensor([0.25, 0.75]))
    assert out.flatten().tolist() == [0.25 * 1 + 0.75 * 3, 0.75 * 3 + 0.25 * 1]


@pytest.mark.parametrize("per_sample", [False, True])
def test_cutmix_partner_share_equals_one_minus_lambda_exactly(per_sample):
    b, h, w = 64, 32, 32
    x = torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1).expand(b, 3, h, w).contiguous()  # image i == i
    torch.manual_seed(1)
    out = CutMix(alpha=1.0, per_sample=per_sample)(x)
    from_partner = (out.inputs[:, 0] == out.partner.view(b, 1, 1).float()) & (out.partner.view(b, 1, 1) != torch.arange(b).view(b, 1, 1))
    share = from_partner.flatten(1).float().mean(1)
    moved = out.partner != torch.arange(b)
    torch.testing.assert_close(share[moved], 1.0 - out.lam[moved])
    assert ((out.lam > 0) & (out.lam <= 1)).all()
    assert out.lam.unique().numel() > 1 if per_sample else out.lam.unique().numel() == 1


def test_cutmix_box_is_a_rectangle_and_lambda_is_corrected():
    x, partner = torch.zeros(1, 1, 10, 10), torch.tensor([0])
    y = torch.ones(2, 1, 10, 10)
    y[1] = 2.0
    torch.manual_seed(0)
    mixed, kept = cutmix(y, torch.tensor([1, 0]), torch.tensor([0.5, 0.5]))
    region = mixed[0, 0] == 2.0
    rows, cols = region.any(1), region.any(0)
    assert region.sum() == rows.sum() * cols.sum()  # a filled rectangle
    assert kept[0].item() == pytest.approx(1 - region.float().mean().item())


@pytest.mark.parametrize("mixer", [Mixup(alpha=0.0), CutMix(alpha=0.0), NoMixing(), Mixup(alpha=1.0, prob=0.0),
                                   CutMix(alpha=1.0, prob=0.0)])
def test_alpha_zero_none_and_prob_zero_leave_the_batch_untouched(mixer):
    x = batch()
    out = mixer(x)
    assert torch.equal(out.inputs, x)
    assert torch.equal(out.lam, torch.ones(16))


def test_sample_lambda_follows_beta_alpha_alpha():
    torch.manual_seed(0)
    lam = sample_lambda(0.4, 20000, per_sample=True, prob=1.0, device="cpu")
    # Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)) = 0.138889 for a = 0.4
    assert lam.mean().item() == pytest.approx(0.5, abs=0.01)
    assert lam.var().item() == pytest.approx(1 / (4 * (2 * 0.4 + 1)), abs=0.006)


def test_mixed_cross_entropy_equals_ce_against_mixed_soft_target():
    torch.manual_seed(0)
    logits, y = torch.randn(8, 5), torch.randint(0, 5, (8,))
    partner, lam = torch.randperm(8), torch.rand(8)
    soft = lam[:, None] * F.one_hot(y, 5) + (1 - lam[:, None]) * F.one_hot(y[partner], 5)
    expected = -(soft * F.log_softmax(logits, 1)).sum(1).mean()
    torch.testing.assert_close(mixed_cross_entropy(logits, y, partner, lam), expected)
    torch.testing.assert_close(mixed_cross_entropy(logits, y, torch.arange(8), torch.ones(8)), F.cross_entropy(logits, y))


def test_mixed_correct_weights_both_labels():
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0]])
    y, partner, lam = torch.tensor([0, 0]), torch.tensor([1, 0]), torch.tensor([0.7, 0.7])
    # example 0 predicts 0: right for y_0 (0.7) and for its partner's label y_1 = 0 (0.3);
    # example 1 predicts 1: wrong for y_1 = 0 and for its partner's label y_0 = 0
    assert mixed_correct(logits, y, partner, lam).item() == pytest.approx(0.7 + 0.3 * 1 + 0.0)


def test_build_mixer_from_config():
    assert isinstance(CutMixConfig().build(10, 8), CutMix)
    # a run's resolved (untyped) config reads back as its option's schema
    cfg = OmegaConf.create({"mixer": {"name": "cutmix", "alpha": 0.4}})
    schema = option(cfg, "mixer")
    assert isinstance(schema, CutMixConfig) and schema.alpha == 0.4 and schema.prob == 1.0
    with pytest.raises(ValueError, match="mixer.name='x' is not allowed: choose one of " + ", ".join(sorted(MIXERS))):
        option(OmegaConf.create({"mixer": {"name": "x"}}), "mixer")


def test_sampling_lambda_never_waits_for_the_device(monkeypatch):
    # torch.distributions' argument validation calls torch._is_all_true, a host sync on CUDA
    def forbidden(*args, **kwargs):
        raise AssertionError("sample_lambda validated its arguments (a device sync per step)")

    monkeypatch.setattr(torch, "_is_all_true", forbidden)
    assert sample_lambda(0.4, 8, per_sample=True, prob=1.0, device="cpu").shape == (8,)
