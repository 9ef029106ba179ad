"""How each paper table is made (``protocols.yaml``) and the protocol card that starts its report.

The card is generated from the runs' own ``config.yaml`` (never from the presets), so it states what was
actually trained: epochs, batch, optimiser, schedule, alpha, CutMix probability, loss form, architecture,
crop/flip, normalisation, precision, the statistic reported and the seeds; then every setting where we
differ from the paper or its authors' code, or where both are silent, each with its source.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple

import yaml

PROTOCOLS_YAML = Path(__file__).resolve().parent / "protocols.yaml"
STATISTICS = ("final", "median10", "best")
STATISTIC_TEXT = {"final": "the last epoch's test metrics", "median10": "median test accuracy of the last 10 epochs",
                  "best": "best test accuracy over epochs"}


@functools.lru_cache(maxsize=1)
def load_protocols(path: Path = PROTOCOLS_YAML) -> Dict[str, Any]:
    return yaml.safe_load(path.read_text())


def table_protocol(table: str) -> Dict[str, Any]:
    """``{"recipe", "statistic", "row_runs"}`` of a table (final, no row sources for tables not listed)."""
    entry = dict(load_protocols()["tables"].get(table, {}))
    entry.setdefault("statistic", "final")
    entry.setdefault("row_runs", {})
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
    if c.get("sched.name") == "cosine":
        text = f"cosine to {c.get('sched.min_lr')}"
    else:
        text = f"x{c.get('sched.gamma')} at {list(c.get('sched.milestones') or [])}"
    warm = c.get("sched.warmup_epochs") or 0
    return text + (f", {warm}-epoch warm-up" if warm else "")


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
    ("per-example lambda", lambda c: str(c.get("mixer.per_sample")) if c.get("mixer.name", "none") != "none" else ""),
    ("loss form", lambda c: str(c.get("loss.form", "ce"))),
    ("architecture", _architecture),
    ("crop/flip", lambda c: f"{c.get('dataset.name')}: padding {c.get('dataset.crop_padding')}, flip {c.get('dataset.flip')}"),
    ("normalisation", lambda c: f"{c.get('dataset.name')}: mean {list(c.get('dataset.mean') or [])}, "
                                f"std {list(c.get('dataset.std') or [])}"),
    ("precision", lambda c: "bf16 autocast on CUDA" if c.get("trainer.bf16", True) else "float32"),
    ("shift sets", lambda c: ", ".join(c.get("eval.shift") or ())),
    ("ImageNet-C view", lambda c: IMAGENET_C_VIEW[c.get("eval.imagenet_c_crop") or "none"]
     if "imagenet_c" in (c.get("eval.shift") or ()) else ""),
]


def protocol_card(table: str, sources: Dict[str, Tuple[Path, List[Any], str]]) -> str:
    """Markdown card: one block per run source (``label -> (folder, runs, statistic)``), then the deviations
    of every recipe the table uses. ``runs`` are :class:`mixexp.report.Run` (``config`` flattened)."""
    protocol = table_protocol(table)
    lines = [f"### Protocol of {table}", ""]
    for label, (folder, runs, stat) in sources.items():
        configs = [r.config for r in runs]
        seeds = sorted({c.get("seed") for c in configs}, key=str)
        lines.append(f"**{label}** ({len(runs)} runs in {folder}; statistic: {STATISTIC_TEXT[stat]})")
        lines.append("")
        if not configs:
            lines += ["- no finished runs yet: the settings below are the recipe's (protocols.yaml)", ""]
            continue
        for name, show in CARD_FIELDS:
            shown = [v for v in map(show, configs) if v]
            lines += [f"- {name}: {_join(shown)}"] if shown else []  # e.g. no CutMix run: no CutMix line
        lines += [f"- seeds: {', '.join(map(str, seeds))}", ""]
    recipes = [*_as_list(protocol.get("recipe"))] + [x for r in protocol["row_runs"].values() for x in _as_list(r.get("recipe"))]
    rows = [row for recipe in dict.fromkeys(recipes) for row in load_protocols()["deviations"].get(recipe, [])]
    if rows:
        lines += ["Where we differ from the paper or its code, or both are silent:", "",
                  "| setting | ours | paper | authors' code | source |", "|---|---|---|---|---|"]
        lines += ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines) + "\n"
