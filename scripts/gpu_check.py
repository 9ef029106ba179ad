"""One prepared check of mixexp on CUDA (``make gpu-check``; ``make gpu-check DRY=1``: the same code on a CPU).

On a machine with GPUs it writes ``gpu_check.json`` and ``gpu_check.md`` (a short table) in under 8
minutes, each part time-boxed (a part that runs out of time is recorded as skipped, never silently):

1. methods: every method of the papers (ERM, mixup, CutMix, SEM, ES, LaMix, PuzzleMix, Manifold Mixup,
   SaliencyMix, test-time rescaling) trains a few steps on CUDA with bf16 autocast and channels_last,
   eager and with ``trainer.compile=true``; every epoch's loss is finite, and the losses of two consecutive
   steps equal the same steps in float32 on the CPU (same weights, same batches, the same random draws: the
   device steps' draws are recorded and replayed on the CPU) within :data:`TOLERANCE`;
2. throughput: images/s of PreActResNet-18 (32 px, batch 128; eager and compiled), WRN-28-10 (32 px,
   batch 128) and ResNet-50 (224 px, batch 128) for mixexp's step and a bare loop (scripts/bench.py),
   interleaved in one process, with the peak memory of each;
3. DDP: ``torchrun`` on every visible GPU (NCCL; world size 1 on one GPU), plain and with SyncBatchNorm,
   a few steps; the weights are equal across ranks;
4. PuzzleMix: its step time beside mixup's (PreActResNet-18, batch 100, 32 px, 100 classes), and its
   graph cuts alone on this host's cores;
5. JPEG: torchvision's ``decode_jpeg`` on the GPU against one CPU worker, and the workers one GPU's
   measured ResNet-50 rate needs.

``--dry`` runs every part on the CPU at tiny sizes (float32, gloo for DDP over 2 processes, compilation
of one method only) in well under a minute: CI runs it so that the check cannot rot before a GPU is lent.
The targets (README, Speed) are stated beside the figures, not asserted: this is a benchmark.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (scripts/bench.py: trainers, bare loop, interleaving)

REPO = Path(__file__).resolve().parent.parent
# the GPU form's budget: the issue allows 8 minutes; an item started just before its deadline (a compilation)
# may overrun it by a minute, and start-up takes seconds
BUDGET_S = 360.0
# The loss of one step on the device against the same step in float32 on the CPU: relative difference at
# most this (bf16 autocast keeps 8 bits of mantissa: about 0.4% per rounding, a few percent through a network)
TOLERANCE = {"bf16": 3e-2, "float32": 1e-5}
COMPARED_STEPS = 2  # consecutive steps compared (LaMix's second batch is its first mixed one)
METHODS = {
    "erm": ["method=erm"], "mixup": ["method=mixup"], "cutmix": ["method=cutmix"],
    "sem": ["method=mixup_sem"], "es": ["method=mixup_es"], "lamix": ["method=lamix"],
    # the same transport solver on both devices ("auto" takes the exact one on a CPU)
    "puzzlemix": ["method=puzzlemix", "mixer.t_solver=approx"],
    "manifold_mixup": ["method=manifold_mixup"], "saliencymix": ["method=saliencymix"],
    "rescaling": ["method=mixup_rescaled"],
}
TARGETS = {"step_ratio_mixexp_over_bare": 0.97, "preactresnet18_compiled_images_per_s": 25_000,
           "puzzlemix_step_time_vs_mixup": 1.5}


class Budget:
    """Wall-clock allowance of the whole check; a part may start items until its own deadline."""

    def __init__(self, total_s: float) -> None:
        self.start, self.total = time.perf_counter(), total_s

    def left(self) -> float:
        return self.total - (time.perf_counter() - self.start)

    def by(self, share: float) -> float:
        """The moment ``share`` of the budget has passed (a part's deadline)."""
        return self.start + share * self.total


def _error(e: BaseException) -> str:
    lines = [l for l in traceback.format_exception_only(type(e), e)[-1].strip().splitlines() if l.strip()]
    return (lines[0] if lines else type(e).__name__)[:300]


# ---------------------------------------------------------------------------------------- random draws

def _is_random(func) -> bool:
    return torch.Tag.nondeterministic_seeded in func.tags


class RecordDraws(TorchDispatchMode):
    """Keeps (op, value on the CPU) of every random aten operation, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.draws: List[tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if _is_random(func):
            self.draws.append((func.name(), [t.detach().cpu().clone() for t in tree_leaves(out)
                                              if isinstance(t, torch.Tensor)]))
        return out


class ReplayDraws(TorchDispatchMode):
    """Runs every random aten operation, then overwrites its result with the recorded one (same op, same
    order, same shape), so that a step on another device draws exactly what the recorded step drew."""

    def __init__(self, draws: List[tuple]) -> None:
        super().__init__()
        self.draws, self.used = draws, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if _is_random(func):
            if self.used >= len(self.draws) or self.draws[self.used][0] != func.name():
                expected = self.draws[self.used][0] if self.used < len(self.draws) else "no more draws"
                raise RuntimeError(f"random draw {self.used} is {func.name()} here, {expected} on the device")
            tensors = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
            for t, value in zip(tensors, self.draws[self.used][1]):
                t.copy_(value.to(t.device, t.dtype).view(t.shape))
            self.used += 1
        return out


def rng_states():
    return torch.get_rng_state(), (torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)


def set_rng_states(states) -> None:
    torch.set_rng_state(states[0])
    if states[1] is not None:
        torch.cuda.set_rng_state_all(states[1])


# ---------------------------------------------------------------------------------------- sizes

def sizes(dry: bool) -> dict:
    """Every part's sizes: the GPU form's, or --dry's tiny ones (seconds on a CPU)."""
    if dry:
        return {
            "budget_s": 300.0, "reps": 1, "tolerance": "float32", "compile_methods": ["mixup"],
            "methods": {"model": ["model=simplecnn", "model.width=8"], "size": 8, "batch": 8, "steps": 3},
            # WRN at depth 10, width 1: its 36M parameters would make every CPU step slow (SGD alone)
            "throughput": [("preactresnet18", 8, 4, [], False),
                           ("wrn28_10", 8, 2, ["model.depth=10", "model.widen_factor=1"], False),
                           ("resnet50", 32, 2, ["model.stem=imagenet"], False)],
            "throughput_steps": 2, "throughput_classes": 10,
            "ddp": {"model": ["model=simplecnn", "model.width=8"], "size": 8, "batch": 8, "steps": 3},
            "puzzlemix": {"size": 8, "batch": 8, "steps": 2, "classes": 10}, "jpegs": 16,
        }
    return {
        "budget_s": BUDGET_S, "reps": 3, "tolerance": "bf16", "compile_methods": list(METHODS),
        "methods": {"model": ["model=preactresnet18"], "size": 32, "batch": 32, "steps": 3},
        # (model, px, batch, extra overrides, compiled too): the compiled PreActResNet-18 is the 25k img/s target
        "throughput": [("preactresnet18", 32, 128, [], False), ("preactresnet18", 32, 128, [], True),
                       ("wrn28_10", 32, 128, [], False), ("resnet50", 224, 128, ["model.stem=imagenet"], False)],
        "throughput_steps": 20, "throughput_classes": 100,
        "ddp": {"model": ["model=preactresnet18"], "size": 32, "batch": 64, "steps": 5},
        "puzzlemix": {"size": 32, "batch": 100, "steps": 10, "classes": 100}, "jpegs": 256,
    }


# ---------------------------------------------------------------------------------------- 1. methods

def _load(trainer, init) -> None:
    trainer.model.load_state_dict(init[0])
    trainer.method.load_state_dict(init[1])


def _at_first_epoch_of(trainer) -> None:
    """ES: start where mixing has stopped (else at epoch 0), so that the check trains ES's own path."""
    stop = getattr(trainer.method, "stop_epoch", None)
    trainer.epoch = stop if stop is not None else 0
    trainer.method.set_epoch(trainer.epoch)


def compared_steps(ref, devices: Dict[str, object], batches: list, tolerance: float) -> Dict[str, dict]:
    """Consecutive steps (one per batch: LaMix alternates original and mixed batches) of each device trainer from
    the reference's weights, against the same steps on the CPU reference. The eager trainer's random draws are
    recorded and replayed on the CPU; a compiled trainer starts from the same random state, so it draws the same
    (its graphs hold no random operation, and nothing else draws in between)."""
    init = copy.deepcopy((ref.model.state_dict(), ref.method.state_dict()))
    for trainer in (ref, *devices.values()):
        _load(trainer, init)
        _at_first_epoch_of(trainer)
    states = rng_states()
    with RecordDraws() as record:
        losses = {"eager": [devices["eager"].train_step(x, y).loss.float().item() for x, y in batches]}
    with ReplayDraws(record.draws) as replay:
        cpu = [ref.train_step(x.detach().float().cpu().contiguous(), y.cpu()).loss.item() for x, y in batches]
    assert replay.used == len(record.draws), f"{len(record.draws) - replay.used} recorded draws were not replayed"
    for name, trainer in devices.items():
        if name != "eager":
            set_rng_states(states)
            losses[name] = [trainer.train_step(x, y).loss.float().item() for x, y in batches]
    out = {}
    for name, device_losses in losses.items():
        rel = max(abs(d - c) / max(abs(c), 1e-12) for d, c in zip(device_losses, cpu))
        out[name] = {"device_losses": device_losses, "cpu_losses": cpu, "rel_diff": rel, "draws": len(record.draws),
                     "ok": all(math.isfinite(d) for d in device_losses) and rel <= tolerance}
    return out


def _rescaled_nll(trainer) -> float:
    from mixexp.evaluation.metrics import predict_logits

    r = trainer.rescaling
    logits, labels = predict_logits(trainer.model, trainer.test_loader, transform=r.inputs)
    return torch.nn.functional.cross_entropy(r.logits(logits), labels).item()


def check_method(name: str, device, size: dict, variant: str, tolerance: float, tmp: Path) -> dict:
    """The ``variant`` ("eager" or "compiled") of method ``name`` on ``device`` against the CPU in float32:
    COMPARED_STEPS compared steps, then an epoch of a few steps more (a compiled variant needs the eager one,
    which records the draws)."""
    m = size["methods"]
    base = [*bench.trainer_overrides(device, m["batch"], m["steps"], m["size"]), *m["model"], *METHODS[name]]
    ref = bench.make_trainer([*base, "trainer.device=cpu"], tmp / f"{name}-{variant}-cpu")
    devices = {"eager": bench.make_trainer(base, tmp / f"{name}-{variant}-eager")}
    if variant == "compiled":
        devices["compiled"] = bench.make_trainer([*base, "trainer.compile=true"], tmp / f"{name}-compiled")
    batches = list(itertools.islice(devices["eager"].train_loader, COMPARED_STEPS))
    start = time.perf_counter()
    result = compared_steps(ref, devices, batches, tolerance)[variant]
    trainer = devices[variant]
    loss = trainer.train_epoch()["train_loss"]  # a few steps more, each epoch's loss finite
    result.update(epoch_loss=loss, seconds=time.perf_counter() - start, ok=result["ok"] and math.isfinite(loss))
    if name == "rescaling" and variant == "eager":  # test-time rescaling: the rescaled test NLL, device vs CPU
        _load(trainer, (ref.model.state_dict(), ref.method.state_dict()))
        dev, cpu = _rescaled_nll(trainer), _rescaled_nll(ref)
        rel = abs(dev - cpu) / max(abs(cpu), 1e-12)
        result["rescaled_eval"] = {"device_nll": dev, "cpu_nll": cpu, "rel_diff": rel, "ok": rel <= tolerance}
        result["ok"] = result["ok"] and rel <= tolerance
    return result


def part_methods(device, size: dict, variant: str, deadline: float, tmp: Path) -> dict:
    """Every method's ``variant`` (eager or compiled); a method it cannot start before ``deadline`` is skipped."""
    tolerance, results = TOLERANCE[size["tolerance"]], {}
    for name in METHODS:
        if variant == "compiled" and name not in size["compile_methods"]:
            results[name] = {"skipped": "--dry compiles mixup only (CPU compilation is slow)"}
        elif time.perf_counter() > deadline:
            results[name] = {"skipped": "time budget"}
        else:
            try:
                results[name] = check_method(name, device, size, variant, tolerance, tmp)
            except Exception as e:
                results[name] = {"error": _error(e)}
    return results


# ---------------------------------------------------------------------------------------- 2. throughput

def interleaved_with_peak(named: Dict[str, Callable[[], int]], device, reps: int):
    """(median images/s, peak memory in GB or None on a CPU) of each function, run in turn after a warm-up."""
    rates = bench.interleaved(named, device, reps)  # the warm-up and the timed rounds
    peaks = {}
    for name, fn in named.items():
        if device.type != "cuda":
            peaks[name] = None
            continue
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        peaks[name] = torch.cuda.max_memory_allocated(device) / 1e9
    return rates, peaks


def throughput_item(device, item: tuple, size: dict, tmp: Path) -> dict:
    model, px, batch, extra, compiled = item
    steps = size["throughput_steps"]
    overrides = [*bench.trainer_overrides(device, batch, steps, px, size["throughput_classes"]), f"model={model}",
                 *extra, "mixer=mixup", *(["trainer.compile=true"] if compiled else [])]
    trainer = bench.make_trainer(overrides, tmp / f"{model}-{px}-{'compiled' if compiled else 'eager'}")
    start = time.perf_counter()
    rates, peaks = interleaved_with_peak({"mixexp": bench.trainer_epoch(trainer),
                                          "bare": bench.bare_mixup_loop(trainer, steps, batch)}, device, size["reps"])
    result = {"model": model, "size": px, "batch": batch, "compiled": compiled,
              "mixexp_images_per_s": rates["mixexp"], "bare_images_per_s": rates["bare"],
              "ratio_mixexp_over_bare": rates["mixexp"] / rates["bare"],
              "mixexp_peak_gb": peaks["mixexp"], "bare_peak_gb": peaks["bare"], "seconds": time.perf_counter() - start}
    del trainer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def part_throughput(device, size: dict, compiled: bool, deadline: float, tmp: Path) -> List[dict]:
    rows = []
    for item in size["throughput"]:
        if item[4] != compiled:
            continue
        name = f"{item[0]} {item[1]} px{' compiled' if compiled else ''}"
        if time.perf_counter() > deadline:
            rows.append({"model": name, "skipped": "time budget"})
            continue
        try:
            rows.append(throughput_item(device, item, size, tmp))
        except Exception as e:
            rows.append({"model": name, "error": _error(e)})
    return rows


# ---------------------------------------------------------------------------------------- 3. DDP

def ddp_variants(dry: bool) -> Dict[str, List[str]]:
    return {"ddp": [], "ddp+sync_bn": [] if dry else ["trainer.sync_bn=true"]}


def ddp_variant(device, size: dict, extra: List[str], run_dir: Path) -> dict:
    """A few steps of DDP training on this rank; the weights' largest difference from rank 0's, summed over ranks."""
    from mixexp import distributed

    d = size["ddp"]
    world = int(os.environ.get("WORLD_SIZE", 1))
    trainer = bench.make_trainer([*bench.trainer_overrides(device, d["batch"] * world, d["steps"], d["size"]),
                                  *d["model"], "mixer=mixup", *extra], run_dir)
    if trainer.ddp_step is None:  # world size 1: the Trainer trains without DDP; wrap its step as under torchrun
        trainer.ddp_step = distributed.wrap_step(trainer.model, trainer.method, trainer.device)
    loss = trainer.train_epoch()["train_loss"]
    flat = torch.cat([p.detach().float().flatten() for m in (trainer.model, trainer.method) for p in m.parameters()])
    diff = (flat - distributed.broadcast_from_main(flat)).abs().max()
    (total,) = distributed.sum_across_ranks(diff)
    return {"world_size": world, "steps": len(trainer.train_loader), "loss": loss, "weight_diff_across_ranks":
            total.item(), "ok": math.isfinite(loss) and total.item() == 0.0}


def ddp_worker(out: Path, dry: bool) -> None:
    """One rank under torchrun: join the group (NCCL on CUDA, gloo on the CPU), then each variant."""
    import torch.distributed as dist

    from mixexp import distributed
    from mixexp.config import register_configs
    from mixexp.train_utils import DistEnv

    register_configs()
    env = DistEnv()
    device = distributed.setup(torch.device("cpu" if dry else "cuda"), env)  # at world size 1 too
    size, results = sizes(dry), {}
    for name, extra in ddp_variants(dry).items():
        if dry and name == "ddp+sync_bn":
            results[name] = {"skipped": "SyncBatchNorm has no CPU kernel"}
            continue
        try:
            results[name] = ddp_variant(device, size, extra, out / name)
        except Exception as e:
            results[name] = {"error": _error(e)}
    results["backend"] = dist.get_backend()
    if env.rank == 0:
        (out / "ddp.json").write_text(json.dumps(results))


def part_ddp(device, dry: bool, deadline: float, tmp: Path) -> dict:
    world = 2 if dry else torch.cuda.device_count()
    timeout = max(60.0, deadline - time.perf_counter())  # process start-up, the group, two short trainings
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}", __file__,
           "--ddp-worker", str(tmp), *(["--dry"] if dry else [])]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"world_size": world, "error": f"torchrun did not finish in {timeout:.0f} s"}
    if not (tmp / "ddp.json").is_file():
        tail = [l for l in proc.stderr.strip().splitlines() if l.strip()][-3:]
        return {"world_size": world, "error": f"torchrun exited {proc.returncode}: " + " | ".join(tail)[-600:]}
    return {"world_size": world, **json.loads((tmp / "ddp.json").read_text())}


