"""``mixexp-eval RUN_DIR [key=value ...]``: evaluate a finished run again, without training.

The run's own ``config.yaml`` is loaded and the given overrides applied (typically evaluation sets:
``eval.shift=[cifar10_c,cifar10_1] eval.ood=[svhn,lsun_crop]`` or ``eval.rescaled=true``). Metrics
already in ``metrics.json`` are kept; the evaluation sets not yet evaluated are added. This is how a
table's evaluation attaches to runs trained for another table.

    mixexp-eval "multirun/sem/dataset=cifar10,method=mixup,model=preactresnet18,seed=0" eval.ood=[svhn]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Sequence

from omegaconf import OmegaConf

from mixexp.cli import fail, format_user_error
from mixexp.config import Config, ConfigError, validate


def load_run_config(run_dir: Path, overrides: Sequence[str]):
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a run directory: it has no config.yaml")
    cfg = OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.load(path), OmegaConf.from_dotlist(list(overrides)))
    cfg.resume = True
    validate(cfg)
    return cfg


def evaluate_run(run_dir: Path, overrides: Sequence[str] = ()) -> dict:
    from mixexp.checkpoint import load_checkpoint
    from mixexp.trainer import CHECKPOINT, Trainer

    cfg = load_run_config(run_dir, overrides)
    ckpt = run_dir / CHECKPOINT
    if not ckpt.is_file():
        raise ConfigError(f"{run_dir} has no {CHECKPOINT}: it was trained with trainer.checkpoint=false or never started")
    epoch = load_checkpoint(ckpt)["epoch"]
    if epoch < cfg.trainer.epochs:
        raise ConfigError(f"{run_dir} stopped at epoch {epoch}/{cfg.trainer.epochs}: finish it first with "
                          f"mixexp-train ... resume=true hydra.run.dir={run_dir}")
    return Trainer(cfg, run_dir).fit()


def cli(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mixexp-eval", description=__doc__.splitlines()[0])
    parser.add_argument("args", nargs="+", help="run directories, then optional key=value overrides")
    args = parser.parse_args(argv)
    # sweep folders have '=' in their names too: an existing directory is a run, the rest overrides
    dirs = [Path(a) for a in args.args if Path(a).is_dir()]
    overrides = [a for a in args.args if not Path(a).is_dir()]
    bad = [a for a in overrides if not re.fullmatch(r"[\w.]+=.*", a)]
    if bad:
        fail(f"{bad[0]} is neither a run directory nor a key=value override")
    if not dirs:
        fail("no run directory given (a folder holding config.yaml and last.pt)")
    for run_dir in dirs:
        try:
            metrics = evaluate_run(run_dir, overrides)
        except Exception as e:  # noqa: BLE001 - user errors become one line, bugs keep their traceback
            message = format_user_error(e)
            if message is None:
                raise
            fail(message)
        print(f"{run_dir}: " + json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}))


if __name__ == "__main__":
    cli()
