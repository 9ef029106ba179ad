"""Bar charts of report CSVs: ``mixexp-report``'s report.csv (``<metric>_mean``/``_std`` per
configuration) or a paper table's reports/<table>.csv (``ours_mean``/``ours_std`` beside ``paper``/
``paper_std``), with std whiskers."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Dict, List

import numpy as np

from mixexp.errors import ConfigError
from mixexp.plots.common import plt, save_figure

UNITS = {"acc": "%", "error": "%", "accuracy": "%", "auroc": "%", "top1": "%", "nll": "nats", "ece": "15 bins"}


def read_rows(path: Path) -> List[Dict[str, str]]:
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise ConfigError(f"{path} is not a report CSV: it cannot be read as CSV text ({e})") from None
    if not rows:
        raise ConfigError(f"{path} holds no rows")
    return rows


def _number(text: str) -> float:
    return float(text) if text not in ("", None) else math.nan


def panels_of(rows: List[Dict[str, str]], path: Path) -> Dict[str, List[Dict[str, float]]]:
    """Panel title -> bars [{label, ours, ours_std, paper, paper_std}] for either CSV layout."""
    panels: Dict[str, List[Dict[str, float]]] = {}
    if "ours_mean" in rows[0]:  # a paper table: one panel per (dataset, model, metric) column
        for r in rows:
            title = f"{r['dataset']} {r['model']} {r['metric']}"
            panels.setdefault(title, []).append({
                "label": r["method"], "ours": _number(r["ours_mean"]), "ours_std": _number(r["ours_std"]),
                "paper": _number(r["paper"]), "paper_std": _number(r.get("paper_std", ""))})
        return panels
    metrics = [c[: -len("_mean")] for c in rows[0] if c.endswith("_mean")]
    if not metrics:
        raise ConfigError(f"{path} is not a report CSV: it has neither ours_mean nor <metric>_mean columns")
    keys = [c for c in rows[0] if c != "n" and not c.endswith(("_mean", "_std"))]
    for metric in metrics:
        panels[metric] = [{"label": ", ".join(r[k] for k in keys), "ours": _number(r[f"{metric}_mean"]),
                           "ours_std": _number(r[f"{metric}_std"]), "paper": math.nan, "paper_std": math.nan}
                          for r in rows]
    return panels


def report_bars(path: Path, out_dir: Path, name: str | None = None) -> List[Path]:
    """One panel per metric (report.csv) or per table column (paper CSV): ours and, where published,
    the paper's value side by side, whiskers = sample std over seeds (the paper's own where it gives one)."""
    path = Path(path)
    panels = panels_of(read_rows(path), path)
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(5.0, 0.7 * max(len(b) for b in panels.values()) + 2),
                                                      3.0 * len(panels)), squeeze=False)
    rows = []
    for ax, (title, bars) in zip(axes[:, 0], panels.items()):
        x = np.arange(len(bars))
        has_paper = any(not math.isnan(b["paper"]) for b in bars)
        width = 0.4 if has_paper else 0.7
        ours = np.array([b["ours"] for b in bars])
        ax.bar(x - (width / 2 if has_paper else 0), ours, width,  # a missing cell stays empty, never 0
               yerr=np.nan_to_num([b["ours_std"] for b in bars]), capsize=3, label="ours (mean ± std)")
        if has_paper:
            ax.bar(x + width / 2, [b["paper"] for b in bars], width,
                   yerr=np.nan_to_num([b["paper_std"] for b in bars]), capsize=3, label="paper", color="tab:gray")
        ax.set_xticks(x, [b["label"] for b in bars], rotation=30, ha="right", fontsize=8)
        metric = title.split()[-1]
        unit = next((u for suffix, u in UNITS.items() if metric.endswith(suffix)), "")
        ax.set_ylabel(f"{metric} ({unit})" if unit else metric)
        ax.set_title(title)
        ax.legend(fontsize=7)
        rows += [{"panel": title, **b} for b in bars]
    fig.suptitle(f"{path.name}: ours vs paper" if any(not math.isnan(r["paper"]) for r in rows) else path.name)
    fig.tight_layout()
    return save_figure(fig, out_dir, name or f"{path.stem}_bars", rows)
