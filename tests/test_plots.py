"""Figures: each writes a non-empty PNG and PDF, and the CSV beside it holds exactly the plotted numbers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import compose_cfg
from mixexp.io import write_csv
from mixexp.evaluation.metrics import ECE_BINS, classification_metrics
from mixexp.plots.cli import cli
from mixexp.plots.reliability import reliability_bins, reliability_diagram
from mixexp.plots.soft_targets import soft_target_figure, soft_target_summary

DIGITS = ["dataset=digits", "model=simplecnn", "model.width=8", "trainer.epochs=1", "trainer.batch_size=64",
          "trainer.device=cpu", "trainer.progress=log", "sched=cosine"]


def read(path: Path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def assert_written(paths, names=None):
    for p in paths:
        assert Path(p).stat().st_size > 0
    suffixes = sorted(Path(p).suffix for p in paths)
    assert suffixes == [".csv", ".pdf", ".png"]
    png = next(Path(p) for p in paths if str(p).endswith(".png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return next(Path(p) for p in paths if str(p).endswith(".csv"))


def fake_run(folder: Path, mixer_name: str, seed: int, history=None, metrics=None, mixer=(), **keys):
    """A run folder as mixexp-train leaves it: config.yaml, history.csv, metrics.json."""
    config = {"name": "t", "seed": seed, "mixer": {"name": mixer_name, **dict(mixer)}, **keys}
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    if history is not None:
        write_csv(folder / "history.csv", history)
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))


def history(offset: float, epochs: int = 4):
    return [{"epoch": e, "lr": 0.1 / e, "train_loss": offset + 1.0 / e, "train_acc": 50.0 + e, "test_acc": offset * 10 + e,
             "seconds": 1.0, "images_per_s": 100.0} for e in range(1, epochs + 1)]


def test_learning_curves_fold_seeds_into_mean_and_std(tmp_path, capsys):
    offsets = {("none", 0): 0.1, ("none", 1): 0.3, ("mixup", 0): 1.0, ("mixup", 1): 2.0, ("mixup", 2): 4.0}
    for (mixer, seed), off in offsets.items():
        fake_run(tmp_path / "sweep" / f"{mixer}_{seed}", mixer, seed, history(off))
    cli(["curves", str(tmp_path / "sweep"), "--out", str(tmp_path / "fig")])
    rows = read(assert_written(sorted((tmp_path / "fig").iterdir())))
    assert {r["config"] for r in rows} == {"erm", "mixup"}
    got = {(r["config"], r["metric"], int(r["epoch"])): r for r in rows}
    mixup_acc = [np.array([h["test_acc"] for h in history(off)]) for off in (1.0, 2.0, 4.0)]
    row = got[("mixup", "test_acc", 3)]
    assert float(row["mean"]) == pytest.approx(np.mean([a[2] for a in mixup_acc]))
    assert float(row["std"]) == pytest.approx(np.std([a[2] for a in mixup_acc], ddof=1))
    assert int(row["n"]) == 3
    assert float(got[("erm", "train_loss", 2)]["mean"]) == pytest.approx(np.mean([0.1 + 0.5, 0.3 + 0.5]))
    assert len(rows) == 2 * 3 * 4  # configs x (train_loss, test_acc, lr) x epochs


def test_reliability_bins_match_a_direct_computation(tmp_path):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(500, 5, generator=gen) * 3
    labels = torch.randint(0, 5, (500,), generator=gen)
    paths = reliability_diagram({"erm": (logits, labels)}, tmp_path)
    rows = read(assert_written(paths))
    probs = logits.softmax(dim=1).numpy()
    conf, correct = probs.max(axis=1), probs.argmax(axis=1) == labels.numpy()
    assert len(rows) == ECE_BINS
    for b, row in enumerate(rows):
        lo, hi = b / ECE_BINS, (b + 1) / ECE_BINS
        chosen = (conf >= lo) & ((conf < hi) if b < ECE_BINS - 1 else (conf <= hi))
        assert int(row["count"]) == chosen.sum()
        if chosen.any():
            assert float(row["accuracy"]) == pytest.approx(correct[chosen].mean())
            assert float(row["confidence"]) == pytest.approx(conf[chosen].mean(), rel=1e-5)
    assert float(rows[0]["ece"]) == pytest.approx(classification_metrics(logits, labels)["test_ece"])
    # the bins' own ECE agrees with torchmetrics' when no confidence is exactly 1
    bins = reliability_bins(probs, labels.numpy())
    ece = np.sum(bins["count"] * np.abs(bins["accuracy"] - bins["confidence"])) / len(labels)
    assert ece == pytest.approx(float(rows[0]["ece"]), rel=1e-4)


def test_report_bars_paper_table_and_plain_report(tmp_path):
    paper = tmp_path / "lamix-table1.csv"
    write_csv(paper, [
        {"method": m, "dataset": "cifar10", "model": "preactresnet18", "metric": "error", "key": "test_error",
         "ours_mean": v, "ours_std": 0.1, "n": 2, "paper": p, "paper_std": 0.2, "delta": v - p}
        for m, v, p in (("mixup", 4.0, 4.2), ("lamix", 3.5, 3.82))])
    rows = read(assert_written(cli_paths(["bars", str(paper), "--out", str(tmp_path / "a")], tmp_path / "a")))
    assert [(r["label"], float(r["ours"]), float(r["paper"])) for r in rows] == [("mixup", 4.0, 4.2), ("lamix", 3.5, 3.82)]
    plain = tmp_path / "report.csv"
    write_csv(plain, [{"method": "erm", "n": 3, "test_acc_mean": 99.0, "test_acc_std": 0.2, "test_ece_mean": 0.01,
                       "test_ece_std": 0.001}])
    rows = read(assert_written(cli_paths(["bars", str(plain), "--out", str(tmp_path / "b")], tmp_path / "b")))
    assert [(r["panel"], float(r["ours"]), float(r["ours_std"])) for r in rows] == [("test_acc", 99.0, 0.2),
                                                                                    ("test_ece", 0.01, 0.001)]


def cli_paths(argv, out: Path):
    cli(argv)
    return sorted(out.iterdir())


def test_beta_and_label_smoothing_sweeps(tmp_path):
    errors = {0.1: [5.0, 7.0], 0.5: [3.0, 3.5], 0.9: [4.0, 4.0]}
    for beta, values in errors.items():
        for seed, err in enumerate(values):
            fake_run(tmp_path / "beta" / f"{beta}_{seed}", "lamix", seed, metrics={"test_error": err, "test_acc": 100 - err},
                     mixer={"lamix_beta": beta})
    rows = read(assert_written(cli_paths(["beta-sweep", str(tmp_path / "beta"), "--out", str(tmp_path / "f4")], tmp_path / "f4")))
    assert [float(r["mixer.lamix_beta"]) for r in rows] == [0.1, 0.5, 0.9]
    assert [float(r["test_error_mean"]) for r in rows] == pytest.approx([6.0, 3.25, 4.0])
    assert float(rows[0]["test_error_std"]) == pytest.approx(np.std([5.0, 7.0], ddof=1))

    for eps, acc in ((0.1, 70.0), (0.2, 72.0)):
        fake_run(tmp_path / "ls" / f"erm_{eps}", "none", 0, metrics={"test_acc": acc}, loss={"label_smoothing": eps})
    fake_run(tmp_path / "ls" / "lamix", "lamix", 0, metrics={"test_acc": 75.0}, loss={"label_smoothing": 0.0})
    rows = read(assert_written(cli_paths(["ls-sweep", str(tmp_path / "ls"), "--out", str(tmp_path / "f6")], tmp_path / "f6")))
    by_series = {r["series"]: r for r in rows}
    assert float(by_series["lamix"]["test_acc_mean"]) == 75.0
    assert float(by_series["paper:erm+ls0.2"]["test_acc_mean"]) == 78.47
    assert float(by_series["paper:lamix"]["test_acc_mean"]) == 80.62
    assert [float(r["test_acc_mean"]) for r in rows if r["series"] == "erm"] == [70.0, 72.0]


def test_soft_target_summary_values():
    target = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    p = torch.tensor([[0.5, 0.25, 0.25], [0.3, 0.3, 0.4]])
    s = soft_target_summary(target, p, top=2, bins=10)
    assert s["top1_mean"] == pytest.approx(0.6)
    assert s["top2_mean"] == pytest.approx(0.25)
    assert [s[f"p_class_{c}"] for c in range(3)] == pytest.approx([0.4, 0.275, 0.325])
    # target values 0.6, 0.3, 0.1, 0.2, 0.2, 0.6 in bins of width 0.1: bins 6, 3, 1, 2, 2, 6
    assert [s[f"target_hist_{i}"] for i in range(10)] == pytest.approx([0, 1 / 6, 2 / 6, 1 / 6, 0, 0, 2 / 6, 0, 0, 0])
    assert sum(s[f"p_hist_{i}"] for i in range(10)) == pytest.approx(1.0)
    assert "p_class_0" not in soft_target_summary(target)


def test_soft_target_figure_from_csv(tmp_path):
    gen = torch.Generator().manual_seed(0)
    rows = []
    for epoch in (3, 6, 9):
        target = torch.softmax(torch.randn(16, 10, generator=gen) * epoch / 3, dim=1)
        rows.append({"epoch": epoch, **soft_target_summary(target, torch.softmax(torch.randn(16, 10, generator=gen), 1))})
    write_csv(tmp_path / "run" / "soft_targets.csv", rows)
    out = read(assert_written(soft_target_figure(tmp_path / "run" / "soft_targets.csv", tmp_path / "fig")))
    assert [int(float(r["epoch"])) for r in out] == [3, 6, 9]
    assert float(out[1]["top2_mean"]) == pytest.approx(rows[1]["top2_mean"])
    assert float(out[2]["p_hist_3"]) == pytest.approx(rows[2]["p_hist_3"])


def test_bad_input_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli(["curves", str(tmp_path / "missing")])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'missing'} is not a directory"
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SystemExit):
        cli(["bars", str(tmp_path / "bad.csv"), "--out", str(tmp_path)])
    assert "is not a report CSV" in capsys.readouterr().err
    fake_run(tmp_path / "run", "mixup", 0, history(0.0))
    with pytest.raises(SystemExit):
        cli(["gradcam", str(tmp_path / "run")])
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'run'} has no last.pt: figures that need a model need a finished, checkpointed run"


# ------------------------------------------------------------------ figures that need a trained model

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Run folders of tiny models trained for one epoch on the digits: mixup (with rescaling), ERM, and a
    2-D bottleneck ERM run with a snapshot of its initial weights."""
    from mixexp.trainer import Trainer

    root = tmp_path_factory.mktemp("runs")
    runs = {}
    for name, extra in (("mixup", ["mixer=mixup"]), ("erm", []),
                        ("bottleneck", ["model=bottleneck", "model@model.backbone=simplecnn", "model.backbone.width=8"])):
        base = [o for o in DIGITS if not (name == "bottleneck" and o.startswith("model"))]
        trainer = Trainer(compose_cfg(base + extra), root / name)
        if name == "bottleneck":
            (root / name / "snapshots").mkdir()
            torch.save(trainer.model.state_dict(), root / name / "snapshots" / "epoch_0.pt")
        trainer.fit()
        runs[name] = root / name
    return runs


