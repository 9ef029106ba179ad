"""The papers' tables: their published numbers (shipped in ``published_results.csv``) and where each
cell's number lives in our runs' ``metrics.json``.

A table is one (paper, table) of the csv: rows are methods in the paper's order, columns are
(dataset, model) in the paper's order, one metric. A column's dataset is either a training set
(``cifar10``), an evaluation set of a training set (``cifar10_c`` from cifar10 runs, ``objectnet``
from imagenet runs) or an OOD pair (``cifar10->svhn``). A method ending in ``+rescaled`` is the
run of the method before it, evaluated with test-time rescaling (the ``rescaled_`` metrics).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from mixexp.data.evalsets import EVAL_SETS
from mixexp.evaluation import keys

PUBLISHED_CSV = Path(__file__).resolve().parent / "published_results.csv"

# evaluation set -> the training set whose runs are evaluated on it
EVAL_SOURCE = {name: spec.base for name, spec in EVAL_SETS.items() if spec.kind == "shift"}


@dataclass(frozen=True)
class Column:
    dataset: str
    model: str
    metric: str  # accuracy, error, auroc, top1, nll, ece (one table may mix them: rescaled-ub)


@dataclass
class PaperTable:
    paper: str
    table: str
    methods: List[str] = field(default_factory=list)
    columns: List[Column] = field(default_factory=list)
    published: Dict[Tuple[str, Column], Tuple[float, Optional[float]]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``sem-table1``, ``lamix-fig6``, ``rescaled-ub``."""
        t = self.table
        return f"{self.paper}-{'table' + t if t.isdigit() else t}"

    def title(self, column: Column) -> str:
        metrics = {c.metric for c in self.columns}
        return f"{column.dataset} {column.model}" + (f" {column.metric}" if len(metrics) > 1 else "")


def load_tables(path: Path = PUBLISHED_CSV) -> Dict[str, PaperTable]:
    """Every table of the csv, by name (``sem-table1`` ...), rows and columns in the paper's order."""
    tables: Dict[str, PaperTable] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            probe = PaperTable(row["paper"], row["table"])
            table = tables.setdefault(probe.name, probe)
            column = Column(row["dataset"], row["model"], row["metric"])
            if row["method"] not in table.methods:
                table.methods.append(row["method"])
            if column not in table.columns:
                table.columns.append(column)
            std = float(row["std"]) if row["std"] else None
            table.published[(row["method"], column)] = (float(row["value"]), std)
    return tables


@dataclass(frozen=True)
class CellSource:
    """Which runs and which metrics.json key give a cell."""

    method: str  # the trained method, as ``mixexp.report.method_name`` spells it
    dataset: str  # the training set
    model: str
    key: str


def cell_source(column: Column, method: str) -> CellSource:
    rescaled = method.endswith("+rescaled")
    base = method[: -len("+rescaled")] if rescaled else method
    prefix = keys.RESCALED if rescaled else ""
    if "->" in column.dataset:  # OOD detection: in-distribution set -> OOD set
        source, ood = column.dataset.split("->")
        return CellSource(base, source, column.model, keys.ood_key(ood, prefix))
    if column.dataset in EVAL_SOURCE:
        return CellSource(base, EVAL_SOURCE[column.dataset], column.model, keys.shift_key(column.dataset, prefix))
    return CellSource(base, column.dataset, column.model, prefix + keys.CLEAN_KEYS[column.metric])