# ---------------------------------------------------------------------------------------- 4. PuzzleMix, 5. JPEG

def part_puzzlemix(device, size: dict, tmp: Path) -> dict:
    from mixexp.hostcost import graph_cut_seconds

    p = size["puzzlemix"]
    base = [*bench.trainer_overrides(device, p["batch"], p["steps"], p["size"], p["classes"]),
            "model=preactresnet18_puzzlemix"]
    trainers = {m: bench.make_trainer([*base, f"method={m}"], tmp / m) for m in ("mixup", "puzzlemix")}
    rates = bench.interleaved({m: bench.trainer_epoch(t) for m, t in trainers.items()}, device, size["reps"])
    cuts = graph_cut_seconds(p["batch"], p["size"], os.cpu_count() or 1, reps=size["reps"])
    step = {m: p["batch"] / r for m, r in rates.items()}
    return {"batch": p["batch"], "size": p["size"], "mixup_step_ms": 1e3 * step["mixup"],
            "puzzlemix_step_ms": 1e3 * step["puzzlemix"], "step_time_vs_mixup": step["puzzlemix"] / step["mixup"],
            "graph_cuts_ms": 1e3 * cuts, "cut_threads": os.cpu_count() or 1,
            "step_time_vs_mixup_without_cuts": (step["puzzlemix"] - cuts) / step["mixup"]}


