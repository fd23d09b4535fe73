"""The package's shape, read from the source with `ast` (every import, late ones inside functions included):
no import cycle between modules, each layer imports only the layers below it, entry points apart from the library.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "liq_pipeline"

# Bottom up (docs/architecture.md). A module may import its own package and any package of a lower rank.
LAYERS: dict[str, int] = {
    "risk": 0,
    "chain": 1,
    "cache": 1,
    "lake": 2,
    "config": 2,  # names chain facts (Multicall3's address) as defaults
    "devnet": 2,
    "metrics": 3,
    "evaluation": 3,
    "watch": 4,
    "execution": 4,
    "backtest": 4,  # the engine replayed (evaluation/) and graded against the chain's answers
    "defs": 5,
    "definitions": 6,
    "bench": 7,
    "commands": 8,
}
ENTRY_POINTS = ("commands", "bench")
MAX_ROOT_MODULES = 4


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every liq_pipeline module `name` imports, anywhere in the file; `from pkg import mod` counts as `pkg.mod`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join([*base, node.module] if node.module else base)
            else:
                origin = node.module or ""
            submodules = [f"{origin}.{alias.name}" for alias in node.names]
            # `from pkg import mod` imports the module; a name that is not a module comes from pkg itself
            targets = submodules if all(t in known for t in submodules) else [*submodules, origin]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith("liq_pipeline.") and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def layer_of(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "__init__"


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle_between_modules():
    assert cycles(graph()) == []


def test_the_cycle_finder_sees_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_package_has_a_layer():
    unknown = {layer_of(m) for m in modules()} - set(LAYERS) - {"__init__"}
    assert unknown == set(), f"add {sorted(unknown)} to LAYERS and to docs/architecture.md"


def test_each_layer_imports_only_layers_below_it():
    upward = defaultdict(list)
    for module, targets in graph().items():
        source = layer_of(module)
        for target in targets:
            wanted = layer_of(target)
            if source != wanted and source != "__init__" and LAYERS[wanted] >= LAYERS[source]:
                upward[module].append(target)
    assert dict(upward) == {}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_no_library_package_imports_an_entry_point(entry):
    offenders = {
        module: sorted(t for t in targets if layer_of(t) == entry)
        for module, targets in graph().items()
        if layer_of(module) not in ENTRY_POINTS and any(layer_of(t) == entry for t in targets)
    }
    assert offenders == {}


def test_the_import_reader_sees_late_and_relative_imports(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from ..commands import cli\n    from . import engine\n")
    known = {"liq_pipeline.commands", "liq_pipeline.commands.cli", "liq_pipeline.risk.engine"}
    assert imports_of("liq_pipeline.risk.mod", source, known) == {
        "liq_pipeline.commands.cli",
        "liq_pipeline.risk.engine",
    }
    source.write_text("def f():\n    from ..commands import helper\n")
    assert imports_of("liq_pipeline.risk.mod", source, known) == {"liq_pipeline.commands"}


def test_few_modules_at_the_package_root():
    root_modules = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(root_modules) <= MAX_ROOT_MODULES, root_modules
