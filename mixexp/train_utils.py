"""Optimisers, learning-rate schedules and device/seed set-up used by the trainer."""

from __future__ import annotations

import math
import os
import random
from typing import Optional

import numpy as np
import torch


NORM_LAYERS = (torch.nn.modules.batchnorm._NormBase, torch.nn.GroupNorm, torch.nn.LayerNorm)


def decay_groups(modules, weight_decay: float, norm_weight_decay: bool) -> list:
    """Parameter groups of ``modules``: every parameter decays by ``weight_decay``, except, when
    ``norm_weight_decay`` is false, the scale and shift of normalisation layers (BatchNorm, GroupNorm,
    LayerNorm), which get 0: uncertainty-baselines' deterministic.py adds L2 on kernels and biases only."""
    norm, rest, seen = [], [], set()
    for module in modules:
        for sub in module.modules():
            for p in sub.parameters(recurse=False):
                if id(p) not in seen and p.requires_grad:
                    seen.add(id(p))
                    (norm if isinstance(sub, NORM_LAYERS) and not norm_weight_decay else rest).append(p)
    groups = [{"params": rest, "weight_decay": weight_decay}]
    return groups + ([{"params": norm, "weight_decay": 0.0}] if norm else [])


def build_sgd(cfg, params, device: torch.device) -> torch.optim.Optimizer:
    """SGD with momentum, optional Nesterov, weight decay; the multi-tensor (foreach) kernel on CUDA.

    ``params``: modules (their parameters in groups by :func:`decay_groups`, which ``optim.bn_weight_decay``
    needs) or parameters (all decayed alike)."""
    params = list(params)
    if params and all(isinstance(p, torch.nn.Module) for p in params):
        params = decay_groups(params, cfg.weight_decay, cfg.get("bn_weight_decay", True))
    elif not cfg.get("bn_weight_decay", True):
        from mixexp.errors import ConfigError

        raise ConfigError("optim.bn_weight_decay=false needs the model's modules to find its BatchNorm layers")
    return torch.optim.SGD(
        params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
        weight_decay=cfg.weight_decay, foreach=device.type == "cuda" or None,
    )


OPTIMIZERS = {"sgd": build_sgd}


def scaled_schedule(milestones, warmup_epochs: int, reference_epochs: Optional[int], epochs: int):
    """(milestones, warm-up epochs) of a run of ``epochs`` epochs: as written or, given ``reference_epochs`` N,
    scaled from an N-epoch run to floor(m * epochs / N), as uncertainty-baselines @ 7af7042
    baselines/imagenet/utils.py LearningRateSchedule does (``(start_epoch * self.num_epochs) // 90``, the
    warm-up's end included)."""
    milestones, warmup = [int(m) for m in milestones], int(warmup_epochs)
    if reference_epochs:
        return [m * epochs // reference_epochs for m in milestones], warmup * epochs // reference_epochs
    return milestones, warmup


def effective_schedule(cfg, epochs: int):
    """:func:`scaled_schedule` of a ``sched`` config node."""
    return scaled_schedule(cfg.milestones, cfg.warmup_epochs, cfg.get("reference_epochs"), epochs)


def multistep_factor(cfg, epochs: int, base_lr: float):
    """lr multiplier at epoch e: gamma ** (number of milestones <= e)."""
    milestones = effective_schedule(cfg, epochs)[0]
    return lambda e: cfg.gamma ** sum(e >= m for m in milestones)


def cosine_factor(cfg, epochs: int, base_lr: float):
    """lr(e) = min_lr + (base_lr - min_lr) * (1 + cos(pi * e / epochs)) / 2."""
    floor = cfg.min_lr / base_lr
    return lambda e: floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * e / epochs))


SCHEDULERS = {"multistep": multistep_factor, "cosine": cosine_factor}


