"""Checkpoints on disk: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint may come from anywhere (a shared folder, a download), and unpickling runs whatever code
the file names. So it is read with torch's restricted unpickler, which builds only tensors and plain
containers (dict, list, tuple, str, numbers); the trainer stores everything in those forms (RNG states
included, see :func:`mixexp.train_utils.rng_state`). A file that is refused, truncated, not a
checkpoint, or lacks a key of the expected type ends as one :class:`ConfigError` line naming it.

A finished run's checkpoint may drop the state that only further training needs
(``trainer.final_checkpoint=weights``): :data:`RESUME_STATE` is then absent as a whole.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from mixexp.errors import ConfigError
from mixexp.io import save_torch

CHECKPOINT = "last.pt"
SNAPSHOTS = "snapshots"  # run_dir/snapshots/epoch_<N>.pt: the weights after each of trainer.snapshot_epochs
# key -> the type(s) its value must have; what the trainer writes and reads back
REQUIRED = {"epoch": int, "model": dict, "method": dict, "history": list, "elapsed": (int, float)}
# what only training further needs: all of it, or (a final checkpoint of trainer.final_checkpoint=weights) none
RESUME_STATE = {"optimizer": dict, "scheduler": dict, "rng": dict}
OPTIONAL = {"rescaling": (dict, type(None)), "records": dict}
# what every row of "history" holds (mixexp.trainer writes one per epoch): what metrics.json and history.csv read
HISTORY_KEYS = ("epoch", "lr", "train_loss", "train_acc", "seconds", "images_per_s", "test_acc")
# trainer.final_checkpoint: what last.pt keeps after the last epoch
FINAL_CHECKPOINTS = ("full", "weights")


def final_state(state: Dict[str, Any], keep: str) -> Dict[str, Any]:
    """A finished run's checkpoint ``state`` as ``trainer.final_checkpoint=keep`` stores it: ``full`` as it
    is, ``weights`` without :data:`RESUME_STATE` (the optimiser's momentum alone is as large as the weights)."""
    return state if keep == "full" else {k: v for k, v in state.items() if k not in RESUME_STATE}


def can_train_further(state: Dict[str, Any]) -> bool:
    """Whether a loaded checkpoint holds the optimiser, scheduler and RNG states that training needs."""
    return all(k in state for k in RESUME_STATE)


def save_checkpoint(path, state: Dict[str, Any]) -> None:
    """Write ``state`` (tensors and plain containers only) to ``path`` atomically."""
    save_torch(path, state)


def _why_unreadable(e: Exception) -> str:
    text = str(e)
    blocked = re.search(r"unsupported GLOBAL (\S+)", text) or re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if blocked:
        return (f"it holds a pickled object ({blocked.group(1)}), which is never loaded: a checkpoint holds "
                "only tensors and plain containers (weights_only=True)")
    if "weights only load failed" in text.lower():
        return "it holds objects other than tensors and plain containers, which are never loaded (weights_only=True)"
    if "zip archive" in text or isinstance(e, (EOFError, KeyError)):
        return "it is truncated or not a checkpoint"
    return (text.strip().splitlines() or [type(e).__name__])[0]


def read_tensor_file(path, map_location="cpu") -> Dict[str, Any]:
    """The dict of tensors and plain containers a checkpoint or weights file (snapshots/epoch_<N>.pt) holds,
    read with ``weights_only=True``; :class:`ConfigError` (one line naming the file) otherwise."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"checkpoint {path} does not exist") from None
    except Exception as e:  # noqa: BLE001 - any failure to read is a bad file, reported in one line
        raise ConfigError(f"checkpoint {path} cannot be loaded: {_why_unreadable(e)}") from None
    if not isinstance(state, dict):
        raise ConfigError(f"checkpoint {path} cannot be loaded: it holds a {type(state).__name__}, not a dict")
    return state


def load_checkpoint(path, map_location="cpu") -> Dict[str, Any]:
    """The checkpoint at ``path`` as a dict, read with ``weights_only=True`` and checked against
    :data:`REQUIRED`; :class:`ConfigError` (one line naming the file) otherwise."""
    path = Path(path)
    state = read_tensor_file(path, map_location)
    resumable = any(k in state for k in RESUME_STATE)  # then all of it must be there
    for key, kind in {**REQUIRED, **RESUME_STATE, **OPTIONAL}.items():
        if key not in state:
            if key in REQUIRED or (key in RESUME_STATE and resumable):
                raise ConfigError(f"checkpoint {path} cannot be loaded: it lacks the key {key!r}")
            continue
        value = state[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            names = " or ".join(t.__name__ for t in (kind if isinstance(kind, tuple) else (kind,)))
            raise ConfigError(f"checkpoint {path} cannot be loaded: {key!r} is a {type(value).__name__}, "
                              f"expected {names}")
    problem = state_problem(state)
    if problem is not None:
        raise ConfigError(f"checkpoint {path} cannot be loaded: {problem}")
    return state


def state_problem(state: Dict[str, Any]) -> Optional[str]:
    """Why a checkpoint whose keys have the right types still holds no run's state (None: it holds one): epoch
    and elapsed out of range, a history that is not one row per epoch, RNG states or rescaling statistics
    that cannot be restored."""
    from mixexp.evaluation.rescaling import Rescaling
    from mixexp.train_utils import rng_state_problem

    epoch, elapsed, history = state["epoch"], state["elapsed"], state["history"]
    if epoch < 0:
        return f"'epoch' is {epoch}, expected a count of epochs >= 0"
    if not math.isfinite(elapsed) or elapsed < 0:
        return f"'elapsed' is {elapsed!r}, expected seconds >= 0"
    if len(history) != epoch:
        return f"'history' holds {len(history)} row(s) for {epoch} epoch(s), expected one per epoch"
    for i, row in enumerate(history, start=1):
        if (not isinstance(row, dict) or row.get("epoch") != i or not set(HISTORY_KEYS) <= set(row)
                or set(row) != set(history[0]) or not all(_is_number(v) for v in row.values())):
            return f"'history' row {i} is not epoch {i}'s numbers ({', '.join(HISTORY_KEYS)})"
    for name, record in state.get("records", {}).items():  # a method's per-epoch summaries, by file name
        if not isinstance(name, str) or not isinstance(record, list) or not all(isinstance(r, dict) for r in record):
            return f"'records' holds {name!r}, which is not a list of per-epoch rows"
    rng = state.get("rng")
    problem = rng_state_problem(rng) if rng is not None else None
    if problem is not None:
        return f"its 'rng' state cannot be restored: {problem}"
    rescaling = state.get("rescaling")
    problem = Rescaling.state_problem(rescaling) if rescaling is not None else None
    return f"its 'rescaling' statistics cannot be used: {problem}" if problem is not None else None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
