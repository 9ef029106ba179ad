"""Command-line plumbing shared by the entrypoints: user errors become one line on stderr and exit 2.

Hydra prints composition errors over several lines with a hint about HYDRA_FULL_ERROR, and prints
tracebacks for errors raised inside the task. For errors that are the user's (a bad override, a
misspelt key, a value out of range, missing data) we want one line that names the key and what is
allowed. So the Hydra app runs with HYDRA_FULL_ERROR=1, which lets its exceptions reach us, and we
format the user's errors here. A user who sets HYDRA_FULL_ERROR themselves gets Hydra's full output.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from typing import Callable, NoReturn

from omegaconf.errors import OmegaConfBaseException

from hydra.experimental.callback import Callback

from mixexp.errors import EXIT_USAGE, ConfigError, Interrupted
from mixexp.paths import CONF_DIR


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """End a command with a user error: one line on stderr, exit code 2 (or ``code``), no traceback.

    A rank of a torchrun job writes the line into its torchrun error file instead of printing it (every rank
    would print it): ``python -m mixexp.distributed`` (torchrun's arguments) prints it once."""
    if not report_to_launcher(message, code):
        print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


# The key of a torchrun error file (JSON) that marks the line as mixexp's, with its exit code.
LAUNCHER_KEY = "mixexp_exit_code"


def report_to_launcher(message: str, code: int) -> bool:
    """Under torchrun (``TORCHELASTIC_ERROR_FILE`` set, several ranks): write ``message`` into this rank's error
    file, which torchrun reads back into its report of the failed ranks; False where there is none."""
    import json
    import time

    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    try:
        with open(path, "w") as f:
            # the layout torchrun's own error handler writes (its report shows message.message)
            json.dump({"message": {"message": message, "extraInfo": {"timestamp": str(int(time.time()))}},
                       LAUNCHER_KEY: code}, f)
    except OSError:
        return False
    return True


# In a sweep's job folder: the one line that made the job fail (read by SweepSummary at the sweep's end).
FAILED_MARK = ".mixexp-failed"
# Set by SweepSummary in the launching process: the failed jobs of the sweep that just ended.
FAILED_JOBS: list = []


def _first_line(text: str) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def format_user_error(e: BaseException) -> str | None:
    """The one-line message for a user error, or None if ``e`` is not one."""
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException

    if isinstance(e, ConfigError):
        return str(e)
    if isinstance(e, OSError):  # e.g. Hydra creating an unwritable hydra.run.dir
        from mixexp.io import path_error_message

        return path_error_message(e)
    text = str(e)
    missing = re.search(r"Could not find '([^']+)/([^'/]+)'", text)
    if missing:
        group, option = missing.groups()
        options = re.findall(r"^\t(\S+)$", text, flags=re.M)
        allowed = f"choose one of {', '.join(options)}" if options else f"no such option in conf/{group}/"
        return f"{group}={option} is not allowed: {allowed}"
    if isinstance(e, OverrideParseException):
        return f"cannot parse override: {_first_line(text)}"
    cause = e.__cause__ if isinstance(e.__cause__, OmegaConfBaseException) else e
    if isinstance(cause, OmegaConfBaseException):
        key = getattr(cause, "full_key", None)
        msg = _first_line(cause.msg if getattr(cause, "msg", None) else str(cause))
        unknown = re.match(r"Key '([^']+)' not in '(\w+)'", msg)
        if unknown and key:
            parent_key = key.rsplit(".", 1)[0] if "." in key else ""
            schema = _schema_fields(cause)
            allowed = f"allowed keys: {', '.join(schema)}" if schema else "not in the schema"
            where = f" of {parent_key}" if parent_key else ""
            return f"{key} is not a key{where}; {allowed}"
        return f"{key}: {msg}" if key else msg
    if isinstance(e, (MissingConfigException, HydraException)):
        # a preset that sets a key the chosen option lacks: Hydra puts OmegaConf's lines under its own
        nested = re.search(r"Key '([^']+)' not in '(\w+)'\s+full_key: (\S+)", text)
        where = re.match(r"In '([^']+)'", text)
        if nested:
            _, schema, key = nested.groups()
            return (f"{'conf/' + where.group(1) + '.yaml: ' if where else ''}{key} is not a key of "
                    f"{key.rsplit('.', 1)[0]} here (its schema {schema} lacks it)")
        return _first_line(text)
    return None


def _schema_fields(cause: OmegaConfBaseException) -> list[str]:
    import dataclasses

    node = getattr(cause, "parent_node", None)
    obj_type = getattr(cause, "object_type", None)
    if obj_type is not None and dataclasses.is_dataclass(obj_type):
        return [f.name for f in dataclasses.fields(obj_type)]
    if node is not None:
        return list(node.keys())
    return []


def exit_on_user_error(task: Callable) -> Callable:
    """Wrap a Hydra task so that a user error inside it exits with one line (before Hydra logs it).

    Inside the task only :class:`ConfigError` (bad values, missing data, a run directory in the way),
    unresolvable interpolations and OSErrors about a path (a data root that cannot be written) count as
    the user's; any other exception is a bug and keeps its traceback."""
    from omegaconf.errors import InterpolationResolutionError

    @functools.wraps(task)
    def wrapped(*args, **kwargs):
        try:
            return task(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - sorted into the user's errors and bugs just below
            message = None
            if isinstance(e, (ConfigError, InterpolationResolutionError, OSError)):
                message = format_user_error(e) or (None if isinstance(e, OSError) else str(e))
            if message is not None and not os.environ.get("MIXEXP_FULL_ERROR"):
                if in_sweep() and isinstance(e, Interrupted):  # the sweep stops: run_cli says so once
                    raise KeyboardInterrupt from None
                if in_sweep():
                    return job_failed(message)
                fail(message, getattr(e, "exit_code", EXIT_USAGE))
            if message is not None or not in_sweep():  # alone a bug keeps its traceback
                raise
            import traceback  # in a sweep a bug ends its job, not the sweep

            return job_failed(f"{traceback.format_exc().strip().splitlines()[-1]} (traceback in {job_dir() / 'error.log'})",
                              traceback.format_exc())

    return wrapped


def in_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def job_dir():
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def job_failed(message: str, traceback_text: str = "") -> float:
    """A failing job of a sweep: one line on stderr, the line (and a traceback) in its folder; the sweep goes on."""
    from mixexp.io import write_text

    print(f"error: job {job_dir().name}: {message}", file=sys.stderr)
    try:
        write_text(job_dir() / FAILED_MARK, message + "\n")
        if traceback_text:
            write_text(job_dir() / "error.log", traceback_text)
    except (OSError, ConfigError):
        pass  # an unwritable folder: the line above still says it
    return float("nan")


class SweepSummary(Callback):
    """Hydra callback (conf/config.yaml): after a sweep, list its failed jobs; ``run_cli`` then exits 2."""

    def on_multirun_start(self, config, **kwargs) -> None:
        import time

        self.start = time.time()

    def on_multirun_end(self, config, **kwargs) -> None:
        from pathlib import Path

        root = Path(config.hydra.sweep.dir)
        marks = [m for m in root.rglob(FAILED_MARK) if m.stat().st_mtime >= getattr(self, "start", 0) - 1]
        FAILED_JOBS[:] = [(m.parent, m.read_text().strip()) for m in sorted(marks)]
        if FAILED_JOBS:
            print(f"error: {len(FAILED_JOBS)} job(s) of the sweep in {root} failed:", file=sys.stderr)
            for folder, why in FAILED_JOBS:
                print(f"  {folder.name}: {why}", file=sys.stderr)


def group_options(group: str) -> list[str]:
    """Every option of a config group, nested presets included (``sem/table1``)."""
    folder = CONF_DIR / group
    return sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml"))


def check_group_choices(args) -> None:
    """Say which options a config group has before Hydra composes: ``mixer=bogus`` and
    ``experiment=sem/table9`` (also inside a sweep's comma list) become one line listing the choices."""
    for arg in args:
        group, sep, value = arg.partition("=")
        if not sep or group.startswith(("-", "+", "~", "hydra")) or not (CONF_DIR / group).is_dir():
            continue
        if any(c in value for c in "()[]{}$"):  # a sweep function or interpolation: Hydra's to judge
            continue
        options = group_options(group)
        for choice in value.split(","):
            if choice != "null" and choice not in options:
                raise ConfigError(f"{group}={choice} is not allowed: choose one of {', '.join(options)}")


INTERRUPTED = ("interrupted: relaunch the same command to continue (finished runs are kept, interrupted ones "
               "resume from their last.pt)")


def run_cli(app: Callable[[], object]) -> None:
    """Run a Hydra app (a ``@hydra.main`` function called with no arguments) with one-line errors."""
    user_wants_full = "HYDRA_FULL_ERROR" in os.environ
    if user_wants_full:
        os.environ["MIXEXP_FULL_ERROR"] = "1"
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    try:
        check_group_choices(sys.argv[1:])
        app()
        if FAILED_JOBS:
            sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:  # Ctrl-C outside a training loop (a joblib sweep's launcher, start-up)
        if user_wants_full:
            raise
        fail(INTERRUPTED, Interrupted.exit_code)
    except Exception as e:  # noqa: BLE001 - sorted into user errors and bugs just below
        message = None if user_wants_full else format_user_error(e)
        if message is None:
            raise
        fail(message)


def one_line_errors(command: Callable) -> Callable:
    """Wrap an argparse command (mixexp-eval, -report, -plot, -reproduce): a user error (a ConfigError, an
    OSError about a path, a Hydra composition error) ends as one line and exit 2, Ctrl-C as one line and exit
    130; anything else is a bug and keeps its traceback."""

    @functools.wraps(command)
    def wrapped(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            fail("interrupted (every file is written whole or not at all)", Interrupted.exit_code)
        except Exception as e:  # noqa: BLE001 - sorted into user errors and bugs just below
            message = format_user_error(e)
            if message is None:
                raise
            fail(message, getattr(e, "exit_code", EXIT_USAGE))

    return wrapped
