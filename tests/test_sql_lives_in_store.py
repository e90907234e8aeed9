"""Every SQL statement of the project lives in ``store/`` (and the schema's in ``migrations/``):
routes, services, activities and entry points call functions of ``store``, never a statement
builder or a session's query methods themselves.

The check reads the syntax tree, so a comment or a string that mentions ``select(`` is no
finding. Calls are recognised by name, as no types are known without running the code:
``.execute(``, ``.scalars(``, ``.scalar(`` and ``.query(`` on anything, and ``get``, ``add``,
``delete`` and ``merge`` on a receiver named ``session``, ``connection`` or ``conn``. The one
``.query(`` that is not SQL is Temporal's: a workflow handle's query, and the
``@workflow.query`` decorator, are left alone."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
# Top-level folders whose Python is not package code outside the store (or is the store).
SKIPPED = {"store", "migrations", "tests", "bench", ".venv", "build", "dist"}

BUILDERS = {
    "select",
    "insert",
    "update",
    "delete",
    "text",
    "func",
    "and_",
    "or_",
    "literal",
    "bindparam",
}
RUNNERS = {"execute", "scalars", "scalar", "query"}
SESSION_METHODS = {"get", "add", "add_all", "delete", "merge"}
SESSION_NAMES = {"session", "connection", "conn"}


def package_files(root: Path = ROOT) -> list[Path]:
    """The package's Python files outside the skipped folders, in a stable order."""
    found = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if parts[0] in SKIPPED or any(p.startswith(".") or p.endswith(".egg-info") for p in parts):
            continue
        found.append(path)
    return found


def _sqlalchemy_module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _is_sqlalchemy(module: str | None) -> bool:
    return module is not None and (module == "sqlalchemy" or module.startswith("sqlalchemy."))


def _imported_builders(node: ast.ImportFrom) -> Iterator[str]:
    """Statement builders this ``from sqlalchemy... import`` brings in by name."""
    for alias in node.names:
        dialect_insert = alias.name == "insert" and (node.module or "").startswith(
            "sqlalchemy.dialects"
        )
        if alias.name in BUILDERS or dialect_insert:
            yield alias.name


def _module_aliases(tree: ast.Module) -> set[str]:
    """Names bound to SQLAlchemy modules (``import sqlalchemy as sa``, ``from
    sqlalchemy.dialects import postgresql``), whose attributes are the builders too."""
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_sqlalchemy(alias.name):
                    aliases.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and _is_sqlalchemy(node.module):
            for alias in node.names:
                if _sqlalchemy_module(f"{node.module}.{alias.name}") is not None:
                    aliases.add(alias.asname or alias.name)
    return aliases


def _is_temporal_query(receiver: ast.expr) -> bool:
    """A workflow handle (``handle``, ``*_handle``, ``client.get_workflow_handle(...)``) or
    the ``workflow`` module of the SDK, whose ``query`` is a Temporal query, not SQL."""
    if isinstance(receiver, ast.Name):
        return receiver.id == "workflow" or receiver.id.endswith("handle")
    if isinstance(receiver, ast.Call) and isinstance(receiver.func, ast.Attribute):
        return receiver.func.attr.startswith("get_workflow_handle")
    return False


def _call_finding(call: ast.Call) -> str | None:
    if not isinstance(call.func, ast.Attribute):
        return None
    method, receiver = call.func.attr, call.func.value
    if method in RUNNERS:
        if method == "query" and _is_temporal_query(receiver):
            return None
        return f"calls .{method}()"
    if (
        method in SESSION_METHODS
        and isinstance(receiver, ast.Name)
        and receiver.id in SESSION_NAMES
    ):
        return f"calls {receiver.id}.{method}()"
    return None


def findings(path: Path, root: Path = ROOT) -> list[str]:
    """``file:line: what`` for each SQL statement or ORM query in this file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    where = path.relative_to(root) if path.is_relative_to(root) else path
    aliases = _module_aliases(tree)
    found = []
    for node in ast.walk(tree):
        what = None
        if isinstance(node, ast.ImportFrom) and _is_sqlalchemy(node.module):
            names = list(_imported_builders(node))
            if names:
                what = f"imports {', '.join(names)} from {node.module}"
        elif isinstance(node, ast.Call):
            what = _call_finding(node)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr in BUILDERS
        ):
            what = f"uses {node.value.id}.{node.attr}"
        if what is not None:
            found.append((node.lineno, f"{where}:{node.lineno}: {what}"))
    return [text for _, text in sorted(found)]


def test_no_sql_statement_outside_the_store() -> None:
    files = package_files()
    assert ROOT / "api" / "services" / "contacts.py" in files  # the walk finds the package
    problems = [finding for path in files for finding in findings(path)]
    assert not problems, "SQL outside store/ (move it into a store function):\n" + "\n".join(
        problems
    )


def test_the_check_reports_sql_and_ignores_what_only_mentions_it(tmp_path: Path) -> None:
    source = tmp_path / "service.py"
    source.write_text(
        "from sqlalchemy import select\n"
        "from sqlalchemy.dialects import postgresql\n"
        "from sqlalchemy.orm import Session\n"
        "\n"
        "# select(Contact) in a comment is no statement\n"
        "def read(session: Session, handle: object) -> object:\n"
        '    note = "session.execute(select(Contact))"\n'
        "    session.add(note)\n"
        "    postgresql.insert(note)\n"
        '    handle.query("state")\n'
        "    return session.scalars(note)\n"
    )
    assert findings(source, tmp_path) == [
        "service.py:1: imports select from sqlalchemy",
        "service.py:8: calls session.add()",
        "service.py:9: uses postgresql.insert",
        "service.py:11: calls .scalars()",
    ]