def gpu_decode_rate(folder: Path, files: List[str], reps: int) -> float:
    """images/s of torchvision's batched decode_jpeg on the GPU, file bytes already in memory."""
    from torchvision.io import decode_jpeg, read_file

    data = [read_file(str(folder / f)) for f in files]

    def run() -> int:
        for start in range(0, len(data), 64):
            decode_jpeg(data[start:start + 64], device="cuda")
        return len(data)

    return bench.interleaved({"gpu": run}, torch.device("cuda"), reps)["gpu"]


def part_jpeg(device, size: dict, resnet50_rate: Optional[float], tmp: Path) -> dict:
    files = bench.write_jpegs(tmp, size["jpegs"])
    decode, per_worker = bench.jpeg_worker_rates(device, tmp, files, 16, size["reps"])
    result = {"decode_images_per_s": decode, "worker_images_per_s": per_worker, "cpu_count": os.cpu_count()}
    if device.type == "cuda":
        result["decode_images_per_s"]["torchvision_cuda"] = gpu_decode_rate(tmp, files, size["reps"])
    else:
        result["not_measured"] = "decode_jpeg on the GPU needs CUDA"
    if resnet50_rate:
        result["resnet50_images_per_s"] = resnet50_rate
        result["workers_per_resnet50_gpu"] = math.ceil(resnet50_rate / per_worker)
    return result


