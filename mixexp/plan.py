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

A PuzzleMix run (puzzlemix, lamix_puzzle) adds its graph cuts, which run on the host's CPU between the
saliency pass and the mixed step of each batch, so that the accelerator waits for them whatever its speed:

    + epochs * steps_per_epoch * batch * s_pair(px)

s_pair is the cut time per pair with every core (``mixer.workers=0``) at the nearest measured image
side (:mod:`mixexp.hostcost`): from bench.json's ``graph_cuts`` when present, else measured on this host
when the plan first needs it (about a second). c_method of PuzzleMix is then its step without the cuts
(bench.json ``method_step_time_vs_mixup_without_cuts``). The plan prints its own estimate of PuzzleMix's
published epoch times (:data:`PUZZLEMIX_ANCHOR`) beside them, so that the arithmetic can be checked.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

# Without bench.json: timm's published training benchmark (huggingface/pytorch-image-models,
# results/benchmark-train-amp-nhwc-pt112-cu113-rtx3090.csv): resnet50 at 224 px trains at 1218.01
# images/s on one RTX 3090 (AMP, channels_last, PyTorch 1.12), i.e. 1218.01 * 4.11 GMACs = 5.0e12
# forward MACs per second. We apply that rate to every model (an ESTIMATE: small 32 px networks reach a
# smaller share of a GPU, so read the hours as a lower bound), capped at MAX_IMAGES_PER_S (an assumed
# per-step overhead bound for tiny models such as LeNet). Method ratios: this project's CPU benchmark
# (README, "Speed": scripts/bench.py on 2 cores), the only measurement shipped; PuzzleMix's is its step
# without the graph cuts (on that CPU they were about 1% of its step), which the plan adds as host time.
REFERENCE = {
    "source": "estimate from timm's RTX 3090 resnet50 training rate (5.0e12 forward MACs/s) and mixexp's "
              "CPU method ratios; run `make bench` on your GPU for a measured plan",
    "macs_per_s": 1218.01 * 4.11e9,
    "method_step_time_vs_mixup": {"erm": 1.0, "mixup": 1.0, "cutmix": 0.99, "mixup+sem": 1.30,
                                  "lamix": 1.00, "puzzlemix": 1.71},
}
MAX_IMAGES_PER_S = 50_000.0
EVAL_COST = 1.0 / 3.0  # an evaluated image: forward only, about a third of a training step

# The published figure a PuzzleMix estimate can be checked against: snu-mllab/PuzzleMix README, update of
# 20.12.01 (torch 1.7, graph cuts in `--mp` CPU processes): "50s/epoch" PuzzleMix, "34s/epoch" Vanilla,
# CIFAR-100, PreActResNet-18 (main.py: batch 100; models/preresnet.py, our variant puzzlemix).
PUZZLEMIX_ANCHOR = {
    "source": "snu-mllab/PuzzleMix README (20.12.01, torch 1.7, multi-process graph cuts)",
    "vanilla_s_per_epoch": 34.0, "puzzlemix_s_per_epoch": 50.0,
    "model": "name: preactresnet18\nvariant: puzzlemix\n", "train_images": 50_000, "num_classes": 100,
    "batch": 100, "size": 32,
}
# The cut sizes timed: PuzzleMix's CIFAR batch at 32 px and its Tiny-ImageNet batch at 64 px.
GRAPH_CUT_SIZES = ((100, 32), (64, 64))


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
    host_hours: float = 0.0  # of gpu_hours: the accelerator waiting for the host (PuzzleMix's graph cuts)


@dataclass
class GraphCuts:
    """PuzzleMix's graph cuts on this host with every core: seconds per pair, by image side in px."""

    seconds_per_pair: Dict[int, float]
    source: str

    def seconds_per_batch(self, batch: int, size: int) -> float:
        nearest = min(self.seconds_per_pair, key=lambda px: (abs(px - size), px))
        return batch * self.seconds_per_pair[nearest]

    @classmethod
    def from_bench(cls, rows: List[dict], source: str) -> "GraphCuts":
        """From bench.json's ``graph_cuts`` rows (batch, size, s_per_batch by thread count): the most threads."""
        per_pair = {}
        for row in rows:
            threads = max(row["s_per_batch"], key=int)
            per_pair[int(row["size"])] = float(row["s_per_batch"][threads]) / int(row["batch"])
        return cls(per_pair, source)

    @classmethod
    def measure(cls) -> "GraphCuts":
        """Timed now, one repetition per grid size (about a second)."""
        from mixexp.hostcost import graph_cut_seconds

        cores = os.cpu_count() or 1
        per_pair = {size: graph_cut_seconds(batch, size, cores, reps=1) / batch for batch, size in GRAPH_CUT_SIZES}
        return cls(per_pair, f"measured by the plan on this host ({cores} threads)")


