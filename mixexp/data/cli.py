"""``mixexp-data``: see which datasets are on disk, and fetch, verify and convert them.

    mixexp-data list                               every dataset: state, size on disk, where it is looked for
    mixexp-data prepare cifar10 cifar10_c svhn     download what is public, verify, convert once
    mixexp-data prepare imagenet --source /data/ILSVRC2012
    mixexp-data --data-dir /scratch/data list      another data root (default: paths.data_dir)

User errors (missing files, bad checksums, a damaged cache) print one ``error:`` line and exit 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional

from mixexp.errors import ConfigError
from mixexp.io import path_error_message
from mixexp.data import sources  # noqa: F401  (fills SOURCES)
from mixexp.data.store import SOURCES, default_data_dir, get_source, prepare, resolve_root, status

EXIT_USAGE = 2


def _human(n: int) -> str:
    if n <= 0:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _root(args) -> "os.PathLike":
    given = getattr(args, "data_dir", None)
    return resolve_root(given if given else default_data_dir())


def cmd_list(args) -> int:
    root = _root(args)
    origin = ("--data-dir" if getattr(args, "data_dir", None)
              else "$MIXEXP_DATA" if os.environ.get("MIXEXP_DATA") else "default")
    print(f"data root: {root} ({origin})")
    rows = [status(src, root) for src in SOURCES.values()]
    header = ("dataset", "use", "state", "size", "location")
    table = [(r["name"], r["use"], r["state"], _human(r["bytes"]), r["where"] + (f"  ({r['note']})" if r["note"] else ""))
             for r in rows]
    widths = [max(len(str(x[i])) for x in [header, *table]) for i in range(4)]
    print("  ".join(h.ljust(w) for h, w in zip(header[:4], widths)) + "  " + header[4])
    for row, r in zip(table, rows):
        print("  ".join(str(c).ljust(w) for c, w in zip(row[:4], widths)) + "  " + row[4])
        if r["command"]:
            print(" " * (sum(widths[:2]) + 4) + f"-> {r['command']}")
    print("states: ready = verified and converted; verified = checked, converted on first use; "
          "unverified = present, checked on first use; cache-only = converted, source files removed")
    return 0


def cmd_prepare(args) -> int:
    root = _root(args)
    names: List[str] = list(dict.fromkeys(args.names))
    for name in names:
        get_source(name)  # fail before downloading anything when one name is wrong
    if args.source is not None and len(names) != 1:
        raise ConfigError("--source DIR goes with one dataset at a time (imagenet, objectnet, imagenet_v2 or imagenet_c)")
    for name in names:
        print(prepare(name, root, source=args.source, progress=not args.no_progress,
                      keep_archives=args.keep_archives), flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", default=argparse.SUPPRESS,
                        help="data root (default: paths.data_dir, i.e. $MIXEXP_DATA or ~/.cache/mixexp)")
    parser = argparse.ArgumentParser(prog="mixexp-data", parents=[common], description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", parents=[common], help="every dataset: state, size on disk, location")
    p_list.set_defaults(func=cmd_list)
    p_prep = sub.add_parser("prepare", parents=[common], help="download (or locate), verify and convert datasets")
    p_prep.add_argument("names", nargs="+", metavar="NAME", help=f"one or more of: {', '.join(SOURCES)}")
    p_prep.add_argument("--source", default=None, metavar="DIR",
                        help="imagenet, objectnet (required: they cannot be downloaded freely), imagenet_v2, "
                             "imagenet_c (optional): the folder holding your copy")
    p_prep.add_argument("--keep-archives", action="store_true", help="keep downloaded .tar/.zip files after unpacking")
    p_prep.add_argument("--no-progress", action="store_true", help="no progress bars")
    p_prep.set_defaults(func=cmd_prepare)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        return args.func(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:
        # an unwritable, read-only or full --data-dir, or a file where a folder should be
        message = path_error_message(e)
        if message is None:  # not about a path the user chose: a bug, keep its traceback
            raise
        print(f"error: {message} (the data root {_root(args)} must be a writable folder; "
              "choose another with --data-dir or $MIXEXP_DATA)", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("error: interrupted (nothing half-written was kept)", file=sys.stderr)
        return 130


def cli() -> None:
    sys.exit(main())


if __name__ == "__main__":
    cli()
