"""One house with clear rooms: the plainsight → plainsight import graph has no cycle, every import
points to its own layer or a lower one, and every module imports on its own.

The graph is read from the source with :mod:`ast`: module-level *and* function-local imports
(a lazy import is still a dependency), relative imports resolved; the bodies of
``if TYPE_CHECKING:`` are left out (they never run). ``from pkg import name`` is an edge to
``pkg.name`` where that is a module, else to ``pkg``. Which modules run implicitly (a package's
``__init__`` before its submodules) is not an edge: the isolated import test catches what that
leaves out.

A new module must be placed in :data:`LAYERS` (the test says so); moving a module up or down is
a decision about the architecture, so make it here, beside the reason.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
PACKAGE = "plainsight"

# Bottom to top. A pattern is a module name, or ``pkg.*`` for every module below ``pkg``.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # Shared vocabulary and pure helpers: no task, data format, model or run in sight.
    # views (what a VLM is shown for an item) needs only geometry, render and items, so it sits here too.
    ("foundation", (
        "plainsight.errors", "plainsight.registry", "plainsight.items", "plainsight.geometry",
        "plainsight.scoring", "plainsight.render", "plainsight.markers", "plainsight.prompts",
        "plainsight.attention", "plainsight.outcomes", "plainsight.shards", "plainsight.views", "plainsight.run_options",
        "plainsight.documents",
    )),
    # Native-format readers, one module per dataset format.
    ("data readers", ("plainsight.data", "plainsight.data.*")),
    ("tasks", ("plainsight.tasks", "plainsight.tasks.*")),
    # The embedded benchmark's builders write the default data in the readers' formats (with the tasks' helpers).
    ("embedded builders", ("plainsight.embedded", "plainsight.embedded.*")),
    ("models", ("plainsight.models", "plainsight.models.*", "plainsight.protocols")),
    ("readouts", ("plainsight.readouts", "plainsight.readouts.*", "plainsight.probing")),
    ("runner", ("plainsight.runner",)),
    ("records and gates", (
        "plainsight.records", "plainsight.gates", "plainsight.baseline", "plainsight.merge", "plainsight.findings",
    )),
    ("report", ("plainsight.report", "plainsight.report_html", "plainsight.report_html.*", "plainsight.contact_sheet")),
    # The pocket models' training (`plainsight fixtures pocket`) builds data and models: a command, like adapt.
    ("top", (
        "plainsight", "plainsight.plugin", "plainsight.plugin.*", "plainsight.cli", "plainsight.adapt",
        "plainsight.pocket", "plainsight.pocket.*",
    )),
]  # fmt: skip

# Imports that break the order today, each with the fix it waits for; an entry that no longer
# exists fails test_known_violations_are_still_there (strict xfail), so fixed ones get removed.
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {}


# --- the graph ---------------------------------------------------------------------------------------------


def module_files(src: Path = SRC) -> dict[str, Path]:
    """Every module of the package under ``src``: dotted name → file (a package is its ``__init__.py``)."""
    out = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module → the package's modules it imports (top-level and function-local)."""

    def owner(name: str) -> str | None:  # the deepest module that ``name`` is or lies in
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets: set[str | None] = set()
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(owner(alias.name) for alias in node.names)
                continue
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - (node.level - 1)])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            for alias in node.names:
                full = f"{source}.{alias.name}"
                targets.add(full if full in modules else owner(source))
        graph[module] = {t for t in targets if t and t != module and (t == PACKAGE or t.startswith(PACKAGE + "."))}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle ``[a, b, …, a]`` of the graph, or None (iterative DFS, so deep graphs are fine)."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(graph, WHITE)
    for start in sorted(graph):
        if colour[start] != WHITE:
            continue
        path = [start]
        stack = [iter(sorted(graph[start]))]
        colour[start] = GREY
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                colour[path.pop()] = BLACK
                stack.pop()
            elif colour.get(nxt, BLACK) == GREY:
                return path[path.index(nxt) :] + [nxt]
            elif colour.get(nxt) == WHITE:
                colour[nxt] = GREY
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def layer_matches(module: str) -> list[int]:
    """Indices of the layers that claim ``module``."""
    found = []
    for index, (_, patterns) in enumerate(LAYERS):
        for pattern in patterns:
            if pattern.endswith(".*") and module.startswith(pattern[:-1]) or module == pattern:
                found.append(index)
                break
    return found


def layering_violations(graph: dict[str, set[str]]) -> list[tuple[str, str, str]]:
    """(importer, imported, message) for each import that points to a higher layer."""
    out = []
    for module in sorted(graph):
        (mine,) = layer_matches(module)
        for target in sorted(graph[module]):
            (theirs,) = layer_matches(target)
            if theirs > mine:
                out.append((module, target, f"{module} (layer {LAYERS[mine][0]}) imports {target} "
                                            f"(layer {LAYERS[theirs][0]} above it)"))  # fmt: skip
    return out


