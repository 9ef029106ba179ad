"""Training end to end: every model, the run directory, repeatability, resume (W&B: tests/test_loggers.py)."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from conftest import FAST, compose_cfg
from mixexp.config import ConfigError, validate
from mixexp.trainer import Trainer

MODEL_SIZES = [
    ("preactresnet18", 32, []), ("preactresnet18", 64, []),
    ("wrn28_10", 32, []), ("wrn28_10", 64, []),
    ("resnet50", 32, []), ("resnet50", 224, ["model.stem=imagenet"]),
    ("lenet", 28, []), ("lenet", 32, []),
    ("densenet121", 32, []),
    ("simplecnn", 8, []),
]


def train(tmp_path, overrides, name="run", until=None):
    # model.width is simplecnn's own key: another model= keeps only the others
    base = [o for o in FAST if not o.startswith("model.width")] if any(o.startswith("model=") for o in overrides) else FAST
    cfg = compose_cfg(base + list(overrides))
    validate(cfg)
    trainer = Trainer(cfg, tmp_path / name)
    return trainer, trainer.fit(until_epoch=until)


@pytest.mark.parametrize("model,size,extra", MODEL_SIZES, ids=[f"{m}-{s}" for m, s, _ in MODEL_SIZES])
def test_one_epoch_of_every_model_at_its_paper_input_size(tmp_path, model, size, extra):
    trainer, metrics = train(tmp_path, [
        f"model={model}", f"dataset.image_size={size}", "dataset.train_size=4", "dataset.test_size=2",
        "dataset.num_classes=3", "trainer.batch_size=2", "trainer.eval_batch_size=2", "trainer.epochs=1",
        "mixer=mixup", "trainer.checkpoint=false", *extra,
    ])
    assert metrics["epochs"] == 1
    assert 0.0 <= metrics["test_acc"] <= 100.0 and metrics["test_nll"] > 0
    assert trainer.model.classifier.out_features == 3


def test_run_directory_holds_config_history_metrics_checkpoint(tmp_path):
    trainer, metrics = train(tmp_path, ["mixer=cutmix", "trainer.epochs=3"])
    run = tmp_path / "run"
    assert {"config.yaml", "history.csv", "metrics.json", "last.pt"} <= {p.name for p in run.iterdir()}
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert list(rows[0]) == ["epoch", "lr", "train_loss", "train_acc", "seconds", "images_per_s", "test_acc"]
    saved = json.loads((run / "metrics.json").read_text())
    for key in ["test_acc", "test_error", "test_nll", "test_ece", "best_test_acc", "median10_test_acc",
                "epochs", "train_images_per_s", "wall_s"]:
        assert key in saved
    assert saved["test_acc"] + saved["test_error"] == pytest.approx(100.0)
    assert saved["best_test_acc"] == max(float(r["test_acc"]) for r in rows)
    assert saved["median10_test_acc"] == pytest.approx(sorted(float(r["test_acc"]) for r in rows)[1])
    assert "mixer:\n  name: cutmix" in (run / "config.yaml").read_text()
    assert not list(run.glob(".*.tmp"))  # atomic writes leave no temporaries behind


def test_train_epoch_runs_before_fit_and_trains_fits_first_epoch(tmp_path):
    # scripts/bench.py drives train_epoch on a trainer that fit() never opened (no logger of the run yet)
    cfg = compose_cfg(FAST + ["mixer=mixup", "trainer.epochs=1"])
    validate(cfg)
    direct = Trainer(cfg, tmp_path / "direct").train_epoch()
    train(tmp_path, ["mixer=mixup", "trainer.epochs=1"], name="fit")
    row = next(csv.DictReader((tmp_path / "fit" / "history.csv").open()))
    assert direct["train_loss"] == pytest.approx(float(row["train_loss"]), rel=1e-6)
    assert direct["train_acc"] == pytest.approx(float(row["train_acc"]), rel=1e-6)


def test_cosine_and_multistep_schedules(tmp_path):
    _, _ = train(tmp_path, ["sched=multistep", "sched.milestones=[1,2]", "sched.gamma=0.5", "trainer.epochs=3",
                            "optim.lr=0.2"], name="a")
    lrs = [float(r["lr"]) for r in csv.DictReader((tmp_path / "a" / "history.csv").open())]
    assert lrs == pytest.approx([0.2, 0.1, 0.05])
    _, _ = train(tmp_path, ["sched=cosine", "trainer.epochs=4", "optim.lr=0.2"], name="b")
    lrs = [float(r["lr"]) for r in csv.DictReader((tmp_path / "b" / "history.csv").open())]
    assert lrs == pytest.approx([0.2, 0.2 * (1 + 2 ** -0.5) / 2, 0.1, 0.2 * (1 - 2 ** -0.5) / 2])


def test_same_seed_same_metrics_other_seed_other_metrics(tmp_path):
    _, a = train(tmp_path, ["mixer=mixup", "seed=3"], name="a")
    _, b = train(tmp_path, ["mixer=mixup", "seed=3"], name="b")
    _, c = train(tmp_path, ["mixer=mixup", "seed=4"], name="c")
    for key in ["test_acc", "test_nll", "test_ece", "best_test_acc"]:
        assert a[key] == b[key]
    assert a["test_nll"] != c["test_nll"]


@pytest.mark.parametrize("mixer", ["mixup", "cutmix"])
def test_resume_ends_with_the_same_metrics_as_an_uninterrupted_run(tmp_path, mixer):
    overrides = [f"mixer={mixer}", "trainer.epochs=4", "sched=multistep", "sched.milestones=[2,3]"]
    full, straight = train(tmp_path, overrides, name="straight")
    _, partial = train(tmp_path, overrides, name="resumed", until=2)
    assert partial == {} and not (tmp_path / "resumed" / "metrics.json").exists()
    resumed_trainer, resumed = train(tmp_path, overrides + ["resume=true"], name="resumed")
    for key in ["test_acc", "test_nll", "test_ece", "best_test_acc", "median10_test_acc", "epochs"]:
        assert resumed[key] == straight[key], key
    for p, q in zip(full.model.parameters(), resumed_trainer.model.parameters()):
        assert torch.equal(p, q)
    history = list(csv.DictReader((tmp_path / "resumed" / "history.csv").open()))
    assert [r["train_loss"] for r in history] == [str(r["train_loss"]) for r in full.history]


def test_a_run_directory_is_never_overwritten_without_resume(tmp_path):
    train(tmp_path, ["trainer.epochs=1"])
    before = (tmp_path / "run" / "metrics.json").read_bytes()
    with pytest.raises(ConfigError, match="already holds a run"):
        train(tmp_path, ["trainer.epochs=1"])
    assert (tmp_path / "run" / "metrics.json").read_bytes() == before


def test_resume_of_a_finished_run_only_re_evaluates(tmp_path):
    _, first = train(tmp_path, ["trainer.epochs=2"])
    trainer, again = train(tmp_path, ["trainer.epochs=2", "resume=true"])
    assert again["test_acc"] == first["test_acc"] and len(trainer.history) == 2


def test_compiled_features_train_like_the_eager_model(tmp_path):
    _, eager = train(tmp_path, ["mixer=mixup", "trainer.epochs=1"], name="eager")
    trainer, compiled = train(tmp_path, ["mixer=mixup", "trainer.epochs=1", "trainer.compile=true"], name="compiled")
    assert "features" in trainer.model.__dict__  # the instance's compiled feature extractor
    assert compiled["test_nll"] == pytest.approx(eager["test_nll"], rel=1e-3)
    keys = list(torch.load(tmp_path / "compiled" / "last.pt", weights_only=False)["model"])
    eager_keys = list(torch.load(tmp_path / "eager" / "last.pt", weights_only=False)["model"])
    assert keys == eager_keys and not any("_orig_mod" in k for k in keys)  # checkpoints interchangeable


def test_progress_bar_shows_epoch_loss_and_throughput(tmp_path, capsys):
    train(tmp_path, ["trainer.progress=bar", "trainer.epochs=1", "dataset.train_size=256"])
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "loss=" in err and "img_s=" in err
