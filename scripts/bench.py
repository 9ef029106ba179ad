"""Benchmark of mixexp's training pipeline against the reference loops (``make bench``).

Side-by-side comparisons on whatever device is present (CUDA when visible, else CPU):

1. data pipeline, images/s: mixexp's device-resident loader (shuffle, crop+flip, normalise) vs a
   torchvision DataLoader with per-image PIL RandomCrop/RandomHorizontalFlip/ToTensor/Normalize, same
   uint8 CIFAR-shaped data, same batch size, ``--workers`` worker processes, batches moved to the device;
2. training step, images/s: mixexp's full step (loader + mixup + forward/backward/update, i.e.
   ``Trainer.train_epoch``) vs a bare PyTorch mixup loop written here (same model, batch, optimiser,
   precision), PreActResNet18 at 32x32;
3. method overhead: step time of cutmix, mixup+sem, lamix, puzzlemix relative to mixup (PuzzleMix's
   also without its graph cuts, which the compute plan adds from 5.);
4. host overhead: the same two loops with a model so small that compute is negligible (SimpleCNN of
   width 4 on 8 px images), microseconds and aten operations (kernel launches on a GPU) per step, the
   loader's share, and what removes host time: SGD's for-loop, foreach and fused kernels,
   ``torch.compile`` of the whole step, CUDA graphs (``mode="reduce-overhead"``, CUDA only);
5. PuzzleMix's graph cuts (host CPU, :mod:`mixexp.hostcost`): seconds per batch of 100 at 32 px and of
   64 at 64 px with 1, 2 and every thread;
6. ImageNet JPEGs: decoding alone (PIL, as the loader does, and torchvision's libjpeg-turbo
   ``decode_jpeg``) and the loader's whole per-image work (decode, random-resized crop to 224, flip) in
   one process, i.e. one DataLoader worker; the loader with ``--workers`` processes; the workers one
   ResNet-50 GPU needs at the plan's reference rate.

Every ratio is measured in one process, the sides interleaved (A B A B ...), after a warm-up, and
reported as the ratio of medians over ``--reps`` repetitions. ``--quick`` runs every part at a tiny size
(seconds on a CPU; CI runs it so that the benchmark cannot rot). Results go to stdout and bench.json;
a figure that this device or mode cannot measure is named in ``not_measured`` with the reason.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mixexp.config import CONF_DIR, register_configs  # noqa: E402
from mixexp.data import DeviceLoader, ImageSet  # noqa: E402
from mixexp.hostcost import graph_cut_seconds, thread_counts  # noqa: E402
from mixexp.plan import GRAPH_CUT_SIZES, REFERENCE  # noqa: E402

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
# ResNet-50 at 224 px on one GPU, the rate the workers must feed: timm's RTX 3090 figure, as the plan uses
RESNET50_GPU_IMAGES_PER_S = REFERENCE["macs_per_s"] / 4.11e9
# the host-overhead model: compute negligible, so the step time is the host's (Python, dispatch, launches)
HOST_MODEL = ["dataset.image_size=8", "dataset.crop_padding=1", "model=simplecnn", "model.width=4"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], int], device: torch.device) -> float:
    """Run ``fn`` (which returns the number of images it processed); return images per second."""
    sync(device)
    start = time.perf_counter()
    images = fn()
    sync(device)
    return images / (time.perf_counter() - start)


def interleaved(named: Dict[str, Callable[[], int]], device, reps: int) -> Dict[str, float]:
    """Median images/s of each function, run in turn ``reps`` times after one warm-up round."""
    for fn in named.values():
        fn()
    rates: Dict[str, List[float]] = {name: [] for name in named}
    for _ in range(reps):
        for name, fn in named.items():
            rates[name].append(timed(fn, device))
    return {name: statistics.median(r) for name, r in rates.items()}


class OpCounter(TorchDispatchMode):
    """Counts the aten operations dispatched (forward and backward): on a GPU, each one that computes is a
    kernel launch, i.e. host time per step whatever the GPU's speed."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def ops_per_call(fn: Callable[[], int]) -> int:
    with OpCounter() as counter:
        fn()
    return counter.count


# ------------------------------------------------------------------------------------- data pipeline

