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


def run_in_process(argv: Sequence[str], capsys) -> tuple:
    """(exit code, stderr) of ``argv`` (``mixexp-train ...``, ``mixexp-eval ...``) run by its console script's cli
    function in this process: what the script does, without the seconds a new Python takes to start."""
    from mixexp import reproduce, report, train
    from mixexp.evaluation import cli as evaluation
    from mixexp.plots import cli as plots

    clis = {"mixexp-eval": evaluation.cli, "mixexp-plot": plots.cli, "mixexp-report": report.cli,
            "mixexp-reproduce": reproduce.cli}
    for name in ("HYDRA_FULL_ERROR", "MIXEXP_FULL_ERROR"):  # run_cli sets the first for Hydra
        os.environ.pop(name, None)
    capsys.readouterr()
    saved, code = sys.argv, 0
    try:
        if argv[0] == "mixexp-train":
            sys.argv = list(argv)
            train.cli()
        else:
            clis[argv[0]](list(argv[1:]))
    except SystemExit as end:
        code = end.code
    finally:
        sys.argv = saved
        os.environ.pop("HYDRA_FULL_ERROR", None)
    return code, capsys.readouterr().err


def files_below(folder: Path) -> dict:
    """Every file below ``folder`` (path -> bytes), Hydra's job logs (``*.log``, appended to) aside."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(Path(folder).rglob("*"))
            if p.is_file() and p.suffix != ".log"}


@pytest.fixture
def fast_overrides():
    return list(FAST)
