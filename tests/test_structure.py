"""The shape of the code, checked: module sizes, the import graph and the layers (docs/architecture.md).

A reader follows one attempt from the route to the container only while the pieces stay small and the
imports go one way. These tests read the source (``ast``), so they see every import a module makes:
at module level, inside functions, and under ``if TYPE_CHECKING:`` — a cycle hidden in a function body
is still a cycle for a reader.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "anyon"
#: The size above which a module must say at its top why it is one module.
MAX_LINES = 400
LONG_MODULE_REASON = "Why one module:"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imported_names(module: str, path: Path) -> Iterator[str]:
    """Every dotted name ``module`` imports anywhere in its source, relative imports made absolute."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            for alias in node.names:
                yield f"{prefix}.{alias.name}"


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module of ours that ``name`` lives in (``a.b.Class`` → ``a.b``), or None for third parties."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = {_resolve(name, modules) for name in _imported_names(module, path)}
        graph[module] = {target for target in targets if target and target != module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in graph:
                    continue
                if succ not in index:
                    index[succ] = low[succ] = counter
                    counter += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph[succ]))))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
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


def _collapse(graph: dict[str, set[str]], depth: int) -> dict[str, set[str]]:
    """The graph between packages: every module named by its first ``depth`` components."""
    packages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        source = ".".join(module.split(".")[:depth])
        packages.setdefault(source, set())
        for target in targets:
            name = ".".join(target.split(".")[:depth])
            if name != source:
                packages[source].add(name)
    return packages


def test_no_module_is_long_without_saying_why() -> None:
    too_long = []
    for module, path in _modules().items():
        lines = path.read_text(encoding="utf-8").count("\n")
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if lines > MAX_LINES and LONG_MODULE_REASON not in docstring:
            too_long.append(f"{module}: {lines} lines")
    assert not too_long, f"over {MAX_LINES} lines with no '{LONG_MODULE_REASON}' paragraph: {too_long}"


def test_the_module_import_graph_has_no_cycle() -> None:
    assert _cycles(_import_graph()) == []


def test_the_service_packages_import_each_other_one_way() -> None:
    services = {
        module: targets for module, targets in _import_graph().items() if module.startswith("anyon.services.")
    }
    between_packages = _collapse(services, 3)
    between_packages = {
        source: {target for target in targets if target.startswith("anyon.services.")}
        for source, targets in between_packages.items()
    }
    assert _cycles(between_packages) == []


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        # settings are read and validated below everything else
        (
            "anyon.config",
            ("anyon.services", "anyon.api", "anyon.deployment", "anyon.commands", "anyon.checks"),
        ),
        # behaviour knows nothing of HTTP, the command line or how a deployment is assembled
        ("anyon.services", ("anyon.api", "anyon.commands", "anyon.cli", "anyon.deployment", "falcon")),
        ("anyon.deployment", ("anyon.api", "anyon.commands", "anyon.cli")),
    ],
)
def test_layers_import_downwards_only(layer: str, forbidden: tuple[str, ...]) -> None:
    offenders = []
    for module, path in _modules().items():
        if module != layer and not module.startswith(layer + "."):
            continue
        for name in _imported_names(module, path):
            if any(name == bad or name.startswith(bad + ".") for bad in forbidden):
                offenders.append(f"{module} imports {name}")
    assert not offenders


def test_benchmarks_do_not_import_test_fixtures() -> None:
    offenders = []
    for path in sorted((ROOT / "bench").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            fixtures = [name for name in names if name.split(".")[0] in {"tests", "conftest"}]
            offenders += [f"{path.name}: {name}" for name in fixtures]
    assert not offenders


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The graph checks above can fail: a two-module loop and a three-module loop are both reported."""
    graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
    assert sorted(_cycles(graph)) == [["a", "b"], ["c", "d", "e"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
