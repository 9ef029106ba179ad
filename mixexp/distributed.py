"""One run on many processes (``torchrun``): the process group, DDP around the method's step, gathers.

    torchrun --nproc_per_node=4 -m mixexp.train ... hydra.run.dir=runs/x
    python -m mixexp.distributed --nproc_per_node=4 -m mixexp.train ...   # the same, a failure said in one line

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT (:class:`~mixexp.train_utils.DistEnv`
reads them). Each rank trains on its shard of every epoch's permutation; DistributedDataParallel
all-reduces (averages) the gradients, so the ranks hold the same weights after every step. Backend:
NCCL when the run's device is CUDA (rank r uses ``cuda:LOCAL_RANK``), gloo on the CPU. A single process
(WORLD_SIZE unset or 1) never creates a process group, and every helper here is then the identity.
"""

from __future__ import annotations

import atexit
import logging
import re
import signal
import sys
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
from torch import nn

from mixexp.errors import ConfigError


def is_active() -> bool:
    """Whether this process belongs to a process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_active() else 0


def is_main() -> bool:
    return rank() == 0


def setup(device: torch.device, env) -> torch.device:
    """Join the process group of ``env`` (a :class:`DistEnv` with world_size > 1); return this rank's device.

    CUDA runs use NCCL and ``cuda:LOCAL_RANK`` (one GPU per rank, whatever index ``trainer.device`` named);
    CPU runs use gloo. The group is destroyed when the process exits. Ranks other than 0 log warnings
    only, so that the run's log holds each line once."""
    if device.type == "cuda":
        if env.local_rank >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK={env.local_rank} but only {torch.cuda.device_count()} CUDA device(s) "
                              "are visible: start torchrun with --nproc_per_node <= the GPU count")
        device = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=env.rank,
                                world_size=env.world_size, device_id=device if device.type == "cuda" else None)
        atexit.register(destroy)
    if env.rank != 0:
        logging.getLogger("mixexp").setLevel(logging.WARNING)
    return device


def destroy() -> None:
    """Leave the process group (a no-op when there is none)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every rank gets here (a no-op for a single process)."""
    if is_active():
        dist.barrier()


def _collective_device(tensor: torch.Tensor) -> torch.device:
    # NCCL moves CUDA tensors only; gloo moves CPU tensors (and CUDA ones through the host)
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else tensor.device


def broadcast_from_main(tensor: torch.Tensor) -> torch.Tensor:
    """Rank 0's ``tensor`` on every rank (same shape and dtype everywhere); the identity for a single process."""
    if not is_active():
        return tensor
    moved = tensor.to(_collective_device(tensor))
    dist.broadcast(moved, src=0)
    return moved.to(tensor.device)


def sum_across_ranks(*values) -> list:
    """Each of ``values`` (scalar tensors or numbers) summed over the ranks in one all-reduce, each given
    back as it came (a tensor of its dtype and device, or a number of its type); for a single process,
    ``values`` unchanged. Used once per epoch (it reads the host for the numbers)."""
    if not is_active():
        return list(values)
    device = next((v.device for v in values if isinstance(v, torch.Tensor)), torch.device("cpu"))
    stacked = torch.stack([torch.as_tensor(v, dtype=torch.float64, device=device).reshape(()) for v in values])
    moved = stacked.to(_collective_device(stacked))
    dist.all_reduce(moved)
    sums = moved.to(device).unbind()
    return [s.to(v.dtype) if isinstance(v, torch.Tensor) else type(v)(s.item()) for v, s in zip(values, sums)]


