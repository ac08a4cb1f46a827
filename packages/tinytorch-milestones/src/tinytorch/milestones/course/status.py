"""Module status: is the installed implementation complete, and do its tests pass?

"Complete" is decided statically, without importing the module: its source
file (found with ``importlib.util.find_spec``) is parsed and every function or
method whose body raises ``NotImplementedError`` with a student-release stub
message (``Module NN (name): implement Q``) is a stub left to write. Abstract
methods that raise a plain ``NotImplementedError`` are not stubs.

Tests are "at hand" when the module comes from a student release (its
``tests/``) or when tito runs inside the repository (``tests/<tier>/``).
"""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tinytorch.milestones.course import pytest_outcomes
from tinytorch.milestones.course.markers import STUB_RE
from tinytorch.milestones.course.repo import RepoNotFound, find_release, find_root
from tinytorch.milestones.tiers import MODULES, ModuleInfo, is_installed

PLUGIN = "tinytorch.milestones.course.pytest_outcomes"


@dataclass
class ModuleState:
    info: ModuleInfo
    installed: bool
    source: Path | None = None
    stubs: list[str] = field(default_factory=list)
    error: str | None = None
    tests: Path | None = None  # the module's test file, when at hand
    test_root: Path | None = None  # where to run pytest from (its config lives there)
    results: dict | None = None  # passed/failed/skipped/first_failure, after run_tests

    @property
    def complete(self) -> bool | None:
        if not self.installed or self.source is None:
            return None
        return not self.stubs


def stubs_in_source(source: str, path: str = "<source>") -> list[str]:
    """Qualified names of the functions in ``source`` that still raise a stub NotImplementedError."""
    tree = ast.parse(source, filename=path)
    found: list[str] = []

    def visit(node: ast.AST, prefix: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, prefix + [child.name])
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = ".".join(prefix + [child.name])
                if _raises_stub(child):
                    found.append(name)
                visit(child, prefix + [child.name])
            else:
                visit(child, prefix)

    visit(tree, [])
    return found


def _raises_stub(func: ast.AST) -> bool:
    for node in ast.walk(func):
        if node is not func and isinstance(
            node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
        ):
            continue  # nested definitions are judged on their own
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            call = node.exc
            if getattr(call.func, "id", None) == "NotImplementedError" and call.args:
                arg = call.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and STUB_RE.match(arg.value):
                    return True
    return False


def module_state(info: ModuleInfo) -> ModuleState:
    state = ModuleState(info, installed=is_installed(info.tier))
    if not state.installed:
        return state
    try:
        spec = importlib.util.find_spec(info.import_path)
    except Exception as exc:  # a broken parent package
        state.error = f"{type(exc).__name__}: {exc}"
        return state
    if spec is None or not spec.origin or not os.path.isfile(spec.origin):
        state.error = f"{info.import_path} not found in the installed tinytorch-{info.tier}"
        return state
    state.source = Path(spec.origin)
    try:
        state.stubs = stubs_in_source(state.source.read_text(encoding="utf-8"), str(state.source))
    except SyntaxError as exc:
        state.error = f"syntax error: {exc}"
    _locate_tests(state)
    return state


def _locate_tests(state: ModuleState) -> None:
    info = state.info
    name = Path(info.test_file).name
    release = find_release(state.source) if state.source else None
    if release is None:
        release = find_release(os.getcwd())
    if release is not None and (release / "tests" / name).is_file():
        state.tests, state.test_root = release / "tests" / name, release
        return
    try:
        root = find_root()
    except RepoNotFound:
        return
    if (root / info.test_file).is_file():
        state.tests, state.test_root = root / info.test_file, root


def statuses(numbers: list[str] | None = None) -> list[ModuleState]:
    chosen = [m for m in MODULES if not numbers or m.number in numbers]
    return [module_state(m) for m in chosen]


def pytest_command(
    files: list[Path], python: str = sys.executable, extra: list[str] | None = None
) -> list[str]:
    return [python, "-m", "pytest", "-p", PLUGIN, "--import-mode=importlib", *(extra or []), *map(str, files)]


def run_tests(states: list[ModuleState], timeout: float = 1800) -> None:
    """Run the tests at hand (one pytest per test root) and fill ``state.results``."""
    groups: dict[Path, list[ModuleState]] = {}
    for s in states:
        if s.tests is not None:
            groups.setdefault(s.test_root, []).append(s)
    for root, group in groups.items():
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "outcomes.json")
            env = dict(os.environ, **{pytest_outcomes.ENV: out})
            extra = ["-q", "-p", "no:cacheprovider", "--continue-on-collection-errors"]
            cmd = pytest_command([s.tests for s in group], extra=extra)
            subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
            records = pytest_outcomes.load(out) if os.path.exists(out) else []
        summary = pytest_outcomes.by_module(records)
        for s in group:
            s.results = summary.get(
                s.info.number, {"passed": 0, "failed": 0, "skipped": 0, "first_failure": None}
            )
