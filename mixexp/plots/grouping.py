"""Runs below a folder, grouped into configurations by mixexp-report's own rules (seeds fold together)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence

from mixexp.errors import ConfigError
from mixexp.report import Run, find_runs, group_runs, select, varying_keys


def runs_below(root: Path, where: Sequence[str] = (), finished: bool = False) -> List[Run]:
    """Every run below ``root`` (``root`` itself may be one) matching ``where`` (``key=v1,v2``)."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root} is not a directory")
    runs = select(find_runs(root), where)
    if finished:
        runs = [r for r in runs if r.metrics is not None]
    if not runs:
        what = " finished" if finished else ""
        raise ConfigError(f"no{what} runs below {root}" + (f" matching {' '.join(where)}" if where else "")
                          + " (a run folder holds config.yaml" + (" and metrics.json)" if finished else ")"))
    return runs


def label(keys: Sequence[str], values: Sequence[object]) -> str:
    """``mixup``, ``mixup, optim.lr=0.1``: the method by its name, other keys as key=value."""
    parts = [str(v) if k in ("method", "name") else f"{k}={v}" for k, v in zip(keys, values)]
    return ", ".join(parts)


def by_configuration(runs: Sequence[Run]) -> Dict[str, List[Run]]:
    """Configuration label -> its runs, in launch order; configurations differ by the keys that vary."""
    keys = varying_keys(runs) or ["method"]
    return {label(keys, row.key): row.runs for row in group_runs(runs, keys)}
