"""How each paper table is made, what its authors did (``protocols.yaml``), and the protocol card that starts
its report.

The authors' settings are data: per recipe, facts (a config key, the authors' value or "silent", where it holds,
its source), the deviations kept on purpose, and notes on code that no key carries. :func:`differences` compares
a run's config with them; tests/test_fidelity.py runs it over every grid point of every table preset, and the card
runs it over the runs it sits above. The card is generated from the runs' own ``config.yaml`` (never from the
presets), so it states what was actually trained: epochs, batch, optimiser, schedule, alpha, CutMix probability,
loss form, architecture, crop/flip, normalisation, precision, the statistic reported and the seeds; then every
setting where these runs differ from their authors', every choice where both paper and code are silent, and
the notes, each with its source.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

PROTOCOLS_YAML = Path(__file__).resolve().parent / "protocols.yaml"
STATISTICS = ("final", "median10", "best")
STATISTIC_TEXT = {"final": "the last epoch's test metrics", "median10": "median test accuracy of the last 10 epochs",
                  "best": "best test accuracy over epochs"}


@functools.lru_cache(maxsize=1)
def load_protocols(path: Path = PROTOCOLS_YAML) -> Dict[str, Any]:
    return yaml.safe_load(path.read_text())


def table_protocol(table: str) -> Dict[str, Any]:
    """``{"recipe", "statistic", "row_runs", "facts"}`` of a table (final, no row sources, no facts of its own for
    tables not listed)."""
    entry = dict(load_protocols()["tables"].get(table, {}))
    entry.setdefault("statistic", "final")
    entry.setdefault("row_runs", {})
    entry.setdefault("facts", [])
    return entry


def stat_key(key: str, stat: str) -> Tuple[str, float, float]:
    """metrics.json key, sign and offset giving ``key`` under a statistic: value = offset + sign * metrics[key].

    Only the clean test accuracy is kept per epoch (``median10_test_acc``, ``best_test_acc``); the error
    is 100 - accuracy. Any other key exists for the final epoch only."""
    if stat == "final":
        return key, 1.0, 0.0
    prefix = {"median10": "median10_", "best": "best_"}[stat]
    if key == "test_acc":
        return prefix + "test_acc", 1.0, 0.0
    if key == "test_error":
        return prefix + "test_acc", -1.0, 100.0
    raise ValueError(f"--stat {stat} is only defined for test_acc and test_error, not {key} (use --stat final)")


def stat_value(metrics: Dict[str, Any], key: str, stat: str):
    """The number a run gives for ``key`` under ``stat``, or None when metrics.json lacks it."""
    source, sign, offset = stat_key(key, stat)
    value = metrics.get(source)
    return offset + sign * value if isinstance(value, (int, float)) else None


def _as_list(value) -> List[str]:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def _join(values: Sequence[Any]) -> str:
    return "; ".join(dict.fromkeys(str(v) for v in values)) or "—"


def _schedule(c: Dict[str, Any]) -> str:
    """The lr schedule as run (``c``: a :func:`recipe_view`): the epochs where the lr drops after any scaling."""
    if c.get("sched.name") == "cosine":
        text = f"cosine to {c.get('sched.min_lr')}"
    else:
        text = f"x{c.get('sched.gamma')} at {list(c.get('lr_drops') or [])}"
        if c.get("sched.reference_epochs"):
            text += (f" (epochs {list(c.get('sched.milestones') or [])} of a {c['sched.reference_epochs']}-epoch run, "
                     f"scaled to {c.get('trainer.epochs')})")
    warm = c.get("warmup") if c.get("warmup") is not None else c.get("sched.warmup_epochs") or 0
    return text + (f", {warm}-epoch warm-up" if warm else "")


def _precision(c: Dict[str, Any]) -> str:
    """What the run computed in: bf16 autocast is used on CUDA only (``trainer.bf16``), so a CPU run is float32."""
    device = str(c.get("provenance.device") or c.get("trainer.device") or "")
    if not c.get("trainer.bf16", True) or device.startswith("cpu"):
        return "float32" + (" (CPU)" if device.startswith("cpu") else "")
    return "bf16 autocast on CUDA, float32 evaluation" if device.startswith("cuda") else "bf16 autocast on CUDA"


def _optimiser(c: Dict[str, Any]) -> str:
    nesterov = " Nesterov" if c.get("optim.nesterov") else ""
    bn = "" if c.get("optim.bn_weight_decay", True) else " (none on BatchNorm)"
    return (f"{c.get('optim.name', 'sgd').upper()}{nesterov} lr {c.get('optim.lr')}, momentum {c.get('optim.momentum')}, "
            f"weight decay {c.get('optim.weight_decay')}{bn}")


def _architecture(c: Dict[str, Any]) -> str:
    """``preactresnet18 (variant fb, stem cifar)``: the model and the keys of its option that choose its form."""
    parts = [f"{k} {c['model.' + k]}" for k in ("variant", "stem", "backbone.name") if c.get("model." + k) is not None]
    return f"{c.get('model.name')} ({', '.join(parts) or 'as built'})"




IMAGENET_C_VIEW = {"none": "files as released (224 px centre crops), eval.imagenet_c_crop=none",
                   "center": "Resize(256) + CenterCrop(224) of each 224 px file, eval.imagenet_c_crop=center"}

# card line -> what it shows of one run's flattened config
CARD_FIELDS: List[Tuple[str, Callable[[Dict[str, Any]], str]]] = [
    ("epochs", lambda c: str(c.get("trainer.epochs"))),
    ("batch", lambda c: str(c.get("trainer.batch_size"))),
    ("optimiser", _optimiser),
    ("schedule", _schedule),
    ("alpha", lambda c: f"{c['method']}: {c.get('mixer.alpha')}" if c.get("mixer.name", "none") != "none" else ""),
    ("CutMix probability", lambda c: str(c.get("mixer.prob")) if c.get("mixer.name") == "cutmix" else ""),
    ("per-example lambda", lambda c: f"{c['method']}: {c['mixer.per_sample']}" if "mixer.per_sample" in c else ""),
    ("loss form", lambda c: str(c.get("loss.form", "ce"))),
    ("architecture", _architecture),
    ("crop/flip", lambda c: f"{c.get('dataset.name')}: padding {c.get('dataset.crop_padding')}, flip {c.get('dataset.flip')}"),
    ("normalisation", lambda c: f"{c.get('dataset.name')}: mean {list(c.get('dataset.mean') or [])}, "
                                f"std {list(c.get('dataset.std') or [])}"),
    ("precision", _precision),
    ("shift sets", lambda c: ", ".join(c.get("eval.shift") or ())),
    ("ImageNet-C view", lambda c: IMAGENET_C_VIEW[c.get("eval.imagenet_c_crop") or "none"]
     if "imagenet_c" in (c.get("eval.shift") or ()) else ""),
]

# ----------------------------------------------------------------------------- the authors' settings as data

SILENT = "silent"  # a fact's value where neither the paper nor its code fixes the setting


@dataclass(frozen=True)
class Fact:
    """What the authors' code (or paper) sets ``key`` to, for the runs whose keys match ``when``."""

    key: str
    value: Any
    source: str
    when: Tuple[Tuple[str, Tuple[Any, ...]], ...] = ()
    one_of: Tuple[Any, ...] = ()  # instead of one value: any of these (a sweep the paper ran)
    chosen: Any = None  # for a silent fact: the value the recipe sets
    why: str = ""  # for a silent fact: why we chose it

    @property
    def silent(self) -> bool:
        return self.value == SILENT and not self.one_of

    def applies(self, view: Mapping[str, Any]) -> bool:
        return all(any(_same(view.get(k), v) for v in allowed) for k, allowed in self.when)

    def holds(self, ours: Any) -> bool:
        """Whether our value is the authors' (any of ``one_of``), or, where they are silent, the recipe's choice."""
        if self.one_of:
            return any(_same(ours, v) for v in self.one_of)
        return _same(ours, self.chosen if self.silent else self.value)

    def authors_text(self) -> str:
        if self.silent:
            return f"silent (the recipe chose {_text(self.chosen)})"
        return ("one of " + ", ".join(map(str, self.one_of))) if self.one_of else _text(self.value)

    def setting(self) -> str:
        """The card's name for it: the key, and where it holds when that is not everywhere."""
        where = "; ".join(f"{k} {'/'.join(map(str, v))}" for k, v in self.when)
        return f"{self.key} ({where})" if where else self.key