@dataclass
class Throughput:
    """Training images per second of PreActResNet18 at 32 px under mixup, method step-time ratios (PuzzleMix's
    without its graph cuts) and the cuts' host time (None: measured when a PuzzleMix run first needs it)."""

    base_images_per_s: float
    method_ratio: Dict[str, float]
    source: str
    cuts: Optional[GraphCuts] = None

    def images_per_s(self, macs: float, method: str) -> float:
        rate = self.base_images_per_s * model_cost(PREACT18, 32, 3, 10)[0] / macs
        return min(rate, MAX_IMAGES_PER_S) / self.method_ratio.get(_method_family(method), 1.0)

    def graph_cuts(self) -> GraphCuts:
        if self.cuts is None:
            self.cuts = GraphCuts.measure()
        return self.cuts

    def host_seconds_per_step(self, method: str, batch: int, size: int) -> float:
        """Seconds a step waits for the host: PuzzleMix's cuts of its batch; 0 for the other methods."""
        return self.graph_cuts().seconds_per_batch(batch, size) if _method_family(method) == "puzzlemix" else 0.0


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
        ratios = {"mixup": 1.0, "erm": 1.0, **data.get("method_step_time_vs_mixup", {}),
                  **data.get("method_step_time_vs_mixup_without_cuts", {})}
        source = f"measured by make bench ({bench}, {data.get('device', 'unknown device')})"
        cuts = GraphCuts.from_bench(data["graph_cuts"], source) if data.get("graph_cuts") else None
        return Throughput(float(data["step_images_per_s"]["mixexp"]), ratios, source, cuts)
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


def composed_grid(experiment: str, extra: Sequence[str] = ()):
    """(overrides of each seed-free point of ``experiment``'s sweep grid, its composed config, the seeds the grid
    runs it with ([] when the grid sets none), the keys Hydra leaves out of run-folder names), composed as the
    sweep composes it (``hydra.sweeper.params`` of the preset)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from mixexp.config import CONF_DIR, register_configs

    register_configs()
    GlobalHydra.instance().clear()
    base = [f"experiment={experiment}", *extra]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        hydra_cfg = compose(config_name="config", overrides=base, return_hydra_config=True).hydra
        exclude = list(hydra_cfg.job.config.override_dirname.exclude_keys)
        params = dict(hydra_cfg.sweeper.params or {})
        seeds = [v.strip() for v in str(params.pop("seed")).split(",")] if "seed" in params else []
        for point in sweep_grid(params):
            yield point, compose(config_name="config", overrides=[*base, *point]), seeds, exclude


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


def steps_per_epoch(n_train: int, batch: int) -> int:
    """Optimiser steps of one epoch (the loader's count: a final batch of one example is left out)."""
    from mixexp.data.loader import drops_last_batch

    return n_train // batch if drops_last_batch(n_train, batch, True, False) else -(-n_train // batch)


def run_cost(cfg, method: str, throughput: Throughput) -> Tuple[int, int, float, int, float]:
    """(training images, evaluated images, GPU-hours, checkpoint bytes, hours of them waiting for the host)
    of one run of a composed config."""
    n_train, n_test, side, channels = dataset_size(cfg)
    num_classes = {"cifar100": 100, "tinyimagenet": 200, "imagenet": 1000}.get(cfg.dataset.name, 10)
    from omegaconf import OmegaConf

    macs, params, state = model_cost(OmegaConf.to_yaml(cfg.model, resolve=True), side, channels, num_classes)
    epochs, batch = int(cfg.trainer.epochs), int(cfg.trainer.batch_size)
    train, evaluated = epochs * n_train, epochs * n_test + final_eval_images(cfg)
    device_seconds = (train + EVAL_COST * evaluated) / throughput.images_per_s(macs, method)
    host_seconds = epochs * steps_per_epoch(n_train, batch) * throughput.host_seconds_per_step(method, batch, side)
    hours = (device_seconds + host_seconds) / 3600.0
    return train, evaluated, hours, checkpoint_bytes(cfg, params, state), host_seconds / 3600.0


def plan_target(name: str, target, runs_root: Path, extra: Sequence[str], throughput: Throughput) -> List[PlannedRun]:
    """Every run of a reproduce target's grid (``target``: a :class:`mixexp.reproduce.Target`), composed but
    not run. Seeds do not change a run's cost, so one point per seed-free combination is composed."""
    from mixexp.config import validate
    from mixexp.report import flatten, method_name

    runs: List[PlannedRun] = []
    for point, cfg, seeds, exclude in composed_grid(target.experiment, extra):
        validate(cfg)  # a plan of runs that mixexp-train would refuse is no plan
        method = method_name(flatten(_container(cfg)))
        train, evaluated, hours, disk, host = run_cost(cfg, method, throughput)
        for seed in seeds or [None]:
            overrides = [*point, *([f"seed={seed}"] if seed is not None else []), *extra]
            folder = runs_root / target.runs / override_dirname(overrides, exclude)
            runs.append(PlannedRun(name, folder, int(cfg.trainer.epochs), train, evaluated, hours,
                                   (folder / "metrics.json").is_file(), disk, host))
    return runs


def _container(cfg):
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=False)


