"""``mixexp-report DIR``: a table of mean +- std (n) per configuration over every run below DIR.

A run is a folder holding ``config.yaml`` (written at start) and, once finished, ``metrics.json``.
Configurations are told apart by the config keys whose values differ between the runs (so a sweep
over ``mixer=none,mixup,cutmix seed=0,1,2`` gives one row per mixer); the seed, paths and logging
keys never split runs, so seeds fold together.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from omegaconf import OmegaConf

from mixexp.cli import fail, one_line_errors
from mixexp.errors import ConfigError
from mixexp.io import write_csv, write_text

# Keys that never make two runs different configurations.
IGNORED_PREFIXES = ("seed", "resume", "budget_limits", "label", "paths.", "logger.", "trainer.progress", "trainer.device",
                    "trainer.num_threads", "trainer.checkpoint", "trainer.final_checkpoint", "trainer.compile",
                    "trainer.eval_batch_size", "trainer.snapshot_epochs", "mixer.lamix_record_every",
                    "dataset.num_workers", "dataset.download", "eval.shift", "eval.ood", "eval.severities",
                    "eval.corruptions")
# Keys that the derived ``method`` column already says (see :func:`method_name`).
METHOD_KEYS = ("mixer.name", "regularizer.name", "mixer.stop_fraction", "mixer.stop_epoch",
               "loss.label_smoothing", "mixer.inputs.name", "mixer.lamix_original_batches",
               "mixer.lamix_global_label")
DEFAULT_METRICS = ("test_acc", "test_nll", "test_ece")
DECIMALS = {"acc": 2, "error": 2, "nll": 3, "ece": 4, "per_s": 0, "wall_s": 1}


@dataclass
class Run:
    path: Path
    config: Dict[str, Any]
    metrics: Dict[str, Any] | None
    order: float


@dataclass
class Row:
    key: Tuple[Any, ...]
    runs: List[Run] = field(default_factory=list)


def flatten(obj: Any, prefix: str = "") -> Dict[str, Any]:
    if isinstance(obj, dict):
        out: Dict[str, Any] = {}
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tuple(obj) if isinstance(obj, list) else obj}


def method_name(config: Dict[str, Any]) -> str:
    """The method a run trained, spelt as in the papers' tables: ``erm``, ``mixup+es+sem``, ``mixup+ls0.2``,
    ``lamix_puzzle``, ``lamix-no_original`` ... (from a flattened config): its ``label`` (every run written
    by this version has one), else derived from the options as :func:`mixexp.assemble.method_label` does."""
    if config.get("label"):
        return str(config["label"])
    mixer = config.get("mixer.name", "none")
    name = {"none": "erm"}.get(mixer, mixer)
    if mixer == "lamix":
        if config.get("mixer.inputs.name") == "puzzlemix" or config.get("mixer.lamix_inputs") == "puzzlemix":
            name = "lamix_puzzle"
        if config.get("mixer.lamix_original_batches") is False:
            name += "-no_original"
        if config.get("mixer.lamix_global_label") is False:
            name += "-no_global_label"
    if config.get("mixer.stop_fraction") is not None or config.get("mixer.stop_epoch") is not None:
        name += "+es"
    if config.get("regularizer.name", "none") != "none":
        name += "+" + config["regularizer.name"]
    if config.get("loss.label_smoothing"):
        name += f"+ls{config['loss.label_smoothing']:g}"
    return name


def read_run(cfg_path: Path) -> Run:
    """The run whose ``config.yaml`` is ``cfg_path``; ValueError (the reason) when a file is damaged."""
    import yaml

    metrics_path = cfg_path.parent / "metrics.json"
    try:
        metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else None
    except (OSError, ValueError) as e:
        raise ValueError(f"metrics.json cannot be read ({_first_line(e)})") from None
    if metrics is not None and not isinstance(metrics, dict):
        raise ValueError("metrics.json is not a mapping of metric names to values")
    try:
        raw = OmegaConf.to_container(OmegaConf.load(cfg_path), resolve=False)
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise ValueError(f"config.yaml cannot be read ({_first_line(e)})") from None
    if not isinstance(raw, dict):
        raise ValueError("config.yaml is not a mapping of config keys")
    config = flatten(raw)
    config["method"] = method_name(config)
    return Run(cfg_path.parent, config, metrics, cfg_path.stat().st_mtime)


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def find_runs(root: Path, skipped: List[Tuple[Path, str]] | None = None) -> List[Run]:
    """Every run below ``root``; a run whose files are damaged is left out and, with ``skipped``, listed
    there as (folder, reason), so that one broken run never stops a table."""
    runs = []
    for cfg_path in sorted(root.rglob("config.yaml")):
        if cfg_path.parent.name == ".hydra" or "wandb" in cfg_path.relative_to(root).parts:
            continue
        try:
            runs.append(read_run(cfg_path))
        except ValueError as e:
            if skipped is not None:
                skipped.append((cfg_path.parent, str(e)))
    return runs


def check_metrics(runs: Sequence[Run], metrics: Sequence[str]) -> None:
    """ConfigError naming a requested metric that no finished run reports, and the metrics they do report."""
    reported = sorted({k for r in runs if r.metrics for k, v in r.metrics.items()
                       if isinstance(v, (int, float)) or v is None})
    absent = [m for m in metrics if m not in reported]
    if reported and absent:
        raise ConfigError(f"--metrics {','.join(absent)}: no run reports it; the runs report: {', '.join(reported)}")


def _owner(key: str) -> str | None:
    """The key whose value usually decides ``key``'s: a dataset's or model's own settings follow its name,
    a mixer's, regularizer's or loss's follow the method."""
    if key.startswith(("mixer.", "regularizer.", "loss.", "eval.rescaled")):
        return "method"
    for group in ("dataset", "model"):
        if key.startswith(group + ".") and key != f"{group}.name":
            return f"{group}.name"
    return None