# ---------------------------------------------------------------------------------------- report

def failures(result: dict) -> List[str]:
    """Every check that failed or could not run (what the time budget left out is in ``skipped``)."""
    bad = [f"{part}: {result[part]['error']}" for part in ("methods", "throughput", "ddp", "puzzlemix", "jpeg")
           if "error" in result[part]]
    for name, variants in result["methods"]["results"].items():
        for variant, v in variants.items():
            if "error" in v:
                bad.append(f"method {name} {variant}: {v['error']}")
            elif v.get("ok") is False:
                bad.append(f"method {name} {variant}: loss not finite or off tolerance ({v['rel_diff']:.2e})")
    bad += [f"throughput {r['model']}: {r['error']}" for r in result["throughput"]["rows"] if "error" in r]
    for name in ddp_variants(result["dry"]):
        v = result["ddp"].get(name, {})
        if "error" in v or v.get("ok") is False:
            bad.append(f"{name}: {v.get('error', 'weights differ across ranks or the loss is not finite')}")
    return bad


def _ddp_status(v: dict) -> str:
    if "error" in v or "skipped" in v:
        return v.get("error") or v["skipped"]
    return f"{'weights equal' if v['ok'] else 'WEIGHTS DIFFER'} across ranks after {v['steps']} steps"