def test_load_finished_run_gives_the_trained_model(trained):
    from mixexp.evaluation.metrics import predict_logits
    from mixexp.plots.runs import load_finished_run

    _cfg, model, loader, rescaling, _device = load_finished_run(trained["mixup"])
    logits, labels = predict_logits(model, loader)
    metrics = json.loads((trained["mixup"] / "metrics.json").read_text())
    assert classification_metrics(logits, labels)["test_acc"] == pytest.approx(metrics["test_acc"])
    assert rescaling is not None and rescaling.theta == pytest.approx(0.75)  # mixup alpha 1
    assert load_finished_run(trained["erm"])[3] is None
    assert not (trained["mixup"] / "eval_breakdown.json").exists()
    assert "rescaled: false" in (trained["mixup"] / "config.yaml").read_text()  # the run folder is left as it was


def test_reliability_of_runs_with_and_without_rescaling(trained, tmp_path):
    rows = read(assert_written(cli_paths(["reliability", str(trained["erm"]), str(trained["mixup"]),
                                          "--out", str(tmp_path)], tmp_path)))
    assert [m for m in dict.fromkeys(r["model"] for r in rows)] == ["erm", "mixup", "mixup + test-time rescaling"]
    metrics = json.loads((trained["erm"] / "metrics.json").read_text())
    assert float(rows[0]["ece"]) == pytest.approx(metrics["test_ece"], abs=1e-6)
    assert sum(int(r["count"]) for r in rows if r["model"] == "erm") == 360  # the digits' test set


