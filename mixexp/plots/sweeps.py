"""Hyper-parameter sweeps of the LaMix paper: Fig 4 (test error against the weight ratio beta, seeds
as a band) and Fig 6 (ERM with uniform label smoothing 0.1-0.9 beside LaMix, the two published
numbers marked)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from mixexp.errors import ConfigError
from mixexp.plots.common import band, caption, mean_std, plt, save_figure
from mixexp.report import Run


def metric_by_value(runs: Sequence[Run], key: str, metric: str) -> Dict[float, List[float]]:
    """Swept value of ``key`` (a flattened config key) -> the ``metric`` of each finished run (its seeds)."""
    out: Dict[float, List[float]] = {}
    for run in runs:
        value = run.metrics.get(metric) if run.metrics else None
        if isinstance(value, (int, float)) and run.config.get(key) is not None:
            out.setdefault(float(run.config[key]), []).append(float(value))
    return dict(sorted(out.items()))


def sweep_rows(values: Dict[float, List[float]], key: str, metric: str, series: str) -> List[dict]:
    return [{"series": series, key: v, f"{metric}_mean": mean_std(xs)[0], f"{metric}_std": mean_std(xs)[1],
             "n": len(xs)} for v, xs in values.items()]


def beta_sweep(runs: Sequence[Run], out_dir: Path, metric: str = "test_error", name: str = "lamix_fig4") -> List[Path]:
    """LaMix Fig 4: ``metric`` (mean ± std over seeds) of the LaMix runs against ``mixer.lamix_beta``."""
    lamix = [r for r in runs if r.config.get("mixer.name") == "lamix"]
    values = metric_by_value(lamix, "mixer.lamix_beta", metric)
    if not values:
        raise ConfigError(f"no finished LaMix run with {metric} among the {len(runs)} run(s) given")
    rows = sweep_rows(values, "mixer.lamix_beta", metric, "lamix")
    fig, ax = plt.subplots(figsize=(5, 3.6))
    betas = [r["mixer.lamix_beta"] for r in rows]
    band(ax, betas, [r[f"{metric}_mean"] for r in rows], [r[f"{metric}_std"] for r in rows],
         f"LaMix (mean ± std, n={max(r['n'] for r in rows)} seeds)", marker="o")
    ax.set(xlabel="weight ratio β (local label share of the target)", ylabel=f"{metric.replace('_', ' ')} (%)",
           title="LaMix Fig 4: test error against β")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out_dir, name, rows)


def published_fig6() -> Dict[str, float]:
    """The two numbers LaMix Fig 6's text gives (CIFAR-100, PreAct ResNet-18 accuracy): ERM + LS 0.2 and LaMix."""
    from mixexp.tables import load_tables

    table = load_tables()["lamix-fig6"]
    return {method: value for (method, _column), (value, _std) in table.published.items()}


def label_smoothing_sweep(runs: Sequence[Run], out_dir: Path, metric: str = "test_acc",
                          name: str = "lamix_fig6") -> List[Path]:
    """LaMix Fig 6: ERM's ``metric`` against ``loss.label_smoothing`` (band over seeds), LaMix as a
    horizontal line with its band, and the published ERM+LS0.2 and LaMix accuracies as markers."""
    erm = [r for r in runs if r.config.get("mixer.name") == "none"]
    values = metric_by_value(erm, "loss.label_smoothing", metric)
    if not values:
        raise ConfigError(f"no finished ERM run with {metric} among the {len(runs)} run(s) given")
    rows = sweep_rows(values, "loss.label_smoothing", metric, "erm")
    lamix = [r.metrics[metric] for r in runs if r.metrics and r.config.get("mixer.name") == "lamix"
             and r.config.get("loss.label_smoothing", 0.0) == 0.0 and metric in r.metrics]
    fig, ax = plt.subplots(figsize=(5.4, 3.8))
    eps = np.array([r["loss.label_smoothing"] for r in rows])
    band(ax, eps, [r[f"{metric}_mean"] for r in rows], [r[f"{metric}_std"] for r in rows],
         "ERM + label smoothing (ours)", marker="o")
    if lamix:
        mean, std = mean_std(lamix)
        rows.append({"series": "lamix", "loss.label_smoothing": "", f"{metric}_mean": mean, f"{metric}_std": std,
                     "n": len(lamix)})
        band(ax, [eps.min(), eps.max()], [mean, mean], [std, std], f"LaMix (ours, n={len(lamix)})", color="tab:green")
    published = published_fig6()
    for method, value in published.items():
        x = float(method.split("+ls")[1]) if "+ls" in method else eps.max()
        ax.plot([x], [value], marker="*", markersize=12, linestyle="none", label=f"paper: {method} {value:.2f}")
        rows.append({"series": f"paper:{method}", "loss.label_smoothing": x if "+ls" in method else "",
                     f"{metric}_mean": value, f"{metric}_std": "", "n": ""})
    ax.set(xlabel="label smoothing ε (uniform)", ylabel=f"{metric.replace('_', ' ')} (%)",
           title="LaMix Fig 6: label smoothing vs LaMix")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    caption(fig, "Published numbers: CIFAR-100, PreAct ResNet-18 (LaMix paper, Fig 6 text); ours: the runs given.")
    fig.tight_layout()
    return save_figure(fig, out_dir, name, rows)
