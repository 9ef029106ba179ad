"""The compute a table costs, before anything trains (``mixexp-reproduce TARGET --plan``).

A table's grid is its preset's ``hydra.sweeper.params`` (comma lists), expanded here without running
Hydra jobs; each grid point is composed with Hydra's compose API to read its epochs, dataset and model.
Its run folder is Hydra's ``override_dirname`` (the sorted ``key=value`` overrides, minus the excluded
keys), so the runs already finished are the folders holding ``metrics.json``.

Cost of one run, in GPU-seconds:

    (epochs * n_train + (epochs * n_test + n_final) / 3) / rate,    rate = R_ref * M(preactresnet18, 32 px) / M(model, px) / c_method

n_final counts the evaluation sets run once after training (``eval.shift``/``eval.ood``: ImageNet-C's
15 x 5 x 50,000 images for table rescaled-ub), twice under test-time rescaling.

Disk of one run: its last.pt, 4 bytes per number of the model's state (parameters and buffers), plus
one more per parameter for SGD's momentum unless ``trainer.final_checkpoint=weights`` drops it, plus a
weights file per ``trainer.snapshot_epochs`` entry (pickle framing, history and a method's own state,
such as LaMix's head, add under 1% for the models of the tables).

M is the model's forward multiply-accumulates per image (counted with torch's FlopCounterMode on the
meta device), an evaluation image costs a third of a training image (forward only), c_method is the
method's step time relative to mixup. R_ref and c_method come from ``bench.json`` (``make bench`` on your
device) when it is there; otherwise from :data:`REFERENCE`, whose provenance is stated with it.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

# Without bench.json: timm's published training benchmark (huggingface/pytorch-image-models,
# results/benchmark-train-amp-nhwc-pt112-cu113-rtx3090.csv): resnet50 at 224 px trains at 1218.01
# images/s on one RTX 3090 (AMP, channels_last, PyTorch 1.12), i.e. 1218.01 * 4.11 GMACs = 5.0e12
# forward MACs per second. We apply that rate to every model (an ESTIMATE: small 32 px networks reach a
# smaller share of a GPU, so read the hours as a lower bound), capped at MAX_IMAGES_PER_S (an assumed
# per-step overhead bound for tiny models such as LeNet). Method ratios: this project's CPU benchmark
# (README, "Speed": scripts/bench.py on 2 cores), the only measurement shipped.
REFERENCE = {
    "source": "estimate from timm's RTX 3090 resnet50 training rate (5.0e12 forward MACs/s) and mixexp's "
              "CPU method ratios; run `make bench` on your GPU for a measured plan",
    "macs_per_s": 1218.01 * 4.11e9,
    "method_step_time_vs_mixup": {"erm": 1.0, "mixup": 1.0, "cutmix": 0.99, "mixup+sem": 1.30,
                                  "lamix": 1.00, "puzzlemix": 1.71},
}
MAX_IMAGES_PER_S = 50_000.0
EVAL_COST = 1.0 / 3.0  # an evaluated image: forward only, about a third of a training step


@dataclass(frozen=True)
class PlannedRun:
    table: str
    folder: Path  # the run's own folder
    epochs: int
    train_images: int  # epochs * training-set size
    eval_images: int  # epochs * test-set size (evaluated every epoch) + the evaluation sets at the end
    gpu_hours: float
    finished: bool
    checkpoint_bytes: int = 0  # what the run leaves on disk (last.pt, snapshots)


@dataclass
class Throughput:
    """Training images per second of PreActResNet18 at 32 px under mixup, and method step-time ratios."""

    base_images_per_s: float
    method_ratio: Dict[str, float]
    source: str

    def images_per_s(self, macs: float, method: str) -> float:
        rate = self.base_images_per_s * model_cost(PREACT18, 32, 3, 10)[0] / macs
        return min(rate, MAX_IMAGES_PER_S) / self.method_ratio.get(_method_family(method), 1.0)


def _method_family(method: str) -> str:
    """The benchmarked method a run's cost follows: mixup+es+sem -> mixup+sem, lamix_puzzle -> puzzlemix."""
    if "puzzle" in method:
        return "puzzlemix"
    if method.startswith("lamix"):
        return "lamix"
    base = method.split("+")[0]
    return f"{base}+sem" if method.endswith("+sem") and base in ("mixup", "cutmix") else base