def varying_keys(runs: Sequence[Run]) -> List[str]:
    """``method`` if it varies, then every other key that splits runs: a key owned by another (a dataset's
    mean by its name, a mixer's option by the method) only when it splits runs that agree on the owner."""
    keys = sorted({k for r in runs for k in r.config} - {"method"})
    keys = [k for k in keys if not k.startswith(IGNORED_PREFIXES) and k not in METHOD_KEYS]
    shown = ["method"] if len({r.config["method"] for r in runs}) > 1 else []
    for key in keys:
        groups: Dict[Any, List[Run]] = {}
        for r in runs:
            groups.setdefault(repr(r.config.get(_owner(key))) if _owner(key) else None, []).append(r)
        if any(len({repr(r.config.get(key)) for r in group}) > 1 for group in groups.values()):
            shown.append(key)
    return shown


def group_runs(runs: Sequence[Run], keys: Sequence[str]) -> List[Row]:
    rows: Dict[Tuple[Any, ...], Row] = {}
    for run in sorted(runs, key=lambda r: r.order):  # rows in launch order
        key = tuple(run.config.get(k) for k in keys)
        rows.setdefault(key, Row(key)).runs.append(run)
    return list(rows.values())


def decimals(metric: str) -> int:
    return next((d for suffix, d in DECIMALS.items() if metric.endswith(suffix)), 3)


def summarize(values: Sequence[float]) -> Tuple[float, float, int]:
    """(mean, sample std (0 for one value), n)."""
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std, len(values)


def format_cell(values: Sequence[float], metric: str) -> str:
    if not values:
        return "missing"
    mean, std, n = summarize(values)
    d = decimals(metric)
    return f"{mean:.{d}f} ± {std:.{d}f}" if n > 1 else f"{mean:.{d}f}"


def select(runs: Sequence[Run], where: Sequence[str]) -> List[Run]:
    """Runs whose config matches every ``key=value[,value...]`` of ``where`` (``method`` included)."""
    chosen = list(runs)
    for clause in where:
        key, _, values = clause.partition("=")
        allowed = set(values.split(","))
        chosen = [r for r in chosen if str(r.config.get(key)) in allowed]
    return chosen


