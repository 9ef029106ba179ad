"""What every figure shares: the Agg backend, atomic PNG/PDF/CSV output, mean and band over seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed, none is opened

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mixexp.errors import ConfigError  # noqa: E402
from mixexp.io import atomic_write, write_csv  # noqa: E402

DEFAULT_OUT = Path("reports/figures")
DPI = 150


def save_figure(fig, out_dir: Path, name: str, rows: List[Dict[str, Any]]) -> List[Path]:
    """Write ``out_dir/name.png``, ``.pdf`` and ``.csv`` (the plotted numbers, one dict per row), each
    atomically; close the figure; return the three paths."""
    out_dir = Path(out_dir)
    paths = [out_dir / f"{name}.{ext}" for ext in ("png", "pdf", "csv")]
    for path, fmt in zip(paths[:2], ("png", "pdf")):
        atomic_write(path, lambda tmp, fmt=fmt: fig.savefig(tmp, format=fmt, dpi=DPI, bbox_inches="tight"))
    plt.close(fig)
    write_csv(paths[2], rows)
    return paths


def mean_std(values: Sequence[float]) -> Tuple[float, float]:
    """(mean, sample std; 0 for a single value) as in the reports."""
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def band(ax, x, mean, std, label: str, **kwargs) -> None:
    """A line at ``mean`` and a shaded band mean ± std (no band where std is all zero)."""
    x, mean, std = (np.asarray(a, dtype=float) for a in (x, mean, std))
    (line,) = ax.plot(x, mean, label=label, **kwargs)
    if np.any(std > 0):
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)


def require_columns(path: Path, have: Sequence[str], need: Sequence[str]) -> None:
    missing = [c for c in need if c not in have]
    if missing:
        raise ConfigError(f"{path} lacks the column(s) {', '.join(missing)}; it has {', '.join(have) or 'none'}")


def caption(fig, text: str) -> None:
    """A caption below the axes (the published reference values, the data's origin)."""
    fig.text(0.5, -0.02, text, ha="center", va="top", fontsize=8, wrap=True)
