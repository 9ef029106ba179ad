"""A finished run turned back into its model and test data: the one place the figures depend on how
runs are trained and evaluated (the rest of mixexp.plots takes models and tensors)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence


def load_finished_run(run_dir: Path, device: Optional[str] = None, overrides: Sequence[str] = ()):
    """(cfg, model in eval mode, test_loader, rescaling or None, device) of the run in ``run_dir``.

    The weights come from ``last.pt``; a mixup run also gets its test-time rescaling (restored from
    ``last.pt`` or computed from the training set as training would). Nothing in ``run_dir`` is written.
    """
    from mixexp.checkpoint import CHECKPOINT
    from mixexp.errors import ConfigError
    from mixexp.evaluation.run import load_finished_run as load

    if not (Path(run_dir) / CHECKPOINT).is_file():
        raise ConfigError(f"{run_dir} has no {CHECKPOINT}: figures that need a model need a finished, checkpointed run")
    extra = ["eval.shift=[]", "eval.ood=[]", *overrides]
    extra += [f"trainer.device={device}"] if device is not None else []
    run = load(Path(run_dir), extra)
    if run.rescaling is None and run.cfg.mixer.name == "mixup":
        run = load(Path(run_dir), [*extra, "eval.rescaled=true"])
    run.model.eval()
    return run.cfg, run.model, run.test_loader, run.rescaling, run.context.device
