"""PuzzleMix: mask values, label ratio, the graph cut's terms, transport as a block permutation, the
saliency pass's side effects, a short training run, and the config checks."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from mixexp.config import ConfigError, option, validate
from mixexp.mixers import PuzzleMix, PuzzleMixConfig, graph_cut_mask, puzzle_mix
from mixexp.mixers.puzzlemix import cut_energy, solve_cuts, valid_grid_sizes
from mixexp.mixers.puzzlemix_transport import apply_transport, to_blocks, transport_cost, transport_plan
from mixexp.models.simple_cnn import SimpleCNN
from conftest import FAST, compose_cfg


def batch(b=8, c=3, h=16, w=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, h, w, generator=g), torch.randint(0, 10, (b,), generator=g)


def model(c=3, seed=0):
    torch.manual_seed(seed)
    return SimpleCNN(10, c, width=4).train()


def derangement(b):
    return torch.roll(torch.arange(b), 1)  # nobody is its own partner


# ----------------------------------------------------------------------------------------- masks


@pytest.mark.parametrize("n", [2, 4, 8])
def test_mask_values_and_mixed_image_without_transport(n):
    x, _ = batch()
    sal, partner = torch.rand(8, 16, 16) ** 4, derangement(8)
    mixed, mask = puzzle_mix(x, sal, partner, 0.5, n, transport=False)
    assert mask.shape == (8, 1, 16, 16)
    assert set(mask.unique().tolist()) <= {0.0, 0.5, 1.0}
    torch.testing.assert_close(mixed, mask * x + (1 - mask) * x[partner])
    grid = graph_cut_mask(x, sal, partner, 0.5, n)
    torch.testing.assert_close(mask, grid.repeat_interleave(16 // n, 1).repeat_interleave(16 // n, 2).unsqueeze(1))


def test_mixer_lambda_is_the_mask_mean_per_example():
    x, y = batch(b=16)
    mixer = PuzzleMix(transport=False, workers=1)
    torch.manual_seed(3)
    out = mixer(x, y, model())
    moved = out.partner != torch.arange(16)
    other = x[out.partner]
    # mixed = m x + (1 - m) x_j, so the mask is recovered where the two images differ
    m = (out.inputs - other) / (x - other)
    assert torch.allclose(m[moved], m[moved].round(decimals=1), atol=1e-3)
    m = m.round(decimals=1)
    assert set(m[moved].unique().tolist()) <= {0.0, 0.5, 1.0}
    torch.testing.assert_close(out.lam[moved], m[moved].mean(dim=(1, 2, 3)))
    assert out.lam.shape == (16,) and out.lam.dtype == torch.float32
    assert sorted(out.partner.tolist()) == list(range(16))


def test_transport_moves_whole_blocks_and_mixing_uses_the_transported_images():
    x, _ = batch(h=16, w=16)
    sal, partner, lam, n = torch.rand(8, 16, 16) ** 4, derangement(8), 0.4, 4
    mixed, mask = puzzle_mix(x, sal, partner, lam, n, transport=True, t_size=2, t_eps=0.1)
    # rebuild x_i' and x_j' from the public pieces: 4x4 cut grid refined to the 8x8 transport grid
    grid = graph_cut_mask(x, sal, partner, lam, n).repeat_interleave(2, 1).repeat_interleave(2, 2).flatten(1)
    s = F.avg_pool2d(sal.unsqueeze(1), 2).flatten(1)
    s = s / s.sum(1, keepdim=True)
    x1 = apply_transport(x, transport_plan(grid > 0, s, 0.1), 8)
    x2 = apply_transport(x[partner], transport_plan(grid < 1, s[partner], 0.1), 8)
    torch.testing.assert_close(mixed, mask * x1 + (1 - mask) * x2)
    for before, after in ((x, x1), (x[partner], x2)):  # same multiset of 2x2 blocks
        key = lambda t: to_blocks(t, 8).permute(0, 2, 1, 3, 4).flatten(2).sort(dim=1).values  # noqa: E731
        torch.testing.assert_close(key(before), key(after))
    assert not torch.equal(x1, x)  # with a cheap move (t_eps 0.1) some block did move


@pytest.mark.parametrize("solver", ["approx", "exact"])
def test_transport_plan_is_a_permutation(solver):
    torch.manual_seed(0)
    keep, s = torch.rand(32, 64) > 0.5, torch.rand(32, 64) ** 6
    plan = transport_plan(keep, s / s.sum(1, keepdim=True), 0.8, solver)
    assert torch.equal(plan.sort(1).values, torch.arange(64).expand(32, 64))


def test_exact_transport_costs_no_more_than_the_approximation_or_staying():
    torch.manual_seed(1)
    keep, s = torch.rand(16, 64) > 0.5, torch.rand(16, 64) ** 6
    s = s / s.sum(1, keepdim=True)
    cost = transport_cost(keep, s, 0.8)

    def total(plan):
        return cost.gather(1, plan.unsqueeze(1)).squeeze(1).sum(1)  # sum_d cost[src_of_dst[d], d]

    exact, approx = transport_plan(keep, s, 0.8, "exact"), transport_plan(keep, s, 0.8, "approx")
    assert (total(exact) <= total(approx) + 1e-6).all()
    assert (total(exact) <= total(torch.arange(64).expand(16, 64)) + 1e-6).all()


# ----------------------------------------------------------------------------------------- graph cut


def test_lambda_near_one_or_zero_with_flat_saliency_gives_a_constant_mask():
    x, _ = batch()
    flat, partner = torch.ones(8, 16, 16), derangement(8)
    assert graph_cut_mask(x, flat, partner, 0.999, 4).mean().item() == 1.0
    assert graph_cut_mask(x, flat, partner, 0.001, 4).mean().item() == 0.0


def test_the_mask_keeps_the_salient_region_of_each_image():
    x, _ = batch()
    partner = derangement(8)  # partner of i is i - 1: even images pair with odd ones and back
    salient = torch.arange(8) % 2 == 0
    sal = torch.full((8, 16, 16), 0.01)
    sal[salient, :8, :8] = 1.0  # even images: salient top-left quadrant; odd images: flat
    mask = graph_cut_mask(x, sal, partner, 0.5, 4)
    assert mask[salient, :2, :2].min().item() == 1.0  # the salient image keeps its quadrant
    assert mask[~salient, :2, :2].max().item() == 0.0  # and a flat image gives it to its salient partner


def test_huge_smoothness_gives_a_constant_mask_per_image():
    x, _ = batch()
    sal = torch.rand(8, 16, 16) ** 8
    mask = graph_cut_mask(x, sal, derangement(8), 0.5, 8, beta=1e6)
    assert (mask.flatten(1).amax(1) == mask.flatten(1).amin(1)).all()
    assert (graph_cut_mask(x, sal, derangement(8), 0.5, 8).flatten(1).std(1) > 0).any()  # default beta: not constant


@pytest.mark.parametrize("neigh_size", [4, 2])
def test_energy_equals_the_paper_energy_up_to_a_constant_for_two_labels(neigh_size):
    """sum S_lost + prior + beta' ([z_s != z_t] + gamma * phi(z_s, z_t)), from the definition, per labelling."""
    n, b, k = 4, 2, 4 // neigh_size  # 4x4 grid of 4x4-pixel blocks; k pooled cells per block side
    x, _ = batch(b=b, h=16, w=16, seed=2)
    sal, partner, lam = torch.rand(b, 16, 16), torch.tensor([1, 0]), 0.3
    beta, gamma, eta = 1.2, 0.5, 0.2
    e = cut_energy(x, sal, partner, lam, n, beta, gamma, eta, neigh_size=neigh_size, n_labels=2)
    s = F.avg_pool2d(sal.unsqueeze(1), 4).squeeze(1).double()
    s = (s / s.sum((1, 2), keepdim=True)).numpy()
    m = 16 // neigh_size
    cell = x.double().numpy().reshape(b, 3, m, neigh_size, m, neigh_size).mean((3, 5))  # (b, C, n*k, n*k)
    beta_n = beta / (16 * n)
    prior = eta * -np.log(np.array([lam, 1 - lam]) + 1e-8) / n ** 2

    def phi(a, b_, r, c, vertical):  # image a on block (r, c), image b_ on the next block down / right
        if vertical:
            return np.abs(a[:, (r + 1) * k - 1, c * k:(c + 1) * k] - b_[:, (r + 1) * k, c * k:(c + 1) * k]).mean()
        return np.abs(a[:, r * k:(r + 1) * k, (c + 1) * k - 1] - b_[:, r * k:(r + 1) * k, (c + 1) * k]).mean()

    def direct(i, z):  # z[r, c] = 0 keeps image i, 1 takes the partner
        imgs = (cell[i], cell[partner[i]])
        total = sum(s[partner[i]][r, c] if z[r, c] == 0 else s[i][r, c] for r in range(n) for c in range(n))
        total += sum(prior[z[r, c]] for r in range(n) for c in range(n))
        for r in range(n):
            for c in range(n):
                for r2, c2, vertical in ((r + 1, c, True), (r, c + 1, False)):
                    if r2 < n and c2 < n:
                        d = phi(imgs[z[r, c]], imgs[z[r2, c2]], r, c, vertical)
                        total += beta_n * ((z[r, c] != z[r2, c2]) + gamma * d)
        return total

    def from_energy(i, z):
        total = e.unary[i][np.arange(n)[:, None], np.arange(n)[None, :], z].sum()
        total += (e.edge_v[i] * (z[:-1, :] != z[1:, :])).sum() + (e.edge_h[i] * (z[:, :-1] != z[:, 1:])).sum()
        return total

    rng = np.random.default_rng(0)
    for i in range(b):
        z0 = rng.integers(0, 2, (n, n))
        for _ in range(3):
            z = rng.integers(0, 2, (n, n))
            assert from_energy(i, z) - from_energy(i, z0) == pytest.approx(direct(i, z) - direct(i, z0), abs=1e-8)


