"""Shared helpers: compose the real conf/ tree, run the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import pytest
import torch
from hydra import compose, initialize_config_dir

from mixexp.config import CONF_DIR, register_configs

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

register_configs()
torch.set_num_threads(2)

# A tiny, fast training run: 10-class synthetic 8x8 images, the small CNN, two epochs.
FAST = [
    "dataset=synthetic", "dataset.image_size=8", "dataset.train_size=64", "dataset.test_size=32",
    "dataset.crop_padding=1", "model=simplecnn", "model.width=8", "trainer.epochs=2",
    "trainer.batch_size=16", "trainer.device=cpu", "trainer.progress=log", "sched=cosine",
]


def compose_cfg(overrides: Sequence[str] = ()):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def run_cli(args: Sequence[str], cwd=None, env=None, timeout=300) -> subprocess.CompletedProcess:
    """Run a console script of this package (mixexp-train, mixexp-report, ...) as a user would."""
    full_env = {**os.environ, "WANDB_MODE": "offline", **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([str(BIN / args[0]), *args[1:]], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def fast_overrides():
    return list(FAST)