@dataclass(frozen=True)
class Deviation:
    """A difference from the authors' ``key`` that a recipe keeps on purpose, and why."""

    key: str
    why: str
    when: Tuple[Tuple[str, Tuple[Any, ...]], ...] = ()

    def covers(self, fact: Fact, view: Mapping[str, Any]) -> bool:
        return self.key == fact.key and all(any(_same(view.get(k), v) for v in allowed) for k, allowed in self.when)


@dataclass(frozen=True)
class Authors:
    """A recipe's authors' settings: facts, the deviations we keep, and notes on what no key carries."""

    facts: Tuple[Fact, ...]
    deviations: Tuple[Deviation, ...]
    notes: Tuple[Dict[str, str], ...]
    # runs trained by an older mixexp computed something else for this recipe: (version, what changed)
    since: Optional[Tuple[str, str]] = None


def _same(ours: Any, theirs: Any) -> bool:
    if isinstance(ours, (list, tuple)) or isinstance(theirs, (list, tuple)):
        return (isinstance(ours, (list, tuple)) and isinstance(theirs, (list, tuple)) and len(ours) == len(theirs)
                and all(_same(a, b) for a, b in zip(ours, theirs)))
    if isinstance(ours, bool) or isinstance(theirs, bool):
        return ours is theirs
    if isinstance(ours, (int, float)) and isinstance(theirs, (int, float)):
        return math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-12)
    return ours == theirs


