"""``mixexp-plot FIGURE ...``: draw a figure from run folders, sweep folders or report CSVs.

Every figure goes to ``--out`` (default reports/figures) as PNG and PDF, with a CSV of the plotted
numbers beside it. ``mixexp-plot -h`` lists the figures; ``mixexp-plot FIGURE -h`` their arguments.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from mixexp.cli import fail, format_user_error
from mixexp.plots.common import DEFAULT_OUT


def _labelled_runs(run_dirs: Sequence[Path]):
    """(label, run folder) per run: its method as the reports spell it, the seed added when it repeats."""
    from mixexp.plots.grouping import runs_below

    runs = [runs_below(d)[0] for d in run_dirs]
    methods = [r.config["method"] for r in runs]
    return [(m if methods.count(m) == 1 else f"{m} seed {r.config.get('seed')}", d)
            for m, r, d in zip(methods, runs, run_dirs)]


def cmd_curves(args) -> List[Path]:
    from mixexp.plots.curves import learning_curves, read_history
    from mixexp.plots.grouping import by_configuration, runs_below

    groups = {}
    for label, runs in by_configuration(runs_below(args.dir, args.where)).items():
        histories = [read_history(r.path / "history.csv") for r in runs if (r.path / "history.csv").is_file()]
        if histories:
            groups[label] = histories
    if not groups:
        fail(f"no history.csv below {args.dir}: no run has finished an epoch")
    metrics = [m for m in args.metrics.split(",") if m]
    return learning_curves(groups, args.out, args.name or args.default_name, metrics, args.title)


def cmd_reliability(args) -> List[Path]:
    from mixexp.evaluation.metrics import predict_logits
    from mixexp.plots.reliability import reliability_diagram
    from mixexp.plots.runs import load_finished_run

    predictions = {}
    for label, run_dir in _labelled_runs(args.runs):
        _cfg, model, loader, rescaling, _device = load_finished_run(run_dir, args.device)
        predictions[label] = predict_logits(model, loader)
        if rescaling is not None:
            z, labels = predict_logits(model, loader, rescaling.inputs)
            predictions[f"{label} + test-time rescaling"] = (rescaling.logits(z), labels)
    return reliability_diagram(predictions, args.out, args.name or "reliability")


def cmd_bars(args) -> List[Path]:
    from mixexp.plots.bars import report_bars

    if not args.csv.is_file():
        fail(f"{args.csv} is not a file (a report.csv or reports/<table>.csv)")
    return report_bars(args.csv, args.out, args.name)


def cmd_sweep(args) -> List[Path]:
    from mixexp.plots.grouping import runs_below
    from mixexp.plots.sweeps import beta_sweep, label_smoothing_sweep

    runs = runs_below(args.dir, args.where, finished=True)
    if args.figure == "beta-sweep":
        return beta_sweep(runs, args.out, args.metric or "test_error", args.name or "lamix_fig4")
    return label_smoothing_sweep(runs, args.out, args.metric or "test_acc", args.name or "lamix_fig6")


def cmd_soft_targets(args) -> List[Path]:
    from mixexp.plots.soft_targets import SOFT_TARGETS_CSV, soft_target_figure

    path = args.path / SOFT_TARGETS_CSV if args.path.is_dir() else args.path
    if not path.is_file():
        fail(f"{path} does not exist: LaMix runs record it during training (or pass a soft_targets.csv)")
    return soft_target_figure(path, args.out, args.name or "lamix_fig2_3")


def cmd_gradcam(args) -> List[Path]:
    from mixexp.plots.features import one_per_class
    from mixexp.plots.gradcam import grad_cam_figure
    from mixexp.plots.runs import load_finished_run

    models, images = {}, None
    for label, run_dir in _labelled_runs(args.runs):
        _cfg, model, loader, _rescaling, _device = load_finished_run(run_dir, args.device)
        if images is None:  # the same images for every model: the first run's test set
            images, labels = one_per_class(loader, args.images)
        models[label] = model
    return grad_cam_figure(models, images, labels, args.out, args.name or "lamix_fig7_gradcam")


def cmd_bottleneck(args) -> List[Path]:
    from mixexp.plots.embeddings import bottleneck_figure, embed, load_weights, snapshot_files
    from mixexp.plots.features import test_batch
    from mixexp.plots.runs import load_finished_run

    embeddings: Dict[str, list] = {}
    labels = None
    for label, run_dir in _labelled_runs(args.runs):
        cfg, model, loader, _rescaling, _device = load_finished_run(run_dir, args.device)
        images, y = test_batch(loader, args.limit)
        labels = y.cpu().numpy() if labels is None else labels
        final = (cfg.trainer.epochs, embed(model, images))  # last.pt: the final weights
        per_epoch = []
        for epoch, path in snapshot_files(run_dir):
            if epoch != cfg.trainer.epochs:
                load_weights(model, path)
                per_epoch.append((epoch, embed(model, images)))
        embeddings[label] = per_epoch + [final]
    return bottleneck_figure(embeddings, labels, args.out, args.name or "lamix_fig8_bottleneck")


def cmd_umap(args) -> List[Path]:
    from mixexp.plots.embeddings import umap_figure
    from mixexp.plots.features import penultimate_features
    from mixexp.plots.runs import load_finished_run

    features = {}
    for label, run_dir in _labelled_runs(args.runs):
        _cfg, model, loader, _rescaling, _device = load_finished_run(run_dir, args.device)
        feats, labels = penultimate_features(model, loader, args.limit)
        features[label] = (feats.numpy(), labels.numpy())
    return umap_figure(features, args.out, args.name or "sem_fig3_umap")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixexp-plot", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="figure", required=True, metavar="FIGURE")

    def add(name: str, func, help: str, default_name: str = "") -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
        p.add_argument("--name", default=None, help="file name stem of the figure")
        p.set_defaults(func=func, default_name=default_name)
        return p

    def runs_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("runs", type=Path, nargs="+", help="finished run folders (config.yaml and last.pt)")
        p.add_argument("--device", default="cpu", help="where the models run (default cpu)")

    for name, title, metrics, help in (
            ("curves", "Learning curves", "train_loss,test_acc,lr",
             "learning curves of a run or of every run below a sweep folder (seeds as mean ± std)"),
            ("fig5", "LaMix Fig 5: training loss and test accuracy", "train_loss,test_acc",
             "LaMix Fig 5: training loss and test (validation) accuracy over epochs")):
        p = add(name, cmd_curves, help, "learning_curves" if name == "curves" else "lamix_fig5")
        p.add_argument("dir", type=Path, help="a run folder or a folder of runs")
        p.add_argument("--where", nargs="*", default=[], metavar="KEY=VALUE[,VALUE]", help="only matching runs")
        p.add_argument("--metrics", default=metrics, help=f"history.csv columns, one panel each (default {metrics})")
        p.set_defaults(title=title)
    runs_arg(add("reliability", cmd_reliability, "reliability diagrams (15 bins, ECE in the legend) of finished "
                 "runs; mixup runs also with test-time rescaling"))
    p = add("bars", cmd_bars, "bar chart of a report CSV (report.csv or reports/<table>.csv): ours vs paper")
    p.add_argument("csv", type=Path)
    for name, help in (("beta-sweep", "LaMix Fig 4: test error against mixer.lamix_beta (seed bands)"),
                       ("ls-sweep", "LaMix Fig 6: ERM with label smoothing beside LaMix, published numbers marked")):
        p = add(name, cmd_sweep, help)
        p.add_argument("dir", type=Path, help="a folder of finished runs")
        p.add_argument("--where", nargs="*", default=[], metavar="KEY=VALUE[,VALUE]", help="only matching runs")
        p.add_argument("--metric", default=None, help="metrics.json key (default test_error / test_acc)")
    p = add("soft-targets", cmd_soft_targets, "LaMix Figs 2-3: soft targets over training (soft_targets.csv)")
    p.add_argument("path", type=Path, help="a LaMix run folder or its soft_targets.csv")
    p = add("gradcam", cmd_gradcam, "LaMix Fig 7: Grad-CAM maps of each run's model on the same test images")
    runs_arg(p)
    p.add_argument("--images", type=int, default=4, help="one test image of each of the first N classes (default 4)")
    p = add("bottleneck", cmd_bottleneck, "LaMix Fig 8: 2-D embeddings of model=bottleneck runs over epochs "
            "(snapshots/epoch_<N>.pt and last.pt)")
    runs_arg(p)
    p.add_argument("--limit", type=int, default=500, help="test images drawn (default 500)")
    p = add("umap", cmd_umap, "SEM Fig 3: UMAP of penultimate features (e.g. a mixup and a mixup+SEM run)")
    runs_arg(p)
    p.add_argument("--limit", type=int, default=1000, help="test images embedded (default 1000)")
    return parser


def cli(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    for key in ("images", "limit"):
        if getattr(args, key, 1) < 1:
            fail(f"--{key}={getattr(args, key)} is not allowed: must be >= 1")
    try:
        written = args.func(args)
    except (OSError, ValueError) as e:  # user errors become one line; bugs keep their traceback
        message = format_user_error(e) or (str(e) if isinstance(e, OSError) else None)
        if message is None:
            raise
        fail(message)
    print("written: " + ", ".join(str(p) for p in written))


if __name__ == "__main__":
    cli()
