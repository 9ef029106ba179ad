"""Train a LaMix run and record its soft targets every N epochs into <run>/soft_targets.csv.

A stand-in for the recorder inside LaMix's loss (not wired yet): training proceeds in chunks of N
epochs (``Trainer.fit(until_epoch=...)``), and after each chunk the targets of one fixed training
mini-batch, mixed as LaMix mixes it, are summarised by ``mixexp.plots.soft_targets.soft_target_summary``.
The summary's random draws (partners, lambda) run in a forked RNG, so training is unchanged by them.

    python scripts/record_soft_targets.py RUN_DIR EVERY [overrides ...]   (e.g. dataset=digits method=lamix ...)
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from mixexp.config import CONF_DIR, register_configs, validate
from mixexp.io import write_csv
from mixexp.mixers.lamix import global_soft_label, lamix_target
from mixexp.plots.soft_targets import SOFT_TARGETS_CSV, soft_target_summary
from mixexp.trainer import Trainer


@torch.no_grad()
def summarise(trainer: Trainer, x: torch.Tensor, y: torch.Tensor) -> dict:
    mixer, model = trainer.mixer, trainer.model
    model.eval()
    steps, mixer.steps = mixer.steps, 1  # an odd step: a mixed mini-batch
    with torch.random.fork_rng():
        mixed = mixer(x, y, model)
    mixer.steps = steps
    features = model.features(mixed.inputs)
    p = global_soft_label(mixer.head, features)
    target = lamix_target(y, mixed.partner, mixed.lam, p, mixer.beta, mixer.num_classes)
    return soft_target_summary(target, p)


def main(run_dir: str, every: str, *overrides: str) -> None:
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    validate(cfg)
    trainer = Trainer(cfg, run_dir)
    with torch.random.fork_rng():
        x, y = next(iter(trainer.train_loader))  # the fixed mini-batch
    rows = []
    while trainer.epoch < cfg.trainer.epochs:
        trainer.fit(until_epoch=trainer.epoch + int(every))
        rows.append({"epoch": trainer.epoch, **summarise(trainer, x, y)})
        write_csv(Path(run_dir) / SOFT_TARGETS_CSV, rows)
    print(f"written: {Path(run_dir) / SOFT_TARGETS_CSV} ({len(rows)} rows)")


if __name__ == "__main__":
    main(*sys.argv[1:])
