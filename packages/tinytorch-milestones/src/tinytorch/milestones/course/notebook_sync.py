"""The runtime of the student notebooks: a notebook cell *is* a function of the student's package.

A release made with ``tito course release --notebooks`` carries a copy of this file as
``notebooks/tinytorch_notebook.py`` (standard library only; IPython when loaded as an
extension). The notebooks' first code cell loads it (``%load_ext tinytorch_notebook``) and
every cell the student writes starts with one line::

    %%write_def tinytorch.core.activations ReLUFunction.forward
    @staticmethod
    def forward(ctx, x):
        ...

Running that cell writes the function into the package file the student installed
(``src/tinytorch/core/activations.py`` of the release, ``pip install -e``): the definition
of ``ReLUFunction.forward`` there, found with :mod:`ast`, is replaced by the cell's code
re-indented to its place; the file is written atomically and only when it still compiles;
its cached bytecode is removed and every ``tinytorch`` module (the tiers, not the
milestones) is dropped from ``sys.modules``, so the next ``import tinytorch...`` in the
notebook, a test run, ``tito module status`` and the grader all see the same code: the
package file is the one source of truth, the notebook an editor of it. Objects made before
the edit keep their old code (import again after an edit; the check and systems cells do).

Why this design: a notebook whose ``jupytext --to py`` *is* the module file would put the
lesson, checks and measurements into the package; a cell that only defines a function in
the kernel would leave the package (and the grader) unchanged. Writing the one function
the cell holds keeps both honest at the cost of one magic line per cell.

The release is the one next to the notebook, not whichever copy is installed: loading the
extension puts the release's ``src/`` first on ``sys.path`` (:func:`use_release`) and the
check cells give it to pytest the same way. A notebook therefore edits and tests its own
copy wherever it runs: in the release's ``notebooks/`` after ``pip install -e``, or in an
nbgrader assignment directory (``tito course release --nbgrader``), where ``nbgrader
autograde`` runs every submission in its own copy of the release, so one student's code
never reaches another's grade.

``check(...)`` (the check cells) runs the given tests of the release with pytest in the
kernel (on the files as the cells wrote them; ``TINYTORCH_CHECK=fresh``: in a new Python),
prints pytest's report and raises
:class:`CheckFailed` naming each failed test and its error when any fails, so a notebook
run stops there and nbgrader scores the cell 0. It returns None: nbgrader reads a number
shown as a grade cell's result as partial credit. ``measure(...)`` (the systems cells) times
a callable and records its peak traced memory over a range of sizes.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
import tracemalloc
from pathlib import Path

MANIFEST = "tinytorch-release.json"
# Marker comment lines (nbgrader's): kept in the instructor's cells, never written into the package.
MARKER_RE = re.compile(r"^\s*### (?:BEGIN SOLUTION(?: \(Module \d\d\))?|END SOLUTION)\s*$")
# Tiers' modules are dropped after an edit; tito (tinytorch.milestones) keeps running.
KEEP = ("tinytorch.milestones",)


class NotebookError(RuntimeError):
    """A cell that cannot be written into the package; the message says what to do."""


class CheckFailed(AssertionError):
    """Tests of a check cell failed; the message lists each failed test with its error."""


def release_root(start: str | os.PathLike | None = None) -> Path:
    """The release directory: the nearest one holding tinytorch-release.json, from this file or ``start``."""
    places = [Path(start).resolve()] if start else []
    places += [Path(__file__).resolve().parent, Path.cwd().resolve()]
    for place in places:
        for candidate in (place, *place.parents):
            if (candidate / MANIFEST).is_file():
                return candidate
    raise NotebookError(
        f"no {MANIFEST} found above {', '.join(str(p) for p in places)}: "
        "open the notebook inside the student release (its notebooks/ directory)"
    )


def module_file(import_path: str, root: Path) -> Path:
    """``tinytorch.core.activations`` -> ``ROOT/src/tinytorch/core/activations.py`` (or ``__init__.py``)."""
    base = root.joinpath("src", *import_path.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    raise NotebookError(f"{import_path} has no file in {root / 'src'}")


def use_release(root: str | os.PathLike | None = None) -> Path:
    """Make ``import tinytorch...`` read the release next to the notebook; return its ``src/``.

    Puts ``ROOT/src`` first on ``sys.path`` and forgets the tiers' modules already imported,
    so the kernel imports the files the ``%%write_def`` cells write even when another copy of
    the tier is installed (the reference, another student's release). ``tinytorch`` and
    ``tinytorch.core`` are namespace packages: their search path follows ``sys.path``.
    """
    src = str((Path(root).resolve() if root else release_root()) / "src")
    if sys.path[:1] != [src]:
        while src in sys.path:
            sys.path.remove(src)
        sys.path.insert(0, src)
        forget_modules()
    return Path(src)


def _imported_from(import_path: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(import_path)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin).resolve() if spec is not None and spec.origin else None


def _find_def(tree: ast.Module, qualname: str) -> ast.FunctionDef | ast.AsyncFunctionDef:
    """The definition of ``Class.method`` (or ``function``, ``outer.inner``) in a module's tree."""
    body, node = tree.body, None
    for name in qualname.split("."):
        found = [
            n
            for n in body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name == name
        ]
        if not found:
            raise NotebookError(f"{qualname}: no definition of {name!r} in the package file")
        node = found[-1]  # the last definition is the one Python keeps
        body = node.body
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        raise NotebookError(f"{qualname} is a class in the package file, not a function")
    return node


def _first_line(node) -> int:
    """1-based first line of a definition, its decorators included."""
    return min([node.lineno, *(d.lineno for d in node.decorator_list)])


def replace_def(source: str, qualname: str, code: str, path: str = "<package file>") -> str:
    """``source`` with the definition of ``qualname`` replaced by ``code`` (one ``def``, any indentation).

    Marker comment lines are dropped from ``code``; the rest is re-indented to the
    definition's place. Raises :class:`NotebookError` when ``code`` is not exactly one
    definition of that name, or when the result does not compile.
    """
    name = qualname.split(".")[-1]
    cell = textwrap.dedent("\n".join(line for line in code.splitlines() if not MARKER_RE.match(line)))
    try:
        cell_tree = ast.parse(cell)
    except SyntaxError as exc:
        raise NotebookError(
            f"{qualname}: the cell is not valid Python: {exc.msg} (line {exc.lineno})"
        ) from None
    defs = cell_tree.body
    if len(defs) != 1 or not isinstance(defs[0], (ast.FunctionDef, ast.AsyncFunctionDef)):
        raise NotebookError(f"{qualname}: the cell must hold exactly one definition, `def {name}(...)`")
    if defs[0].name != name:
        raise NotebookError(f"{qualname}: the cell defines {defs[0].name!r}; it must define {name!r}")
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise NotebookError(f"{path} does not compile ({exc.msg}, line {exc.lineno}): fix it first") from None
    node = _find_def(tree, qualname)
    indent = " " * node.col_offset
    lines = source.splitlines(keepends=True)
    new = [(indent + line if line.strip() else line) + "\n" for line in cell.rstrip("\n").splitlines()]
    result = "".join(lines[: _first_line(node) - 1] + new + lines[node.end_lineno :])
    try:
        compile(result, path, "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise NotebookError(
            f"{qualname}: the package file would not compile: {exc.msg} (line {exc.lineno})"
        ) from None
    return result


def forget_modules() -> list[str]:
    """Drop the tiers' ``tinytorch`` modules from ``sys.modules`` (the next import reads the files)."""
    names = [n for n in sys.modules if n.startswith("tinytorch.") and not n.startswith(KEEP)]
    for n in names:
        del sys.modules[n]
    importlib.invalidate_caches()
    return names


def write_def(import_path: str, qualname: str, code: str, root: str | os.PathLike | None = None) -> Path:
    """Write the function ``qualname`` of module ``import_path`` into the release's package; see above.

    Refuses (``NotebookError``) when Python imports ``import_path`` from somewhere else than
    the release (the edit would not count), and leaves the file untouched on any error.
    """
    root = Path(root).resolve() if root else release_root()
    path = module_file(import_path, root)
    where = _imported_from(import_path)
    if where is not None and where != path.resolve():
        raise NotebookError(
            f"Python imports {import_path} from {where}, not from this release ({path}): "
            f"install the release in this kernel's environment: {sys.executable} -m pip install -e {root}"
        )
    source = path.read_text(encoding="utf-8")
    result = replace_def(source, qualname, code, str(path))
    if result != source:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(result)
        os.replace(tmp, path)
        cached = Path(importlib.util.cache_from_source(str(path)))
        cached.unlink(missing_ok=True)  # an edit within the same second could otherwise load stale bytecode
    forget_modules()
    importlib.import_module(import_path)  # the edited module must import (its error shows here)
    return path


# --- check cells ------------------------------------------------------------------------------


# The one reason a check test may skip (tests/conftest.py): an optional oracle such as PyTorch
# is missing. Any other skip (the tier not installed, a fixture missing) fails the check: every
# test of a check cell passed on the reference, and a skipped test must not earn its points.
OPTIONAL_ORACLE = "optional oracle:"


def _problems(junit: Path) -> list[tuple[str, str]]:
    """(test name, "Type: message") of each failed, erroring or wrongly skipped test in a JUnit report."""
    import xml.etree.ElementTree as ET

    if not junit.is_file():
        return []
    problems = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        for problem in [*case.findall("failure"), *case.findall("error")]:
            message = (problem.get("message") or problem.text or "failed").strip().splitlines()
            problems.append((case.get("name", "?"), message[0] if message else "failed"))
        for skip in case.findall("skipped"):
            reason = (skip.get("message") or "").strip()
            if not reason.startswith(OPTIONAL_ORACLE):
                problems.append((case.get("name", "?"), f"skipped: {reason or 'no reason given'}"))
    return problems


# Set to "fresh" to run every check cell's tests in a new Python process (isolated, with a timeout)
# instead of in the kernel.
CHECK_MODE_ENV = "TINYTORCH_CHECK"


def _forget_release_modules(root: Path) -> None:
    """Drop the tiers' modules and every module loaded from the release's ``src/`` or ``tests/``.

    pytest keeps a test module it imported in ``sys.modules`` and reuses it on the next run;
    a test module holds the classes it imported, so after an edit it must be read again.
    """
    forget_modules()
    inside = (str(root / "src") + os.sep, str(root / "tests") + os.sep)
    for name, module in list(sys.modules.items()):
        if (getattr(module, "__file__", None) or "").startswith(inside):
            del sys.modules[name]


def _pytest_in_kernel(root: Path, args: list[str]) -> int:
    """``pytest.main(args)`` in this process, in the release directory, on the files as they are now.

    About 0.1 s a check instead of about 1.2 s for a new Python (pytest, NumPy and the test
    oracles are imported once per kernel). The modules are forgotten before the run (the tests
    import the current files) and after it (the notebook's next import does not see what a test
    changed in a module's state). Output goes to the cell (``--capture=sys``: the kernel's file
    descriptors are not the notebook's).
    """
    import pytest

    use_release(root)
    _forget_release_modules(root)
    here = os.getcwd()
    os.chdir(root)
    try:
        return int(pytest.main(["--capture=sys", *args]))
    finally:
        os.chdir(here)
        _forget_release_modules(root)


def _pytest_fresh(root: Path, args: list[str], timeout: float) -> int:
    """``python -m pytest args`` in a new process, the release's ``src/`` first on its path."""
    path = os.pathsep.join([str(root / "src"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=root,
        env=dict(os.environ, PYTHONPATH=path),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    print((proc.stdout + proc.stderr).rstrip())
    return proc.returncode


def check(what: str, tests: list[str], root: str | os.PathLike | None = None, timeout: float = 600) -> None:
    """Run ``tests`` (pytest node ids, relative to the release) on the release's files; raise when any fails.

    The tests run in the kernel (:func:`_pytest_in_kernel`), on the package files as the
    ``%%write_def`` cells left them; with ``TINYTORCH_CHECK=fresh`` in the environment, in a new
    Python instead, stopped after ``timeout`` seconds. The report printed is pytest's own (short
    tracebacks); the exception names every failed test with its error, e.g.
    ``NotImplementedError: Module 02 (activations): implement ReLUFunction.forward``.
    A test skipped for any reason but a missing optional oracle counts as failed.
    Returns None, never a count: nbgrader takes a number shown by a grade cell as its score.
    """
    root = Path(root).resolve() if root else release_root()
    fresh = os.environ.get(CHECK_MODE_ENV, "").strip().lower() == "fresh"
    with tempfile.TemporaryDirectory(prefix="tinytorch-check-") as tmp:
        junit = Path(tmp) / "report.xml"
        args = ["-q", "--no-header", "--tb=short", "-p", "no:cacheprovider", f"--junitxml={junit}", *tests]
        started = time.perf_counter()
        code = _pytest_fresh(root, args, timeout) if fresh else _pytest_in_kernel(root, args)
        elapsed = time.perf_counter() - started
        problems = _problems(junit)
    if code == 0 and not problems:
        print(f"\n{what}: {len(tests)} tests selected, all passed ({elapsed:.1f} s)")
        return None
    if not problems:
        raise CheckFailed(f"{what}: pytest exited with code {code} (see its report above)")
    lines = [f"  {name}: {message}" for name, message in problems]
    raise CheckFailed(f"{what}: {len(problems)} of {len(tests)} tests failed\n" + "\n".join(lines))


# --- systems cells ----------------------------------------------------------------------------


def measure(label: str, make, run, sizes, repeat: int = 3) -> list[tuple]:
    """Time ``run(make(n))`` and its peak traced memory for each ``n`` in ``sizes``; print a table.

    ``make(n)`` builds the input (not timed), ``run(x)`` is the work measured. Time is the
    best of ``repeat`` runs (the least disturbed by other processes); memory is the peak of
    Python and NumPy allocations during one run (:mod:`tracemalloc`). Returns the rows
    ``(n, seconds, peak_bytes)``.
    """
    rows = []
    for n in sizes:
        x = make(n)
        run(x)  # warm up: first-call costs are not the subject
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            run(x)
            best = min(best, time.perf_counter() - t0)
        tracemalloc.start()
        try:
            run(x)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        rows.append((n, best, peak))
    print(f"{label}\n{'n':>10} {'time (ms)':>12} {'peak memory (KB)':>18} {'time / previous':>16}")
    for i, (n, seconds, peak) in enumerate(rows):
        ratio = f"{seconds / rows[i - 1][1]:.1f}x" if i and rows[i - 1][1] > 0 else ""
        print(f"{n:>10} {seconds * 1e3:>12.3f} {peak / 1024:>18.1f} {ratio:>16}")
    return rows


# --- IPython extension ------------------------------------------------------------------------


def load_ipython_extension(ipython) -> None:
    """``%load_ext tinytorch_notebook``: the release's ``src/`` first on the path; ``%%write_def``.

    See :func:`use_release` for why the kernel imports the release next to the notebook.
    """
    use_release()

    def write_def_magic(line: str, cell: str):
        parts = line.split()
        if len(parts) != 2:
            raise NotebookError("usage: %%write_def tinytorch.module.path Class.method")
        path = write_def(parts[0], parts[1], cell)
        print(f"wrote {parts[1]} into {path} (import {parts[0]} again to use it)")

    ipython.register_magic_function(write_def_magic, magic_kind="cell", magic_name="write_def")
