"""Module status: is the installed implementation complete, and do its tests pass?

"Complete" is decided statically, without importing anything: the source files
of the module's tier (found with ``importlib.util.find_spec``) are parsed and every
function or method whose body raises ``NotImplementedError`` with a student-release
stub message (``Module NN (name): implement Q``) is a stub left to write, counted for
module NN, whichever file it is in (every op's ``backward`` is Module 05's work, in
``tensor.py``, ``layers.py`` ...). Abstract methods that raise a plain
``NotImplementedError`` are not stubs. In a release made with ``--modules``, the other
modules are given as reference code.

Tests are "at hand" when the module comes from a student release (its
``tests/``) or when tito runs inside the repository (``tests/<tier>/``).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from tinytorch.milestones.course import pytest_outcomes
from tinytorch.milestones.course.markers import STUB_RE
from tinytorch.milestones.course.repo import RELEASE_MANIFEST, RepoNotFound, find_release, find_root
from tinytorch.milestones.tiers import MODULES, ModuleInfo, is_installed

PLUGIN = "tinytorch.milestones.course.pytest_outcomes"


@dataclass
class ModuleState:
    info: ModuleInfo
    installed: bool
    source: Path | None = None
    stubs: list[str] = field(default_factory=list)  # "Add.backward", or "Add.backward (in core/tensor.py)"
    given: bool = False  # a release made with --modules that does not stub this module
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
    return [name for name, _ in stub_entries(source, path)]


def stub_entries(source: str, path: str = "<source>") -> list[tuple[str, str | None]]:
    """(qualified name, module number or None) of every function of ``source`` still raising a stub.

    The module is the ``NN`` of the stub message ``Module NN (name): implement Q``; stubs
    of files outside the module table (``tinytorch-x (path): implement Q``) have None.
    """
    tree = ast.parse(source, filename=path)
    found: list[tuple[str, str | None]] = []

    def visit(node: ast.AST, prefix: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, prefix + [child.name])
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = ".".join(prefix + [child.name])
                match = _raises_stub(child)
                if match is not None:
                    found.append((name, match.group(1)))
                visit(child, prefix + [child.name])
            else:
                visit(child, prefix)

    visit(tree, [])
    return found


def _raises_stub(func: ast.AST):
    """The STUB_RE match of the stub ``func`` raises (nested definitions excluded), or None."""
    for node in ast.walk(func):
        if node is not func and isinstance(
            node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
        ):
            continue  # nested definitions are judged on their own
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            call = node.exc
            if getattr(call.func, "id", None) == "NotImplementedError" and call.args:
                arg = call.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    match = STUB_RE.match(arg.value)
                    if match:
                        return match
    return None


@lru_cache(maxsize=64)
def _file_stubs(path: str, mtime_ns: int) -> tuple[tuple[str, str | None], ...] | str:
    """Stub entries of one source file (cached by modification time), or the syntax error text."""
    try:
        return tuple(stub_entries(Path(path).read_text(encoding="utf-8"), path))
    except SyntaxError as exc:
        return f"syntax error: {exc.msg} ({Path(path).name}, line {exc.lineno})"


def _source_of(import_path: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(import_path)
    except Exception:  # a broken parent package: reported by module_state
        return None
    if spec is None or not spec.origin or not os.path.isfile(spec.origin):
        return None
    return Path(spec.origin)


def _manifest_of(source: Path) -> dict | None:
    release = find_release(source)
    if release is None:
        return None
    try:
        return json.loads((release / RELEASE_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


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
    manifest = _manifest_of(state.source)
    if manifest is not None and "modules_stubbed" in manifest and manifest.get("tier") == info.tier:
        state.given = info.number not in manifest["modules_stubbed"]
    # Every module file of the tier: a module's stubs may live in another module's file.
    for other in MODULES:
        if other.tier != info.tier:
            continue
        path = state.source if other is info else _source_of(other.import_path)
        if path is None:
            continue
        entries = _file_stubs(str(path), path.stat().st_mtime_ns)
        if isinstance(entries, str):
            if other is info:
                state.error = entries
            continue
        for name, number in entries:
            owner = number or (info.number if other is info else None)
            if owner == info.number:
                state.stubs.append(name if other is info else f"{name} (in {_short(path)})")
    _locate_tests(state)
    return state


def _short(path: Path) -> str:
    """``.../src/tinytorch/core/tensor.py`` -> ``core/tensor.py``."""
    parts = path.parts
    return "/".join(parts[parts.index("tinytorch") + 1 :]) if "tinytorch" in parts else path.name


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
            # The outcomes plugin records what each failure raised; the long tracebacks pytest would
            # print are never read here and cost seconds when every test of a stubbed module fails.
            extra = ["-q", "-p", "no:cacheprovider", "--continue-on-collection-errors", "--tb=line"]
            cmd = pytest_command([s.tests for s in group], extra=extra)
            subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
            records = pytest_outcomes.load(out) if os.path.exists(out) else []
        summary = pytest_outcomes.by_module(records)
        for s in group:
            s.results = summary.get(
                s.info.number, {"passed": 0, "failed": 0, "skipped": 0, "first_failure": None}
            )
