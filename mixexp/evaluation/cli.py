"""``mixexp-eval RUN_OR_SWEEP_DIR ... [eval.key=value ...]``: evaluate finished runs again, without training.

Each run's own ``config.yaml`` is loaded and the given overrides applied: evaluation sets
(``eval.shift=[cifar10_c,cifar10_1] eval.ood=[svhn,lsun_crop]``), ``eval.rescaled=true``, and where to
run (``trainer.device``, ``trainer.eval_batch_size``). Metrics already in ``metrics.json`` are kept; the
evaluation sets not yet evaluated are added. This is how a table's evaluation attaches to runs trained
for another table. A folder that is not a run is searched for runs below it.

    mixexp-eval "multirun/sem/dataset=cifar10,method=mixup,model=preactresnet18,seed=0" eval.ood=[svhn]
    mixexp-eval multirun/sem eval.shift=[cifar10_c]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import List, Sequence

from mixexp.cli import fail, format_user_error, one_line_errors

# Only what cannot change what a run computed may be overridden.
ALLOWED_OVERRIDES = ("eval.", "trainer.device=", "trainer.eval_batch_size=", "paths.data_dir=", "dataset.num_workers=",
                     "dataset.download=")


def find_run_dirs(path: Path) -> List[Path]:
    """``path`` itself when it holds a run, else every run folder below it (skipping Hydra's own)."""
    if (path / "config.yaml").is_file() and path.name != ".hydra":
        return [path]
    return sorted(p.parent for p in path.rglob("config.yaml") if p.parent.name != ".hydra" and "wandb" not in p.parts)


def evaluate_run(run_dir: Path, overrides: Sequence[str] = ()) -> dict:
    """Evaluate one finished run and merge the results into its metrics.json and eval_breakdown.json.

    The run folder is claimed for the whole read-evaluate-merge (as mixexp-train claims it for a run): a
    second mixexp-eval, or a mixexp-train still training it, is refused in one line instead of one of them
    overwriting what the other added."""
    from mixexp.evaluation.run import load_finished_run
    from mixexp.evaluation.suite import evaluate_model
    from mixexp.io import write_json
    from mixexp.rundir import claim_run_dir

    lock = claim_run_dir(run_dir, resume=True, instead="evaluate it afterwards")
    try:
        run = load_finished_run(run_dir, overrides)
        metrics_path, parts_path = run_dir / "metrics.json", run_dir / "eval_breakdown.json"
        existing = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
        metrics, parts = evaluate_model(run.model, run.context, run.test_loader, run.rescaling, existing)
        if parts:
            old = json.loads(parts_path.read_text()) if parts_path.is_file() else {}
            write_json(parts_path, {**old, **parts})
        write_json(metrics_path, metrics)
    finally:
        lock.release()
    return metrics


@one_line_errors
def cli(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mixexp-eval", description=__doc__.splitlines()[0])
    parser.add_argument("args", nargs="+", help="run or sweep directories, then optional key=value overrides")
    args = parser.parse_args(argv)
    # sweep folders have '=' in their names too: an existing directory is a run, the rest overrides
    dirs = [Path(a) for a in args.args if Path(a).is_dir()]
    overrides = [a for a in args.args if not Path(a).is_dir()]
    bad = [a for a in overrides if not re.fullmatch(r"[\w.]+=.*", a)]
    if bad:
        fail(f"{bad[0]} is neither a run directory nor a key=value override")
    changed = [a for a in overrides if not a.startswith(ALLOWED_OVERRIDES)]
    if changed:
        fail(f"{changed[0].split('=')[0]} cannot be changed when evaluating a finished run: only eval.*, "
             "trainer.device, trainer.eval_batch_size, paths.data_dir, dataset.num_workers and dataset.download")
    runs = [r for d in dirs for r in find_run_dirs(d)]
    if not runs:
        fail("no run directory given (a folder holding config.yaml and last.pt, or a sweep folder above such folders)")
    failed = []
    for run_dir in runs:
        try:
            metrics = evaluate_run(run_dir, overrides)
        except Exception as e:  # noqa: BLE001 - user errors become one line, bugs keep their traceback
            message = format_user_error(e)
            if message is None:
                raise
            if len(runs) == 1:
                fail(message)
            # as a sweep does: a run that cannot be evaluated is listed, the others are evaluated
            print(f"error: {run_dir}: {message}", file=sys.stderr, flush=True)
            failed.append(run_dir)
            continue
        print(f"{run_dir}: " + json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}),
              flush=True)
    if failed:
        fail(f"{len(failed)} of the {len(runs)} runs were not evaluated (each is named above); the others were")


if __name__ == "__main__":
    cli()
