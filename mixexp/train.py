"""``mixexp-train``: compose the config, validate it, train, evaluate, write the run directory.

    mixexp-train dataset=digits model=simplecnn mixer=mixup
    mixexp-train -m mixer=none,mixup,cutmix seed=0,1,2
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from mixexp.cli import exit_on_user_error, run_cli
from mixexp.config import CONF_DIR, register_configs, validate

register_configs()

# Hydra's record of a job (conf/config.yaml sets hydra.output_subdir to null, so that Hydra itself writes
# nothing into the run folder before mixexp has claimed it): written here once the folder is this run's.
HYDRA_OUTPUT = ".hydra"


def hydra_output_files(cfg: DictConfig) -> dict:
    """The files Hydra writes into ``<run>/.hydra`` (the job's config as composed, Hydra's config and the
    overrides), taken before the task changes ``cfg``; empty when the user chose hydra.output_subdir (Hydra
    writes them itself then)."""
    hydra_cfg = HydraConfig.instance().cfg
    if hydra_cfg.hydra.output_subdir is not None:
        return {}
    return {"config.yaml": OmegaConf.to_yaml(cfg), "hydra.yaml": OmegaConf.to_yaml(hydra_cfg),
            "overrides.yaml": OmegaConf.to_yaml(hydra_cfg.hydra.overrides.task)}


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
@exit_on_user_error
def main(cfg: DictConfig) -> float:
    hydra_files = hydra_output_files(cfg)
    validate(cfg)
    from mixexp.io import write_text
    from mixexp.trainer import Trainer
    from mixexp.train_utils import resolve_device, sweep_job_num

    if cfg.trainer.device == "auto":  # a sweep's jobs spread over the visible GPUs (job number mod count)
        cfg.trainer.device = str(resolve_device("auto", sweep_job_num(HydraConfig.get())))

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if cfg.resume is None:  # a sweep's jobs continue where a relaunch finds them (requeued SLURM jobs too)
        cfg.resume = "auto" if HydraConfig.get().mode == RunMode.MULTIRUN else False
    trainer = Trainer(cfg, run_dir)  # claims the folder: a refused start has written nothing into it
    if trainer.dist.is_main:
        for name, text in hydra_files.items():
            write_text(run_dir / HYDRA_OUTPUT / name, text)
    metrics = trainer.fit()
    # what a sweeper optimises (hydra/sweeper=optuna_val): the validation accuracy when a split is held out
    objective = "val_acc" if cfg.dataset.val_fraction > 0 else "test_acc"
    return metrics.get(objective, float("nan"))


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
