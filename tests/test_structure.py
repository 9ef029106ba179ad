"""The shape of the code: no import circles, short functions, a method is one module plus one yaml."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from torch import nn

import mixexp

PACKAGE = Path(mixexp.__file__).resolve().parent
MAX_FUNCTION_LINES = 60


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict:
    """module -> the mixexp modules it imports anywhere (function bodies too), and its parent package."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mixexp"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    deps.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("mixexp"))
        # importing a.b.c runs a.b's __init__ first
        expanded = set()
        for dep in deps:
            parts = dep.split(".")
            expanded.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))
        graph[name] = {d for d in expanded if d in modules and d != name and not name.startswith(d + ".")}
    return graph


def _cycles(graph: dict) -> list:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_among_mixexp_modules():
    graph = _import_graph()
    assert "mixexp.config" in graph and "mixexp.mixers" in graph["mixexp.config"]  # the graph is real
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_no_function_is_longer_than_60_lines():
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []


def test_every_mixer_and_model_option_has_a_yaml_that_extends_its_schema():
    from omegaconf import OmegaConf

    from mixexp.config import OPTION_GROUPS

    conf = PACKAGE.parent / "conf"
    for group, registry in OPTION_GROUPS.items():
        for name in registry:
            node = OmegaConf.load(conf / group / f"{name}.yaml")
            assert node.defaults[0] == f"/schema/{group}/{name}@_here_" and "_self_" in node.defaults, (group, name)