def test_threaded_cuts_equal_sequential_cuts():
    x, _ = batch(b=32)
    e = cut_energy(x, torch.rand(32, 16, 16) ** 4, torch.randperm(32), 0.5, 8)
    with ThreadPoolExecutor(2) as pool:
        assert np.array_equal(solve_cuts(e, pool, workers=2), solve_cuts(e))


def test_grids_that_do_not_tile_the_image_are_skipped():
    assert valid_grid_sizes([2, 4, 8, 16], 8, 8) == [2, 4, 8]
    assert valid_grid_sizes([2, 4, 8, 16], 28, 28) == [2, 4]
    x, y = batch(c=1, h=8, w=8)
    out = PuzzleMix(block_sizes=[8, 16], workers=1)(x, y, model(c=1))
    assert out.inputs.shape == (8, 1, 8, 8)
    with pytest.raises(ValueError, match=r"no grid size in block_sizes=\[16\] tiles 8x8 images"):
        PuzzleMix(block_sizes=[16])(x, y, model(c=1))


# ----------------------------------------------------------------------------------------- saliency pass


def test_clean_lam_zero_leaves_no_parameter_gradient_and_train_mode():
    x, y = batch()
    net = model()
    out = PuzzleMix(clean_lam=0.0, workers=1)(x, y, net)
    assert out.extra_loss is None
    assert all(p.grad is None for p in net.parameters())
    assert net.training and all(m.training for m in net.modules())


