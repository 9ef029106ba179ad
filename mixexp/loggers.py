"""Experiment trackers. ``none`` keeps everything on disk only; ``wandb`` mirrors it to W&B."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import OmegaConf

# what a finished run uploads as its artifact (last.pt too with logger.log_checkpoint=true)
RUN_FILES = ("metrics.json", "history.csv", "config.yaml")
CHECKPOINT_FILE = "last.pt"
JOB_TYPES = ("train", "eval", "report")


class NoLogger:
    # the trainer calls log_step every this many optimiser steps (0: never)
    log_every_steps = 0

    def log_step(self, step: int, loss: float) -> None:
        pass

    def log_epoch(self, row: Dict[str, Any]) -> None:
        pass

    def log_final(self, metrics: Dict[str, Any]) -> None:
        pass

    def finish(self) -> None:
        pass


def run_tags(cfg, table: Optional[str] = None) -> List[str]:
    """Dataset, model, the method as the papers spell it (``mixup+es+sem``), the regularizer, the seed and
    the paper table (the ``experiment`` preset) the run belongs to."""
    from mixexp.assemble import method_label

    tags = [cfg.dataset.name, cfg.model.name, method_label(cfg),
            f"regularizer={cfg.regularizer.name}", f"seed={cfg.seed}"]
    return tags + ([f"table={table}"] if table else [])


def experiment_choice() -> Optional[str]:
    """The ``experiment=`` preset of the Hydra job (``sem/table1``), None outside Hydra or without one."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.choices.get("experiment") if HydraConfig.initialized() else None


# what the W&B SDK takes in $WANDB_MODE
WANDB_MODES = ("online", "offline", "disabled", "shared", "dryrun", "run")


def wandb_mode(cfg) -> str:
    """``$WANDB_MODE`` when set (checked: the SDK would fail on another value only once the run has started),
    else ``logger.mode``."""
    from mixexp.errors import require

    mode = os.environ.get("WANDB_MODE")
    if mode is None:
        return cfg.logger.mode
    require(mode in WANDB_MODES, "$WANDB_MODE", mode,
            f"choose one of {', '.join(WANDB_MODES)}, or unset it (logger.mode={cfg.logger.mode} then applies)")
    return mode


def check_logger(cfg) -> None:
    """What the logger will need, checked before a run writes anything: the W&B mode."""
    if cfg.logger.name == "wandb":
        wandb_mode(cfg)


class WandbLogger(NoLogger):
    """One W&B run per mixexp run: resolved config, one point per epoch, final metrics in the summary,
    the run's files as an artifact.

    Runs of one experiment (a sweep, a paper's table) share ``group=cfg.name``, which is also the group
    of the report's Table (mixexp.report.log_report_to_wandb). The mode is ``$WANDB_MODE`` when set, else
    ``logger.mode`` (offline by default: no account needed); W&B's files go to ``$WANDB_DIR`` when set,
    else into the run folder. The run id is derived from the run folder and the job type, so
    ``resume=true`` continues the same W&B run.
    """

    def __init__(self, cfg, run_dir: Path, job_type: str = "train") -> None:
        import wandb

        self.wandb = wandb
        self.cfg = cfg
        self.run_dir = Path(run_dir).resolve()
        self.log_every_steps = int(cfg.logger.log_every_steps)
        run_id = hashlib.sha1(str(self.run_dir).encode()).hexdigest()[:16]
        self.run = wandb.init(
            project=cfg.logger.project,
            entity=cfg.logger.entity,
            group=cfg.name,
            job_type=job_type,
            name=self.run_dir.name,
            id=run_id if job_type == "train" else f"{run_id}-{job_type}",
            resume="allow",
            tags=run_tags(cfg, experiment_choice()),
            config=OmegaConf.to_container(cfg, resolve=True),
            dir=None if os.environ.get("WANDB_DIR") else str(self.run_dir),  # None: the SDK reads WANDB_DIR
            mode=wandb_mode(cfg),
            reinit="finish_previous",
        )
        # two x-axes: per-epoch rows against "epoch", the optional per-step loss against "global_step"
        self.run.define_metric("epoch")
        self.run.define_metric("global_step")
        self.run.define_metric("train/step_loss", step_metric="global_step")
        self.run.define_metric("*", step_metric="epoch")

    def log_step(self, step: int, loss: float) -> None:
        self.run.log({"global_step": step, "train/step_loss": loss})

    def log_epoch(self, row: Dict[str, Any]) -> None:
        self.run.log(dict(row))

    def log_final(self, metrics: Dict[str, Any]) -> None:
        """Summary = the final metrics; provenance goes to the config; the run's files to an artifact."""
        metrics = dict(metrics)
        provenance = metrics.pop("provenance", None)
        if provenance is not None:
            self.run.config.update({"provenance": provenance}, allow_val_change=True)
        self.run.summary.update(metrics)
        files = RUN_FILES + ((CHECKPOINT_FILE,) if self.cfg.logger.log_checkpoint else ())
        artifact = self.wandb.Artifact(f"run-{self.run.id}", type="run",
                                       metadata={"group": self.cfg.name, "folder": str(self.run_dir)})
        for name in files:
            if (self.run_dir / name).is_file():
                artifact.add_file(str(self.run_dir / name), name=name)
        self.run.log_artifact(artifact)

    def finish(self) -> None:
        self.run.finish()


def build_logger(cfg, run_dir: Path, job_type: str = "train") -> NoLogger:
    """``job_type``: train (a training run), eval (mixexp-eval of a finished run) or report."""
    if job_type not in JOB_TYPES:
        raise ValueError(f"job_type={job_type!r}: choose one of {', '.join(JOB_TYPES)}")
    return WandbLogger(cfg, run_dir, job_type) if cfg.logger.name == "wandb" else NoLogger()
