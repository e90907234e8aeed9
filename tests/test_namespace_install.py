"""``pip install .`` puts everything under ``temporal_journeys``: a team whose environment already
has top-level packages named ``api`` and ``store`` keeps them, and imports the plugin from the
namespace.

The install goes into a fresh virtualenv without downloading anything: the package is built from
a copy of the repository's installed folders with ``--no-build-isolation``, and the dependencies
(and the build backend) come from this test's own environment through a folder of links to its
site-packages, minus the editable install of this repository and every ``.pth`` file, so nothing
of the checkout can leak into the new environment."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "temporal_journeys"
USER_PACKAGES = ("api", "store")
# The other names the repository's folders and root modules would have, had they been installed
# bare beside the team's own packages.
BARE_NAMES = {"worker", "plugin", "cli", "journeys", "workflows", "activities", "migrations"}
PURELIB = "import sysconfig; print(sysconfig.get_paths()['purelib'])"

CHECK = """
import json
import api
import store
import temporal_journeys
from temporal_journeys import JourneysPlugin

print(json.dumps({
    "api": api.OWNER,
    "store": store.OWNER,
    "namespace": temporal_journeys.__file__,
    "plugin": JourneysPlugin.__module__,
}))
"""


def _run(*command: object, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _source_copy(into: Path) -> Path:
    """The files ``pip install .`` reads: pyproject, README, the root modules and the folders of
    the packages pyproject lists (no tests, no virtualenv, no build leftovers)."""
    folders = {name.split(".")[1] for name in _listed_packages() if "." in name}
    into.mkdir()
    for name in ("pyproject.toml", "README.md", *(p.name for p in ROOT.glob("*.py"))):
        shutil.copy2(ROOT / name, into / name)
    for folder in folders:
        shutil.copytree(ROOT / folder, into / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return into


def _dependencies(into: Path) -> Path:
    """Links to this environment's installed distributions, without this repository's editable
    install and without any ``.pth`` file (a line in a ``.pth`` file adds a folder to the path
    without reading the ``.pth`` files inside it, so these are never processed either)."""
    into.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        name = entry.name
        if name.endswith(".pth") or name.startswith(("__editable__", NAMESPACE)):
            continue
        (into / name).symlink_to(entry)
    return into


def _listed_packages() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]


def test_every_package_folder_is_listed_for_installation():
    """pyproject lists the packages (the root is mapped onto the namespace), so a new folder that
    is not listed would work in the checkout and be missing from an install."""
    folders = {
        ".".join([NAMESPACE, *init.parent.relative_to(ROOT).parts])
        for top in {name.split(".")[1] for name in _listed_packages() if "." in name}
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert folders - set(_listed_packages()) == set()


@pytest.mark.slow
def test_pip_install_keeps_the_users_api_and_store_and_exports_the_plugin(tmp_path: Path):
    source = _source_copy(tmp_path / "source")
    deps = _dependencies(tmp_path / "deps")
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    site = Path(_run(python, "-c", PURELIB, cwd=tmp_path).strip())
    for package in USER_PACKAGES:
        (site / package).mkdir()
        (site / package / "__init__.py").write_text(f'OWNER = "the team\'s own {package}"\n')
    (site / "dependencies.pth").write_text(f"{deps}\n")

    # This environment's pip, run by the new environment's interpreter.
    _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        source,
        cwd=tmp_path,
    )

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    seen = json.loads(_run(python, "-c", CHECK, cwd=outside))
    assert seen["api"] == "the team's own api"
    assert seen["store"] == "the team's own store"
    assert Path(seen["namespace"]) == site / NAMESPACE / "__init__.py"
    assert seen["plugin"] == f"{NAMESPACE}.plugin"

    # Nothing bare landed beside them, and every installed file sits under the namespace.
    for package in USER_PACKAGES:
        assert {p.name for p in (site / package).iterdir()} <= {"__init__.py", "__pycache__"}
    assert not {p.name.removesuffix(".py") for p in site.iterdir()} & BARE_NAMES
    [record] = site.glob(f"{NAMESPACE}-*.dist-info/RECORD")
    installed = {line.split(",")[0].split("/")[0] for line in record.read_text().splitlines()}
    assert installed == {NAMESPACE, record.parent.name, ".."}  # "..": the `journeys` script
    assert (record.parent / "top_level.txt").read_text().split() == [NAMESPACE]
