"""Experiment trackers. ``none`` keeps everything on disk only; ``wandb`` mirrors it to W&B."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Dict

from omegaconf import OmegaConf


class NoLogger:
    def log_epoch(self, row: Dict[str, Any]) -> None:
        pass

    def log_final(self, metrics: Dict[str, Any]) -> None:
        pass

    def finish(self) -> None:
        pass


class WandbLogger(NoLogger):
    """One W&B run per mixexp run: resolved config, one point per epoch, final metrics in the summary.

    Runs of one experiment share ``group=cfg.name``; dataset, model and mixer are tags. The mode is
    ``$WANDB_MODE`` when set, else ``logger.mode`` (offline by default: no account needed). The run
    id is derived from the run directory, so ``resume=true`` continues the same W&B run.
    """

    def __init__(self, cfg, run_dir: Path) -> None:
        import wandb

        run_dir = Path(run_dir).resolve()
        self.run = wandb.init(
            project=cfg.logger.project,
            entity=cfg.logger.entity,
            group=cfg.name,
            name=run_dir.name,
            id=hashlib.sha1(str(run_dir).encode()).hexdigest()[:16],
            resume="allow",
            tags=[cfg.dataset.name, cfg.model.name, cfg.mixer.name],
            config=OmegaConf.to_container(cfg, resolve=True),
            dir=str(run_dir),
            mode=os.environ.get("WANDB_MODE", cfg.logger.mode),
            reinit="finish_previous",
        )

    def log_epoch(self, row: Dict[str, Any]) -> None:
        self.run.log(row, step=int(row["epoch"]))

    def log_final(self, metrics: Dict[str, Any]) -> None:
        self.run.summary.update(metrics)

    def finish(self) -> None:
        self.run.finish()


def build_logger(cfg, run_dir: Path) -> NoLogger:
    return WandbLogger(cfg, run_dir) if cfg.logger.name == "wandb" else NoLogger()