def _when(node: Optional[Mapping[str, Any]]) -> Tuple[Tuple[str, Tuple[Any, ...]], ...]:
    return tuple((k, tuple(v) if isinstance(v, list) else (v,)) for k, v in (node or {}).items())


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _fact(node: Mapping[str, Any]) -> Fact:
    return Fact(node["key"], _frozen(node.get("value", SILENT)), node["source"], _when(node.get("when")),
                tuple(node.get("one_of") or ()), _frozen(node.get("chosen")), node.get("why", ""))


@functools.lru_cache(maxsize=None)
def recipe_authors(recipe: str) -> Authors:
    """The authors' settings of ``recipe`` (a key of protocols.yaml ``authors``)."""
    node = load_protocols()["authors"][recipe]
    since = node.get("since")
    return Authors(tuple(_fact(f) for f in node["facts"]),
                   tuple(Deviation(d["key"], d["why"], _when(d.get("when"))) for d in node.get("deviations") or ()),
                   tuple(node.get("notes") or ()), (since["version"], since["why"]) if since else None)


def table_authors(table: str, recipe: Optional[str] = None) -> Authors:
    """The authors' settings behind ``table``'s cells: its recipe's (or ``recipe``'s, for a row borrowed from
    another table's runs), the table's own facts replacing the recipe's facts of the same key."""
    protocol = table_protocol(table)
    base = recipe_authors(recipe or protocol["recipe"])
    if recipe is not None:
        return base
    own = tuple(_fact(f) for f in protocol["facts"])
    replaced = {f.key for f in own}
    return Authors(tuple(f for f in base.facts if f.key not in replaced) + own, base.deviations, base.notes, base.since)


def recipe_view(config: Mapping[str, Any], seeds: Optional[int] = None, statistic: Optional[str] = None) -> Dict[str, Any]:
    """A run's flattened ``config`` with the keys facts may name besides config keys: ``lr_drops`` and
    ``warmup`` (the schedule as run: :func:`mixexp.train_utils.scaled_schedule`), ``method``, ``seeds`` and
    ``statistic``."""
    from mixexp.train_utils import scaled_schedule

    view = dict(config)
    view.setdefault("method", view.get("label"))  # a report's runs carry it; a composed table point has its label
    if "sched.name" in view:
        drops, view["warmup"] = scaled_schedule(view.get("sched.milestones") or (), view.get("sched.warmup_epochs") or 0,
                                                view.get("sched.reference_epochs"), int(view.get("trainer.epochs") or 0))
        view["lr_drops"] = tuple(drops) if view["sched.name"] == "multistep" else None
    view["seeds"], view["statistic"] = seeds, statistic
    return view


@dataclass(frozen=True)
class Difference:
    fact: Fact
    ours: Any
    deviation: Optional[Deviation]  # None: a difference no deviation of the recipe names


def differences(view: Mapping[str, Any], authors: Authors) -> List[Difference]:
    """Where one run (its :func:`recipe_view`) differs from the facts that hold for it: from the authors' value,
    or, where they are silent, from the recipe's choice."""
    out = []
    for fact in authors.facts:
        if not fact.applies(view):
            continue
        ours = view.get(fact.key)
        if not fact.holds(ours):
            out.append(Difference(fact, ours, next((d for d in authors.deviations if d.covers(fact, view)), None)))
    return out


UNLISTED = ("not this recipe's value: set on the command line or by a budget (budget=smoke runs one epoch on "
            "fixture data)")


def _text(value: Any) -> str:
    return str(list(value)) if isinstance(value, tuple) else str(value)