def test_clean_lam_positive_returns_the_scaled_clean_loss():
    x, y = batch()
    net = model()
    out = PuzzleMix(clean_lam=0.7, workers=1)(x, y, net)
    with torch.no_grad():
        expected = 0.7 * F.cross_entropy(net(x), y)  # train mode: same batch statistics
    torch.testing.assert_close(out.extra_loss.detach(), expected)
    assert all(p.grad is None for p in net.parameters())
    out.extra_loss.backward()  # its graph was kept for the trainer
    assert all(p.grad is not None for p in net.parameters())


def test_adversarial_step_is_eps_over_255_in_normalised_units():
    x, y = batch()
    mixer = PuzzleMix(adv_p=1.0, adv_eps=8.0, pixel_std=[0.5, 0.25, 0.2], workers=1)
    _, grad, _ = mixer.saliency(x, y, model())
    partner = derangement(8)
    x1, x2 = mixer._adversarial(x, grad, partner)
    step = torch.tensor([0.5, 0.25, 0.2]).view(1, 3, 1, 1)
    torch.testing.assert_close(x1, x + 8 / 255 / step * grad.sign())
    torch.testing.assert_close(x2, (x + 8 / 255 / step * grad.sign())[partner])
    out = mixer(x, y, model())
    assert out.inputs.shape == x.shape and torch.isfinite(out.inputs).all()


