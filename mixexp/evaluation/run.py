"""A finished run, loaded for evaluation without a trainer: its config, model weights, data and rescaling."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mixexp.checkpoint import CHECKPOINT, load_checkpoint
from mixexp.config import Config, option, validate
from mixexp.data import build_loader, load_dataset
from mixexp.errors import ConfigError
from mixexp.evaluation.rescaling import Rescaling, stored_or_training_statistics
from mixexp.evaluation.suite import EvalContext
from mixexp.train_utils import resolve_device


def load_run_config(run_dir: Path, overrides: Sequence[str] = ()):
    """The run's resolved config.yaml with ``overrides`` (key=value) applied, validated."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a run directory: it has no config.yaml")
    try:
        stored = OmegaConf.load(path)
    except Exception as e:  # noqa: BLE001 - a damaged file is the user's to fix: one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{path} cannot be read: {first}") from None
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(Config), stored, OmegaConf.from_dotlist(list(overrides)))
        validate(cfg)
    except OmegaConfBaseException as e:  # e.g. a key the stored config lacks: the user's file, one line
        raise ConfigError(f"{path} is not a complete run config: {str(e).strip().splitlines()[0]}") from None
    return cfg


@dataclass
class FinishedRun:
    cfg: Any
    model: torch.nn.Module
    test_loader: Any
    context: EvalContext
    rescaling: Optional[Rescaling]
    checkpoint: dict


def build_run_model(cfg, data, device: torch.device) -> torch.nn.Module:
    channels, size = data.image_shape[0], data.image_shape[1]
    return option(cfg, "model").build(data.num_classes, channels, size).to(device)


def load_finished_run(run_dir: Path, overrides: Sequence[str] = ()) -> FinishedRun:
    """Load ``run_dir``'s config, data and last.pt weights (refused unless training finished)."""
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir, overrides)
    path = run_dir / CHECKPOINT
    if not path.is_file():
        raise ConfigError(f"{run_dir} has no {CHECKPOINT}: it was trained with trainer.checkpoint=false, "
                          "its checkpoint was removed, or it never started")
    state = load_checkpoint(path)
    if state["epoch"] < cfg.trainer.epochs:
        raise ConfigError(f"{run_dir} stopped at epoch {state['epoch']}/{cfg.trainer.epochs}: finish it first with "
                          f"mixexp-train ... resume=true hydra.run.dir={run_dir}")
    if state["epoch"] > cfg.trainer.epochs:
        raise ConfigError(f"{path} holds epoch {state['epoch']}, past the run's trainer.epochs={cfg.trainer.epochs}: "
                          "it is not this run's checkpoint")
    device = resolve_device(cfg.trainer.device)
    data = load_dataset(cfg.dataset, cfg.paths.data_dir)
    model = build_run_model(cfg, data, device)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise ConfigError(f"{path} does not hold this config's model: {str(e).splitlines()[0]}") from None
    rescaling = None
    if cfg.eval.rescaled:
        rescaling = stored_or_training_statistics(cfg, state.get("rescaling"), data, device)
    test_loader = build_loader(data.test, cfg.trainer.eval_batch_size, device=device, mean=data.mean, std=data.std,
                               train=False)
    context = EvalContext(cfg, device, data.mean, data.std, data.image_shape)
    return FinishedRun(cfg, model, test_loader, context, rescaling, state)
