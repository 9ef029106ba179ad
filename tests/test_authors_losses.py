"""Each table's training loss, on one batch, equals its authors' formula.

A grid point of the table's preset is composed as its sweep composes it (only the data and the network are
swapped for a small CNN on random images), the method it builds takes one step, and the loss it returns is
compared with the authors' formula written out here, on that step's own mixed batch (inputs, partners and
lambdas). The formulas are written from the authors' files, never with mixexp's loss functions:

- fb: facebookresearch/mixup-cifar10 @ eaff31a train.py: ``criterion = nn.CrossEntropyLoss()`` (l.114),
  ``mixup_criterion`` = lam * CE(pred, y_a) + (1 - lam) * CE(pred, y_b) (l.137-138);
- cutmix: clovaai/CutMix-PyTorch @ 2d8eb68 train.py (l.227-240): the same with lam the kept area, CE when
  the batch is not cut;
- lamix: the paper, Eq. 10-11: CE between beta * y~ + (1 - beta) * softmax(sigmoid(W_t S)) and softmax(W_l S);
- puzzle: snu-mllab/PuzzleMix @ e2dbf3a main.py: ``bce_loss(softmax(output), reweighted_target)`` with
  ``nn.BCELoss()`` for every method (l.292, 328, 394), and, with clean_lam > 0, the clean term
  2 * clean_lam * CE(f(x), y) / num_classes (l.364-368) whose gradient is kept;
- sem: the paper, Eq. 9: the mixup loss + gamma * D(g(x~), lam g(x_i) + (1 - lam) g(x_j));
- ub: google/uncertainty-baselines @ 7af7042 baselines/imagenet/deterministic.py: the categorical
  cross-entropy of the logits against the mixed one-hot labels, one weight per example (utils.py ``mixup``).
"""

from __future__ import annotations

import pytest
import torch

from conftest import compose_cfg
from mixexp.assemble import build_method, build_model
from mixexp.config import validate

K, SIZE = 10, 16
SMALL = ["dataset=synthetic", f"dataset.image_size={SIZE}", "model=simplecnn", "model.width=8", "trainer.device=cpu"]


def one_step(experiment: str, method: str, *overrides: str, steps: int = 1):
    """(model, method, x, y, output of the last step) for one grid point of ``experiment``."""
    cfg = compose_cfg([f"experiment={experiment}", f"method={method}", *(overrides or SMALL)])
    validate(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, K, 3, SIZE)
    parts = build_method(cfg, K, model.feature_dim)
    x, y = torch.randn(8, 3, SIZE, SIZE), torch.arange(8) % K
    for _ in range(steps):  # LaMix alternates original and mixed batches: the second step is mixed
        out = parts.step(model, x, y)
    return cfg, model, parts, x, y, out


def one_hot(y):
    return torch.eye(K)[y]


def ce(logits, target):
    """-sum_k t_k log softmax(z)_k, averaged over the batch (nn.CrossEntropyLoss with soft targets)."""
    return -(target * torch.log_softmax(logits, 1)).sum(1).mean()


