"""Issue 6: the evaluation metrics against independent computations, the paper-layout reports, shared
runs that gain evaluation sets without retraining, and a table reproduced end to end on fixture data."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from conftest import run_cli
from fixtures_data import compose, data_root, fixture_tree  # noqa: F401  (pytest fixtures)
from mixexp.config import validate
from mixexp.data.sources import CORRUPTIONS
from mixexp.evaluation.metrics import ood_auroc
from mixexp.evaluation.suite import set_metrics as eval_set_metrics
from mixexp.evaluation.metrics import classification_metrics
from mixexp.report import build_paper_report
from mixexp.tables import load_tables


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ood_auroc_matches_scikit_learn(seed):
    gen = torch.Generator().manual_seed(seed)
    in_scores, ood_scores = torch.rand(300, generator=gen) * 0.8 + 0.2, torch.rand(200, generator=gen)
    ood_scores[:20] = in_scores[:20]  # ties count one half, as in scikit-learn
    expected = roc_auc_score(np.r_[np.ones(300), np.zeros(200)], np.r_[in_scores.numpy(), ood_scores.numpy()])
    assert ood_auroc(in_scores, ood_scores) == pytest.approx(100 * expected, abs=1e-4)


def test_ece_matches_an_independent_15_bin_computation():
    gen = torch.Generator().manual_seed(0)
    logits, labels = 3 * torch.randn(1000, 10, generator=gen), torch.randint(0, 10, (1000,), generator=gen)
    p = logits.softmax(1).numpy()
    conf, pred, y = p.max(1), p.argmax(1), labels.numpy()
    bins = np.minimum((conf * 15).astype(int) - (conf * 15 == np.floor(conf * 15)), 14)  # (k/15, (k+1)/15]
    ece = sum(abs((pred[bins == k] == y[bins == k]).mean() - conf[bins == k].mean()) * (bins == k).mean()
              for k in range(15) if (bins == k).any())
    metrics = classification_metrics(logits, labels)
    assert metrics["test_ece"] == pytest.approx(ece, abs=1e-5)
    assert metrics["test_acc"] == pytest.approx(100 * (pred == y).mean())
    assert metrics["test_nll"] == pytest.approx(-np.log(p[np.arange(1000), y]).mean(), rel=1e-5)


def test_corruption_accuracy_is_the_mean_over_corruptions_and_severities():
    parts = {f"{c}/{s}": {"acc": 10.0 * s + i, "n": 4} for i, c in enumerate(["fog", "snow", "frost"]) for s in (1, 2, 3, 4, 5)}
    results = {"cifar10_c": parts, "svhn": {"test": {"msp": torch.tensor([0.1, 0.2]), "n": 2}}}
    metrics = eval_set_metrics(results, in_scores=torch.tensor([0.9, 0.15]))
    assert metrics["cifar10_c_acc"] == pytest.approx(np.mean([10.0 * s + i for i in range(3) for s in range(1, 6)]))
    assert metrics["ood_svhn_auroc"] == pytest.approx(75.0)  # pairs won: 0.9>0.1, 0.9>0.2, 0.15>0.1; lost 0.15<0.2


def result_lines(text):
    """The table rows of a paper report, after its protocol card."""
    body = text[text.index("\nours: "):]
    return [l for l in body.splitlines() if l.startswith("|")]


def _fake_run(root, name, dataset, model, mixer, seed, metrics, **extra):
    run = root / name
    run.mkdir(parents=True)
    cfg = {"dataset": {"name": dataset}, "model": {"name": model}, "seed": seed,
           "mixer": {"name": mixer, "stop_fraction": extra.get("stop"), "stop_epoch": None,
                     "lamix_inputs": "average", "lamix_original_batches": True, "lamix_global_label": True},
           "regularizer": {"name": extra.get("reg", "none")}, "loss": {"label_smoothing": 0.0}}
    import yaml

    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "metrics.json").write_text(json.dumps(metrics))


def test_sem_table1_report_layout(tmp_path):
    for seed, acc in [(0, 95.0), (1, 96.0)]:
        _fake_run(tmp_path, f"a{seed}", "cifar10", "preactresnet18", "mixup", seed, {"test_acc": acc}, reg="sem")
    _fake_run(tmp_path, "b", "cifar100", "wrn28_10", "cutmix", 0, {"test_acc": 80.0}, stop=0.9, reg="sem")
    text, rows = build_paper_report(tmp_path, "sem-table1")
    lines = result_lines(text)
    assert lines[0] == ("| method | cifar10 preactresnet18 ours | paper | Δ | cifar100 preactresnet18 ours | paper | Δ | "
                        "tinyimagenet preactresnet18 ours | paper | Δ | cifar10 wrn28_10 ours | paper | Δ | "
                        "cifar100 wrn28_10 ours | paper | Δ | tinyimagenet wrn28_10 ours | paper | Δ |")
    methods = [l.split(" | ")[0][2:] for l in lines[2:]]
    assert [m for m in methods if m != "Improvement"] == load_tables()["sem-table1"].methods == [
        "erm", "mixup", "mixup+sem", "mixup+es", "mixup+es+sem", "cutmix", "cutmix+sem", "cutmix+es", "cutmix+es+sem"]
    row = lines[2 + methods.index("mixup+sem")].split(" | ")
    assert row[1:4] == ["95.50 ± 0.71 (2)", "96.45", "-0.95"]  # ours (mean ± sample std, n) | paper | delta
    assert row[4:7] == ["missing", "79.31", "—"]  # no run: missing, never zero
    assert lines[2 + methods.index("cutmix+es+sem")].split(" | ")[13:16] == ["80.00 ± 0.00 (1)", "83.44", "-3.44"]
    assert len(rows) == 9 * 6 and {r["metric"] for r in rows} == {"accuracy"}


def test_lamix_table1_report_layout_uses_error_rates(tmp_path):
    _fake_run(tmp_path, "l0", "svhn", "resnet50", "lamix", 0, {"test_error": 2.5, "test_acc": 97.5})
    _fake_run(tmp_path, "l1", "svhn", "resnet50", "lamix", 1, {"test_error": 2.3, "test_acc": 97.7})
    text, rows = build_paper_report(tmp_path, "lamix-table1")
    lines = result_lines(text)
    titles = [c for c in lines[0].strip("| ").split(" | ") if c.endswith(" ours")]
    assert titles[:3] == ["mnist preactresnet18 ours", "fashion_mnist preactresnet18 ours", "svhn preactresnet18 ours"]
    assert len(titles) == 10 and "(error %)" in text
    assert [l.split(" | ")[0][2:] for l in lines[2:]] == ["erm", "mixup", "cutmix", "lamix"]
    cell = next(r for r in rows if r["method"] == "lamix" and r["dataset"] == "svhn" and r["model"] == "resnet50")
    assert (cell["n"], cell["paper"], cell["paper_std"]) == (2, 2.39, 0.06)
    assert cell["ours_mean"] == pytest.approx(2.4) and cell["delta"] == pytest.approx(0.01)


def test_a_finished_run_gains_evaluation_sets_without_training(data_root, tmp_path):
    from mixexp.trainer import Trainer

    base = ["dataset=cifar10", f"paths.data_dir={data_root}", "model=simplecnn", "model.width=8", "trainer.epochs=1",
            "trainer.batch_size=8", "trainer.device=cpu", "trainer.progress=log", "mixer=mixup", "resume=true"]
    cfg = compose(base)
    validate(cfg)
    first = Trainer(cfg, tmp_path / "run").fit()
    assert "cifar10_1_acc" not in first
    ckpt = tmp_path / "run" / "last.pt"
    stamp = ckpt.stat().st_mtime_ns
    cfg = compose(base + ["eval=standard", "eval.rescaled=true"])
    validate(cfg)
    later = Trainer(cfg, tmp_path / "run").fit()
    assert ckpt.stat().st_mtime_ns == stamp  # no training step, no new checkpoint
    assert later["test_acc"] == first["test_acc"] and later["wall_s"] == first["wall_s"]
    for key in ["cifar10_c_acc", "cifar10_1_acc", "cifar10_2_acc", "ood_svhn_auroc", "ood_lsun_crop_auroc",
                "rescaled_cifar10_c_acc", "rescaled_ood_svhn_auroc", "rescaled_test_acc"]:
        assert key in later, key
    breakdown = json.loads((tmp_path / "run" / "eval_breakdown.json").read_text())
    assert len(breakdown["cifar10_c"]) == 15 * 5 and "rescaled_cifar10_c" in breakdown
    # other severities: the corruption set is evaluated again, the others are kept as they were
    cfg = compose(base + ["eval=standard", "eval.rescaled=true", "eval.severities=[2]"])
    validate(cfg)
    again = Trainer(cfg, tmp_path / "run").fit()
    breakdown = json.loads((tmp_path / "run" / "eval_breakdown.json").read_text())
    assert sorted(breakdown["cifar10_c"]) == sorted(f"{c}/2" for c in CORRUPTIONS)
    assert again["eval_settings"]["cifar10_c"]["severities"] == [2]
    assert again["cifar10_1_acc"] == later["cifar10_1_acc"]


def test_a_table_reproduced_on_fixture_data(tmp_path):
    result = run_cli(["mixexp-reproduce", "rescaled-imagenet-ub", "--smoke", "--root", str(tmp_path)], cwd=tmp_path,
                     timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    ub = (tmp_path / "reports" / "smoke" / "rescaled-ub.md").read_text()
    assert "| method | imagenet resnet50 top1 ours | paper | Δ | imagenet resnet50 ece ours |" in ub
    # the protocol card, from the runs' configs: uncertainty-baselines' optimiser with the smoke lr and batch
    assert "- optimiser: SGD Nesterov lr 0.02, momentum 0.9, weight decay 0.0002 (none on BatchNorm)" in ub
    # smoke: the scaled schedule of a 1-epoch run, no warm-up
    assert "- schedule: x0.1 at [0, 0, 0] (epochs [30, 60, 80] of a 90-epoch run, scaled to 1)\n" in ub and "- batch: 8" in ub
    # the smoke budget's changes are on the card as what they are, with the authors' values and sources
    assert ("| trainer.batch_size | 8 | 4096 | ub deterministic.py l.46, 77, 107: per_core_batch_size 128 x num_cores 32 "
            "| not this recipe's value") in ub
    assert "| mixer.pairing" not in ub and "| warm-up granularity | per epoch |" in ub  # equal: no row; a note
    erm, mixup = [l for l in result_lines(ub) if l.startswith("| erm") or l.startswith("| mixup+rescaled")]
    assert erm.split(" | ")[2] == "76.20" and mixup.split(" | ")[11] == "28.30"  # published numbers filled in
    assert "(1) |" in mixup.split(" | ")[10] + " |"  # ours: one smoke run on ObjectNet, rescaled
    # ImageNet-C and ImageNetV2 from their fixtures in the released layouts, ImageNet-C cropped again as ub does
    cells = mixup.split(" | ")
    assert cells[13].endswith("(1)") and cells[14] == "47.10" and cells[16].endswith("(1)") and cells[17] == "65.90"
    assert "- ImageNet-C view: Resize(256) + CenterCrop(224) of each 224 px file, eval.imagenet_c_crop=center\n" in ub
    csv = (tmp_path / "reports" / "smoke" / "rescaled-ub.csv").read_text().splitlines()
    assert csv[0].startswith("method,dataset,model,metric,key,statistic") and "rescaled_imagenet_v2_top1,final" in csv[-1]


def test_unknown_reproduce_target_is_a_one_line_error():
    result = run_cli(["mixexp-reproduce", "sem-table9"])
    assert result.returncode == 2 and result.stderr.startswith("error: target 'sem-table9' is not allowed: choose one of all, sem-table1")


def test_mixexp_eval_adds_sets_to_a_sweep_folder_and_keeps_what_was_reported(data_root, tmp_path):
    from mixexp.evaluation.cli import cli
    from mixexp.trainer import Trainer

    run = tmp_path / "dataset=cifar10,method=mixup,seed=0"  # a sweep folder: '=' in its name
    cfg = compose(["dataset=cifar10", f"paths.data_dir={data_root}", "model=simplecnn", "model.width=8",
                   "trainer.epochs=1", "trainer.batch_size=8", "trainer.device=cpu", "mixer=mixup"])
    validate(cfg)
    Trainer(cfg, run).fit()
    reported = json.loads((run / "metrics.json").read_text())
    reported["test_nll"] = 123.0  # what the run reported must survive a re-evaluation
    (run / "metrics.json").write_text(json.dumps(reported))
    cli([str(run), "eval.shift=[cifar10_1]"])
    metrics = json.loads((run / "metrics.json").read_text())
    assert "cifar10_1_acc" in metrics and metrics["test_nll"] == 123.0


def test_mixexp_eval_errors_are_one_line(tmp_path):
    result = run_cli(["mixexp-eval", str(tmp_path / "nope"), "eval.rescaled=true"])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().endswith("is neither a run directory nor a key=value override")
