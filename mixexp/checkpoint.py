"""Checkpoints: written atomically, read with ``weights_only=True`` (tensors and plain containers only),
so that a crafted ``last.pt`` cannot run code when it is loaded."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Dict

import torch

from mixexp.errors import ConfigError
from mixexp.io import save_torch

CHECKPOINT = "last.pt"


def save_checkpoint(path, state: Dict[str, Any]) -> None:
    save_torch(path, state)


def load_checkpoint(path, map_location="cpu") -> Dict[str, Any]:
    """The checkpoint's dict; anything that is not a readable checkpoint is one :class:`ConfigError` line."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, ValueError, OSError, pickle.UnpicklingError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{path} is not a mixexp checkpoint that loads safely: {first}") from None
    if not isinstance(state, dict) or not isinstance(state.get("epoch"), int) or not isinstance(state.get("model"), dict):
        raise ConfigError(f"{path} is not a mixexp checkpoint: it lacks an integer 'epoch' and a 'model' state")
    return state