class PILCifar(torch.utils.data.Dataset):
    """What torchvision's CIFAR10 does per item: uint8 HWC array -> PIL image -> transforms."""

    def __init__(self, images_hwc, labels, transform) -> None:
        self.images, self.labels, self.transform = images_hwc, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def bench_data(device, n: int, batch: int, workers: int, reps: int) -> Dict[str, float]:
    import torchvision.transforms as T

    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 10, (n,), generator=gen)
    ours = DeviceLoader(ImageSet(images, labels), batch, device=device, mean=CIFAR_MEAN, std=CIFAR_STD,
                        train=True, crop_padding=4, flip=True)
    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(CIFAR_MEAN, CIFAR_STD)])
    reference = torch.utils.data.DataLoader(
        PILCifar(images.permute(0, 2, 3, 1).numpy(), labels.numpy(), transform), batch_size=batch, shuffle=True,
        num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0)

    def run_reference() -> int:
        seen = 0
        for x, y in reference:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            seen += y.shape[0]
        return seen

    return interleaved({"mixexp": loader_pass(ours), "reference": run_reference}, device, reps)


def loader_pass(loader) -> Callable[[], int]:
    """One epoch of a loader's batches, nothing else."""
    def run() -> int:
        return sum(y.shape[0] for _, y in loader)

    return run


# -------------------------------------------------------------------------------------- training

def make_trainer(overrides: List[str], run_dir: Path):
    from hydra import compose, initialize_config_dir

    from mixexp.config import validate
    from mixexp.trainer import Trainer

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    validate(cfg)
    return Trainer(cfg, run_dir)


def trainer_overrides(device, batch: int, steps: int, size: int = 32, num_classes: int = 10) -> List[str]:
    """A synthetic training set of ``batch * steps`` images: one epoch is ``steps`` steps."""
    return ["dataset=synthetic", f"dataset.image_size={size}", f"dataset.num_classes={num_classes}",
            f"dataset.train_size={batch * steps}", "dataset.test_size=16", f"trainer.batch_size={batch}",
            "trainer.epochs=1000", "trainer.progress=log", f"trainer.device={device}", "trainer.checkpoint=false",
            "sched=cosine"]