@pytest.fixture(scope="module")
def modules() -> dict[str, Path]:
    found = module_files()
    assert len(found) > 50 and PACKAGE in found, f"no package found under {SRC}"
    return found


@pytest.fixture(scope="module")
def graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    return import_graph(modules)


# --- the tests ---------------------------------------------------------------------------------------------


def test_the_import_graph_has_no_cycle(graph: dict[str, set[str]]):
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_every_module_is_in_exactly_one_layer(modules: dict[str, Path]):
    unplaced = [m for m in modules if not layer_matches(m)]
    assert not unplaced, (
        f"module(s) in no layer: {', '.join(unplaced)}; add each to LAYERS in {Path(__file__).name} "
        "(the lowest layer whose modules it needs)"
    )
    twice = {m: [LAYERS[i][0] for i in layer_matches(m)] for m in modules if len(layer_matches(m)) > 1}
    assert not twice, f"module(s) in more than one layer: {twice}"


def test_every_layer_names_existing_modules(modules: dict[str, Path]):
    """A pattern that matches nothing is a renamed or removed module the table still names."""
    stale = [
        pattern
        for _, patterns in LAYERS
        for pattern in patterns
        if not any(m == pattern or (pattern.endswith(".*") and m.startswith(pattern[:-1])) for m in modules)
    ]
    assert not stale, f"LAYERS names modules that do not exist: {stale}"


def test_imports_point_to_the_same_or_a_lower_layer(graph: dict[str, set[str]], modules: dict[str, Path]):
    if any(not layer_matches(m) or len(layer_matches(m)) > 1 for m in modules):
        pytest.skip("a module is not placed in exactly one layer (test_every_module_is_in_exactly_one_layer)")
    found = [message for a, b, message in layering_violations(graph) if (a, b) not in KNOWN_VIOLATIONS]
    assert not found, "imports against the layer order:\n  " + "\n  ".join(found)


@pytest.mark.parametrize(
    "edge",
    [pytest.param(edge, marks=pytest.mark.xfail(strict=True, reason=why)) for edge, why in KNOWN_VIOLATIONS.items()]
    or [pytest.param(None, marks=pytest.mark.skip(reason="no known layering violation"))],
)
def test_known_violations_are_still_there(edge, graph: dict[str, set[str]]):
    """Fails (xfail) while the known violation exists; once it is fixed this XPASSes strictly: remove the entry."""
    importer, imported = edge
    assert imported not in graph[importer], f"{importer} still imports {imported}"


def test_the_checks_catch_a_cycle_and_an_upward_import():
    """The helpers above on a made-up graph: they can fail."""
    cyclic = {"plainsight.a": {"plainsight.b"}, "plainsight.b": {"plainsight.c"}, "plainsight.c": {"plainsight.a"}}
    assert find_cycle(cyclic) == ["plainsight.a", "plainsight.b", "plainsight.c", "plainsight.a"]
    assert find_cycle({"plainsight.a": {"plainsight.b"}, "plainsight.b": set()}) is None
    upward = {"plainsight.items": {"plainsight.runner"}, "plainsight.runner": {"plainsight.items"}}
    assert [m for _, _, m in layering_violations(upward)] == [
        "plainsight.items (layer foundation) imports plainsight.runner (layer runner above it)"
    ]


def test_imports_are_read_from_function_bodies_and_relative_imports(tmp_path: Path):
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low.py").write_text("X = 1\n")
    (pkg / "sub" / "__init__.py").write_text("from . import leaf\n")
    (pkg / "sub" / "leaf.py").write_text(
        textwrap.dedent("""
        from typing import TYPE_CHECKING
        from .. import low
        if TYPE_CHECKING:
            from plainsight import hidden
        def f():
            import plainsight.sub.other
            from plainsight.low import X
    """)
    )
    (pkg / "sub" / "other.py").write_text("")
    (pkg / "hidden.py").write_text("")
    graph = import_graph(module_files(tmp_path))
    assert graph["plainsight.sub"] == {"plainsight.sub.leaf"}
    assert graph["plainsight.sub.leaf"] == {"plainsight.low", "plainsight.sub.other"}


ISOLATED = """
import importlib, json, sys, traceback
failures = {}
for name in json.loads(sys.argv[1]):
    for loaded in [m for m in sys.modules if m == "plainsight" or m.startswith("plainsight.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except BaseException:
        failures[name] = traceback.format_exc(limit=-3)
print(json.dumps(failures))
"""


def test_every_module_imports_on_its_own(modules: dict[str, Path]):
    """Each module imported into a process holding no plainsight module (third-party ones stay cached):
    a module that works only when something else was imported first fails here."""
    names = sorted(modules)
    result = subprocess.run(
        [sys.executable, "-c", ISOLATED, json.dumps(names)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    failures = json.loads(result.stdout.strip().splitlines()[-1])
    assert not failures, "\n".join(f"{name}:\n{tb}" for name, tb in failures.items())
