"""One run folder, one process: claim a run folder before anything is written into it.

:func:`claim_run_dir` (a) takes an exclusive lock file (created with ``O_CREAT | O_EXCL``, holding the
owner's pid and host), so that a second process started into the same folder (two launches, two sweeps
sharing ``multirun/...``) stops with one line instead of interleaving its files with the first's; a lock
left by a process that is gone (its pid is dead on this host) is taken over; (b) refuses a folder that
already holds a run's files unless the run is resumed, so that a finished run is never overwritten;
(c) removes the temporary files of atomic writes that a killed process left behind.
"""

from __future__ import annotations

import atexit
import os
import socket
from pathlib import Path
from typing import Optional, Tuple

from mixexp.errors import ConfigError
from mixexp.io import TMP_SUFFIX, path_error_message

LOCK = ".mixexp.lock"
# the files a run writes: a folder holding one of them holds a run
RUN_FILES = ("metrics.json", "config.yaml", "last.pt")


def _owner_text() -> str:
    return f"{os.getpid()} {socket.gethostname()}\n"


def read_owner(lock: Path) -> Optional[Tuple[int, str]]:
    """(pid, host) written in ``lock``, or None when it is unreadable or half-written."""
    try:
        pid, host = lock.read_text().split(maxsplit=1)
        return int(pid), host.strip()
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


class RunDirLock:
    """The lock file of a claimed run folder; :meth:`release` removes it if it is still ours."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.text = _owner_text()

    def release(self) -> None:
        try:
            if self.path.read_text() == self.text:
                self.path.unlink()
        except OSError:
            pass


def _try_create(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(_owner_text())
    return True


def _is_stale(lock: Path, owner: Optional[Tuple[int, str]]) -> bool:
    """A lock we may take over: ours (this very process claims the folder again), its owner's pid dead on
    this host, or a lock without an owner (its writer died between creating and writing it)."""
    if owner is None:
        return True
    pid, host = owner
    return host == socket.gethostname() and (pid == os.getpid() or not pid_alive(pid))


def acquire(run_dir: Path, instead: str = "choose another hydra.run.dir") -> RunDirLock:
    """Create ``run_dir/.mixexp.lock`` exclusively, taking over a stale one; ConfigError if another
    live process holds it (the message offers ``instead`` beside waiting)."""
    lock = run_dir / LOCK
    for _ in range(3):  # a concurrent take-over can make one attempt lose the race
        if _try_create(lock):
            return RunDirLock(lock)
        owner = read_owner(lock)
        if not _is_stale(lock, owner):
            pid, host = owner
            raise ConfigError(
                f"{run_dir} is in use by another mixexp process (pid {pid} on {host}): wait for it to end or "
                f"{instead} (if that process is gone, delete {lock})")
        if read_owner(lock) == owner:  # still the same stale owner: take it over
            try:
                lock.unlink()
            except FileNotFoundError:
                pass
    raise ConfigError(f"{run_dir} is being claimed by several processes at once; run one of them")


def remove_stale_temporaries(run_dir: Path) -> int:
    """Remove ``.<name>.<random>.tmp`` files of interrupted atomic writes; returns how many."""
    stale = list(run_dir.glob(f".*{TMP_SUFFIX}"))
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


# Keys that do not change what a run computes: where and how fast it runs, what it logs, what is evaluated
# after training. Any other key of a resumed run must equal the stored config.yaml's.
FREE_KEYS = ("resume", "label", "trainer.stop_on_divergence", "paths.", "logger.", "eval.", "trainer.device", "trainer.progress",
             "trainer.num_threads", "trainer.compile", "trainer.eval_batch_size", "trainer.checkpoint",
             "trainer.final_checkpoint", "trainer.snapshot_epochs", "mixer.lamix_record_every", "dataset.num_workers",
             "dataset.download", "hydra")


def _flat(node, prefix: str = "") -> dict:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def resume_differences(stored: dict, current: dict) -> list:
    """The keys (``key: current (stored)``) in which a resumed run's config differs from its config.yaml.
    ``trainer.epochs`` may grow where the schedule does not depend on it: a multistep schedule without
    warm-up or reference_epochs and no ES by fraction (the lr at every epoch is then the same for any run length)."""
    a, b = _flat(stored), _flat(current)
    epochs_free = (b.get("sched.name") == "multistep" and not b.get("sched.warmup_epochs")
                   and not b.get("sched.reference_epochs")
                   and b.get("mixer.stop_fraction") is None and b.get("trainer.epochs", 0) >= a.get("trainer.epochs", 0))
    diffs = []
    for key in sorted(set(a) | set(b)):
        if key.startswith(FREE_KEYS) or (key == "trainer.epochs" and epochs_free) or a.get(key) == b.get(key):
            continue
        diffs.append(f"{key}={b.get(key)!r} (the run has {a.get(key)!r})")
    return diffs


def check_resume_compatible(run_dir, cfg) -> None:
    """Refuse to resume ``run_dir`` with a config that computes something else than the stored one."""
    from omegaconf import OmegaConf

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return
    try:
        stored = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as e:  # noqa: BLE001 - a damaged file is the user's to see: one line
        raise ConfigError(f"{path} cannot be read: {str(e).strip().splitlines()[0] if str(e).strip() else e}") from None
    diffs = resume_differences(stored, OmegaConf.to_container(cfg, resolve=True))
    if diffs:
        raise ConfigError(f"{run_dir} cannot be resumed with a changed config: {'; '.join(diffs)} "
                          "(drop these overrides, or start a new run in another hydra.run.dir)")


def claim_run_dir(run_dir, resume: bool, instead: str = "choose another hydra.run.dir") -> RunDirLock:
    """Lock ``run_dir`` for this process, refuse a folder holding a run unless ``resume``, remove stale
    temporaries. The lock is released when the process exits (also on an exception) or by ``release()``.
    Every command that writes into a run folder claims it first: mixexp-train for the whole run, mixexp-eval
    while it merges its results into metrics.json (so neither can overwrite what the other added)."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = acquire(run_dir, instead)
    except OSError as e:
        raise ConfigError(f"run folder {run_dir} cannot be used: {path_error_message(e) or e}") from None
    try:
        present = [name for name in RUN_FILES if (run_dir / name).exists()]
        if present and not resume:
            raise ConfigError(
                f"{run_dir} already holds a run ({', '.join(present)}): pass resume=true to continue it, "
                "or choose another hydra.run.dir")
        remove_stale_temporaries(run_dir)
    except BaseException:
        lock.release()
        raise
    atexit.register(lock.release)
    return lock
