"""``mixexp-reproduce TARGET [--smoke]``: run a paper table's sweep, then write its report.

Each target is a preset (``conf/experiment/<paper>/<table>.yaml``, holding the paper's recipe and
grid), the folder its runs live in, and the reports to write: the paper's own tables beside their
published numbers (``reports/<paper>-<table>.md`` and ``.csv``) or, for figures and our own tables, the
plain report of the runs it selects. Targets that share runs share their folder: relaunching finds the
finished runs (no retraining; missing evaluation sets are added) and resumes the interrupted ones.

``--smoke`` runs the same grid with ``budget=smoke`` (one epoch, one seed) on a data root of tiny
fixtures in every dataset's released format, into ``multirun/smoke`` and ``reports/smoke``. ``all``
runs the targets of one folder one after another; with ``--smoke`` it then removes that folder's
checkpoints (one-epoch weights of full-size models, some 10 GB over every table), keeping each run's
config, metrics and history: a smoke grid's disk is one folder's at a time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from mixexp.cli import check_group_choices, fail, one_line_errors
from mixexp.io import held_lock, write_csv, write_text


@dataclass(frozen=True)
class Target:
    experiment: str  # preset under conf/experiment
    runs: str  # folder of its runs, below multirun/
    tables: Tuple[str, ...] = ()  # published tables to lay out (mixexp.tables names)
    # a plain report instead: (name, metrics, where-filters)
    plain: Tuple[str, Tuple[str, ...], Tuple[str, ...]] | None = None


TARGETS: Dict[str, Target] = {
    **{f"sem-table{t}": Target(f"sem/table{t}", "sem", (f"sem-table{t}",)) for t in (1, 2, 3)},
    # Tables 3-4 follow PuzzleMix's recipe (their own runs); the others share the facebook-mixup runs
    **{f"lamix-table{t}": Target(f"lamix/table{t}", "lamix/puzzle" if t in (3, 4) else "lamix/fb", (f"lamix-table{t}",))
       for t in range(1, 9)},
    # its own folder: its runs differ from the tables' LaMix runs only by beta, which the method name omits
    "lamix-fig4": Target("lamix/fig4", "lamix/fig4", plain=(
        "lamix-fig4", ("test_error", "test_acc"),
        ("method=lamix", "dataset.name=cifar100", "model.name=preactresnet18"))),
    # 2,000-epoch curves (history.csv) and the 2-D bottleneck on three CIFAR-10 classes: runs of their own
    "lamix-fig5": Target("lamix/fig5", "lamix/fig5", plain=("lamix-fig5", ("test_acc", "test_error"), ())),
    "lamix-fig6": Target("lamix/fig6", "lamix/fb", ("lamix-fig6",)),
    "lamix-fig8": Target("lamix/fig8", "lamix/fig8", plain=("lamix-fig8", ("test_acc", "test_error"), ())),
    # the paper's ObjectNet number is uncertainty-baselines' 200-epoch mixup run: both tables read the ub runs
    "rescaled-imagenet": Target("rescaled/imagenet", "rescaled/imagenet_ub", ("rescaled-pwc",)),
    "rescaled-imagenet-ub": Target("rescaled/imagenet_ub", "rescaled/imagenet_ub", ("rescaled-ub",)),
    "rescaled-cifar": Target("rescaled/cifar", "rescaled/cifar", plain=(
        "rescaled-cifar", ("test_acc", "test_nll", "test_ece", "rescaled_test_acc", "rescaled_test_nll",
                           "rescaled_test_ece"), ())),
}


def output_folder(root: Path, kind: str, smoke: bool) -> Path:
    """``root/kind`` (kind: ``multirun`` for the runs folders, ``reports``), or ``root/kind/smoke`` for ``--smoke``."""
    return root / kind / ("smoke" if smoke else "")


def run(cmd: List[str], env: Dict[str, str]) -> None:
    print("+ " + " ".join(cmd), flush=True)
    result = subprocess.run(cmd, env=env)
    if result.returncode != 0:
        sys.exit(result.returncode)


# In a runs folder: held by the mixexp-reproduce whose sweep and reports use it (one at a time per folder).
REPRODUCE_LOCK = ".mixexp-reproduce.lock"


def runs_folder_turn(name: str, folder: Path):
    """Hold ``folder``'s lock while target ``name`` runs its sweep and writes its reports. Two mixexp-reproduce
    on one runs folder (two launches of one table, or two tables sharing runs) take turns: the second waits,
    then finds the first's runs finished (each only evaluated again) and writes its reports, where side by
    side each would fail the jobs that the other was training."""
    return held_lock(folder / REPRODUCE_LOCK, lambda pid: print(
        f"{name}: waiting for mixexp-reproduce (pid {pid}), which is running the sweep in {folder}; its runs are "
        "reused once it ends", flush=True))


def reproduce(name: str, smoke: bool, logger: str, extra: Sequence[str], root: Path) -> List[Path]:
    """Run the target's sweep and write its reports; return the report files."""
    from mixexp.report import build_paper_report, build_report, folder_card, log_report_to_wandb

    target = TARGETS[name]
    runs_root, reports = output_folder(root, "multirun", smoke), output_folder(root, "reports", smoke)
    env = dict(os.environ)
    args = [f"experiment={target.experiment}", f"hydra.sweep.dir={runs_root / target.runs}"]
    if smoke:
        from mixexp.data.fixtures import make_smoke_root

        env["MIXEXP_DATA"] = str(make_smoke_root(runs_root / "data"))  # built, or rebuilt when it does not verify
        args.append("budget=smoke")
    if logger != "none":
        args.append(f"logger={logger}")
    bin_dir = Path(sys.executable).parent
    run([str(bin_dir / "mixexp-train"), "-m", *args, *extra], env)

    written = []
    folder = runs_root / target.runs
    for table in target.tables:
        text, rows = build_paper_report(folder, table, runs_root=runs_root)  # borrowed rows: this root's runs
        written += _write(reports, table, text, rows)
        if logger == "wandb":
            log_report_to_wandb(table, rows, folder, text=text)
    if target.plain:
        title, metrics, where = target.plain
        text, rows, _ = build_report(folder, metrics, where)
        written += _write(reports, title, f"## {title}\n\n{folder_card(title, folder, where)}\n{text}", rows)
        if logger == "wandb":
            log_report_to_wandb(title, rows, folder, text=text)
    return written + draw_figures(name, target, folder, reports)