def load_throughput(bench: Optional[Path]) -> Throughput:
    """From ``bench.json`` (scripts/bench.py) when it exists, else the shipped :data:`REFERENCE`."""
    if bench is not None and bench.is_file():
        data = json.loads(bench.read_text())
        ratios = {"mixup": 1.0, "erm": 1.0, **data.get("method_step_time_vs_mixup", {})}
        return Throughput(float(data["step_images_per_s"]["mixexp"]), ratios,
                          f"measured by make bench ({bench}, {data.get('device', 'unknown device')})")
    base = REFERENCE["macs_per_s"] / model_cost(PREACT18, 32, 3, 10)[0]
    return Throughput(base, dict(REFERENCE["method_step_time_vs_mixup"]), REFERENCE["source"])


# the reference model of the throughput table: our PreActResNet18 on 32 px CIFAR images
PREACT18 = "name: preactresnet18\n"


@functools.lru_cache(maxsize=None)
def model_cost(model_yaml: str, size: int, channels: int, num_classes: int) -> Tuple[float, int, int]:
    """(forward multiply-accumulates of one image, parameters, numbers in the state dict) of the model whose
    config node is ``model_yaml`` (a string, so that the result can be cached), built on the meta device.
    FlopCounterMode counts 2 flops per MAC."""
    import torch
    from omegaconf import OmegaConf
    from torch.utils.flop_counter import FlopCounterMode

    from mixexp.assemble import build_model

    cfg = OmegaConf.create({"model": OmegaConf.to_container(OmegaConf.create(model_yaml))})
    with torch.device("meta"):
        model = build_model(cfg, num_classes, channels, size).eval()  # eval: BatchNorm takes 1 image at 1x1 px
        with FlopCounterMode(display=False) as counter:
            model(torch.empty(1, channels, size, size))
    params = sum(p.numel() for p in model.parameters())
    state = sum(t.numel() for t in model.state_dict().values() if t.is_floating_point())
    return counter.get_total_flops() / 2.0, params, state


def checkpoint_bytes(cfg, params: int, state: int) -> int:
    """Bytes a finished run of the composed ``cfg``, whose model has ``params`` parameters and ``state``
    floating-point numbers in its state dict, leaves in checkpoints: last.pt (float32 state, SGD's momentum
    unless ``trainer.final_checkpoint=weights``) and the weights of each snapshot epoch."""
    momentum = params if cfg.trainer.final_checkpoint == "full" and cfg.optim.momentum else 0
    last = state + momentum if cfg.trainer.checkpoint else 0
    snapshots = sum(1 for e in cfg.trainer.snapshot_epochs if e <= cfg.trainer.epochs)  # written either way
    return 4 * (last + state * snapshots)


def sweep_grid(params: Dict[str, str]) -> List[List[str]]:
    """Every point of a basic-sweeper grid: ``{"a": "1,2", "b": "x"}`` -> [["a=1", "b=x"], ["a=2", "b=x"]]."""
    keys = list(params)
    values = [[v.strip() for v in str(params[k]).split(",")] for k in keys]
    return [[f"{k}={v}" for k, v in zip(keys, combo)] for combo in itertools.product(*values)]


def override_dirname(overrides: Iterable[str], exclude_keys: Sequence[str]) -> str:
    """Hydra's ``hydra.job.override_dirname``: the sorted overrides whose key is not excluded, joined by commas."""
    kept = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in set(exclude_keys)]
    return ",".join(sorted(kept))


def dataset_size(cfg) -> Tuple[int, int, int, int]:
    """(training images, test images, side in px, channels) of a composed config's dataset."""
    from mixexp.data import sources  # noqa: F401  (fills the source registry)
    from mixexp.data.store import get_source

    d = cfg.dataset
    if d.name == "synthetic":
        return d.train_size, d.test_size, d.image_size, d.channels or 3
    if d.name == "digits":
        n_test = math.ceil(1797 * d.test_fraction)  # scikit-learn's train_test_split rounds the test share up
        return 1797 - n_test, n_test, d.resize or 8, d.channels or 1
    src = get_source(d.name)
    counts = src.counts
    test = counts.get("test", counts.get("val"))
    side = d.resize or (src.image_shape[-1] if src.image_shape else 224)
    channels = d.channels or (src.image_shape[0] if src.image_shape else 3)
    n_train = counts["train"]
    n_val = round(n_train * d.val_fraction)
    return n_train - n_val, test + n_val, side, channels


def final_eval_images(cfg) -> int:
    """Images of the evaluation sets run once after training (twice with ``eval.rescaled``); a set whose
    size is not known before it is prepared (ObjectNet) counts as 0."""
    from mixexp.data.evalsets import CORRUPTIONS, EVAL_SETS, SEVERITIES
    from mixexp.data.store import get_source

    ev, total = cfg.eval, 0
    for name in dict.fromkeys([*ev.shift, *ev.ood]):
        counts = get_source(EVAL_SETS[name].source).counts
        if EVAL_SETS[name].splits == CORRUPTIONS:
            per_block = (counts[CORRUPTIONS[0]] or 0) // len(SEVERITIES)
            total += per_block * len(ev.severities) * len(ev.corruptions or CORRUPTIONS)
        else:
            total += counts.get("test") or 0
    return total * (2 if ev.rescaled else 1)