def _fmt(v, spec: str = ".4g") -> str:
    return "-" if v is None else format(v, spec)


def _cell(v: dict, key: str) -> str:
    return v.get("error") or v.get("skipped") or _losses(v.get(key))


def _losses(values) -> str:
    return "-" if values is None else ", ".join(f"{v:.4g}" for v in values)


def _method_rows(m: dict) -> List[str]:
    lines = ["| method | eager losses | CPU float32 | max rel. diff | compiled losses | max rel. diff | ok |",
             "|---|---|---|---|---|---|---|"]
    for name, r in m["results"].items():
        e, c = r.get("eager", {}), r.get("compiled", {})
        ok = all(v.get("ok") for v in (e, c) if "ok" in v) and any("ok" in v for v in (e, c))
        lines.append(f"| {name} | {_cell(e, 'device_losses')} | {_losses(e.get('cpu_losses', c.get('cpu_losses')))} | "
                     f"{_fmt(e.get('rel_diff'), '.2e')} | {_cell(c, 'device_losses')} | {_fmt(c.get('rel_diff'), '.2e')} "
                     f"| {'yes' if ok else 'NO'} |")
    rescaled = m["results"].get("rescaling", {}).get("eager", {}).get("rescaled_eval")
    if rescaled:
        lines.append(f"\nTest-time rescaling, rescaled test NLL: device {rescaled['device_nll']:.4g}, CPU "
                     f"{rescaled['cpu_nll']:.4g}, rel. diff {rescaled['rel_diff']:.2e}.")
    lines.append(f"\nTolerance: relative {m['tolerance_rel']:g} ({m['precision']} against float32 on the CPU; the "
                 "same weights, batch and random draws); ok: that, and every epoch's loss finite.")
    return lines


