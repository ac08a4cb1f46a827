"""Every solution block of the four packages can be replaced by a stub (DESIGN.md section 3).

A block must be balanced, not nested, hold whole statements of one function or
method body, and leave valid Python when replaced by ``raise NotImplementedError``.
The checker is loaded from its file, so this guard runs without installing
tinytorch-milestones (it needs only the standard library).
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("foundation", "architecture", "optimization", "milestones")
MARKERS_FILE = ROOT / "packages/tinytorch-milestones/src/tinytorch/milestones/course/markers.py"
TIERS_FILE = ROOT / "packages/tinytorch-milestones/src/tinytorch/milestones/tiers.py"


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


markers = load(MARKERS_FILE, "_tinytorch_course_markers")
tiers = load(TIERS_FILE, "_tinytorch_tiers")


@pytest.mark.parametrize("package", PACKAGES)
def test_every_block_is_well_placed_and_replaceable(package):
    src = ROOT / "packages" / f"tinytorch-{package}" / "src"
    results, problems = markers.check_tree(src)
    assert results, f"no Python source under {src}"
    assert not problems, "\n".join(problems)
    for path, blocks in results.items():
        source = path.read_text(encoding="utf-8")
        stubbed, _ = markers.replace_blocks(source, str(path))
        ast.parse(stubbed)  # valid Python once every block is a raise
        assert markers.surviving_solutions(source, stubbed, blocks) == [], path


@pytest.mark.parametrize("tier", ("foundation", "architecture", "optimization"))
def test_every_module_file_present_has_something_to_write(tier):
    """A module without a single solution block would give students nothing to build."""
    src = ROOT / "packages" / f"tinytorch-{tier}" / "src"
    empty = []
    for info in tiers.MODULES:
        if info.tier != tier:
            continue
        path = src / (info.import_path.replace(".", "/") + ".py")
        if path.exists() and not markers.find_blocks(path.read_text(encoding="utf-8"), str(path)):
            empty.append(str(path.relative_to(ROOT)))
    assert not empty, f"module files without any solution block: {empty}"


def test_milestones_package_has_no_blocks():
    """Course tools and milestones are not student work: a marker there would be a mistake."""
    results, problems = markers.check_tree(ROOT / "packages/tinytorch-milestones/src")
    assert not problems
    assert {str(p): b for p, b in results.items() if b} == {}
