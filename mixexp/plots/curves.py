"""Learning curves (train loss, test accuracy, lr per epoch) of one run or of every run of a sweep, with
the seeds of a configuration folded into mean ± sample std; LaMix Fig 5 is the same figure of one run."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
from matplotlib.ticker import MaxNLocator

from mixexp.errors import ConfigError
from mixexp.plots.common import band, plt, save_figure

CURVE_METRICS = ("train_loss", "test_acc", "lr")
LABELS = {"train_loss": "training loss (nats)", "train_acc": "training accuracy (%)",
          "test_acc": "test accuracy (%)", "lr": "learning rate", "seconds": "epoch time (s)",
          "images_per_s": "training images/s"}


def read_history(path: Path) -> Dict[str, np.ndarray]:
    """history.csv as one float array per column (rows in epoch order); a damaged file (a cell that is not a
    number, a row shorter or longer than the header, not text) is one ConfigError line naming the row."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise ConfigError(f"{path} is not a history.csv ({e})") from None
    if not rows:
        raise ConfigError(f"{path} holds no epochs")
    columns = {k: [] for k in rows[0]}
    for line, row in enumerate(rows, start=2):
        if None in row or None in row.values():
            raise ConfigError(f"{path} line {line} does not hold one cell for each of the {len(columns)} columns of "
                              "its header: the file is damaged")
        for k, v in row.items():
            try:
                columns[k].append(float(v))
            except ValueError:
                raise ConfigError(f"{path} line {line}: {k}={v!r} is not a number: the file is damaged") from None
    return {k: np.array(v) for k, v in columns.items()}


def fold_seeds(histories: Sequence[Dict[str, np.ndarray]], metric: str):
    """(epochs, mean, sample std, n) over the runs, on the epochs every run has reached."""
    length = min(len(h["epoch"]) for h in histories)
    stack = np.stack([h[metric][:length] for h in histories])
    std = stack.std(axis=0, ddof=1) if len(histories) > 1 else np.zeros(length)
    return histories[0]["epoch"][:length], stack.mean(axis=0), std, len(histories)


def learning_curves(groups: Dict[str, List[Dict[str, np.ndarray]]], out_dir: Path, name: str = "learning_curves",
                    metrics: Sequence[str] = CURVE_METRICS, title: str = "Learning curves") -> List[Path]:
    """One panel per metric, one line (mean over seeds, band ± std) per configuration.

    ``groups`` maps a configuration's label to the histories of its runs (seeds).
    """
    have = sorted(set.intersection(*(set(h) for histories in groups.values() for h in histories)))
    missing = [m for m in metrics if m not in have]
    if not metrics or missing:
        raise ConfigError(f"--metrics {','.join(missing) or '(none)'}: not a history.csv column; choose from "
                          f"{', '.join(have)}")
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    rows = []
    for ax, metric in zip(axes[0], metrics):
        for label, histories in groups.items():
            epochs, mean, std, n = fold_seeds(histories, metric)
            band(ax, epochs, mean, std, f"{label} (n={n})")
            rows += [{"config": label, "metric": metric, "epoch": int(e), "mean": m, "std": s, "n": n}
                     for e, m, s in zip(epochs, mean, std)]
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(LABELS.get(metric, metric))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{title} (mean ± std over seeds)")
    fig.tight_layout()
    return save_figure(fig, out_dir, name, rows)
