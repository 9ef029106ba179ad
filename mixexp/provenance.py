"""Where a run's numbers came from: source revision, library versions, hardware, world size.

Recorded in every run's ``metrics.json`` (key ``provenance``) and in the W&B run's config, so that a
table can be traced back to the code and machine that produced it.
"""

from __future__ import annotations

import platform
import socket
import subprocess
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch

from mixexp import __version__
from mixexp.paths import PACKAGE_DIR

SOURCE_DIR = PACKAGE_DIR.parent


def _git(*args: str) -> Optional[str]:
    try:
        result = subprocess.run(["git", "-C", str(SOURCE_DIR), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):  # no git on this machine
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def git_revision() -> Tuple[Optional[str], Optional[bool]]:
    """(commit, dirty) of the source tree when mixexp runs from a git checkout, else (None, None).

    An installed wheel lives in site-packages, which may sit inside some other repository (a venv in a
    checkout): only a checkout whose top level is the folder holding the package counts. Dirty means
    uncommitted changes to tracked files."""
    top = _git("rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != SOURCE_DIR.resolve():
        return None, None
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return commit, (None if status is None else status != "")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({platform.machine()})"


def provenance(device: torch.device, world_size: int) -> Dict[str, Any]:
    """Flat, JSON-ready: git_commit/git_dirty (None outside a checkout), versions, device, host."""
    commit, dirty = git_revision()
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "mixexp_version": __version__,
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,  # the CUDA torch was built with; None for a CPU build
        "cudnn_version": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "device": str(device),
        "device_name": device_name(torch.device(device)),
        "world_size": int(world_size),
        "hostname": socket.gethostname(),
        "python_version": platform.python_version(),
    }
