"""Figures of finished runs: each function takes run folders (label -> folder), turns them back into
models and test data (:mod:`mixexp.plots.runs`) and calls a figure function. ``mixexp-plot`` and
``mixexp-reproduce`` both draw through here."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from mixexp.errors import ConfigError

RunDirs = Dict[str, Path]  # figure label (the method) -> run folder


def labelled_runs(run_dirs: Sequence[Path]) -> RunDirs:
    """Label -> run folder: its method as the reports spell it, the seed added when the method repeats."""
    from mixexp.plots.grouping import runs_below

    runs = [runs_below(d)[0] for d in run_dirs]
    methods = [r.config["method"] for r in runs]
    return {(m if methods.count(m) == 1 else f"{m} seed {r.config.get('seed')}"): Path(d)
            for m, r, d in zip(methods, runs, run_dirs)}


def curves_of(folder: Path, out: Path, name: str, metrics: Sequence[str], title: str,
              where: Sequence[str] = ()) -> List[Path]:
    """Learning curves of every run below ``folder`` (matching ``where``) that has a history.csv, one
    line per configuration (seeds folded)."""
    from mixexp.plots.curves import learning_curves, read_history
    from mixexp.plots.grouping import by_configuration, runs_below

    groups = {}
    for label, runs in by_configuration(runs_below(folder, where)).items():
        histories = [read_history(r.path / "history.csv") for r in runs if (r.path / "history.csv").is_file()]
        if histories:
            groups[label] = histories
    if not groups:
        raise ConfigError(f"no history.csv below {folder}: no run has finished an epoch")
    return learning_curves(groups, out, name, metrics, title)


def reliability_of_runs(runs: RunDirs, out: Path, name: str = "reliability", device: str = "cpu") -> List[Path]:
    """One reliability panel per run; a mixup run also with its test-time rescaling."""
    from mixexp.evaluation.metrics import predict_logits
    from mixexp.plots.reliability import reliability_diagram
    from mixexp.plots.runs import load_finished_run

    predictions = {}
    for label, run_dir in runs.items():
        _cfg, model, loader, rescaling, _device = load_finished_run(run_dir, device)
        predictions[label] = predict_logits(model, loader)
        if rescaling is not None:
            z, labels = predict_logits(model, loader, rescaling.inputs)
            predictions[f"{label} + test-time rescaling"] = (rescaling.logits(z), labels)
    return reliability_diagram(predictions, out, name)


def gradcam_of_runs(runs: RunDirs, out: Path, name: str = "lamix_fig7_gradcam", classes=4,
                    device: str = "cpu") -> List[Path]:
    """Grad-CAM maps of each run's model on the first test image of each of ``classes`` (a count n: 0..n-1)
    of the first run's test set."""
    from mixexp.plots.features import one_per_class
    from mixexp.plots.gradcam import grad_cam_figure
    from mixexp.plots.runs import load_finished_run

    models, images, labels = {}, None, None
    for label, run_dir in runs.items():
        _cfg, model, loader, _rescaling, _device = load_finished_run(run_dir, device)
        if images is None:  # the same images for every model
            images, labels = one_per_class(loader, classes)
        models[label] = model
    return grad_cam_figure(models, images, labels, out, name)


def bottleneck_of_runs(runs: RunDirs, out: Path, name: str = "lamix_fig8_bottleneck", limit: int = 500,
                       device: str = "cpu") -> List[Path]:
    """2-D embeddings of the first ``limit`` test images at each snapshot epoch and at the end, per run."""
    from mixexp.plots.embeddings import bottleneck_figure, embed, load_weights, snapshot_files
    from mixexp.plots.features import test_batch
    from mixexp.plots.runs import load_finished_run

    embeddings: Dict[str, List[Tuple[int, object]]] = {}
    labels = None
    for label, run_dir in runs.items():
        cfg, model, loader, _rescaling, _device = load_finished_run(run_dir, device)
        images, y = test_batch(loader, limit)
        labels = y.cpu().numpy() if labels is None else labels
        final = (cfg.trainer.epochs, embed(model, images))  # last.pt: the final weights
        per_epoch = []
        for epoch, path in snapshot_files(run_dir):
            if epoch != cfg.trainer.epochs:
                load_weights(model, path)
                per_epoch.append((epoch, embed(model, images)))
        embeddings[label] = per_epoch + [final]
    return bottleneck_figure(embeddings, labels, out, name)


def umap_of_runs(runs: RunDirs, out: Path, name: str = "sem_fig3_umap", limit: int = 1000,
                 device: str = "cpu") -> List[Path]:
    """UMAP of the penultimate features of the first ``limit`` test images, one panel per run."""
    from mixexp.plots.embeddings import umap_figure
    from mixexp.plots.features import penultimate_features
    from mixexp.plots.runs import load_finished_run

    features = {}
    for label, run_dir in runs.items():
        _cfg, model, loader, _rescaling, _device = load_finished_run(run_dir, device)
        feats, labels = penultimate_features(model, loader, limit)
        features[label] = (feats.numpy(), labels.numpy())
    return umap_figure(features, out, name)