def build_report(root: Path, metrics: Sequence[str] = DEFAULT_METRICS, where: Sequence[str] = (), stat: str = "final"):
    """Return (markdown text, csv rows, number of unfinished runs); ``stat`` as in :func:`build_paper_report`
    (defined for test_acc and test_error only: the other metrics exist for the last epoch only)."""
    from mixexp.protocols import stat_key, stat_value

    for m in metrics:
        stat_key(m, stat)  # raises ValueError for a statistic the metric does not have
    skipped: List[Tuple[Path, str]] = []
    runs = select(find_runs(root, skipped), where)
    if not runs:
        what = f" matching {' '.join(where)}" if where else ""
        raise FileNotFoundError(f"no runs below {root}{what} (a run folder holds config.yaml and metrics.json)")
    finished = [r for r in runs if r.metrics is not None]
    check_metrics(finished, metrics)
    keys = varying_keys(runs) or ["name"]
    rows = group_runs(finished, keys)
    header = [*keys, "n", *metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    csv_rows = []
    for row in rows:
        cells = [str(v) for v in row.key] + [str(len(row.runs))]
        csv_row: Dict[str, Any] = dict(zip(keys, row.key))
        csv_row["n"] = len(row.runs)
        for m in metrics:
            picked = [stat_value(r.metrics, m, stat) for r in row.runs]
            values = [v for v in picked if v is not None and not math.isnan(v)]
            cells.append(format_cell(values, m))
            mean, std, _ = summarize(values) if values else (float("nan"), float("nan"), 0)
            csv_row[f"{m}_mean"], csv_row[f"{m}_std"] = mean, std
        lines.append("| " + " | ".join(cells) + " |")
        csv_rows.append(csv_row)
    unfinished = len(runs) - len(finished)
    text = "\n".join(lines) + "\n"
    if stat != "final":
        text += f"\ntest_acc/test_error: {stat} statistic of each run.\n"
    if unfinished:
        text += f"\n{unfinished} run(s) below {root} have no metrics.json yet (unfinished or failed).\n"
    if skipped:
        text += f"\n{len(skipped)} run(s) skipped (damaged files):\n" + "".join(f"- {p}: {why}\n" for p, why in skipped)
    return text, csv_rows, unfinished


def paper_cell(values: Sequence[float], paper: Tuple[float, float | None] | None, metric: str) -> List[str]:
    """[ours "mean ± std (n)", paper value, ours - paper] as text; "missing" where we have no run."""
    d = 3 if metric in ("nll", "ece") else 2
    ours = "missing"
    if values:
        mean, std, n = summarize(values)
        ours = f"{mean:.{d}f} ± {std:.{d}f} ({n})"
    published = "—" if paper is None else f"{paper[0]:.{d}f}" + (f" ± {paper[1]:.{d}f}" if paper[1] is not None else "")
    delta = f"{statistics.fmean(values) - paper[0]:+.{d}f}" if values and paper is not None else "—"
    return [ours, published, delta]


def build_paper_report(root: Path, table_name: str, stat: str | None = None, runs_root: Path | None = None):
    """The table laid out as in the paper: (markdown, long-format csv rows).

    The markdown starts with the protocol card (mixexp.protocols) of the runs it reads. Rows are the
    paper's methods in its order, then the derived rows the paper prints (SEM's "Improvement" =
    X+sem - X); each (dataset, model) column has three sub-columns: ours (mean ± sample std over seeds,
    and n), the published number, and ours − paper. ``stat`` (final, median10, best) picks which number of
    a run is taken; default: the table's own (protocols.yaml). A row whose runs live in another folder
    (LaMix Table 3's Vanilla row = Table 1's runs) is read from ``runs_root``/<folder>, or, without
    ``runs_root``, from that folder below the nearest ancestor of ``root`` that has it.
    """
    from mixexp.protocols import protocol_card, table_protocol
    from mixexp.tables import EVAL_SOURCE
    from mixexp.tables import load_tables

    tables = load_tables()
    if table_name not in tables:
        raise KeyError(f"--table {table_name!r} is not allowed: choose one of {', '.join(tables)}")
    table, protocol = tables[table_name], table_protocol(table_name)
    stat = stat or protocol["statistic"]
    sources = {"*": (root, _finished_runs(root), stat)}
    for method, spec in protocol["row_runs"].items():
        folder = _row_folder(root, spec["runs"], runs_root)
        sources[method] = (folder, _finished_runs(folder), spec.get("statistic", stat))
    header = ["method"]
    for column in table.columns:
        header += [f"{table.title(column)} ours", "paper", "Δ"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    csv_rows, means = [], {}
    for method in table.methods:
        _, runs, row_stat = sources.get(method, sources["*"])
        cells = [method]
        for column in table.columns:
            values, key, used = _cell_values(runs, column, method, row_stat)
            paper = table.published.get((method, column))
            cells += paper_cell(values, paper, column.metric)
            means[(method, column)] = statistics.fmean(values) if values else None
            csv_rows.append(_csv_row(method, column, key, values, paper, used))
        lines.append("| " + " | ".join(cells) + " |")
        if protocol.get("derived_rows") == "improvement":
            lines += _improvement_row(table, method, means)
    unit = {"accuracy": "accuracy %", "error": "error %", "auroc": "AUROC %", "top1": "top-1 %",
            "nll": "NLL", "ece": "ECE"}
    metrics = ", ".join(dict.fromkeys(unit[c.metric] for c in table.columns))
    # the card describes the runs that feed this table's cells only (a folder may hold several tables' runs)
    cells = {(c.dataset.split("->")[0], c.model) for c in table.columns}
    cells |= {(EVAL_SOURCE.get(d, d), m) for d, m in cells}
    labels = {("runs" if k == "*" else f"row {k}"): (folder, [r for r in runs if (r.config.get("dataset.name"),
              r.config.get("model.name")) in cells], used) for k, (folder, runs, used) in sources.items()}
    text = (f"## {table.name} ({metrics})\n\n{protocol_card(table_name, labels)}\n"
            f"ours: mean ± std (n runs), {stat} statistic; paper: published; Δ = ours − paper.\n\n"
            + "\n".join(lines) + "\n")
    return text, csv_rows


def _finished_runs(folder: Path | None) -> List[Run]:
    return [r for r in find_runs(folder) if r.metrics is not None] if folder and folder.is_dir() else []


def _row_folder(root: Path, runs: str, runs_root: Path | None) -> Path:
    """``runs_root/runs`` or, by default, ``ancestor/runs`` for the nearest ancestor of root that has it."""
    if runs_root is not None:
        return runs_root / runs
    for ancestor in root.resolve().parents:
        if (ancestor / runs).is_dir():
            return ancestor / runs
    return root.parent / runs


def _cell_values(runs: Sequence[Run], column, method: str, stat: str) -> Tuple[List[float], str, str]:
    """(values, metrics.json key read, statistic used): a statistic other than final applies to the clean
    accuracy/error only, the one metric kept per epoch."""
    from mixexp.protocols import stat_key, stat_value
    from mixexp.tables import cell_source

    src = cell_source(column, method)
    used = stat if src.key in ("test_acc", "test_error") else "final"
    values = [stat_value(r.metrics, src.key, used)
              for r in runs if r.config.get("method") == src.method and r.config.get("dataset.name") == src.dataset
              and r.config.get("model.name") == src.model]
    return [v for v in values if v is not None], stat_key(src.key, used)[0], used


def _improvement_row(table, method: str, means) -> List[str]:
    """After X+sem, the SEM paper's "Improvement" row: (X+sem) - X, ours and published."""
    base = method[: -len("+sem")] if method.endswith("+sem") else None
    if base not in table.methods:
        return []
    cells = ["Improvement"]
    for column in table.columns:
        ours = [means[(method, column)], means[(base, column)]]
        paper = [table.published.get((method, column)), table.published.get((base, column))]
        diff = ours[0] - ours[1] if None not in ours else None
        published = paper[0][0] - paper[1][0] if None not in paper else None
        cells += [f"{diff:+.2f}" if diff is not None else "missing",
                  f"{published:+.2f}" if published is not None else "—",
                  f"{diff - published:+.2f}" if diff is not None and published is not None else "—"]
    return ["| " + " | ".join(cells) + " |"]


def _csv_row(method: str, column, key: str, values: List[float], paper, stat: str) -> Dict[str, Any]:
    mean, std, n = summarize(values) if values else (float("nan"), float("nan"), 0)
    return {
        "method": method, "dataset": column.dataset, "model": column.model, "metric": column.metric,
        "key": key, "statistic": stat, "ours_mean": mean, "ours_std": std, "n": n,
        "paper": paper[0] if paper else float("nan"),
        "paper_std": paper[1] if paper and paper[1] is not None else float("nan"),
        "delta": mean - paper[0] if values and paper else float("nan"),
    }


def folder_card(table: str, folder: Path, where: Sequence[str] = ()) -> str:
    """The protocol card of a plain report (a figure or one of our own tables): the finished runs below
    ``folder`` matching ``where``, final-epoch statistic."""
    from mixexp.protocols import protocol_card

    runs = [r for r in select(find_runs(folder), where) if r.metrics is not None] if folder.is_dir() else []
    return protocol_card(table, {"runs": (folder, runs, "final")})


def log_report_to_wandb(name: str, rows: List[Dict[str, Any]], root: Path | None = None,
                        project: str | None = None, entity: str | None = None, text: str = "") -> None:
    """Log a report as a W&B Table in a run of its own (job type "report"; offline unless WANDB_MODE says
    otherwise); the report's markdown (protocol card first) goes to the run summary as ``report``. With
    ``root``, the folder of the report's runs, the Table lands beside them: in their W&B project and entity
    (their ``logger.project``/``logger.entity``) and in their group (their ``name``); ``project``/``entity``
    given here win. Without runs: project "mixexp", group ``name``."""
    import os

    import wandb

    configs = [run.config for run in find_runs(root)] if root is not None else []

    def shared(key: str, default):
        values = {c.get(key) for c in configs}
        return values.pop() if len(values) == 1 and None not in values else default

    columns = list(rows[0]) if rows else []
    run = wandb.init(project=project or shared("logger.project", "mixexp"),
                     entity=entity or shared("logger.entity", None), group=shared("name", name), job_type="report", name=f"report-{name}", tags=[f"table={name}"],
                     dir=None if os.environ.get("WANDB_DIR") or root is None else str(root),
                     mode=os.environ.get("WANDB_MODE", "offline"), reinit="finish_previous")
    run.log({name: wandb.Table(columns=columns, data=[[r[c] for c in columns] for r in rows])})
    if text:
        run.summary["report"] = text
    run.finish()


@one_line_errors
def cli(argv: Sequence[str] | None = None) -> None:
    import signal

    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `mixexp-report DIR | head` ends quietly
    parser = argparse.ArgumentParser(prog="mixexp-report", description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="folder to search for runs (e.g. a sweep's multirun folder)")
    parser.add_argument("--metrics", default=",".join(DEFAULT_METRICS),
                        help=f"comma-separated metrics.json keys (default: {','.join(DEFAULT_METRICS)})")
    parser.add_argument("--out", type=Path, default=None, help="where report.md and report.csv go (default: DIR)")
    parser.add_argument("--where", nargs="*", default=[], metavar="KEY=VALUE[,VALUE]",
                        help="only runs whose config matches, e.g. method=lamix dataset.name=cifar100")
    parser.add_argument("--wandb", action="store_true", help="also log the report as a W&B Table")
    parser.add_argument("--table", default=None,
                        help="lay the runs out as a paper's table beside its published numbers (e.g. sem-table1); "
                             "writes <out>/<table>.md and .csv")
    parser.add_argument("--stat", choices=["final", "median10", "best"], default=None,
                        help="which number of a run: the last epoch's, the median of the last 10 epochs' or the best "
                             "test accuracy (error = 100 - accuracy); default: the table's own (--table), else final")
    parser.add_argument("--runs-root", type=Path, default=None,
                        help="folder holding the runs folders a table's rows borrow (e.g. multirun for lamix-table3's "
                             "Vanilla row from multirun/lamix/fb); default: found above DIR")
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        fail(f"{args.dir} is not a directory")
    if args.table:
        try:
            text, csv_rows = build_paper_report(args.dir, args.table, args.stat, args.runs_root)
        except (KeyError, ValueError) as e:
            fail(e.args[0])
        out = args.out or args.dir
        write_text(out / f"{args.table}.md", text)
        write_csv(out / f"{args.table}.csv", csv_rows)
        if args.wandb:
            log_report_to_wandb(args.table, csv_rows, args.dir, text=text)
        print(text, end="")
        print(f"\nwritten: {out / (args.table + '.md')}, {out / (args.table + '.csv')}")
        return
    try:
        text, csv_rows, _ = build_report(args.dir, [m for m in args.metrics.split(",") if m], args.where,
                                         args.stat or "final")
    except (FileNotFoundError, ValueError) as e:
        fail(str(e))
    out = args.out or args.dir
    write_text(out / "report.md", text)
    write_csv(out / "report.csv", csv_rows)
    if args.wandb:
        log_report_to_wandb(args.dir.name, csv_rows, args.dir, text=text)
    print(text, end="")
    print(f"\nwritten: {out / 'report.md'}, {out / 'report.csv'}")


if __name__ == "__main__":
    cli()
