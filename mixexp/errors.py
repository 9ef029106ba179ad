"""The user's errors: a leaf module, so that every part of mixexp can raise them without import circles."""

from __future__ import annotations

import math
from typing import Any

# Exit status of a command that ends on a user error (one line on stderr, no traceback).
EXIT_USAGE = 2


class ConfigError(ValueError):
    """A config value that is outside what is allowed; the message names the key and the allowed values."""


class Interrupted(ConfigError):
    """Ctrl-C during training: one line that says where the run stopped and how to resume it."""

    exit_code = 130


def require(ok: bool, key: str, value: Any, allowed: str) -> None:
    """Raise :class:`ConfigError` ``key=value is not allowed: allowed`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed: {allowed}")


def one_of(key: str, value: Any, names) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``names``."""
    require(value in names, key, value, "choose one of " + ", ".join(sorted(names)))


# The largest float32: tensors, and so training, compute in float32; a larger number cannot even be stored.
FLOAT32_MAX = 3.4028234663852886e38
FINITE = "must be a finite number, at most 3.4e+38 in size (training computes in float32)"


def finite(x: Any) -> bool:
    """Whether ``x`` is a number training can compute with: finite, and within float32's range."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and abs(x) <= FLOAT32_MAX
