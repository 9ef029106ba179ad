"""``mixexp``: the version and the sub-commands; ``mixexp NAME ARGS`` runs ``mixexp-NAME ARGS``.

    mixexp --version
    mixexp                      # lists the sub-commands
    mixexp train dataset=digits # the same as mixexp-train dataset=digits
"""

from __future__ import annotations

import importlib
import sys
from typing import Dict, Sequence, Tuple

from mixexp import __version__

# name -> (entry point, what it does); pyproject.toml's [project.scripts] declares each as mixexp-NAME
SUBCOMMANDS: Dict[str, Tuple[str, str]] = {
    "train": ("mixexp.train:cli", "train and evaluate one run, or a sweep with -m"),
    "report": ("mixexp.report:cli", "mean ± std tables of the runs below a folder"),
    "eval": ("mixexp.evaluation.cli:cli", "evaluate finished runs again (shift, OOD, rescaling)"),
    "data": ("mixexp.data.cli:cli", "list, download, verify and convert datasets"),
    "reproduce": ("mixexp.reproduce:cli", "a paper table end to end: its sweep, then its report"),
    "plot": ("mixexp.plots.cli:cli", "figures of runs, sweeps and reports (PNG, PDF and the plotted numbers as CSV)"),
}


def usage() -> str:
    width = max(len(name) for name in SUBCOMMANDS) + len("mixexp-")
    lines = [f"mixexp {__version__}", "", "usage: mixexp --version | mixexp COMMAND [ARGS] (= mixexp-COMMAND [ARGS])",
             "", "commands:"]
    lines += [f"  {'mixexp-' + name:<{width}}  {text}" for name, (_, text) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def cli(argv: Sequence[str] | None = None) -> None:
    from mixexp.cli import fail

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return
    if args[0] == "--version":
        print(f"mixexp {__version__}")
        return
    name = args[0]
    if name not in SUBCOMMANDS:
        fail(f"command {name!r} is not allowed: choose one of {', '.join(SUBCOMMANDS)} (or --version)")
    module, function = SUBCOMMANDS[name][0].split(":")
    # the sub-command (Hydra's included) reads sys.argv as if it had been called as mixexp-NAME
    sys.argv = [f"mixexp-{name}", *args[1:]]
    getattr(importlib.import_module(module), function)()


if __name__ == "__main__":
    cli()
