"""The papers' figures drawn from a reproduce target's folder of runs (``mixexp-reproduce``): each
function picks the runs its figure needs, one finished run per method of the same dataset and model,
and raises :class:`MissingRuns` naming what is missing. :data:`PAPER_FIGURES` maps a target to them."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

from mixexp.checkpoint import CHECKPOINT
from mixexp.errors import ConfigError
from mixexp.report import Run, find_runs

FigureOfRuns = Callable[[Path, Path], List[Path]]  # (folder of runs, output folder) -> files written
FIG7_CIFAR10_CLASSES = (2, 6)  # LaMix Fig 7 shows a bird and a frog of CIFAR-10's test set


class MissingRuns(ConfigError):
    """The runs a figure is drawn from are not (yet) in the folder."""


def pick_runs(folder: Path, methods: Sequence[str], prefer: Tuple[str, str],
              need: Callable[[Run], bool] = lambda run: True, weights: bool = False) -> Dict[str, Run]:
    """Method -> one finished run of it (lowest seed), all of one (dataset, model): ``prefer`` when it has
    every method, else the first such pair in launch order. ``weights``: figures that run the models take
    only runs that still hold their last.pt."""
    found = sorted((r for r in find_runs(Path(folder))
                    if r.metrics is not None and need(r) and (not weights or (r.path / CHECKPOINT).is_file())),
                   key=lambda r: (r.config.get("seed", 0), r.order))
    pairs: Dict[Tuple[str, str], Dict[str, Run]] = {}
    for run in found:
        pair = (run.config.get("dataset.name"), run.config.get("model.name"))
        pairs.setdefault(pair, {}).setdefault(run.config["method"], run)
    complete = [pair for pair, by_method in pairs.items() if all(m in by_method for m in methods)]
    if not complete:
        kind = f"finished run with its {CHECKPOINT}" if weights else "finished run"
        raise MissingRuns(f"no dataset and model below {folder} has a {kind} of each of {', '.join(methods)}"
                          + (f" ({CHECKPOINT} is gone under trainer.checkpoint=false, and after `mixexp-reproduce all "
                             "--smoke` has written the tables)" if weights else ""))
    chosen = prefer if prefer in complete else complete[0]
    return {m: pairs[chosen][m] for m in methods}


def _dirs(runs: Dict[str, Run]) -> Dict[str, Path]:
    return {method: run.path for method, run in runs.items()}


def soft_targets(folder: Path, out: Path) -> List[Path]:
    """LaMix Figs 2-3 from one LaMix run's soft_targets.csv (CIFAR-100, PreAct ResNet-18 if there)."""
    from mixexp.plots.soft_targets import SOFT_TARGETS_CSV, soft_target_figure

    run = pick_runs(folder, ("lamix",), ("cifar100", "preactresnet18"),
                    lambda r: (r.path / SOFT_TARGETS_CSV).is_file())["lamix"]
    return soft_target_figure(run.path / SOFT_TARGETS_CSV, out, "lamix_fig2_3")


def gradcam(folder: Path, out: Path) -> List[Path]:
    """LaMix Fig 7: Grad-CAM of ERM, mixup, CutMix and LaMix models (CIFAR-10: a bird and a frog)."""
    from mixexp.plots.from_runs import gradcam_of_runs

    runs = pick_runs(folder, ("erm", "mixup", "cutmix", "lamix"), ("cifar10", "preactresnet18"), weights=True)
    cifar10 = runs["lamix"].config.get("dataset.name") == "cifar10"
    return gradcam_of_runs(_dirs(runs), out, "lamix_fig7_gradcam", FIG7_CIFAR10_CLASSES if cifar10 else 4)


def training_curves(folder: Path, out: Path) -> List[Path]:
    """LaMix Fig 5: training loss and test accuracy per epoch of each method's runs (history.csv)."""
    from mixexp.plots.from_runs import curves_of

    if not any((r.path / "history.csv").is_file() for r in find_runs(Path(folder))):
        raise MissingRuns(f"no run below {folder} has a history.csv")
    return curves_of(folder, out, "lamix_fig5", ("train_loss", "test_acc"),
                     "LaMix Fig 5: training loss and test accuracy")


def bottleneck(folder: Path, out: Path) -> List[Path]:
    """LaMix Fig 8: 2-D bottleneck embeddings over epochs of ERM, mixup and LaMix."""
    from mixexp.plots.from_runs import bottleneck_of_runs

    runs = pick_runs(folder, ("erm", "mixup", "lamix"), ("cifar10", "bottleneck"), weights=True)
    return bottleneck_of_runs(_dirs(runs), out, "lamix_fig8_bottleneck")


def sem_umap(folder: Path, out: Path) -> List[Path]:
    """SEM Fig 3: UMAP of penultimate features of mixup and mixup+SEM models (CIFAR-10 if there)."""
    from mixexp.plots.from_runs import umap_of_runs

    runs = pick_runs(folder, ("mixup", "mixup+sem"), ("cifar10", "preactresnet18"), weights=True)
    return umap_of_runs(_dirs(runs), out, "sem_fig3_umap")


def rescaled_reliability(folder: Path, out: Path) -> List[Path]:
    """Reliability diagrams of ERM, mixup and mixup with test-time rescaling (CIFAR-10 if there)."""
    from mixexp.plots.from_runs import reliability_of_runs

    runs = pick_runs(folder, ("erm", "mixup"), ("cifar10", "preactresnet18"), weights=True)
    return reliability_of_runs(_dirs(runs), out, "rescaled_reliability")


def beta_sweep(folder: Path, out: Path) -> List[Path]:
    """LaMix Fig 4 from the CIFAR-100 PreAct ResNet-18 LaMix runs."""
    from mixexp.plots.sweeps import beta_sweep as draw

    return draw(_finished(folder, ("method=lamix", "dataset.name=cifar100", "model.name=preactresnet18")), out)


def label_smoothing_sweep(folder: Path, out: Path) -> List[Path]:
    """LaMix Fig 6 from the CIFAR-100 PreAct ResNet-18 runs."""
    from mixexp.plots.sweeps import label_smoothing_sweep as draw

    return draw(_finished(folder, ("dataset.name=cifar100", "model.name=preactresnet18")), out)


def _finished(folder: Path, where: Sequence[str]) -> List[Run]:
    from mixexp.report import select

    runs = [r for r in select(find_runs(Path(folder)), where) if r.metrics is not None]
    if not runs:
        raise MissingRuns(f"no finished run below {folder} matching {' '.join(where)}")
    return runs


PAPER_FIGURES: Dict[str, Tuple[FigureOfRuns, ...]] = {
    "lamix-table1": (soft_targets, gradcam),
    "lamix-fig4": (beta_sweep,),
    "lamix-fig5": (training_curves,),
    "lamix-fig6": (label_smoothing_sweep,),
    "lamix-fig8": (bottleneck,),
    "sem-table1": (sem_umap,),
    "rescaled-cifar": (rescaled_reliability,),
}
