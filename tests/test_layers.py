"""The floor plan of docs/architecture.md, checked: each layer imports only itself and the layers
below it, and workflow code (run in Temporal's sandbox) imports no I/O library.

Read with ``ast`` from the source, so imports inside functions, relative imports and imports
under ``TYPE_CHECKING`` count as much as those at the top of a module."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "temporal_journeys"
TOP = "top"

# Bottom to top. Migrations stand beside the workflows: they read the models, nothing reads them
# (``store/migrate.py`` finds their folder by name and Alembic runs them).
MAY_IMPORT: dict[str, frozenset[str]] = {
    "journeys": frozenset({"journeys"}),
    "store": frozenset({"journeys", "store"}),
    "migrations": frozenset({"journeys", "store", "migrations"}),
    "workflows": frozenset({"journeys", "store", "workflows"}),
    "activities": frozenset({"journeys", "store", "workflows", "activities"}),
    "api": frozenset({"journeys", "store", "workflows", "activities", "api"}),
    TOP: frozenset({"journeys", "store", "migrations", "workflows", "activities", "api", TOP}),
}
# The entry points: the CLI package and the namespace's own modules at the repository root.
TOP_PACKAGES = frozenset({"cli"})
TOP_MODULES = frozenset({"__init__", "plugin", "worker"})

# Workflow code is replayed in the sandbox; anything that talks to the outside world belongs in
# an activity.
IO_LIBRARIES = frozenset({"sqlalchemy", "httpx", "sendgrid", "twilio", "psycopg"})


@dataclass(frozen=True)
class Arrow:
    """One import statement of the project's code: where it is and what it names."""

    file: Path
    line: int
    target: str

    def where(self, root: Path) -> str:
        return f"{self.file.relative_to(root)}:{self.line}"


def layer_of_file(root: Path, file: Path) -> str | None:
    parts = file.relative_to(root).parts
    if len(parts) == 1:
        return TOP if file.stem in TOP_MODULES else None
    if parts[0] in TOP_PACKAGES:
        return TOP
    return parts[0] if parts[0] in MAY_IMPORT else None


def layer_of_module(name: str) -> str | None:
    """The layer of ``temporal_journeys.<...>``; None for anything outside the project."""
    parts = name.split(".")
    if parts[0] != NAMESPACE:
        return None
    if len(parts) == 1 or parts[1] in TOP_PACKAGES or parts[1] in TOP_MODULES:
        return TOP
    return parts[1] if parts[1] in MAY_IMPORT else TOP


def project_files(root: Path) -> Iterator[Path]:
    """The namespace's modules: the root's own and those of every layer's folder."""
    yield from sorted(root.glob("*.py"))
    for folder in sorted(MAY_IMPORT.keys() - {TOP} | TOP_PACKAGES):
        yield from sorted((root / folder).rglob("*.py"))


