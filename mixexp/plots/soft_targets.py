"""LaMix Figs 2-3: how the soft training targets evolve.

:func:`soft_target_summary` reduces one batch's targets (and the global soft labels p) to a few
numbers, cheap enough to record every N epochs; the rows go to ``soft_targets.csv`` in the run
folder, and :func:`soft_target_figure` draws them: the mean of the k largest target values over
epochs (Fig 2) and the distribution of target values and of p's values over epochs (Fig 3).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List

import numpy as np
from matplotlib.ticker import MaxNLocator
import torch

from mixexp.mixers.lamix import HIST_BINS, SOFT_TARGETS_CSV, TOP, soft_target_summary  # noqa: F401
from mixexp.plots.common import caption, plt, require_columns, save_figure

# What the paper's text quotes (LaMix, Sec. 3.1.2, CIFAR with PreAct ResNet-18, 400 epochs).
PUBLISHED = ("Published (LaMix Sec. 3.1.2): Fig 2, second-largest target about 0.14 (CIFAR-100) and 0.25 (CIFAR-10); "
             "Fig 3 (CIFAR-10), largest targets between 0.55 and 0.65; global soft labels p mostly 0.14-0.18 early, "
             "more of them 0.18-0.20 later.")


@torch.no_grad()
def read_soft_targets(path: Path) -> Dict[str, np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    columns = list(rows[0]) if rows else []
    require_columns(path, columns, ["epoch", "top1_mean", "top2_mean"])
    return {c: np.array([float(r[c]) for r in rows]) for c in columns}


def soft_target_figure(path: Path, out_dir: Path, name: str = "lamix_fig2_3") -> List[Path]:
    """Fig 2 (mean of the k largest targets over epochs) and Fig 3 (histograms of target values and of
    p's values, one row per recorded epoch) from a ``soft_targets.csv``; the caption quotes the paper."""
    data = read_soft_targets(Path(path))
    epochs = data["epoch"]
    hists = [(prefix, title) for prefix, title in (("target_hist_", "soft targets"), ("p_hist_", "global soft labels p"))
             if f"{prefix}0" in data]
    fig, axes = plt.subplots(1, 1 + len(hists), figsize=(4.4 * (1 + len(hists)), 3.6), squeeze=False)
    ax = axes[0][0]
    tops = sorted((c for c in data if c.startswith("top") and c.endswith("_mean")), key=lambda c: int(c[3:-5]))
    for column in tops:
        ax.plot(epochs, data[column], marker="o", markersize=3, label=f"{column[3:-5]}. largest")
    ax.set(xlabel="epoch", ylabel="target value (mean over the batch)", title="Fig 2: largest soft targets", ylim=(0, 1))
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax, (prefix, title) in zip(axes[0][1:], hists):
        columns = sorted((c for c in data if c.startswith(prefix)), key=lambda c: int(c[len(prefix):]))
        grid = np.stack([data[c] for c in columns], axis=1)  # (recorded epochs, bins)
        image = ax.imshow(grid, aspect="auto", cmap="viridis", origin="upper", extent=(0, 1, len(epochs), 0))
        ax.set_yticks(np.arange(len(epochs)) + 0.5, [f"{int(e)}" for e in epochs], fontsize=7)
        ax.set(xlabel="value", ylabel="epoch (top to bottom)", title=f"Fig 3: distribution of {title}")
        fig.colorbar(image, ax=ax, label="share of entries")
    caption(fig, PUBLISHED)
    fig.suptitle(f"LaMix soft targets over training ({Path(path).parent.name or path})")
    fig.tight_layout()
    rows = [{c: data[c][i] for c in data} for i in range(len(epochs))]
    return save_figure(fig, out_dir, name, rows)