def format_plan(plans: Dict[str, List[PlannedRun]], source: str, throughput: Optional[Throughput] = None) -> str:
    """A markdown table, one row per target and a total over the distinct runs (shared folders count once);
    with ``throughput``, a plan holding PuzzleMix runs ends with its check against :data:`PUZZLEMIX_ANCHOR`."""
    header = ("| table | runs | finished | epochs | images | GPU-hours | GPU-hours left | of them host-bound "
              "| checkpoints GB |\n|---|---|---|---|---|---|---|---|---|\n")
    lines, unique = [], {}
    for name, runs in plans.items():
        lines.append(_plan_row(name, runs))
        unique.update({r.folder: r for r in runs})
    total = _plan_row("total (distinct runs)", list(unique.values()))
    cuts = throughput is not None and any(r.host_hours > 0 for r in unique.values())
    return (f"throughput: {source}\n\n" + header + "\n".join(lines) + "\n" + total.replace("| total", "| **total**")
            + "\n\nimages = epochs x (training images + test images evaluated each epoch) + the evaluation "
              "sets run after training (x2 with rescaling; ObjectNet not counted: its size is known once prepared); "
              "GPU-hours left = the runs without metrics.json; host-bound = the GPU waiting for PuzzleMix's graph "
              "cuts on the CPU (included in GPU-hours); checkpoints = what the runs keep on disk once "
              "finished (last.pt and snapshots; trainer.final_checkpoint=weights halves it).\n"
            + (puzzlemix_check(throughput) if cuts else ""))


def puzzlemix_check(throughput: Throughput) -> str:
    """This plan's epoch times for the setting of :data:`PUZZLEMIX_ANCHOR`, beside the published ones."""
    a = PUZZLEMIX_ANCHOR
    macs = model_cost(a["model"], a["size"], 3, a["num_classes"])[0]
    vanilla = a["train_images"] / throughput.images_per_s(macs, "erm")
    steps = steps_per_epoch(a["train_images"], a["batch"])
    cuts = steps * throughput.host_seconds_per_step("puzzlemix", a["batch"], a["size"])
    puzzle = a["train_images"] / throughput.images_per_s(macs, "puzzlemix") + cuts
    published = a["puzzlemix_s_per_epoch"] / a["vanilla_s_per_epoch"]
    return (f"\nPuzzleMix check (CIFAR-100, PreActResNet-18, batch {a['batch']}, one training epoch): this plan "
            f"{vanilla:,.1f} s vanilla, {puzzle:,.1f} s PuzzleMix ({puzzle / vanilla:.2f}x; {cuts:,.1f} s of it graph "
            f"cuts, {throughput.graph_cuts().source}); published: {a['vanilla_s_per_epoch']:g} s vanilla, "
            f"{a['puzzlemix_s_per_epoch']:g} s PuzzleMix ({published:.2f}x), {a['source']}.\n")


def _plan_row(name: str, runs: List[PlannedRun]) -> str:
    epochs = sorted({r.epochs for r in runs})
    images = sum(r.train_images + r.eval_images for r in runs)
    hours = sum(r.gpu_hours for r in runs)
    left = sum(r.gpu_hours for r in runs if not r.finished)
    host = sum(r.host_hours for r in runs)
    disk = sum(r.checkpoint_bytes for r in runs) / 1e9
    return (f"| {name} | {len(runs)} | {sum(r.finished for r in runs)} | {'/'.join(map(str, epochs))} | "
            f"{images:,} | {hours:,.1f} | {left:,.1f} | {host:,.1f} | {disk:,.1f} |")