def broadcast_buffers(*modules: nn.Module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank, in place. DDP does this at the
    start of each forward; after an epoch's last step each rank still holds its own shard's statistics,
    so evaluation (sharded over ranks) and the checkpoint need them made equal first."""
    if not is_active():
        return
    for module in modules:
        for buffer in module.buffers():
            buffer.copy_(broadcast_from_main(buffer))


def rank_batch_size(batch_size: int, world_size: int) -> int:
    """A rank's share of the global ``trainer.batch_size`` (which must divide evenly over the ranks)."""
    if batch_size % world_size:
        raise ConfigError(f"trainer.batch_size={batch_size} is the global batch and must divide evenly over "
                          f"the {world_size} ranks: use a multiple of {world_size}")
    return batch_size // world_size


def gather_interleaved(shard: torch.Tensor) -> torch.Tensor:
    """The whole tensor of which each rank holds rows ``rank::world_size`` (shards differ in length by at
    most one): ``out[r::W] = shard_r``, so rows come back in their original order, on every rank.

    Shards are padded to the longest before ``all_gather`` (which needs equal shapes), then trimmed."""
    if not is_active():
        return shard
    world = dist.get_world_size()
    device = _collective_device(shard)
    local = shard.to(device)
    lengths = torch.zeros(world, dtype=torch.int64, device=device)
    lengths[dist.get_rank()] = local.shape[0]
    dist.all_reduce(lengths)
    sizes = lengths.tolist()  # one host read per gather (once per evaluation, not per step)
    padded = local.new_zeros((max(sizes), *local.shape[1:]))
    padded[: local.shape[0]] = local
    pieces = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(pieces, padded)
    out = local.new_empty((sum(sizes), *local.shape[1:]))
    for r, (piece, size) in enumerate(zip(pieces, sizes)):
        out[r::world] = piece[:size]
    return out.to(shard.device)


class StepModule(nn.Module):
    """The unit DDP wraps: ``forward(x, y) = method.step(model, x, y)``.

    The method owns the step (mixing, the forward passes it needs, the loss), so DDP cannot wrap the
    model's own ``forward``; holding model and method as submodules puts every trainable parameter,
    a method's own (LaMix's head) included, under DDP's gradient all-reduce and buffer broadcast."""

    def __init__(self, model: nn.Module, method: nn.Module) -> None:
        super().__init__()
        self.model, self.method = model, method

    def forward(self, x: torch.Tensor, y: torch.Tensor):
        return self.method.step(self.model, x, y)


def wrap_step(model: nn.Module, method: nn.Module, device: torch.device) -> nn.Module:
    """DDP around :class:`StepModule`.

    ``find_unused_parameters`` is on exactly when the method owns trainable parameters: those may get no
    gradient on some steps (LaMix's head on its original, unmixed batches; a regularizer's parameters
    once ES stops mixing), and DDP must then mark them ready itself. Every step runs ``model.features``
    and ``model.classifier``, so a model's parameters alone never need the extra graph traversal."""
    method_trains = any(p.requires_grad for p in method.parameters())
    return nn.parallel.DistributedDataParallel(
        StepModule(model, method), device_ids=[device] if device.type == "cuda" else None,
        find_unused_parameters=method_trains,
    )


def convert_sync_bn(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` with its BatchNorm layers as SyncBatchNorm (batch statistics over all ranks' shards).

    SyncBatchNorm runs on CUDA only; on the CPU this raises a one-line ConfigError."""
    if device.type != "cuda":
        raise ConfigError(f"trainer.sync_bn=true needs CUDA devices (SyncBatchNorm has no CPU kernel); "
                          f"this run's device is {device}: set trainer.sync_bn=false")
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


# ---------------------------------------------------------------------------------------------- launcher


def rank_lost(e: BaseException) -> bool:
    """Whether ``e``, raised while training on several ranks, says that another rank's process is gone (its
    connection closed, a collective failed) rather than a bug of this rank."""
    return is_active() and (isinstance(e, dist.DistError) or re.search(
        r"Connection (reset|closed) by peer|gloo/transport|NCCL (error|communicator was aborted)", str(e)) is not None)


def failure_line(failures: Dict[int, object], first: int) -> Tuple[str, int]:
    """The one line (and exit code) for a torchrun job whose ranks failed: ``failures`` maps a global rank to
    torchrun's ProcessFailure, ``first`` is the rank that failed first. A line mixexp wrote (the same on every
    rank: said once) comes first; else a rank ended by a signal, with what a surviving rank said of the run's
    folder; else the first failure, whose traceback that rank printed."""
    from mixexp.cli import LAUNCHER_KEY
    from mixexp.errors import EXIT_USAGE

    ours = {r: f.error_file_data for r, f in sorted(failures.items())
            if isinstance(f.error_file_data, dict) and LAUNCHER_KEY in f.error_file_data}
    user = [data for data in ours.values() if data[LAUNCHER_KEY] == EXIT_USAGE]
    if user:
        return user[0]["message"]["message"], EXIT_USAGE
    killed = [r for r, f in sorted(failures.items()) if f.exitcode < 0 and r not in ours and
              (f.exitcode != -signal.SIGTERM or r == first)]  # SIGTERM: torchrun stopping the others
    said = next((data["message"]["message"] for data in ours.values()), None)
    if killed:
        f = failures[killed[0]]
        return f"rank {killed[0]} (pid {f.pid}) was ended by {f.signal_name()}" + (f"; {said}" if said else ""), 128 - f.exitcode
    if said is not None:
        return said, next(int(data[LAUNCHER_KEY]) for data in ours.values())
    f = failures[first]
    return f"rank {first} (pid {f.pid}) failed with exit code {f.exitcode} (its traceback is above)", f.exitcode or 1


def launch(argv: Optional[Sequence[str]] = None) -> None:
    """``python -m mixexp.distributed TORCHRUN_ARGS``: torchrun (the same arguments), but a failed job is said
    in one line and its exit code (2 for a user error: every rank refused the same input) instead of
    torchrun's report block, whose ``traceback`` fields hold the ranks' lines."""
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    from mixexp.cli import fail

    quiet = logging.getLogger("torch.distributed.elastic")  # its lines on a failure are what the one line says
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    try:
        torchrun.run(torchrun.parse_args(list(sys.argv[1:] if argv is None else argv)))
    except ChildFailedError as e:
        line, code = failure_line(e.failures, e.get_first_failure()[0])
        fail(line, code)
    except SignalException as e:  # Ctrl-C or a kill of torchrun: it has stopped the ranks
        fail(f"interrupted ({signal.Signals(e.sigval).name}); resume with the same command and resume=true", 128 + e.sigval)


if __name__ == "__main__":
    launch()