def card_rows(views: Sequence[Mapping[str, Any]], authors: Authors) -> List[List[str]]:
    """The card's rows ``[setting, ours, authors', source, why]`` for runs ``views`` (:func:`recipe_view`): every
    fact they differ from (ours: the values they ran), every silent fact that holds for them (a choice), every
    note. Without views, the recipe's deviations and choices as listed."""
    rows: Dict[str, List[Any]] = {}
    for view in views:
        differing = {d.fact: d for d in differences(view, authors)}
        for fact in authors.facts:
            if fact.applies(view) and (fact in differing or fact.silent):
                row = rows.setdefault(fact.setting(), [fact, [], set()])
                row[1].append(view.get(fact.key))
                d = differing.get(fact)
                row[2].add(UNLISTED if d and not d.deviation else d.deviation.why if d else f"our choice: {fact.why}")
    out = [[setting, "; ".join(dict.fromkeys(_text(v) for v in ours)), fact.authors_text(), fact.source,
            " / ".join(sorted(whys))] for setting, (fact, ours, whys) in rows.items()]
    older = sorted({str(v.get("provenance.mixexp_version")) for v in views if _older(v, authors)})
    if older:
        out.append(["trained by mixexp", ", ".join(older), f">= {authors.since[0]}", "mixexp's changelog",
                    f"{authors.since[1]}: train these runs again"])
    if not views:
        out += [[d.key, "see why", next((f.authors_text() for f in authors.facts if f.key == d.key), "-"),
                 next((f.source for f in authors.facts if f.key == d.key), "-"), d.why] for d in authors.deviations]
        out += [[f.setting(), _text(f.chosen), f.authors_text(), f.source, f"our choice: {f.why}"]
                for f in authors.facts if f.silent]
    out += [[n["setting"], n["ours"], n["authors"], n["source"], n.get("why", "no config key carries this")]
            for n in authors.notes]
    return out


def _older(view: Mapping[str, Any], authors: Authors) -> bool:
    """Whether a run was trained by a mixexp older than the recipe's ``since`` version (runs without provenance,
    such as a composed grid point, are not)."""
    version = view.get("provenance.mixexp_version")
    if not version or authors.since is None:
        return False
    as_tuple = lambda v: tuple(int(p) for p in str(v).split(".")[:3] if p.isdigit())  # noqa: E731
    return as_tuple(version) < as_tuple(authors.since[0])


def run_views(runs: Sequence[Any], statistic: str) -> List[Dict[str, Any]]:
    """:func:`recipe_view` of report runs (``config`` flattened, ``metrics``): seeds = how many seeds the runs of
    the same method, dataset and model have; the device the run reported (for the precision line)."""
    cells: Dict[Tuple[Any, ...], set] = defaultdict(set)
    for r in runs:
        cells[(r.config.get("method"), r.config.get("dataset.name"), r.config.get("model.name"))].add(r.config.get("seed"))
    views = []
    for r in runs:
        config = dict(r.config)
        provenance = (r.metrics or {}).get("provenance") or {}
        config["provenance.device"], config["provenance.mixexp_version"] = provenance.get("device"), provenance.get("mixexp_version")
        cell = (config.get("method"), config.get("dataset.name"), config.get("model.name"))
        views.append(recipe_view(config, len(cells[cell]), statistic))
    return views


def protocol_card(table: str, sources: Dict[str, Tuple[Path, List[Any], str]]) -> str:
    """Markdown card: one block per run source (``label -> (folder, runs, statistic)``), then how these runs
    differ from their authors' settings (:func:`card_rows`). ``runs`` are :class:`mixexp.report.Run`."""
    protocol = table_protocol(table)
    lines = [f"### Protocol of {table}", ""]
    rows: List[List[str]] = []
    for label, (folder, runs, stat) in sources.items():
        views = run_views(runs, stat)
        seeds = sorted({v.get("seed") for v in views}, key=str)
        lines.append(f"**{label}** ({len(runs)} runs in {folder}; statistic: {STATISTIC_TEXT[stat]})")
        lines.append("")
        borrowed = protocol["row_runs"].get(label[len("row "):], {}) if label.startswith("row ") else {}
        authors = table_authors(table, borrowed.get("recipe"))
        rows += [r for r in card_rows(views, authors) if r not in rows]
        if not views:
            lines += ["- no finished runs yet: the differences below are the recipe's (protocols.yaml)", ""]
            continue
        for name, show in CARD_FIELDS:
            shown = [v for v in map(show, views) if v]
            lines += [f"- {name}: {_join(shown)}"] if shown else []  # e.g. no CutMix run: no CutMix line
        lines += [f"- seeds: {', '.join(map(str, seeds))}", ""]
    if rows:
        lines += ["Where these runs differ from their authors' settings, the choices where paper and code are silent, "
                  "and what no setting carries:", "",
                  "| setting | ours | authors' | source | why |", "|---|---|---|---|---|"]
        lines += ["| " + " | ".join(str(x).replace("|", "/") for x in row) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines) + "\n"
