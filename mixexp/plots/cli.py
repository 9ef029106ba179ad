"""``mixexp-plot FIGURE ...``: draw a figure from run folders, sweep folders or report CSVs.

Every figure goes to ``--out`` (default reports/figures) as PNG and PDF, with a CSV of the plotted
numbers beside it. ``mixexp-plot -h`` lists the figures; ``mixexp-plot FIGURE -h`` their arguments.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Sequence

from mixexp.cli import fail, format_user_error, one_line_errors
from mixexp.plots.common import DEFAULT_OUT


def cmd_curves(args) -> List[Path]:
    from mixexp.plots.from_runs import curves_of

    metrics = [m for m in args.metrics.split(",") if m]
    return curves_of(args.dir, args.out, args.name or args.default_name, metrics, args.title, args.where)


def cmd_reliability(args) -> List[Path]:
    from mixexp.plots.from_runs import labelled_runs, reliability_of_runs

    return reliability_of_runs(labelled_runs(args.runs), args.out, args.name or "reliability", args.device)


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
    from mixexp.plots.from_runs import gradcam_of_runs, labelled_runs

    return gradcam_of_runs(labelled_runs(args.runs), args.out, args.name or "lamix_fig7_gradcam", args.images,
                           args.device)


def cmd_bottleneck(args) -> List[Path]:
    from mixexp.plots.from_runs import bottleneck_of_runs, labelled_runs

    return bottleneck_of_runs(labelled_runs(args.runs), args.out, args.name or "lamix_fig8_bottleneck", args.limit,
                              args.device)


def cmd_umap(args) -> List[Path]:
    from mixexp.plots.from_runs import labelled_runs, umap_of_runs

    return umap_of_runs(labelled_runs(args.runs), args.out, args.name or "sem_fig3_umap", args.limit, args.device)


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


@one_line_errors
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