def normalised_training_set(trainer):
    """The trainer's training images, normalised once, in the trainer's memory format, and their labels."""
    device, data = trainer.device, trainer.train_loader.data
    mean = torch.tensor(trainer.data.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(trainer.data.std, device=device).view(1, -1, 1, 1)
    x_all = (data.images.float() / 255.0 - mean) / std
    if trainer.train_loader.channels_last:
        x_all = x_all.contiguous(memory_format=torch.channels_last)
    return x_all, data.labels


def bare_mixup_loop(trainer, steps: int, batch: int, optimizer=None):
    """A plain mixup loop on the same model/optimiser/precision, over pre-normalised device batches."""
    device, model = trainer.device, trainer.model
    optimizer = optimizer or trainer.optimizer
    x_all, y_all = normalised_training_set(trainer)
    beta = torch.distributions.Beta(torch.tensor(1.0, device=device), torch.tensor(1.0, device=device))
    dtype = trainer.autocast_dtype

    def run() -> int:
        model.train()
        for _ in range(steps):
            idx = torch.randint(0, x_all.shape[0], (batch,), device=device)
            x, y = x_all[idx], y_all[idx]
            lam = beta.sample()
            perm = torch.randperm(batch, device=device)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                out = model(lam * x + (1 - lam) * x[perm])
            out = out.float()
            loss = lam * F.cross_entropy(out, y) + (1 - lam) * F.cross_entropy(out, y[perm])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return steps * batch

    return run


def trainer_epoch(trainer):
    def run() -> int:
        trainer.train_epoch()
        return trainer.train_loader.num_examples

    return run


METHOD_OVERRIDES = {
    "mixup": ["mixer=mixup"], "cutmix": ["mixer=cutmix"], "mixup+sem": ["mixer=mixup", "regularizer=sem"],
    "lamix": ["mixer=lamix"], "puzzlemix": ["mixer=puzzlemix"],
}


def bench_training(device, batch: int, steps: int, reps: int, model: str, methods: List[str], tmp: Path):
    base = [*trainer_overrides(device, batch, steps), f"model={model}"]
    trainers = {m: make_trainer(base + METHOD_OVERRIDES[m], tmp / m) for m in ["mixup", *methods]}
    loops = {"mixexp": trainer_epoch(trainers["mixup"]), "bare": bare_mixup_loop(trainers["mixup"], steps, batch)}
    step = interleaved(loops, device, reps)
    ops = {name: ops_per_call(fn) / steps for name, fn in loops.items()}
    methods_rate = interleaved({m: trainer_epoch(t) for m, t in trainers.items()}, device, reps)
    return step, ops, methods_rate


def puzzlemix_without_cuts(methods_rate: Dict[str, float], batch: int, reps: int) -> Dict[str, float]:
    """PuzzleMix's step time relative to mixup's once its graph cuts (timed alone at the step's batch, 32 px,
    every core as mixer.workers=0) are taken out: what the plan scales by the GPU's speed."""
    if "puzzlemix" not in methods_rate:
        return {}
    cuts = graph_cut_seconds(batch, 32, os.cpu_count() or 1, reps)
    step = batch / methods_rate["puzzlemix"]
    return {"puzzlemix": (step - cuts) / (batch / methods_rate["mixup"])}


# -------------------------------------------------------------------------------------- host overhead

def sgd_variants(trainer) -> Dict[str, torch.optim.Optimizer]:
    """SGD over the trainer's parameters with each of torch's implementations (same hyper-parameters)."""
    o = trainer.cfg.optim
    params = [p for m in (trainer.model, trainer.method) for p in m.parameters()]
    common = dict(lr=o.lr, momentum=o.momentum, nesterov=o.nesterov, weight_decay=o.weight_decay)
    return {"for-loop": torch.optim.SGD(params, foreach=False, **common),
            "foreach": torch.optim.SGD(params, foreach=True, **common),
            "fused": torch.optim.SGD(params, fused=True, **common)}


def compiled_step(trainer, steps: int, batch: int, mode: str):
    """(the bare mixup step compiled whole with torch.compile (``mode``), seconds its compilation took).
    The random draws stay outside, so the graphs hold no random operation."""
    device, model = trainer.device, trainer.model
    optimizer = sgd_variants(trainer)["foreach"]
    x_all, y_all = normalised_training_set(trainer)
    dtype = trainer.autocast_dtype

    @torch.compile(mode=mode)
    def step(x, y, lam, perm):
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            out = model(lam * x + (1 - lam) * x[perm]).float()
        loss = lam * F.cross_entropy(out, y) + (1 - lam) * F.cross_entropy(out, y[perm])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def run() -> int:
        for _ in range(steps):
            idx = torch.randint(0, x_all.shape[0], (batch,), device=device)
            lam = torch.rand((), device=device)
            step(x_all[idx], y_all[idx], lam, torch.randperm(batch, device=device))
        return steps * batch

    start = time.perf_counter()
    run()  # compiles (twice for some modes: CUDA graphs are recorded on a later call)
    run()
    sync(device)
    return run, time.perf_counter() - start


def _compiled_variants(trainer, steps: int, batch: int, compile_step: bool, not_measured: dict):
    variants, compile_s = {}, {}
    modes = {"compiled": "default", "cuda-graphs": "reduce-overhead"}
    for name, mode in modes.items():
        if not compile_step:
            not_measured[f"host_overhead.{name}"] = "--quick skips torch.compile (tens of seconds of compilation)"
        elif name == "cuda-graphs" and trainer.device.type != "cuda":
            not_measured[f"host_overhead.{name}"] = "CUDA graphs need a CUDA device"
        else:
            try:
                variants[name], compile_s[name] = compiled_step(trainer, steps, batch, mode)
            except Exception as e:  # a backend that fails here is a finding, not a crash of the benchmark
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                not_measured[f"host_overhead.{name}"] = f"torch.compile(mode={mode!r}) failed: {first[:200]}"
    return variants, compile_s


def bench_host_overhead(device, batch: int, steps: int, reps: int, tmp: Path, compile_step: bool,
                        not_measured: dict) -> dict:
    """Microseconds and aten operations per step of mixexp's step and the bare loop on a negligible model,
    the loader's share, and the bare step with each SGD implementation and compiled whole."""
    trainer = make_trainer([*trainer_overrides(device, batch, steps), *HOST_MODEL, "mixer=mixup"], tmp / "host")
    loops = {"mixexp": trainer_epoch(trainer), "bare": bare_mixup_loop(trainer, steps, batch),
             "loader": loader_pass(trainer.train_loader)}
    ops = {name: ops_per_call(fn) / steps for name, fn in loops.items()}
    sgd = {f"bare, {kind} SGD": bare_mixup_loop(trainer, steps, batch, opt) for kind, opt in sgd_variants(trainer).items()}
    compiled, compile_s = _compiled_variants(trainer, steps, batch, compile_step, not_measured)
    rates = interleaved({**loops, **sgd, **compiled}, device, reps)
    us = {name: 1e6 * batch / rate for name, rate in rates.items()}
    return {
        "model": f"SimpleCNN width 4, 8 px, batch {batch}, {trainer.cfg.optim.name} ({device})",
        "us_per_step": us,
        "overhead_us_per_step": us["mixexp"] - us["bare"],
        "step_ratio_mixexp_over_bare": us["bare"] / us["mixexp"],
        "ops_per_step": ops,
        # host time per aten operation: the loader's (its tensors are tiny; on a GPU each op is a launch)
        "us_per_op": us["loader"] / ops["loader"],
        "compile_s": compile_s,
    }


# -------------------------------------------------------------------------------------- host: PuzzleMix, JPEG

def bench_graph_cuts(reps: int) -> List[dict]:
    """PuzzleMix's cuts per batch, for its CIFAR and Tiny-ImageNet batches, with 1, 2 and every thread."""
    return [{"batch": batch, "size": size,
             "s_per_batch": {str(t): graph_cut_seconds(batch, size, t, reps) for t in thread_counts()}}
            for batch, size in GRAPH_CUT_SIZES]


def write_jpegs(folder: Path, n: int) -> List[str]:
    """``n`` JPEGs of ImageNet's typical size (500 x 375) in 10 class folders; their relative paths."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    files = []
    for i in range(n):
        path = folder / f"c{i % 10}" / f"{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        # smooth random images compress like photos (noise would make every JPEG unusually large)
        small = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        Image.fromarray(small).resize((500, 375), Image.BILINEAR).save(path, quality=90)
        files.append(str(path.relative_to(folder)))
    return files


def jpeg_loader(device, folder: Path, files: List[str], batch: int, workers: int):
    from mixexp.data.folder import FolderSet, StreamingLoader

    data = FolderSet(str(folder), files, torch.tensor([i % 10 for i in range(len(files))]),
                     [f"c{c}" for c in range(10)], num_workers=workers)
    return StreamingLoader(data, batch, device=device, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                           train=True, flip=True, drop_last=True)


def jpeg_decode_rates(folder: Path, files: List[str], reps: int) -> Dict[str, float]:
    """images/s of decoding alone in this process on one thread: PIL (the loader's decode_rgb) and torchvision."""
    from torchvision.io import decode_jpeg, read_file

    from mixexp.data.folder import decode_rgb

    paths = [folder / f for f in files]

    def pil() -> int:
        return sum(1 for p in paths if decode_rgb(p) is not None)

    def tv() -> int:
        return sum(1 for p in paths if decode_jpeg(read_file(str(p))) is not None)

    return interleaved({"pil": pil, "torchvision_cpu": tv}, torch.device("cpu"), reps)


def jpeg_worker_rates(device, folder: Path, files: List[str], batch: int, reps: int):
    """(decoding alone by library, the loader's whole per-image work), images/s on one thread as in a
    DataLoader worker: the loader with no worker process decodes, crops and flips in this one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        decode = jpeg_decode_rates(folder, files, reps)
        per_worker = interleaved({"w": loader_pass(jpeg_loader(device, folder, files, batch, 0))}, device, reps)["w"]
    finally:
        torch.set_num_threads(threads)
    return decode, per_worker


def bench_jpeg(device, n: int, batch: int, workers: int, reps: int, tmp: Path) -> dict:
    files = write_jpegs(tmp, n)
    decode, per_worker = jpeg_worker_rates(device, tmp, files, batch, reps)
    streaming = interleaved({"s": loader_pass(jpeg_loader(device, tmp, files, batch, workers))}, device,
                            max(1, reps // 2))["s"]
    return {
        "decode_images_per_s": decode,
        "worker_images_per_s": per_worker,
        "streaming_images_per_s": streaming,
        "workers": workers,
        "resnet50_gpu_images_per_s": RESNET50_GPU_IMAGES_PER_S,
        "workers_per_resnet50_gpu": math.ceil(RESNET50_GPU_IMAGES_PER_S / per_worker),
    }


# -------------------------------------------------------------------------------------- main

def sizes(args, cuda: bool) -> dict:
    """The sizes of every part: an explicit option, else --quick's tiny ones, else the device's."""
    pick = (lambda quick, cpu, gpu: quick if args.quick else (gpu if cuda else cpu))  # noqa: E731
    return {
        "reps": args.reps or pick(2, 5, 5),
        "data_n": args.data_n or pick(2048, 10000, 50000), "data_batch": 128,
        "workers": args.workers if args.workers is not None else min(8, os.cpu_count() or 1),
        # the CPU configuration is kept small so that the whole benchmark takes minutes on 2 cores
        "train_batch": args.batch or pick(8, 32, 512), "train_steps": args.steps or pick(2, 4, 50),
        "host_batch": 32, "host_steps": pick(20, 100, 200),
        "jpegs": args.jpegs or pick(48, 256, 2048), "jpeg_batch": pick(16, 64, 64),
        "cut_reps": pick(1, 3, 3), "model": args.model, "compile": not args.quick, "threads": torch.get_num_threads(),
    }


def run_all(device, size: dict, methods: List[str]) -> dict:
    not_measured: Dict[str, str] = {}
    reps = size["reps"]
    data = bench_data(device, size["data_n"], size["data_batch"], size["workers"], reps)
    with tempfile.TemporaryDirectory() as tmp:
        step, step_ops, methods_rate = bench_training(device, size["train_batch"], size["train_steps"], reps, size["model"],
                                            methods, Path(tmp))
        host = bench_host_overhead(device, size["host_batch"], size["host_steps"], reps, Path(tmp),
                                   size["compile"], not_measured)
    without_cuts = puzzlemix_without_cuts(methods_rate, size["train_batch"], size["cut_reps"])
    cuts = bench_graph_cuts(size["cut_reps"])
    with tempfile.TemporaryDirectory() as tmp:
        jpeg = bench_jpeg(device, size["jpegs"], size["jpeg_batch"], size["workers"], reps, Path(tmp))
    if device.type != "cuda":
        not_measured["jpeg.decode_images_per_s.torchvision_cuda"] = "torchvision's decode_jpeg on the GPU needs CUDA"
    not_measured["jpeg.dali"] = "NVIDIA DALI is not a dependency of mixexp (and needs CUDA)"
    return {
        "data_images_per_s": data,
        "data_speedup": data["mixexp"] / data["reference"],
        "step_images_per_s": step,
        "step_ratio_mixexp_over_bare": step["mixexp"] / step["bare"],
        "step_ops_per_step": step_ops,
        # a floor of the host's time per step in eager mode (the ops alone, no Python around them): on a GPU,
        # the step is host-bound when this exceeds the GPU's time per step
        "step_host_floor_ms_per_step": {k: v * host["us_per_op"] / 1e3 for k, v in step_ops.items()},
        "method_images_per_s": methods_rate,
        "method_step_time_vs_mixup": {m: methods_rate["mixup"] / r for m, r in methods_rate.items()},
        "method_step_time_vs_mixup_without_cuts": without_cuts,
        "host_overhead": host,
        "graph_cuts": cuts,
        "jpeg": jpeg,
        "not_measured": not_measured,
    }


def report(result: dict) -> str:
    s, h, j = result["step_images_per_s"], result["host_overhead"], result["jpeg"]
    d, size = result["data_images_per_s"], result["config"]
    lines = [f"device: {result['device']}  torch {result['torch']}{'  (--quick)' if result['quick'] else ''}",
             f"{'comparison':<52}{'mixexp':>12}{'reference':>12}{'ratio':>9}",
             f"{'1. data pipeline, images/s (batch 128)':<52}{d['mixexp']:>12.0f}{d['reference']:>12.0f}"
             f"{result['data_speedup']:>8.1f}x",
             f"{'2. train step ' + size['model'] + ', images/s (b' + str(size['train_batch']) + ')':<52}"
             f"{s['mixexp']:>12.1f}{s['bare']:>12.1f}{result['step_ratio_mixexp_over_bare']:>8.2f}x",
             f"   aten ops/step: mixexp {result['step_ops_per_step']['mixexp']:.0f}, bare "
             f"{result['step_ops_per_step']['bare']:.0f}; host floor at {h['us_per_op']:.1f} us/op: "
             + ", ".join(f"{k} {v:.1f} ms" for k, v in result["step_host_floor_ms_per_step"].items()),
             "3. step time relative to mixup:"]
    for m, ratio in result["method_step_time_vs_mixup"].items():
        lines.append(f"   {m:<49}{result['method_images_per_s'][m]:>12.1f}{'':>12}{ratio:>8.2f}x")
    for m, ratio in result["method_step_time_vs_mixup_without_cuts"].items():
        lines.append(f"   {m + ' without its graph cuts':<49}{'':>24}{ratio:>8.2f}x")
    lines.append(f"4. host overhead, {h['model']}: {h['overhead_us_per_step']:.0f} us/step over the bare loop "
                 f"({h['step_ratio_mixexp_over_bare']:.2f}x); aten ops/step: " +
                 ", ".join(f"{k} {v:.0f}" for k, v in h["ops_per_step"].items()))
    lines.append("   us/step: " + ", ".join(f"{k} {v:.0f}" for k, v in h["us_per_step"].items()))
    for row in result["graph_cuts"]:
        lines.append(f"5. PuzzleMix graph cuts, batch {row['batch']} at {row['size']} px, ms/batch by threads: " +
                     ", ".join(f"{t}: {1e3 * v:.1f}" for t, v in row["s_per_batch"].items()))
    lines.append(f"6. JPEG 500x375, one process: decode {j['decode_images_per_s']['pil']:.0f}/s (PIL), "
                 f"{j['decode_images_per_s']['torchvision_cpu']:.0f}/s (torchvision); decode+crop+flip "
                 f"{j['worker_images_per_s']:.0f}/s per worker; loader with {j['workers']} workers "
                 f"{j['streaming_images_per_s']:.0f}/s; one ResNet-50 GPU at {j['resnet50_gpu_images_per_s']:.0f}/s "
                 f"needs {j['workers_per_resnet50_gpu']} workers")
    lines += [f"not measured: {k}: {v}" for k, v in result["not_measured"].items()]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--quick", action="store_true", help="every part at a tiny size (seconds on a CPU), as CI runs it")
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("--data-n", type=int, default=None, help="images in the data benchmark")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="steps per repetition of the training benchmark")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: CPU count, at most 8)")
    p.add_argument("--model", default="preactresnet18")
    p.add_argument("--methods", default="cutmix,mixup+sem,lamix,puzzlemix")
    p.add_argument("--jpegs", type=int, default=None, help="synthetic JPEGs in the ImageNet benchmark")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads on a CPU (default: 1 with --quick, else every core)")
    p.add_argument("--out", default="bench.json")
    args = p.parse_args()

    register_configs()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    cuda = device.type == "cuda"
    if not cuda:  # a shared machine's cores oversubscribed by OpenMP threads run many times slower: --quick takes one
        torch.set_num_threads(args.threads or (1 if args.quick else os.cpu_count() or 1))
    size = sizes(args, cuda)
    result = {
        "device": torch.cuda.get_device_name(device) if cuda else
        f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)",
        "torch": torch.__version__, "quick": args.quick, "config": size,
        **run_all(device, size, [m for m in args.methods.split(",") if m]),
    }
    from mixexp.io import write_json

    write_json(Path(args.out), result)
    print(report(result))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
