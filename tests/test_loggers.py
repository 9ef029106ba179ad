"""W&B: what mixexp hands the SDK (project, entity, group, job type, tags, config, rows, artifacts).

The SDK's entry points (wandb.init, wandb.Artifact) are replaced by recorders, so nothing is written or
sent and the assertions read exactly what W&B would have received."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from conftest import FAST, compose_cfg
from mixexp.config import ConfigError, validate
from mixexp.loggers import WandbLogger, build_logger
from mixexp.trainer import Trainer


class FakeRun:
    def __init__(self, **kwargs):
        self.init = kwargs
        self.id = kwargs.get("id", "generated")
        self.rows, self.artifacts, self.metrics, self.finished = [], [], {}, False
        self.config_updates, self.summary = [], {}
        self.config = SimpleNamespace(update=lambda d, allow_val_change=False: self.config_updates.append(d))

    def define_metric(self, name, step_metric=None):
        self.metrics[name] = step_metric

    def log(self, row, step=None):
        assert step is None  # every row carries its own x-axis (epoch or global_step)
        self.rows.append(dict(row))

    def log_artifact(self, artifact):
        self.artifacts.append(artifact)

    def finish(self):
        self.finished = True


class FakeArtifact:
    def __init__(self, name, type, metadata=None):
        self.name, self.type, self.metadata, self.files = name, type, metadata, {}

    def add_file(self, path, name=None):
        assert Path(path).is_file()
        self.files[name] = Path(path)


@pytest.fixture
def sdk(monkeypatch):
    """Records the runs that wandb.init starts."""
    import wandb

    runs = []
    monkeypatch.setattr(wandb, "init", lambda **kw: runs.append(FakeRun(**kw)) or runs[-1])
    monkeypatch.setattr(wandb, "Artifact", FakeArtifact)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    return runs


def test_a_training_run_gives_wandb_its_group_tags_config_rows_summary_and_files(tmp_path, sdk):
    cfg = compose_cfg(FAST + ["logger=wandb", "name=wb_test", "logger.project=proj", "logger.entity=team",
                              "mixer=mixup", "regularizer=sem", "seed=3", "logger.log_checkpoint=true"])
    validate(cfg)
    metrics = Trainer(cfg, tmp_path / "run").fit()
    (run,) = sdk
    init = run.init
    assert (init["project"], init["entity"], init["group"], init["job_type"]) == ("proj", "team", "wb_test", "train")
    assert init["tags"] == ["synthetic", "simplecnn", "mixup+sem", "regularizer=sem", "seed=3"]
    assert init["config"]["trainer"]["epochs"] == 2 and init["config"]["mixer"]["name"] == "mixup"
    assert init["dir"] == str((tmp_path / "run").resolve()) and init["mode"] == "offline" and init["resume"] == "allow"
    assert [row["epoch"] for row in run.rows] == [1, 2] and run.metrics["train/step_loss"] == "global_step"
    assert run.rows[1]["test_acc"] == metrics["test_acc"] and "train_loss" in run.rows[0]
    assert run.summary["test_acc"] == metrics["test_acc"] and "provenance" not in run.summary
    assert run.config_updates == [{"provenance": metrics["provenance"]}]
    assert run.config_updates[0]["provenance"]["torch_version"] == torch.__version__
    (artifact,) = run.artifacts
    assert artifact.type == "run" and artifact.name == f"run-{init['id']}"
    assert sorted(artifact.files) == ["config.yaml", "history.csv", "last.pt", "metrics.json"]
    assert artifact.files["metrics.json"] == (tmp_path / "run" / "metrics.json").resolve()
    assert run.finished


def test_wandb_dir_step_loss_and_no_checkpoint_by_default(tmp_path, sdk, monkeypatch):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("WANDB_MODE", "online")
    cfg = compose_cfg(FAST + ["logger=wandb", "logger.log_every_steps=50"])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in ["metrics.json", "history.csv", "config.yaml", "last.pt"]:
        (run_dir / name).write_text("x")
    logger = build_logger(cfg, run_dir)
    assert isinstance(logger, WandbLogger) and logger.log_every_steps == 50
    logger.log_step(100, 0.25)
    logger.log_final({"test_acc": 90.0})
    (run,) = sdk
    assert run.init["dir"] is None and run.init["mode"] == "online"  # None: the SDK itself reads WANDB_DIR
    assert run.rows == [{"global_step": 100, "train/step_loss": 0.25}]
    assert sorted(run.artifacts[0].files) == ["config.yaml", "history.csv", "metrics.json"]
    assert run.config_updates == [] and run.summary == {"test_acc": 90.0}


def test_an_evaluation_is_a_run_of_its_own_job_type_beside_the_training_run(tmp_path, sdk):
    cfg = compose_cfg(FAST + ["logger=wandb"])
    build_logger(cfg, tmp_path, "train")
    build_logger(cfg, tmp_path, "eval")
    train, evaluation = sdk
    assert evaluation.init["job_type"] == "eval" and evaluation.init["id"] == f"{train.init['id']}-eval"
    with pytest.raises(ValueError, match="job_type='bogus': choose one of train, eval, report"):
        build_logger(cfg, tmp_path, "bogus")


def test_a_negative_step_interval_is_rejected():
    with pytest.raises(ConfigError, match=r"logger.log_every_steps=-1 is not allowed: must be >= 0 \(0 = off\)"):
        validate(compose_cfg(FAST + ["logger.log_every_steps=-1"]))


def test_a_report_table_lands_in_its_runs_project_entity_and_group(tmp_path, sdk):
    from mixexp.report import log_report_to_wandb

    for seed in (0, 1):
        run_cfg = compose_cfg(FAST + ["name=sem", "logger.project=papers", "logger.entity=lab", f"seed={seed}"])
        (tmp_path / f"seed={seed}").mkdir()
        OmegaConf.save(run_cfg, tmp_path / f"seed={seed}" / "config.yaml")
    rows = [{"method": "mixup", "dataset": "cifar10", "ours_mean": 95.5, "paper": 95.77},
            {"method": "erm", "dataset": "cifar10", "ours_mean": 94.1, "paper": 94.62}]
    log_report_to_wandb("sem-table1", rows, tmp_path)
    log_report_to_wandb("sem-table1", rows, tmp_path, project="mine")
    log_report_to_wandb("plain", rows)
    from_runs, explicit, no_runs = sdk
    init = from_runs.init
    assert (init["project"], init["entity"], init["group"], init["job_type"]) == ("papers", "lab", "sem", "report")
    assert init["tags"] == ["table=sem-table1"] and init["dir"] == str(tmp_path)
    (logged,) = from_runs.rows
    table = logged["sem-table1"]
    assert table.columns == ["method", "dataset", "ours_mean", "paper"] and table.data[1] == ["erm", "cifar10", 94.1, 94.62]
    assert explicit.init["project"] == "mine" and explicit.init["entity"] == "lab"
    assert (no_runs.init["project"], no_runs.init["entity"], no_runs.init["group"]) == ("mixexp", None, "plain")
    assert all(run.finished for run in sdk)
