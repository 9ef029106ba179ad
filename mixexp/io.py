"""Atomic writes: a file is written beside its target and renamed over it, so a crash never leaves
a half-written checkpoint, metrics file or report.

A write that the file system refuses (disk full, no permission, read-only) ends as one
:class:`~mixexp.errors.ConfigError` line naming the file; the temporary file is removed and the old
file, if any, is left as it was.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

from mixexp.errors import ConfigError

_UMASK = os.umask(0)
os.umask(_UMASK)

# errno -> what the user reads; these are the user's to fix (free space, permissions), not bugs
DISK_ERRORS = {
    errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system", errno.EFBIG: "file too large",
}
TMP_SUFFIX = ".tmp"


def disk_error(e: BaseException) -> Optional[OSError]:
    """The OSError with a :data:`DISK_ERRORS` errno that caused ``e`` (``e`` itself, or one in its chain:
    torch.save reports a failed write as a RuntimeError whose context is the OSError), or None."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in DISK_ERRORS:
            return e
        e = e.__cause__ or e.__context__
    return None


def path_error_message(e: OSError) -> Optional[str]:
    """One line for an OSError about a path the user chose (unwritable, read-only, full, a file in the way
    of a folder), or None when it names no path."""
    if not e.filename:
        return None
    if e.errno == errno.EEXIST:
        return f"cannot create the folder {e.filename}: a file of that name is in the way"
    why = DISK_ERRORS.get(e.errno) or (e.strerror or type(e).__name__).lower()
    return f"cannot write {e.filename}: {why}"


def atomic_write(path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then rename ``tmp_path`` over ``path``."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # the bytes reach the disk before the rename makes them the file
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        cause = disk_error(e)
        if cause is not None:
            raise ConfigError(f"{DISK_ERRORS[cause.errno]} while writing {path}"
                              + (" (the previous file is unchanged)" if path.exists() else "")) from None
        raise


def write_text(path, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)

    atomic_write(path, write)


def finite_or_null(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, ±inf) replaced by None, so that JSON holds ``null``
    (bare ``NaN``/``Infinity`` are not JSON, and most readers reject them)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(v) for v in obj]
    return obj


def write_json(path, obj: Dict[str, Any]) -> None:
    """Write ``obj`` as JSON; non-finite floats become ``null`` (callers flag why, e.g. ``diverged: true``)."""
    write_text(path, json.dumps(finite_or_null(obj), indent=2, sort_keys=True, allow_nan=False) + "\n")


def write_csv(path, rows: List[Dict[str, Any]]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(path, write)


def save_torch(path, obj: Any) -> None:
    import torch

    def write(tmp: str) -> None:
        # through a Python file object, so that a failed write keeps its errno (torch.save on a file
        # name reports only "file write failed")
        with open(tmp, "wb") as f:
            torch.save(obj, f)

    atomic_write(path, write)


@contextlib.contextmanager
def held_lock(path, on_wait: Optional[Callable[[str], None]] = None) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created if missing) while the block runs, waiting for
    another process that holds it; ``on_wait(holder)`` is called first, with the pid the holder wrote.

    The lock is the kernel's (flock): it ends with its holder, so a killed process never leaves it held."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
    except OSError as e:
        raise ConfigError(path_error_message(e) or f"cannot create the lock file {path}: {e}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait(os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
