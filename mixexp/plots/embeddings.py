"""2-D pictures of learnt representations, coloured by class: LaMix Fig 8 (the 2-unit bottleneck of
:mod:`mixexp.models.bottleneck`, one row per method, one column per epoch) and SEM Fig 3 (UMAP of the
penultimate features ``model.features`` of mixup and mixup+SEM models)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

from mixexp.checkpoint import SNAPSHOTS, read_tensor_file
from mixexp.errors import ConfigError
from mixexp.plots.common import plt, save_figure

SNAPSHOT_RE = re.compile(r"epoch_(\d+)\.pt$")


def snapshot_files(run_dir: Path) -> List[Tuple[int, Path]]:
    """(epoch, weights file) of every ``snapshots/epoch_<N>.pt`` in the run folder, by epoch."""
    found = [(int(m.group(1)), p) for p in (Path(run_dir) / SNAPSHOTS).glob("epoch_*.pt")
             if (m := SNAPSHOT_RE.search(p.name))]
    return sorted(found)


def load_weights(model: torch.nn.Module, path: Path) -> None:
    """Load a state_dict (or a checkpoint's ``model`` entry) saved by torch.save; tensors only. A damaged
    file, or one of another model, is one ConfigError line naming it."""
    state = read_tensor_file(path)
    try:
        model.load_state_dict(state["model"] if "model" in state else state)
    except (RuntimeError, TypeError, AttributeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConfigError(f"{path} does not hold this run's model weights: {first}") from None


@torch.no_grad()
def embed(model, images: torch.Tensor) -> np.ndarray:
    """The (B, 2) bottleneck embeddings of ``images`` (``model.embedding``)."""
    if not hasattr(model, "embedding"):
        raise ConfigError(f"{type(model).__name__} has no 2-D embedding: train with model=bottleneck")
    model.eval()
    return model.embedding(images).float().cpu().numpy()


def _scatter(ax, points: np.ndarray, labels: np.ndarray, classes: Sequence[int]) -> None:
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for c in classes:
        chosen = labels == c
        ax.scatter(points[chosen, 0], points[chosen, 1], s=6, color=cmap(c % cmap.N), label=f"class {c}")


def bottleneck_figure(embeddings: Dict[str, List[Tuple[int, np.ndarray]]], labels: np.ndarray, out_dir: Path,
                      name: str = "lamix_fig8_bottleneck") -> List[Path]:
    """LaMix Fig 8: ``embeddings`` maps a method to [(epoch, (N, 2) embeddings of the same N test images)];
    one row per method, one column per epoch, points coloured by ``labels``."""
    cols = max(len(v) for v in embeddings.values())
    fig, axes = plt.subplots(len(embeddings), cols, figsize=(3.0 * cols, 3.0 * len(embeddings)), squeeze=False)
    classes = sorted(set(labels.tolist()))
    rows = []
    for r, (method, per_epoch) in enumerate(embeddings.items()):
        for c, (epoch, points) in enumerate(per_epoch):
            ax = axes[r][c]
            _scatter(ax, points, labels, classes)
            ax.set(xlim=(-1.05, 1.05), ylim=(-1.05, 1.05), title=f"{method}, epoch {epoch}",
                   xlabel="bottleneck unit 1 (tanh)", ylabel="bottleneck unit 2 (tanh)")
            rows += [{"method": method, "epoch": epoch, "image": i, "label": int(labels[i]),
                      "e1": float(points[i, 0]), "e2": float(points[i, 1])} for i in range(len(labels))]
        for c in range(len(per_epoch), cols):
            axes[r][c].axis("off")
    axes[0][0].legend(fontsize=6, markerscale=2, loc="best")
    fig.suptitle("LaMix Fig 8: 2-D bottleneck embeddings of test images")
    fig.tight_layout()
    return save_figure(fig, out_dir, name, rows)


def umap_2d(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """UMAP (umap-learn defaults: 15 neighbours, min_dist 0.1) of ``features`` to 2-D, seeded."""
    import warnings

    import umap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a fixed random_state turns off parallelism: umap warns about it
        reducer = umap.UMAP(n_components=2, random_state=seed, n_neighbors=min(15, len(features) - 1))
        return reducer.fit_transform(features)


def umap_figure(features: Dict[str, Tuple[np.ndarray, np.ndarray]], out_dir: Path,
                name: str = "sem_fig3_umap", seed: int = 0) -> List[Path]:
    """SEM Fig 3: one panel per model (label -> (features (N, D), labels (N,))), each UMAP-embedded on its own."""
    fig, axes = plt.subplots(1, len(features), figsize=(4.2 * len(features), 4.0), squeeze=False)
    rows = []
    for ax, (method, (feats, labels)) in zip(axes[0], features.items()):
        points = umap_2d(np.asarray(feats, dtype=np.float32), seed)
        _scatter(ax, points, labels, sorted(set(labels.tolist())))
        ax.set(title=method, xlabel="UMAP 1 (arbitrary units)", ylabel="UMAP 2 (arbitrary units)")
        rows += [{"method": method, "image": i, "label": int(labels[i]), "umap1": float(points[i, 0]),
                  "umap2": float(points[i, 1])} for i in range(len(labels))]
    axes[0][0].legend(fontsize=6, markerscale=2)
    fig.suptitle("SEM Fig 3: UMAP of penultimate features of test images")
    fig.tight_layout()
    return save_figure(fig, out_dir, name, rows)
