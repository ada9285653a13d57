"""The layering CONTRIBUTING.md draws, checked on the source: every import points to the importer's layer or
one below it, no import cycles among the project's modules, and no module but ``engine.py`` reaching through a
``Studio`` to its registry or model manager."""

from __future__ import annotations

import ast
from fnmatch import fnmatch
from pathlib import Path

from medalpaca_core.runtime.paths import PROJECT_ROOT

PACKAGES = ("medalpaca_core", "ui", "finetune", "benchmarks")
STUDIO_INTERNALS = {"registry", "manager"}
# CONTRIBUTING.md's drawing, top to bottom: a module may import its own layer and the layers below it.
# A module of medalpaca_core that no lower pattern names is a caller of the studio (the layer above engine.py).
LAYERS = [
    ("benchmarks", ["benchmarks", "benchmarks.*"]),
    ("the web app", ["app", "ui", "ui.*"]),
    ("fine-tuning", ["finetune", "finetune.*"]),
    ("callers of the studio", ["medalpaca_core", "medalpaca_core.*"]),
    ("the studio", ["medalpaca_core.engine"]),
    ("variants and models", ["medalpaca_core.models", "medalpaca_core.models.*"]),
    ("generation", ["medalpaca_core.generation", "medalpaca_core.generation.*"]),
    ("text (no model, no threads)", ["medalpaca_core.text", "medalpaca_core.text.*"]),
    ("where the studio runs (no model, no threads)", ["medalpaca_core.runtime", "medalpaca_core.runtime.*"]),
]
# the only modules at medalpaca_core's top level; everything else lives in a subpackage
CORE_TOP_LEVEL = {"__init__.py", "__main__.py", "engine.py", "cli.py"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_sources() -> dict[str, Path]:
    paths = [PROJECT_ROOT / "app.py"]
    for package in PACKAGES:
        paths += sorted((PROJECT_ROOT / package).rglob("*.py"))
    return {module_name(path): path for path in paths}


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports anywhere in its code (lazy imports in functions count too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return [*trail[trail.index(target) :], target] if target in trail else [*trail, target]
            if target not in state and (cycle := visit(target, [*trail, target])):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_find_cycle_finds_cycles_and_only_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def import_graph() -> dict[str, set[str]]:
    """Each project module -> the project modules it imports."""
    sources = project_sources()
    known = set(sources)
    # a package's __init__ re-exports its submodules; a submodule importing a sibling through the package
    # (``from . import hub``) imports the sibling, so package edges are only kept from outside the package
    return {
        name: {t for t in imported_modules(name, path, known) if not name.startswith(t + ".")}
        for name, path in sources.items()
    }


def layer(module: str) -> int:
    """The index in LAYERS of the lowest layer whose patterns name ``module``."""
    matches = [index for index, (_, patterns) in enumerate(LAYERS) if any(fnmatch(module, p) for p in patterns)]
    assert matches, f"{module} is in no layer: add it to LAYERS here and to CONTRIBUTING.md's drawing"
    return max(matches)


def test_layer_places_modules_as_contributing_draws_them():
    assert [layer(name) for name in ("benchmarks.load", "ui.tabs.compare", "finetune.train")] == [0, 1, 2]
    assert [layer(name) for name in ("medalpaca_core.evaluation.runner", "medalpaca_core.arena.votes")] == [3, 3]
    lowest = ("medalpaca_core.engine", "medalpaca_core.models.loading", "medalpaca_core.generation.scheduler")
    assert [layer(name) for name in lowest] == [4, 5, 6]
    assert [layer(name) for name in ("medalpaca_core.text.prompts", "medalpaca_core.runtime.paths")] == [7, 8]


def test_the_core_top_level_holds_only_the_door_the_cli_and_subpackages():
    """A new core module goes into the subpackage of its idea (CONTRIBUTING.md), not beside engine.py."""
    core = PROJECT_ROOT / "medalpaca_core"
    modules = {path.name for path in core.glob("*.py")}
    assert modules == CORE_TOP_LEVEL, sorted(modules - CORE_TOP_LEVEL)
    inits = core.glob("*/__init__.py")
    undocumented = [init.parent.name for init in inits if not ast.get_docstring(ast.parse(init.read_text()))]
    assert not undocumented, f"each subpackage says in its docstring what belongs in it: {undocumented}"


def test_every_import_points_to_its_own_layer_or_below():
    upward = [
        f"{name} ({LAYERS[layer(name)][0]}) -> {target} ({LAYERS[layer(target)][0]})"
        for name, targets in import_graph().items()
        for target in targets
        if layer(target) < layer(name)
    ]
    assert not upward, upward


def test_project_modules_import_each_other_without_cycles():
    graph = import_graph()
    assert "medalpaca_core.engine" in graph["medalpaca_core.evaluation.runner"], "the graph misses imports"
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_only_the_engine_reaches_into_a_studio():
    """``studio.registry`` / ``studio.manager`` stay behind ``Studio``'s methods (``variant``, ``group_by_base``,
    ``acquire``, ...): so availability checks and grouping by base are written once, in engine.py."""
    engine = PROJECT_ROOT / "medalpaca_core" / "engine.py"
    reaches = [
        f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} .{node.attr}"
        for path in project_sources().values()
        if path != engine
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute) and node.attr in STUDIO_INTERNALS and "studio" in ast.unparse(node.value)
    ]
    assert not reaches, reaches