def draw_figures(name: str, target: Target, folder: Path, reports: Path) -> List[Path]:
    """The target's figures into reports/figures/: each table as bars (ours beside the paper), and the
    papers' figures drawn from its runs (:data:`mixexp.plots.paper.PAPER_FIGURES`); a figure whose runs
    are missing is skipped with one line saying so."""
    from mixexp.plots.bars import report_bars
    from mixexp.plots.paper import PAPER_FIGURES, MissingRuns

    out = reports / "figures"
    written = [p for table in target.tables for p in report_bars(reports / f"{table}.csv", out)]
    for figure in PAPER_FIGURES.get(name, ()):
        try:
            written += figure(folder, out)
        except MissingRuns as e:
            print(f"{name}: figure {figure.__name__} skipped: {e}", flush=True)
    return written


def run_order(names: Sequence[str]) -> List[str]:
    """``names`` with the targets that share a runs folder next to each other, folders in order of first use."""
    folders = list(dict.fromkeys(TARGETS[n].runs for n in names))
    return sorted(names, key=lambda n: folders.index(TARGETS[n].runs))


def remove_checkpoints(folder: Path) -> int:
    """Delete the checkpoints (last.pt, snapshots/*.pt) of the runs below ``folder``; return the bytes freed."""
    from mixexp.checkpoint import CHECKPOINT, SNAPSHOTS

    freed = 0
    for path in [*folder.rglob(CHECKPOINT), *folder.rglob(f"{SNAPSHOTS}/*.pt")]:
        try:
            freed += path.stat().st_size
            path.unlink()
        except FileNotFoundError:  # gone meanwhile: nothing to free
            pass
    return freed


def plan(names: Sequence[str], smoke: bool, extra: Sequence[str], root: Path, bench: Path) -> str:
    """Runs, finished runs, epochs, images and GPU-hours per target and in total, without training."""
    from mixexp.plan import format_plan, load_throughput, plan_target

    throughput = load_throughput(bench)
    runs_root = output_folder(root, "multirun", smoke)
    args = [*(["budget=smoke"] if smoke else []), *extra]
    return format_plan({n: plan_target(n, TARGETS[n], runs_root, args, throughput) for n in names},
                       throughput.source, throughput)


def _write(reports: Path, name: str, text: str, rows) -> List[Path]:
    md, csv = reports / f"{name}.md", reports / f"{name}.csv"
    write_text(md, text)
    write_csv(csv, rows)
    print(text)
    return [md, csv]


@one_line_errors
def cli(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mixexp-reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("target", help="a table (" + ", ".join(TARGETS) + ") or all")
    parser.add_argument("--smoke", action="store_true", help="tiny budget on fixture data (minutes, CPU)")
    parser.add_argument("--logger", default="none", choices=["none", "wandb"])
    parser.add_argument("--root", type=Path, default=Path("."), help="where multirun/ and reports/ go")
    parser.add_argument("--plan", action="store_true",
                        help="print runs, finished runs, epochs, images and estimated GPU-hours; train nothing "
                             "(throughput from bench.json in --root if present)")
    parser.add_argument("overrides", nargs="*", help="extra overrides for mixexp-train (e.g. trainer.device=cuda:1)")
    # intermixed: overrides may follow options (make passes ARGS after --smoke)
    args = parser.parse_intermixed_args(argv)
    if args.target != "all" and args.target not in TARGETS:
        fail(f"target {args.target!r} is not allowed: choose one of all, {', '.join(TARGETS)}")
    if args.root.exists() and not args.root.is_dir():
        fail(f"--root {args.root} is not a folder: it is where multirun/ and reports/ go (a folder, or one to create)")
    check_group_choices(args.overrides)
    names = run_order(TARGETS) if args.target == "all" else [args.target]
    if args.plan:
        print(plan(names, args.smoke, args.overrides, args.root, args.root / "bench.json"), end="")
        return
    for i, name in enumerate(names):
        runs = TARGETS[name].runs
        folder = output_folder(args.root, "multirun", args.smoke) / runs
        with runs_folder_turn(name, folder):
            files = reproduce(name, args.smoke, args.logger, args.overrides, args.root)
            print("written: " + ", ".join(str(f) for f in files), flush=True)
            if args.smoke and args.target == "all" and all(TARGETS[n].runs != runs for n in names[i + 1:]):
                freed = remove_checkpoints(folder)
                print(f"removed the checkpoints of {folder} ({freed / 1e9:.2f} GB): its tables are written", flush=True)


if __name__ == "__main__":
    cli()