def bce_softmax(logits, target):
    """nn.BCELoss()(softmax(z), t): -mean over batch and classes of t log p + (1 - t) log(1 - p)."""
    p = torch.softmax(logits, 1)
    return -(target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()


def mixed_one_hot(y, out):
    lam = out.mixed.lam[:, None]
    return lam * one_hot(y) + (1 - lam) * one_hot(y[out.mixed.partner])


def recomputed_logits(model, out):
    with torch.no_grad():
        return model(out.mixed.inputs)


def assert_mixed_inputs(kind: str, x, out):
    """The step's inputs are what the authors' mixing makes of x: fb's mixup_data (train.py l.119-133,
    lam x + (1 - lam) x[index]), CutMix's box of the partner (cutmix train.py l.231-237, lam = 1 - box area),
    LaMix's plain average (lamix.txt Eq. 8), or x itself."""
    inputs, lam, partner = out.mixed.inputs, out.mixed.lam.view(-1, 1, 1, 1), out.mixed.partner
    if kind == "mixup":
        torch.testing.assert_close(inputs, lam * x + (1 - lam) * x[partner])
    elif kind == "average":
        torch.testing.assert_close(inputs, 0.5 * x + 0.5 * x[partner])
    elif kind == "cutmix" and out.mixed.mixed and not torch.equal(inputs, x):
        box = (inputs != x).any(dim=(0, 1))  # the pixels taken from the partner, the same box in every image
        rows, cols = box.any(1).nonzero().flatten(), box.any(0).nonzero().flatten()
        r0, r1, c0, c1 = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
        torch.testing.assert_close(inputs[..., r0:r1, c0:c1], x[partner][..., r0:r1, c0:c1])
        outside = torch.ones_like(box)
        outside[r0:r1, c0:c1] = False
        assert torch.equal(inputs[..., outside], x[..., outside])
        torch.testing.assert_close(out.mixed.lam, torch.full((8,), 1 - (r1 - r0) * (c1 - c0) / SIZE ** 2))
    else:
        torch.testing.assert_close(inputs, x)


def lamix_target(model, parts, y, out, beta):
    with torch.no_grad():
        global_label = torch.softmax(torch.sigmoid(parts.criterion.head(model.features(out.mixed.inputs))), 1)
    return beta * mixed_one_hot(y, out) + (1 - beta) * global_label


@pytest.mark.parametrize("method", ["erm", "mixup", "cutmix_prob05"])
def test_fb_table_losses_are_fbs_mixup_criterion(method):
    cfg, model, _, x, y, out = one_step("lamix/table1", method)
    logits = recomputed_logits(model, out)
    lam, partner = out.mixed.lam, out.mixed.partner
    if method == "mixup":
        assert lam.unique().numel() == 1  # mixup_data: one np.random.beta per batch
    assert_mixed_inputs({"erm": "none", "mixup": "mixup", "cutmix_prob05": "cutmix"}[method], x, out)
    fb = lam[0] * torch.nn.functional.cross_entropy(logits, y) + (1 - lam[0]) * torch.nn.functional.cross_entropy(
        logits, y[partner])
    torch.testing.assert_close(out.loss.detach(), fb)


def test_lamix_table1_loss_is_the_papers_soft_target_cross_entropy():
    cfg, model, parts, x, y, out = one_step("lamix/table1", "lamix", steps=2)
    assert out.mixed.mixed and cfg.mixer.lamix_beta == 0.5
    assert_mixed_inputs("average", x, out)
    target = lamix_target(model, parts, y, out, 0.5)
    torch.testing.assert_close(out.loss.detach(), ce(recomputed_logits(model, out), target))


def test_lamix_table5_label_smoothing_is_uniform_on_the_mixed_target():
    cfg, model, _, x, y, out = one_step("lamix/table5", "mixup_ls02")
    assert_mixed_inputs("mixup", x, out)
    target = 0.8 * mixed_one_hot(y, out) + 0.2 / K
    torch.testing.assert_close(out.loss.detach(), ce(recomputed_logits(model, out), target))


@pytest.mark.parametrize("experiment,method", [("lamix/table3", "puzzlemix"), ("lamix/table4", "puzzlemix_tiny")])
def test_puzzlemix_tables_train_with_bce_on_softmax(experiment, method):
    cfg, model, _, x, y, out = one_step(experiment, method)
    loss = bce_softmax(recomputed_logits(model, out), mixed_one_hot(y, out))
    if cfg.mixer.clean_lam:  # Table 4: the Tiny-ImageNet command's --clean_lam 1
        with torch.no_grad():
            loss = loss + 2 * cfg.mixer.clean_lam * torch.nn.functional.cross_entropy(model(x), y) / K
    torch.testing.assert_close(out.loss.detach(), loss)


@pytest.mark.parametrize("experiment,method", [("lamix/table3", "lamix_puzzle"), ("lamix/table4", "lamix_puzzle_tiny")])
def test_lamix_on_puzzlemix_inputs_trains_with_puzzlemixs_bce_on_softmax(experiment, method):
    cfg, model, parts, x, y, out = one_step(experiment, method, steps=2)
    assert out.mixed.mixed and cfg.mixer.lamix_beta == 1.0  # lamix.txt 3.2: beta 1.0 in this set
    loss = bce_softmax(recomputed_logits(model, out), lamix_target(model, parts, y, out, 1.0))
    if cfg.mixer.inputs.clean_lam:
        with torch.no_grad():
            loss = loss + 2 * cfg.mixer.inputs.clean_lam * torch.nn.functional.cross_entropy(model(x), y) / K
    torch.testing.assert_close(out.loss.detach(), loss)


@pytest.mark.parametrize("method", ["mixup_sem", "cutmix_sem"])
def test_sem_table_loss_is_mixup_loss_plus_gamma_times_the_feature_distance(method):
    cfg, model, _, x, y, out = one_step("sem/table1", method)
    assert_mixed_inputs(method.split("_")[0], x, out)
    with torch.no_grad():
        mixed_features, clean = model.features(out.mixed.inputs), model.features(x)
    lam, partner = out.mixed.lam[:, None], out.mixed.partner
    target = lam * clean + (1 - lam) * clean[partner]
    expected = ce(model.classifier(mixed_features), mixed_one_hot(y, out))
    expected = expected + cfg.regularizer.gamma * (mixed_features - target).pow(2).mean()
    torch.testing.assert_close(out.loss.detach(), expected)


def test_ub_mixup_loss_is_the_categorical_cross_entropy_of_per_example_mixed_labels():
    # the recipe's ResNet-50 (its ImageNet stem needs 224 px: the CIFAR stem at 16 px here)
    cfg, model, _, x, y, out = one_step("rescaled/imagenet_ub", "mixup_rescaled_ub", *SMALL[:2], "model.stem=cifar", "eval.shift=[]",
                                        "trainer.device=cpu")
    lam, partner = out.mixed.lam, out.mixed.partner
    assert lam.unique().numel() == 8  # same_mix_weight_per_batch=False: one weight per example
    assert bool((lam >= 0.5).all())  # use_truncated_beta: max(lambda, 1 - lambda)
    assert partner.tolist() == list(range(7, -1, -1))  # use_random_shuffling=False: the batch reversed
    torch.testing.assert_close(out.mixed.inputs, lam.view(-1, 1, 1, 1) * x + (1 - lam.view(-1, 1, 1, 1)) * x.flip(0))
    torch.testing.assert_close(out.loss.detach(), ce(recomputed_logits(model, out), mixed_one_hot(y, out)))
