"""The import graph of rlhf/ and callbacks/ reads one way: no import circles, no package importing
one above it (docs/architecture.md).

Modules are parsed with `ast`, never imported, so an import inside a function counts as much as
one at the top of a file: a lazy import only hides a circle until the day it runs. An edge goes
to the module an import names (`from rlhf.data import jsonl` -> rlhf.data.jsonl, `from
rlhf.annotators import Annotator` -> the package's __init__), not to the parent packages Python
initialises on the way.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest


def _repo_root() -> Path:
    for folder in Path(__file__).resolve().parents:
        if (folder / "rlhf" / "__init__.py").is_file():
            return folder
    raise RuntimeError("no rlhf/ package above this test file")


ROOT = _repo_root()
PROJECT = ("rlhf", "callbacks")

# The layers, lowest first; a unit may import every unit of a lower layer (the same table is in
# docs/architecture.md, which test_architecture_doc_has_the_same_table keeps in step). `config`
# composes and validates a whole run's config for the entry points, so it sits above the stages
# whose schemas it registers; the typed building blocks it uses live in rlhf.core.
LAYERS = (
    ("core",),
    ("data",),
    ("sft", "dpo", "reward_model", "rewards", "rl", "annotators", "evaluate"),
    ("config",),
    ("pipeline", "train", "score", "pipeline_report", "pipeline_accuracy", "pipeline_frontier", "sweep_summary",
     "compare"),
)
# Imports between units of one layer, the only ones allowed; this keeps each layer one way too.
SAME_LAYER = {
    "rewards": {"reward_model"},                 # the RM reward loads a saved RM (reward_model.scoring)
    "rl": {"reward_model", "rewards"},           # PPO builds its reward; a critic may start from a saved RM
    "annotators": {"reward_model"},              # a trained RM can rank responses
    "evaluate": {"reward_model", "annotators", "rewards"},  # judges (an RM, the LLM judge, the simulated
                                                            # labeller) and verifiable accuracy (a reward)
    "train": {"sweep_summary"},
    "pipeline": {"train", "pipeline_report", "pipeline_accuracy", "pipeline_frontier", "sweep_summary"},
    "pipeline_frontier": {"pipeline_accuracy"},   # accuracy mode scores checkpoints as the accuracy stage does
    "compare": {"pipeline"},                      # an arm's budget is counted from its composed stages
}
# Outside the layers: the Lightning callbacks sit on rlhf.core alone, and nothing in rlhf imports them.
CALLBACKS_MAY_IMPORT = {"core"}


def allowed_imports() -> dict[str, set[str]]:
    """unit -> units it may import (itself included)."""
    allowed, below = {}, set()
    for layer in LAYERS:
        for unit in layer:
            allowed[unit] = {unit} | below | SAME_LAYER.get(unit, set())
        below |= set(layer)
    allowed["callbacks"] = {"callbacks"} | CALLBACKS_MAY_IMPORT
    return allowed


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every .py under rlhf/ and callbacks/."""
    modules = {}
    for top in PROJECT:
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def unit_of(module: str) -> str:
    """rlhf.rl.rollout -> rl, rlhf.pipeline -> pipeline, callbacks.kl_ceiling -> callbacks."""
    parts = module.split(".")
    if parts[0] == "callbacks":
        return "callbacks"
    return parts[1] if len(parts) > 1 else "rlhf"


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> list[tuple[str | None, str, int]]:
    """(imported project module or None when it does not exist, name as written, line) for every
    import statement of the file, wherever it sits."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            stem = node.module or ""
            if node.level:
                parts = package.split(".")
                stem = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            # `from a import b` names module a.b when that exists, else a name defined in a.
            names = [f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in modules else stem for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PROJECT:
                target = name if name in modules else None
                if target != module:
                    found.append((target, name, node.lineno))
    return found


def import_graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], str]]:
    """module -> imported modules, and for each edge where it is written (file:line)."""
    modules = module_files()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    where: dict[tuple[str, str], str] = {}
    for module, path in modules.items():
        for target, _, line in imports_of(module, path, modules):
            if target is None:
                continue
            graph[module].add(target)
            where.setdefault((module, target), f"{path.relative_to(ROOT)}:{line}")
    return graph, where


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components with more than one module (a module never imports itself here)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def cycle_through(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """One concrete circle inside a strongly connected component, start repeated at the end."""
    members, start = set(component), component[0]
    paths, seen = [[start]], {start}
    while paths:
        path = paths.pop(0)
        for nxt in sorted(graph[path[-1]] & members):
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                paths.append(path + [nxt])
    return component


def test_every_project_import_names_an_existing_module():
    modules = module_files()
    missing = [f"{path.relative_to(ROOT)}:{line}: {name}"
               for module, path in modules.items()
               for target, name, line in imports_of(module, path, modules) if target is None]
    assert not missing, "imports of project modules that do not exist:\n" + "\n".join(missing)


def test_no_import_cycles():
    graph, where = import_graph()
    circles = []
    for component in strongly_connected(graph):
        cycle = cycle_through(component, graph)
        hops = [f"  {a} -> {b}  ({where[(a, b)]})" for a, b in zip(cycle, cycle[1:])]
        circles.append(" -> ".join(cycle) + "\n" + "\n".join(hops))
    assert not circles, "import cycles:\n" + "\n\n".join(circles)


def test_no_layer_violations():
    graph, where = import_graph()
    allowed = allowed_imports()
    bad = []
    for module, targets in sorted(graph.items()):
        unit = unit_of(module)
        if unit == "rlhf":   # the root package's __init__: the version string and nothing else
            bad += [f"{where[(module, t)]}: rlhf/__init__.py imports {t}" for t in sorted(targets)]
            continue
        assert unit in allowed, f"{module} belongs to no layer; add `{unit}` to LAYERS and docs/architecture.md"
        for target in sorted(targets):
            target_unit = unit_of(target)
            if target_unit not in allowed[unit]:
                bad.append(f"{where[(module, target)]}: {module} ({unit}) imports {target} ({target_unit}); "
                           f"{unit} may import only {sorted(allowed[unit] - {unit})}")
    assert not bad, "imports against the layers of docs/architecture.md:\n" + "\n".join(bad)


def test_the_layer_table_is_one_way():
    allowed = allowed_imports()
    graph = {unit: {u for u in may if u != unit} for unit, may in allowed.items()}
    assert not strongly_connected(graph), "SAME_LAYER lets two units import each other"


def test_architecture_doc_has_the_same_table():
    """docs/architecture.md's rows `| `unit` | layer number (— outside the layers) | `a`, `b` ... |`."""
    rows = {}
    for line in (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"`\w+`", cells[0]):
            layer = int(cells[1]) if cells[1].isdigit() else None
            rows[cells[0].strip("`")] = (layer, set(re.findall(r"`(\w+)`", cells[2])))
    expected = {unit: (number, SAME_LAYER.get(unit, set()))
                for number, layer in enumerate(LAYERS, start=1) for unit in layer}
    expected["callbacks"] = (None, CALLBACKS_MAY_IMPORT)
    assert rows == expected, "docs/architecture.md's layer table differs from LAYERS / SAME_LAYER in this test"


@pytest.mark.parametrize("source, expected", [
    ("from rlhf.data import jsonl", "rlhf.data.jsonl"),
    ("from rlhf.data.jsonl import iter_jsonl", "rlhf.data.jsonl"),
    ("import rlhf.core.errors as errors", "rlhf.core.errors"),
    ("from rlhf.annotators import Annotator", "rlhf.annotators"),
    ("from . import base", "rlhf.annotators.base"),
    ("from .base import check_prompt", "rlhf.annotators.base"),
])
def test_imports_resolve_to_modules(tmp_path, source, expected):
    path = tmp_path / "probe.py"
    path.write_text(f"def lazy():\n    {source}\n")
    modules = module_files()
    assert [target for target, _, _ in imports_of("rlhf.annotators.probe", path, modules)] == [expected]