def test_mix_at_half_for_lamix():
    x, y = batch()
    net = model()
    mixed, clean_loss = PuzzleMix(workers=1).mix_at_half(x, y, net, derangement(8))
    assert mixed.shape == x.shape and clean_loss is None  # clean_lam 0: no clean loss
    assert all(p.grad is None for p in net.parameters()) and net.training


# ----------------------------------------------------------------------------------------- config and run


def test_built_from_the_config_with_the_official_values():
    cfg = compose_cfg(["mixer=puzzlemix", "dataset=cifar100"])
    validate(cfg)
    mixer = option(cfg, "mixer").build()
    assert isinstance(mixer, PuzzleMix)
    official = (1.0, 1.2, 0.5, 0.2, 4, 3)
    assert (mixer.alpha, mixer.beta, mixer.gamma, mixer.eta, mixer.neigh_size, mixer.n_labels) == official
    assert (mixer.transport, mixer.t_eps, mixer.t_size, mixer.block_sizes) == (True, 0.8, 4, [2, 4, 8, 16])
    assert len(mixer.pixel_std) == 3 and mixer.pixel_std == list(cfg.dataset.std)  # follows dataset.std
    assert isinstance(PuzzleMixConfig().build(), PuzzleMix)


def test_a_short_run_on_synthetic_data_completes(tmp_path):
    from mixexp.trainer import Trainer

    cfg = compose_cfg([
        "dataset=synthetic", "dataset.image_size=16", "dataset.train_size=32", "dataset.test_size=16",
        "model=simplecnn", "model.width=8", "mixer=puzzlemix", "trainer.epochs=1", "trainer.batch_size=16",
        "trainer.device=cpu", "trainer.progress=log",
    ])
    validate(cfg)
    metrics = Trainer(cfg, tmp_path / "run").fit()
    assert metrics["epochs"] == 1
    assert (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.parametrize("override,message", [
    ("mixer.adv_p=1.5", "mixer.adv_p=1.5 is not allowed: must be a probability in [0, 1]"),
    ("mixer.block_sizes=[0,2]", "mixer.block_sizes=[0, 2] is not allowed: must be a non-empty list of grid sizes > 0"),
    ("mixer.block_sizes=[]", "mixer.block_sizes=[] is not allowed: must be a non-empty list of grid sizes > 0"),
    ("mixer.n_labels=1", "mixer.n_labels=1 is not allowed: must be a whole number >= 2"),
    ("mixer.t_size=0", "mixer.t_size=0 is not allowed: must be > 0 or -1 (the cut's blocks)"),
    ("mixer.t_solver=hungarian", "mixer.t_solver='hungarian' is not allowed: choose one of approx, auto, exact"),
    ("mixer.beta=-1", "mixer.beta=-1.0 is not allowed: must be >= 0"),
    ("mixer.clean_lam=-0.5", "mixer.clean_lam=-0.5 is not allowed: must be >= 0"),
    ("mixer.workers=-2", "mixer.workers=-2 is not allowed: must be >= 0 (0: one per CPU core)"),
    ("mixer.pixel_std=[0.2,0]", "mixer.pixel_std=[0.2, 0.0] is not allowed: every value must be > 0"),
])
def test_bad_options_give_one_line_errors(override, message):
    with pytest.raises(ConfigError) as info:
        validate(compose_cfg(["mixer=puzzlemix", override]))
    assert str(info.value) == message


def test_non_finite_gradients_give_zero_saliency_not_a_crash():
    from mixexp.mixers.puzzlemix import input_saliency

    grad = torch.ones(2, 3, 4, 4)
    grad[0, :, 0, 0] = float("nan")
    grad[1, 0, 1, 1] = float("inf")
    s = input_saliency(grad)
    assert torch.isfinite(s).all() and s[0, 0, 0].item() == 0.0 and s[0, 1, 1].item() == 1.0


def test_grid_sizes_that_cannot_tile_the_images_fail_before_training(tmp_path):
    from mixexp.config import ConfigError, validate
    from mixexp.trainer import Trainer

    cfg = compose_cfg(FAST + ["mixer=puzzlemix", "mixer.block_sizes=[3,5]"])
    validate(cfg)
    with pytest.raises(ConfigError, match=r"mixer.block_sizes=\[3, 5\] is not allowed for 8x8 images"):
        Trainer(cfg, tmp_path / "run")
