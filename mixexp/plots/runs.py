"""A finished run turned back into its model and test data: the one place the figures depend on how
runs are trained and evaluated (the rest of mixexp.plots takes models and tensors)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import torch

from mixexp.errors import ConfigError


def load_finished_run(run_dir: Path, device: Optional[str] = None, overrides: Sequence[str] = ()):
    """(cfg, model in eval mode, test_loader, rescaling or None, device) of the run in ``run_dir``.

    The weights come from ``last.pt``; a mixup run also gets its test-time rescaling (restored from
    ``last.pt`` or computed from the training set as training would). Nothing in ``run_dir`` is written:
    the trainer is built on a scratch folder that links to the checkpoint.
    """
    from mixexp.evaluate import load_run_config
    from mixexp.trainer import CHECKPOINT, Trainer

    run_dir = Path(run_dir)
    ckpt = run_dir / CHECKPOINT
    if not ckpt.is_file():
        raise ConfigError(f"{run_dir} has no {CHECKPOINT}: figures that need a model need a finished, checkpointed run")
    cfg = load_run_config(run_dir, ["eval.shift=[]", "eval.ood=[]", *overrides])
    cfg.eval.rescaled = cfg.mixer.name == "mixup"
    if device is not None:
        cfg.trainer.device = device
    cfg.trainer.compile = False
    with tempfile.TemporaryDirectory(prefix="mixexp-plot-") as scratch:
        os.symlink(ckpt.resolve(), Path(scratch) / CHECKPOINT)
        trainer = Trainer(cfg, scratch)
    if trainer.epoch < cfg.trainer.epochs:
        raise ConfigError(f"{run_dir} stopped at epoch {trainer.epoch}/{cfg.trainer.epochs}: finish it first")
    trainer.model.eval()
    return cfg, trainer.model, trainer.test_loader, trainer.rescaling, trainer.device

