"""Guards on what the four wheels contain and declare (DESIGN.md section 2)."""

from __future__ import annotations

import re
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("foundation", "architecture", "optimization", "milestones")
VERSION = (ROOT / "packages" / "VERSION").read_text().strip()
# Exact sibling pins each distribution must declare: (requirement, extra or None).
EXPECTED_PINS = {
    "foundation": set(),
    "architecture": {("tinytorch-foundation", None)},
    "optimization": {("tinytorch-architecture", None)},
    "milestones": {
        ("tinytorch-foundation", None),
        ("tinytorch-architecture", "architecture"),
        ("tinytorch-optimization", "optimization"),
        ("tinytorch-architecture", "all"),
        ("tinytorch-optimization", "all"),
    },
}


def names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        return zf.namelist()


def metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as zf:
        (meta,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        return Parser().parsestr(zf.read(meta).decode())


@pytest.mark.parametrize("package", PACKAGES)
def test_no_shared_init_in_namespace_dirs(wheels, package):
    shipped = names(wheels[package])
    assert "tinytorch/__init__.py" not in shipped
    assert "tinytorch/core/__init__.py" not in shipped


@pytest.mark.parametrize("package", PACKAGES)
def test_only_tinytorch_and_dist_info_at_top(wheels, package):
    tops = {name.split("/", 1)[0] for name in names(wheels[package])}
    strays = {t for t in tops if t != "tinytorch" and not t.endswith(".dist-info")}
    assert not strays, f"{package} wheel ships top-level {sorted(strays)}"


def test_no_file_shipped_by_two_wheels(wheels):
    owner: dict[str, str] = {}
    clashes = []
    for package, wheel in wheels.items():
        for name in names(wheel):
            if name.endswith("/") or ".dist-info/" in name:
                continue
            if name in owner:
                clashes.append(f"{name}: {owner[name]} and {package}")
            owner[name] = package
    assert not clashes, "\n".join(clashes)


def test_each_tier_ships_its_modules(wheels):
    from_table = {
        "foundation": ["tinytorch/core/tensor.py", "tinytorch/core/autograd.py"],
        "architecture": ["tinytorch/core/spatial.py", "tinytorch/models/transformer.py"],
        "optimization": ["tinytorch/generation/kv_cache.py", "tinytorch/applications/tinygpt.py"],
        "milestones": ["tinytorch/milestones/cli.py", "tinytorch/milestones/tiers.py"],
    }
    for package, expected in from_table.items():
        missing = set(expected) - set(names(wheels[package]))
        assert not missing, f"{package} wheel lacks {sorted(missing)}"


@pytest.mark.parametrize("package", PACKAGES)
def test_version_is_the_single_source(wheels, package):
    assert metadata(wheels[package])["Version"] == VERSION
    assert f"-{VERSION}-" in wheels[package].name


@pytest.mark.parametrize("package", PACKAGES)
def test_sibling_pins_are_exact(wheels, package):
    pins = set()
    for req in metadata(wheels[package]).get_all("Requires-Dist") or []:
        match = re.match(r"(tinytorch-[a-z]+)\s*([^;\s]*)\s*(?:;\s*extra\s*==\s*['\"](\w+)['\"])?", req)
        if not match:
            continue
        name, spec, extra = match.groups()
        assert spec == f"=={VERSION}", f"{package}: {req!r} is not pinned exactly to {VERSION}"
        pins.add((name, extra))
    assert pins == EXPECTED_PINS[package]


@pytest.mark.parametrize("package", PACKAGES)
def test_pyproject_stanza(package):
    # Read as text: tomllib is Python 3.11+ and the tiers support 3.10.
    text = (ROOT / "packages" / f"tinytorch-{package}" / "pyproject.toml").read_text()
    wheel_table = text.split("[tool.hatch.build.targets.wheel]", 1)[1]
    assert wheel_table.strip().splitlines()[0] == 'packages = ["src/tinytorch"]'
    assert 'requires-python = ">=3.10"' in text


def test_no_init_in_namespace_dirs_of_the_source_tree():
    for package in PACKAGES:
        src = ROOT / "packages" / f"tinytorch-{package}" / "src" / "tinytorch"
        assert not (src / "__init__.py").exists()
        assert not (src / "core" / "__init__.py").exists()