def module_name(root: Path, file: Path) -> str:
    parts = list(file.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([NAMESPACE, *parts])


def imports(root: Path, file: Path) -> Iterator[Arrow]:
    """Every module an ``import``/``from`` statement in ``file`` names, relative ones resolved,
    plus ``import_module("...")`` calls with a literal name."""
    tree = ast.parse(file.read_text(), filename=str(file))
    package = module_name(root, file)
    if file.name != "__init__.py":
        package = package.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Arrow(file, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(package, node.module, node.level)
            if base != NAMESPACE:
                yield Arrow(file, node.lineno, base)
                continue
            # ``from temporal_journeys import api`` names the subpackage; ``import Settings``
            # a name of the root module, which is the top.
            for alias in node.names:
                yield Arrow(file, node.lineno, f"{base}.{alias.name}")
        elif _is_import_module(node):
            yield Arrow(file, node.lineno, node.args[0].value)  # type: ignore[attr-defined]


def _absolute(package: str, module: str | None, level: int) -> str:
    if level == 0:
        return module or ""
    base = package.split(".")
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _is_import_module(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call) or not node.args:
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    first = node.args[0]
    return (
        name == "import_module" and isinstance(first, ast.Constant) and isinstance(first.value, str)
    )


def upward_imports(root: Path) -> list[str]:
    """``file:line: layer -> layer (module)`` for each import that climbs the plan, and for
    each module that sits in no layer."""
    found = []
    for file in project_files(root):
        here = layer_of_file(root, file)
        if here is None:
            found.append(f"{file.relative_to(root)}: in no layer of tests/test_layers.py")
            continue
        for arrow in imports(root, file):
            there = layer_of_module(arrow.target)
            if there is not None and there not in MAY_IMPORT[here]:
                found.append(f"{arrow.where(root)}: {here} -> {there} ({arrow.target})")
    return found


def io_in_workflows(root: Path) -> list[str]:
    found = []
    for file in sorted((root / "workflows").rglob("*.py")):
        for arrow in imports(root, file):
            library = arrow.target.split(".")[0]
            if library in IO_LIBRARIES:
                found.append(f"{arrow.where(root)}: workflows -> {library} (I/O in the sandbox)")
    return found


def test_each_layer_imports_only_itself_and_the_layers_below():
    assert upward_imports(ROOT) == []


def test_workflow_code_imports_no_io_library():
    assert io_in_workflows(ROOT) == []


def test_every_installed_package_has_a_layer():
    """A new folder installed under the namespace must be given a place in the plan."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    top_level = {name.split(".")[1] for name in setuptools["packages"] if "." in name}
    assert top_level <= MAY_IMPORT.keys() | TOP_PACKAGES
    assert {file.stem for file in ROOT.glob("*.py")} <= TOP_MODULES


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_check_reports_the_domain_importing_the_api(tmp_path: Path):
    root = _tree(
        tmp_path,
        {
            "journeys/__init__.py": "",
            "journeys/spec.py": "from temporal_journeys.api.app import create_app\n",
            "api/__init__.py": "",
            "api/app.py": "from temporal_journeys.journeys import spec\n",
        },
    )
    assert upward_imports(root) == [
        "journeys/spec.py:1: journeys -> api (temporal_journeys.api.app)"
    ]


LATE_IMPORT = "importlib.import_module('temporal_journeys.cli')\n"


def test_the_check_reports_relative_late_and_root_imports_that_climb(tmp_path: Path):
    root = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "plugin.py": "",
            "store/__init__.py": "",
            "store/db.py": "def f():\n    from ..workflows import journey\n",
            "workflows/__init__.py": "from temporal_journeys import plugin\n",
            "journeys/__init__.py": "import importlib\n" + LATE_IMPORT,
            "activities/__init__.py": "from temporal_journeys import api\n",
            "api/__init__.py": "",
        },
    )
    assert upward_imports(root) == [
        "activities/__init__.py:1: activities -> api (temporal_journeys.api)",
        "journeys/__init__.py:2: journeys -> top (temporal_journeys.cli)",
        "store/db.py:2: store -> workflows (temporal_journeys.workflows)",
        "workflows/__init__.py:1: workflows -> top (temporal_journeys.plugin)",
    ]


def test_the_check_reports_a_module_outside_every_layer(tmp_path: Path):
    root = _tree(tmp_path, {"helpers.py": ""})
    assert upward_imports(root) == ["helpers.py: in no layer of tests/test_layers.py"]


def test_the_check_reports_io_in_workflow_code(tmp_path: Path):
    root = _tree(
        tmp_path,
        {"workflows/journey.py": "def run():\n    import httpx\n    from sqlalchemy import text"},
    )
    assert io_in_workflows(root) == [
        "workflows/journey.py:2: workflows -> httpx (I/O in the sandbox)",
        "workflows/journey.py:3: workflows -> sqlalchemy (I/O in the sandbox)",
    ]


def app_state_reads(path: Path, root: Path = ROOT) -> list[str]:
    """``….app.state`` in a module: what the routes must take through ``api/deps.py`` instead."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        f"{path.relative_to(root)}:{node.lineno}: reads app.state"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr == "state"
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "app"
    ]


def test_routes_take_what_they_need_through_the_dependency_aliases():
    routes = sorted((ROOT / "api" / "routes").glob("*.py"))
    found = [hit for path in routes for hit in app_state_reads(path)]
    assert not found, "\n".join(found)


def test_a_route_reading_app_state_is_reported(tmp_path: Path):
    route = tmp_path / "route.py"
    route.write_text("def f(request):\n    return request.app.state.settings\n")
    assert app_state_reads(route, tmp_path) == ["route.py:2: reads app.state"]
