"""Benchmark of mixexp's training pipeline against the reference loops (``make bench``).

Three side-by-side comparisons on whatever device is present (CUDA when visible, else CPU):

1. data pipeline, images/s: mixexp's device-resident loader (shuffle, crop+flip, normalise) vs a
   torchvision DataLoader with per-image PIL RandomCrop/RandomHorizontalFlip/ToTensor/Normalize, same
   uint8 CIFAR-shaped data, same batch size, ``--workers`` worker processes, batches moved to the device;
2. training step, images/s: mixexp's full step (loader + mixup + forward/backward/update, i.e.
   ``Trainer.train_epoch``) vs a bare PyTorch mixup loop written here (same model, batch, optimiser,
   precision), PreActResNet18 at 32x32;
3. method overhead: step time of cutmix, mixup+sem, lamix, puzzlemix relative to mixup;
4. ImageNet streaming: images/s of the JPEG loader (decode, random-resized crop to 224, flip, in
   ``--workers`` DataLoader processes, batches moved to the device) over a synthetic folder of 500x375
   JPEGs (ImageNet's typical size), i.e. how many GPUs' worth of ImageNet training one host can feed.

Every ratio is measured in one process, the two sides interleaved (A B A B ...), after a warm-up,
and reported as the ratio of medians over ``--reps`` repetitions. Results go to stdout and bench.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mixexp.config import CONF_DIR, register_configs  # noqa: E402
from mixexp.data import DeviceLoader, ImageSet  # noqa: E402

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


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

    def run_ours() -> int:
        seen = 0
        for x, y in ours:
            seen += y.shape[0]
        return seen

    def run_reference() -> int:
        seen = 0
        for x, y in reference:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            seen += y.shape[0]
        return seen

    return interleaved({"mixexp": run_ours, "reference": run_reference}, device, reps)


# -------------------------------------------------------------------------------------- training

def bench_streaming(device, n: int, batch: int, workers: int, reps: int, tmp: Path) -> Dict[str, float]:
    """images/s of the ImageNet loader (StreamingLoader over a FolderSet) on ``n`` synthetic JPEGs."""
    import numpy as np
    from PIL import Image

    from mixexp.data.folder import FolderSet, StreamingLoader

    rng = np.random.default_rng(0)
    files = []
    for i in range(n):
        path = tmp / f"c{i % 10}" / f"{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        # smooth random images compress like photos (noise would make every JPEG unusually large)
        small = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        Image.fromarray(small).resize((500, 375), Image.BILINEAR).save(path, quality=90)
        files.append(str(path.relative_to(tmp)))
    data = FolderSet(str(tmp), files, torch.tensor([i % 10 for i in range(n)]), [f"c{c}" for c in range(10)],
                     num_workers=workers)
    loader = StreamingLoader(data, batch, device=device, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                             train=True, flip=True, drop_last=True)

    def run() -> int:
        return sum(y.shape[0] for _, y in loader)

    return interleaved({"streaming": run}, device, reps)


def make_trainer(overrides: List[str], run_dir: Path):
    from hydra import compose, initialize_config_dir

    from mixexp.config import validate
    from mixexp.trainer import Trainer

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    validate(cfg)
    return Trainer(cfg, run_dir)


def bare_mixup_loop(trainer, steps: int, batch: int):
    """A plain mixup loop on the same model/optimiser/precision, over pre-normalised device batches."""
    device, model, optimizer = trainer.device, trainer.model, trainer.optimizer
    data = trainer.train_loader.data
    x_all = ((data.images.float() / 255.0) - torch.tensor(CIFAR_MEAN, device=device).view(1, 3, 1, 1)) \
        / torch.tensor(CIFAR_STD, device=device).view(1, 3, 1, 1)
    if trainer.train_loader.channels_last:
        x_all = x_all.contiguous(memory_format=torch.channels_last)
    y_all = data.labels
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


def bench_training(device, batch: int, steps: int, reps: int, model: str, methods: List[str], tmp: Path):
    base = [
        "dataset=synthetic", "dataset.image_size=32", f"dataset.train_size={batch * steps}", "dataset.test_size=16",
        f"model={model}", f"trainer.batch_size={batch}", "trainer.epochs=1000", "trainer.progress=log",
        f"trainer.device={device}", "trainer.checkpoint=false", "sched=cosine",
    ]
    method_overrides = {
        "mixup": ["mixer=mixup"], "cutmix": ["mixer=cutmix"], "mixup+sem": ["mixer=mixup", "regularizer=sem"],
        "lamix": ["mixer=lamix"], "puzzlemix": ["mixer=puzzlemix"],
    }
    trainers = {m: make_trainer(base + method_overrides[m], tmp / m) for m in ["mixup", *methods]}
    step = interleaved({"mixexp": trainer_epoch(trainers["mixup"]),
                        "bare": bare_mixup_loop(trainers["mixup"], steps, batch)}, device, reps)
    methods_rate = interleaved({m: trainer_epoch(t) for m, t in trainers.items()}, device, reps)
    return step, methods_rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--data-n", type=int, default=None, help="images in the data benchmark")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="steps per repetition of the training benchmark")
    p.add_argument("--workers", type=int, default=None, help="reference DataLoader workers (default: CPU count, at most 8)")
    p.add_argument("--model", default="preactresnet18")
    p.add_argument("--methods", default="cutmix,mixup+sem,lamix,puzzlemix")
    p.add_argument("--jpegs", type=int, default=None, help="synthetic JPEGs in the ImageNet streaming benchmark")
    p.add_argument("--out", default="bench.json")
    args = p.parse_args()

    import os
    import tempfile

    register_configs()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    cuda = device.type == "cuda"
    # the CPU configuration is kept small so that the whole benchmark takes a few minutes on 2 cores
    batch = args.batch or (512 if cuda else 32)
    steps = args.steps or (50 if cuda else 4)
    data_n = args.data_n or (50000 if cuda else 10000)
    workers = args.workers if args.workers is not None else min(8, os.cpu_count() or 1)
    methods = [m for m in args.methods.split(",") if m]
    if not cuda:
        torch.set_num_threads(os.cpu_count() or 1)

    data = bench_data(device, data_n, 128, workers, args.reps)
    with tempfile.TemporaryDirectory() as tmp:
        step, methods_rate = bench_training(device, batch, steps, args.reps, args.model, methods, Path(tmp))
    with tempfile.TemporaryDirectory() as tmp:
        jpegs = args.jpegs or (2048 if cuda else 256)
        streaming = bench_streaming(device, jpegs, 64, workers, max(1, args.reps // 2), Path(tmp))["streaming"]

    result = {
        "device": torch.cuda.get_device_name(device) if cuda else f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)",
        "torch": torch.__version__,
        "config": {"reps": args.reps, "data_n": data_n, "data_batch": 128, "workers": workers, "train_batch": batch,
                   "train_steps": steps, "model": args.model},
        "data_images_per_s": data,
        "data_speedup": data["mixexp"] / data["reference"],
        "step_images_per_s": step,
        "step_ratio_mixexp_over_bare": step["mixexp"] / step["bare"],
        "method_images_per_s": methods_rate,
        "method_step_time_vs_mixup": {m: methods_rate["mixup"] / r for m, r in methods_rate.items()},
        "imagenet_streaming_images_per_s": streaming,
        "imagenet_streaming_images_per_s_per_worker": streaming / max(1, workers),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")

    print(f"device: {result['device']}  torch {result['torch']}")
    print(f"{'comparison':<44}{'mixexp':>12}{'reference':>12}{'ratio':>9}")
    print(f"{'1. data pipeline, images/s (batch 128)':<44}{data['mixexp']:>12.0f}{data['reference']:>12.0f}"
          f"{result['data_speedup']:>8.1f}x")
    print(f"{'2. train step ' + args.model + ', images/s (b' + str(batch) + ')':<44}{step['mixexp']:>12.1f}"
          f"{step['bare']:>12.1f}{result['step_ratio_mixexp_over_bare']:>8.2f}x")
    print("3. step time relative to mixup:")
    for m, ratio in result["method_step_time_vs_mixup"].items():
        print(f"   {m:<41}{methods_rate[m]:>12.1f}{'':>12}{ratio:>8.2f}x")
    print(f"4. ImageNet JPEG streaming, images/s ({workers} workers): {streaming:.0f}"
          f" ({streaming / max(1, workers):.0f} per worker)")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