def run_cost(cfg, method: str, throughput: Throughput) -> Tuple[int, int, float, int]:
    """(training images, evaluated images, GPU-hours, checkpoint bytes) of one run of a composed config."""
    n_train, n_test, side, channels = dataset_size(cfg)
    num_classes = {"cifar100": 100, "tinyimagenet": 200, "imagenet": 1000}.get(cfg.dataset.name, 10)
    from omegaconf import OmegaConf

    macs, params, state = model_cost(OmegaConf.to_yaml(cfg.model, resolve=True), side, channels, num_classes)
    epochs = int(cfg.trainer.epochs)
    train, evaluated = epochs * n_train, epochs * n_test + final_eval_images(cfg)
    seconds = (train + EVAL_COST * evaluated) / throughput.images_per_s(macs, method)
    return train, evaluated, seconds / 3600.0, checkpoint_bytes(cfg, params, state)


def plan_target(name: str, target, runs_root: Path, extra: Sequence[str], throughput: Throughput) -> List[PlannedRun]:
    """Every run of a reproduce target's grid (``target``: a :class:`mixexp.reproduce.Target`), composed but
    not run. Seeds do not change a run's cost, so one point per seed-free combination is composed."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from mixexp.config import CONF_DIR, register_configs, validate
    from mixexp.report import flatten, method_name

    register_configs()
    GlobalHydra.instance().clear()
    base = [f"experiment={target.experiment}", *extra]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        hydra_cfg = compose(config_name="config", overrides=base, return_hydra_config=True).hydra
        exclude = list(hydra_cfg.job.config.override_dirname.exclude_keys)
        runs: List[PlannedRun] = []
        cost: Dict[Tuple[str, ...], Tuple[int, int, float, int, int]] = {}
        for point in sweep_grid(dict(hydra_cfg.sweeper.params or {})):
            key = tuple(o for o in point if not o.startswith("seed="))
            if key not in cost:
                cfg = compose(config_name="config", overrides=[*base, *point])
                validate(cfg)  # a plan of runs that mixexp-train would refuse is no plan
                method = method_name(flatten(_container(cfg)))
                cost[key] = (*run_cost(cfg, method, throughput), int(cfg.trainer.epochs))
            train, evaluated, hours, disk, epochs = cost[key]
            folder = runs_root / target.runs / override_dirname([*point, *extra], exclude)
            runs.append(PlannedRun(name, folder, epochs, train, evaluated, hours, (folder / "metrics.json").is_file(),
                                   disk))
    return runs


def _container(cfg):
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=False)


def format_plan(plans: Dict[str, List[PlannedRun]], source: str) -> str:
    """A markdown table, one row per target and a total over the distinct runs (shared folders count once)."""
    header = ("| table | runs | finished | epochs | images | GPU-hours | GPU-hours left | checkpoints GB |\n"
              "|---|---|---|---|---|---|---|---|\n")
    lines, unique = [], {}
    for name, runs in plans.items():
        lines.append(_plan_row(name, runs))
        unique.update({r.folder: r for r in runs})
    total = _plan_row("total (distinct runs)", list(unique.values()))
    return (f"throughput: {source}\n\n" + header + "\n".join(lines) + "\n" + total.replace("| total", "| **total**")
            + "\n\nimages = epochs x (training images + test images evaluated each epoch) + the evaluation "
              "sets run after training (x2 with rescaling; ObjectNet not counted: its size is known once prepared); "
              "GPU-hours left = the runs without metrics.json; checkpoints = what the runs keep on disk once "
              "finished (last.pt and snapshots; trainer.final_checkpoint=weights halves it).\n")


def _plan_row(name: str, runs: List[PlannedRun]) -> str:
    epochs = sorted({r.epochs for r in runs})
    images = sum(r.train_images + r.eval_images for r in runs)
    hours = sum(r.gpu_hours for r in runs)
    left = sum(r.gpu_hours for r in runs if not r.finished)
    disk = sum(r.checkpoint_bytes for r in runs) / 1e9
    return (f"| {name} | {len(runs)} | {sum(r.finished for r in runs)} | {'/'.join(map(str, epochs))} | "
            f"{images:,} | {hours:,.1f} | {left:,.1f} | {disk:,.1f} |")