def test_grad_cam_equals_cam_for_a_pooled_linear_head(trained, tmp_path):
    """SimpleCNN ends with ReLU, global average pooling and a linear layer: Grad-CAM's channel weights are
    then W_y / (h w), so its map is Zhou et al.'s CAM, ReLU(sum_c W_yc A_c), up to scale."""
    import torch.nn.functional as F

    from mixexp.plots.features import one_per_class
    from mixexp.plots.gradcam import grad_cam, grad_cam_figure
    from mixexp.plots.runs import load_finished_run

    _cfg, model, loader, _r, _d = load_finished_run(trained["erm"])
    images, labels = one_per_class(loader, 3)
    assert labels.tolist() == [0, 1, 2]
    cams = grad_cam(model, images, labels)
    with torch.no_grad():
        activation = model.body[:-2](images)  # before pooling and flattening
        cam = F.relu(torch.einsum("bchw,bc->bhw", activation, model.classifier.weight[labels]))
        cam = F.interpolate(cam[:, None], size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        cam = cam / cam.flatten(1).max(dim=1).values[:, None, None]
    torch.testing.assert_close(cams, cam, atol=1e-5, rtol=1e-4)
    rows = read(assert_written(grad_cam_figure({"erm": model}, images, labels, tmp_path)))
    assert len(rows) == 3 * 8 * 8
    assert float(rows[8 * 2 + 5]["cam_erm"]) == pytest.approx(float(cams[0, 2, 5]), abs=1e-6)


def test_bottleneck_model_and_figure_over_epochs(trained, tmp_path):
    from mixexp.assemble import build_model
    from mixexp.config import validate
    from mixexp.plots.embeddings import embed
    from mixexp.plots.features import test_batch
    from mixexp.plots.runs import load_finished_run

    cfg = compose_cfg(["dataset=digits", "model=bottleneck", "model@model.backbone=simplecnn"])
    model = build_model(cfg, 3, 1, 8)
    x = torch.randn(5, 1, 8, 8)
    assert model.embedding(x).shape == (5, 2) and model.embedding(x).abs().max() < 1
    assert model(x).shape == (5, 3) and model.features(x).shape == (5, model.feature_dim)
    with pytest.raises(ValueError, match="model.backbone='bottleneck' is not allowed"):
        validate(compose_cfg(["model=bottleneck", "model@model.backbone=bottleneck"]))

    rows = read(assert_written(cli_paths(["bottleneck", str(trained["bottleneck"]), "--limit", "50",
                                          "--out", str(tmp_path)], tmp_path)))
    assert sorted({int(r["epoch"]) for r in rows}) == [0, 1]  # the snapshot and last.pt
    _cfg, final, loader, _r, _d = load_finished_run(trained["bottleneck"])
    images, labels = test_batch(loader, 50)
    expected = embed(final, images)
    last = [r for r in rows if r["epoch"] == "1"]
    assert [int(r["label"]) for r in last] == labels.tolist()
    assert [float(r["e1"]) for r in last] == pytest.approx(expected[:, 0].tolist(), abs=1e-6)


def test_umap_of_penultimate_features(trained, tmp_path):
    rows = read(assert_written(cli_paths(["umap", str(trained["mixup"]), str(trained["erm"]), "--limit", "60",
                                          "--out", str(tmp_path)], tmp_path)))
    assert [m for m in dict.fromkeys(r["method"] for r in rows)] == ["mixup", "erm"]
    assert len(rows) == 120 and all(np.isfinite(float(r["umap1"])) for r in rows)