def build_scheduler(cfg, optimizer, epochs: int, base_lr: float) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-epoch schedule (stepped once at the end of each epoch), with optional linear warm-up."""
    factor = SCHEDULERS[cfg.name](cfg, epochs, base_lr)
    warmup = effective_schedule(cfg, epochs)[1]

    def lr_lambda(e: int) -> float:
        scale = (e + 1) / (warmup + 1) if e < warmup else 1.0
        return scale * factor(e)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)


def resolve_device(name: str, job_num: Optional[int] = None) -> torch.device:
    """``auto``: CUDA when visible, else the CPU. A sweep's job ``job_num`` (Hydra's ``hydra.job.num``,
    None outside a sweep) takes ``cuda:(job_num mod device count)`` when several GPUs are visible, so
    that jobs launched side by side (``hydra/launcher=joblib``) spread over them."""
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        count = torch.cuda.device_count()
        return torch.device("cuda", job_num % count) if job_num is not None and count > 1 else torch.device("cuda")
    from mixexp.errors import ConfigError

    try:
        device = torch.device(name)
    except RuntimeError as e:  # not a device name torch knows
        raise ConfigError(f"device {name!r} is not allowed: {str(e).splitlines()[0]} (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"trainer.device={name!r} is not allowed here: no CUDA device is visible (use auto or cpu)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"trainer.device={name!r} is not allowed here: {torch.cuda.device_count()} CUDA device(s) "
                          f"are visible (cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    return device


def sweep_job_num(hydra_cfg) -> Optional[int]:
    """The job's number within a sweep (``-m``), None for a single run (where Hydra leaves it unset)."""
    from hydra.types import RunMode

    return int(hydra_cfg.job.num) if hydra_cfg.mode == RunMode.MULTIRUN else None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # seeds the CPU and every CUDA generator


def rng_state() -> dict:
    """Every random generator's state as tensors, lists and numbers only, so that a checkpoint loads with
    ``torch.load(weights_only=True)``: python's ``(version, 625 ints, gauss_next)``, numpy's
    ``(bit generator name, uint32 key tensor, pos, has_gauss, cached_gaussian)``, torch's byte tensors."""
    version, internal, gauss_next = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state = {
        "python": [version, list(internal), gauss_next],
        "numpy": [str(name), torch.from_numpy(np.array(keys, dtype=np.uint32)), int(pos), int(has_gauss),
                  float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
        state["cuda_device"] = torch.cuda.current_device()  # the generator this process draws from
    return state


def rng_state_problem(state) -> Optional[str]:
    """Why ``state`` is not a state :func:`rng_state` returned (None: it is one): each part is restored into a
    fresh generator of its library, which checks it, so the generators this process draws from stay as they are."""
    try:
        version, internal, gauss_next = state["python"]
        random.Random().setstate((version, tuple(internal), gauss_next))
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.RandomState().set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        torch.Generator().set_state(state["torch"])
        cuda = state.get("cuda", [])
        if not isinstance(cuda, list) or not all(isinstance(t, torch.Tensor) and t.dtype == torch.uint8 for t in cuda):
            return "its cuda states are not a list of byte tensors"
        if not isinstance(state.get("cuda_device", 0), int):
            return "its cuda_device is not a device index"
    except Exception as e:  # noqa: BLE001 - whatever a library raises on restoring it, the state is damaged
        return (str(e).strip().splitlines() or [type(e).__name__])[0]
    return None


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        # as many GPUs as are visible now (a run saved by torchrun on 4 GPUs resumes on 1); the saving
        # process's own stream goes to this process's device, so that torchrun's ranks (each on
        # cuda:LOCAL_RANK) all continue rank 0's stream, in step, as they started from one seed
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])
        if "cuda_device" in state and state["cuda_device"] < len(state["cuda"]):
            torch.cuda.set_rng_state(state["cuda"][state["cuda_device"]])


class DistEnv:
    """Rank and world size from the launcher's environment (torchrun sets RANK/WORLD_SIZE/LOCAL_RANK).

    A single process is rank 0 of 1. Only rank 0 writes files and logs; the loader shards by rank.
    """

    def __init__(self) -> None:
        self.rank = int(os.environ.get("RANK", 0))
        self.world_size = int(os.environ.get("WORLD_SIZE", 1))
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))

    @property
    def is_main(self) -> bool:
        return self.rank == 0