def _throughput_rows(rows: List[dict]) -> List[str]:
    lines = ["| model | px | batch | mixexp img/s | bare img/s | ratio (target >= 0.97) | peak GB mixexp / bare |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "mixexp_images_per_s" not in r:
            lines.append(f"| {r['model']} | | | {r.get('error') or r.get('skipped')} | | | |")
            continue
        lines.append(f"| {r['model']}{' compiled' if r['compiled'] else ''} | {r['size']} | {r['batch']} | "
                     f"{r['mixexp_images_per_s']:,.0f} | {r['bare_images_per_s']:,.0f} | {r['ratio_mixexp_over_bare']:.3f} | "
                     f"{_fmt(r['mixexp_peak_gb'], '.2f')} / {_fmt(r['bare_peak_gb'], '.2f')} |")
    return lines


def markdown(result: dict) -> str:
    d, p, j = result["ddp"], result["puzzlemix"], result["jpeg"]
    lines = [f"# gpu-check: {result['device']}, torch {result['torch']}{' (DRY, CPU)' if result['dry'] else ''}, "
             f"{result['elapsed_s']:.0f} s", "", *_method_rows(result["methods"]), "",
             *_throughput_rows(result["throughput"]["rows"]), "",
             f"DDP ({d.get('backend', '?')}, world size {d.get('world_size', '?')}): " + "; ".join(
                 f"{n}: {_ddp_status(d[n])}" for n in ddp_variants(result["dry"]) if n in d) + d.get("error", "")]
    if "step_time_vs_mixup" in p:
        lines.append(f"PuzzleMix (batch {p['batch']}, {p['size']} px): {p['step_time_vs_mixup']:.2f}x mixup's step "
                     f"(target <= 1.5x), {p['graph_cuts_ms']:.1f} ms of graph cuts on {p['cut_threads']} threads; "
                     f"{p['step_time_vs_mixup_without_cuts']:.2f}x without them")
    if "worker_images_per_s" in j:
        lines.append(f"JPEG 500x375: {j['worker_images_per_s']:.0f} img/s per CPU worker (decode+crop+flip); decode "
                     + ", ".join(f"{k} {v:,.0f}/s" for k, v in j["decode_images_per_s"].items())
                     + (f"; ResNet-50 at {j['resnet50_images_per_s']:,.0f} img/s needs {j['workers_per_resnet50_gpu']} "
                        "workers" if "workers_per_resnet50_gpu" in j else ""))
    lines += [f"skipped (time budget): {s}" for s in result["skipped"]] + [f"FAILED: {f}" for f in result["failures"]]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------- main

# The order of the parts: cheap and certain first, compilation (open-ended) last. Each may start items until
# its share of the budget has passed; an item started just before may run past it (hence the margin).
SCHEDULE = (("methods.eager", 0.15), ("ddp", 0.35), ("puzzlemix", 0.45), ("throughput.eager", 0.65),
            ("jpeg", 0.7), ("throughput.compiled", 0.8), ("methods.compiled", 1.0))


def _run_part(part: str, device, dry: bool, size: dict, result: dict, deadline: float, tmp: Path):
    if part.startswith("methods."):
        variant = part.split(".")[1]
        for name, r in part_methods(device, size, variant, deadline, tmp / part).items():
            result["methods"]["results"].setdefault(name, {})[variant] = r
    elif part.startswith("throughput."):
        result["throughput"]["rows"] += part_throughput(device, size, part.endswith("compiled"), deadline, tmp / part)
    elif part == "ddp":
        result["ddp"] = part_ddp(device, dry, deadline, tmp / part)
    elif part == "puzzlemix":
        result["puzzlemix"] = part_puzzlemix(device, size, tmp / part)
    else:
        rows = result["throughput"]["rows"]
        resnet50 = next((r["mixexp_images_per_s"] for r in rows if r.get("model") == "resnet50"
                         and "mixexp_images_per_s" in r), None)
        result["jpeg"] = part_jpeg(device, size, resnet50, tmp / part)


def run_parts(device, dry: bool, size: dict, budget: Budget, tmp: Path) -> dict:
    result = {"methods": {"tolerance_rel": TOLERANCE[size["tolerance"]], "results": {},
                          "precision": "bf16 autocast + channels_last" if device.type == "cuda" else "float32"},
              "throughput": {"rows": [], "peak_memory": "torch.cuda.max_memory_allocated" if device.type == "cuda"
                             else "not measured on a CPU"},
              "ddp": {}, "puzzlemix": {}, "jpeg": {}, "seconds": {}}
    for part, share in SCHEDULE:
        start = time.perf_counter()
        try:
            _run_part(part, device, dry, size, result, budget.by(share), tmp)
        except Exception as e:  # a part that fails whole is recorded; the others still run
            result[part.split(".")[0]]["error"] = _error(e)
        result["seconds"][part] = time.perf_counter() - start
    result["skipped"] = [f"methods.{n}.{v}" for n, r in result["methods"]["results"].items() for v, x in r.items()
                         if x.get("skipped") == "time budget"]
    result["skipped"] += [f"throughput.{r['model']}" for r in result["throughput"]["rows"] if "skipped" in r]
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dry", action="store_true", help="the same code on the CPU at tiny sizes (CI)")
    p.add_argument("--out", default="gpu_check.json", help="the JSON; the table goes beside it (.md)")
    p.add_argument("--ddp-worker", default=None, help=argparse.SUPPRESS)  # a rank under torchrun (part 3)
    args = p.parse_args(argv)
    if args.ddp_worker:
        ddp_worker(Path(args.ddp_worker), args.dry)
        return 0
    from mixexp.config import register_configs
    from mixexp.io import write_json, write_text

    if not args.dry and not torch.cuda.is_available():
        print("gpu-check: no CUDA device is visible here; run it with DRY=1 (--dry) on a CPU", file=sys.stderr)
        return 2
    register_configs()
    # every method's trainer compiles its own model: a recompilation past dynamo's limit must fail, not fall
    # back to eager while the table says "compiled"
    torch._dynamo.config.recompile_limit = 64
    torch._dynamo.config.fail_on_recompile_limit_hit = True
    if args.dry:  # one thread: a shared CI machine's cores oversubscribed by OpenMP run many times slower
        torch.set_num_threads(1)
    device, size = torch.device("cpu" if args.dry else "cuda"), sizes(args.dry)
    budget = Budget(size["budget_s"])
    with tempfile.TemporaryDirectory() as tmp:
        result = run_parts(device, args.dry, size, budget, Path(tmp))
    result.update(dry=args.dry, torch=torch.__version__, budget_s=size["budget_s"], targets=TARGETS,
                  elapsed_s=time.perf_counter() - budget.start, device=torch.cuda.get_device_name(device)
                  if device.type == "cuda" else f"CPU ({platform.machine()}, {os.cpu_count()} cores)",
                  gpus=torch.cuda.device_count() if torch.cuda.is_available() else 0)
    result["failures"] = failures(result)
    out = Path(args.out)
    write_json(out, result)
    write_text(out.with_suffix(".md"), markdown(result))
    print(markdown(result), end="")
    print(f"written: {out}, {out.with_suffix('.md')}")
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
