"""Student notebooks (`tito course release --notebooks`): generation, nbgrader metadata, write-back, runs.

A small fixture tier (module 01's import path) keeps releases fast. The generation tests
read the notebooks as plain JSON and text, so they need no Jupyter package; the execution
tests run the notebooks with nbclient and skip cleanly when nbformat, nbclient or ipykernel
is missing (``pip install tinytorch-milestones[notebooks]``).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tinytorch.milestones.course import markers
from tinytorch.milestones.course import notebook_sync as sync
from tinytorch.milestones.course import notebooks as nb
from tinytorch.milestones.course import points as points_mod
from tinytorch.milestones.course.release import make_release

ROOT = Path(__file__).resolve().parents[2]
OPTIONAL = "optional oracle:"  # tests/conftest.py: the only skip reason --tier-check accepts here
EXTRA = "extra `notebooks`: pip install tinytorch-milestones[notebooks]"
B, E = "### BEGIN SOLUTION", "### END SOLUTION"

TENSOR = f'''"""Module 01 - Fixture: ``scale`` and a running total.

A lesson in two paragraphs::

    scale(2, 3) == 6
"""

LIMIT = 10


def scale(x, k):
    """x times k."""
    if k is None:
        raise ValueError("k must be a number")
    {B}
    y = x * k
    return y
    {E}


class Acc:
    """Running total of the values added."""

    def __init__(self):
        {B}
        self.total = 0
        {E}

    @property
    def doubled(self):
        return 2 * self.total

    def add(self, v):
        """Add v; return the new total."""
        {B}
        self.total += v
        return self.total
        {E}
'''

TEST_TENSOR = """
import pytest
from tinytorch.core.tensor import LIMIT, Acc, scale


def test_scale():
    assert scale(2, 3) == 6


@pytest.mark.parametrize("k", [0, 5])
def test_scale_k(k):
    assert scale(1, k) == k


def test_acc():
    acc = Acc()
    acc.add(2)
    assert acc.add(3) == 5 and acc.doubled == 10


def test_limit():
    assert LIMIT == 10
"""

SYSTEMS = (
    "from tinytorch.core.tensor import scale\n"
    "rows = measure('scale over n numbers', lambda n: list(range(n)), lambda xs: [scale(x, 2) for x in xs],\n"
    "               sizes=[10, 100])\n"
    "print('measured', len(rows))",
    "Why is this linear?",
)


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "repo"
    pkg = root / "packages" / "tinytorch-foundation"
    (pkg / "src" / "tinytorch" / "core").mkdir(parents=True)
    (root / "packages" / "VERSION").write_text("9.8.7\n")
    (pkg / "pyproject.toml").write_text((ROOT / "packages/tinytorch-foundation/pyproject.toml").read_text())
    (pkg / "README.md").write_text("# tinytorch-foundation\n\nFixture tier.\n")
    (pkg / "src" / "tinytorch" / "core" / "tensor.py").write_text(TENSOR)
    (root / "tests" / "foundation").mkdir(parents=True)
    (root / "tests" / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (root / "tests" / "foundation" / "test_01_tensor.py").write_text(TEST_TENSOR)
    monkeypatch.setitem(nb.SYSTEMS, "01", SYSTEMS)
    return root


def release_of(repo: Path, out: Path, solutions: bool) -> Path:
    make_release(
        None, out, root=repo, modules=["01"], verify_imports=False, notebooks=True, with_solutions=solutions
    )
    return out


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def text(cell: dict) -> str:
    return "".join(cell["source"])


# --- generation (no Jupyter needed) -----------------------------------------------------------------


def test_student_notebook_layout_and_manifest(repo, tmp_path):
    out = release_of(repo, tmp_path / "student", solutions=False)
    ipynb, percent = out / "notebooks/01_tensor.ipynb", out / "notebooks/01_tensor.py"
    assert ipynb.is_file() and percent.is_file() and (out / "notebooks" / nb.RUNTIME).is_file()
    manifest = json.loads((out / "tinytorch-release.json").read_text())
    assert manifest["notebooks"]["solutions"] is False
    assert manifest["notebooks"]["modules"]["01"]["ipynb"] == "notebooks/01_tensor.ipynb"
    readme = (out / "README.md").read_text()
    assert "## Notebooks" in readme and "- Module 01: `notebooks/01_tensor.ipynb`" in readme
    data = json.loads(ipynb.read_text())
    assert (data["nbformat"], data["nbformat_minor"]) == (4, 5)
    assert data["metadata"]["kernelspec"]["name"] == "python3"
    cs = data["cells"]
    # the lesson: the module docstring as markdown, reST turned into Markdown
    assert cs[0]["cell_type"] == "markdown"
    assert text(cs[0]).startswith("# Module 01 - Fixture: `scale` and a running total.")
    assert "```python\nscale(2, 3) == 6\n```" in text(cs[0])
    # one solution cell per function with a block, in file order, each writing itself into the package
    solutions = [c for c in cs if c["metadata"]["nbgrader"]["solution"]]
    heads = [text(c).splitlines()[0] for c in solutions]
    expected = [s["function"] for s in manifest["stubs_by_module"]["01"]]
    assert heads == [f"%%write_def tinytorch.core.tensor {q}" for q in expected]
    assert expected == ["scale", "Acc.__init__", "Acc.add"]
    # the student sees the release's stubs, never the solution
    for cell, qualname in zip(solutions, expected):
        body = text(cell)
        assert f"Module 01 (tensor): implement {qualname}" in body
        assert B not in body and "self.total += v" not in body and "y = x * k" not in body
    # the docstring stays in the cell; the class docstring is in the markdown before it
    assert '"""Add v; return the new total."""' in text(solutions[2])
    about = cs[cs.index(solutions[1]) - 1]
    assert "Running total of the values added." in text(about)
    # the how-to warns that an edit does not reach objects made before it
    assert cs[1]["id"] == "m01-how-to" and "Objects made before an edit keep the old code" in text(cs[1])
    assert "re-run the\ncells that import and create them, or restart the kernel" in text(cs[1])
    # systems cell and a reflection close the notebook
    assert text(cs[-2]).startswith("from tinytorch.core.tensor import scale")
    assert "Why is this linear?" in text(cs[-1])


def test_tito_course_release_with_solutions(repo, tmp_path, monkeypatch, capsys):
    from tinytorch.milestones.cli import main

    monkeypatch.chdir(repo)
    out = tmp_path / "instructor"
    code = main(
        ["course", "release", "--modules", "01", "--out", str(out), "--with-solutions", "--no-import-check"]
    )
    printed = capsys.readouterr().out
    assert code == 0 and "1 instructor (reference filled in) notebooks" in printed
    manifest = json.loads((out / "tinytorch-release.json").read_text())
    assert manifest["notebooks"]["solutions"] is True
    assert "self.total += v" in (out / "notebooks/01_tensor.py").read_text()
    assert (
        "self.total += v" not in (out / "src/tinytorch/core/tensor.py").read_text()
    )  # the package stays stubbed


def test_checks_run_each_test_once_after_everything_it_calls(repo, tmp_path):
    """The tracer's assignment, judged against pytest's own collection and the fixture's call graph."""
    out = release_of(repo, tmp_path / "student", solutions=False)
    cs = cells(out / "notebooks/01_tensor.ipynb")
    by_check = {}
    for i, c in enumerate(cs):
        if c["id"].endswith("-check"):
            call = ast.parse(text(c)).body[0].value
            assert isinstance(call, ast.Call) and call.func.id == "check"
            by_check[c["id"]] = (i, ast.literal_eval(call.args[1]))
            # graded, but for the tests that call no function of the module (they pass on the stubs)
            assert c["metadata"]["nbgrader"]["grade"] == (c["id"] != "m01-rest-check")
    every = [t for _, tests in by_check.values() for t in tests]
    assert len(every) == len(set(every))
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=out,
        env=dict(os.environ, PYTHONPATH=str(repo / "packages/tinytorch-foundation/src")),
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    nodeids = {line for line in collected.splitlines() if "::" in line}
    assert set(every) == nodeids and len(nodeids) == 5
    f = "tests/test_01_tensor.py::"
    assert by_check["m01-scale-check"][1] == [f + "test_scale", f + "test_scale_k[0]", f + "test_scale_k[5]"]
    assert by_check["m01-acc-add-check"][1] == [f + "test_acc"]  # calls __init__ and add: after add
    assert by_check["m01-rest-check"][1] == [f + "test_limit"]  # calls no function of the module
    # Acc.__init__ has no check of its own; its markdown says where it is checked
    about = next(c for c in cs if c["id"] == "m01-acc-init-about")
    assert "the check after `Acc.add`" in text(about)
    assert "m01-acc-init-check" not in by_check
    # each check comes after the solution cells of everything its tests call
    position = {c["id"]: i for i, c in enumerate(cs)}
    assert position["m01-scale"] < by_check["m01-scale-check"][0] < position["m01-acc-init"]
    assert position["m01-acc-add"] < by_check["m01-acc-add-check"][0]


NBGRADER_KEYS = {"grade", "grade_id", "locked", "schema_version", "solution", "task"}


def test_nbgrader_metadata(repo, tmp_path):
    out = release_of(repo, tmp_path / "instructor", solutions=True)
    cs = cells(out / "notebooks/01_tensor.ipynb")
    ids = [c["metadata"]["nbgrader"]["grade_id"] for c in cs]
    assert len(ids) == len(set(ids)) and all(re.fullmatch(r"[A-Za-z0-9_-]+", i) for i in ids)
    assert [c["id"] for c in cs] == ids
    total = 0.0
    for c in cs:
        meta = c["metadata"]["nbgrader"]
        role = nb._role(c)
        assert meta["schema_version"] == 3 and meta["task"] is False
        if role == "solution":
            assert set(meta) == NBGRADER_KEYS and c["cell_type"] == "code"
            assert (meta["grade"], meta["locked"]) == (False, False)
            assert "editable" not in c["metadata"] and "deletable" not in c["metadata"]
        elif role == "check":
            assert set(meta) == NBGRADER_KEYS | {"points"} and c["cell_type"] == "code"
            assert (meta["solution"], meta["locked"]) == (False, True) and meta["points"] > 0
            total += meta["points"]
        else:
            assert set(meta) == NBGRADER_KEYS
            assert (meta["grade"], meta["solution"], meta["locked"]) == (False, False, True)
        if role != "solution":
            assert (c["metadata"]["editable"], c["metadata"]["deletable"]) == (False, False)
    table = points_mod.load(["foundation"])
    assert total == pytest.approx(table.module("01").points)  # no hidden tests in the fixture: all visible
    # points follow the test counts: 3 tests and 1 test of the 4 graded (test_limit calls no
    # function of the module: it passes on the stubs and its cell is not graded)
    points = {c["id"]: c["metadata"]["nbgrader"].get("points") for c in cs}
    assert points["m01-scale-check"] == pytest.approx(table.module("01").points * 3 / 4, abs=0.01)
    assert points["m01-rest-check"] is None and "m01-rest-check" in points
    # the instructor's solution cells keep the markers nbgrader replaces, with the reference inside
    add = next(c for c in cs if c["id"] == "m01-acc-add")
    assert f"    {B}\n    self.total += v\n    return self.total\n    {E}" in text(add)


def test_percent_file_holds_the_same_cells(repo, tmp_path):
    out = release_of(repo, tmp_path / "instructor", solutions=True)
    cs = cells(out / "notebooks/01_tensor.ipynb")
    percent = (out / "notebooks/01_tensor.py").read_text()
    headers = [line for line in percent.splitlines() if re.match(r"^# %%( |$)", line)]
    assert len(headers) == len(cs)
    for header, c in zip(headers, cs):
        assert header.startswith("# %% [markdown]") == (c["cell_type"] == "markdown")
        assert f'"grade_id": "{c["id"]}"' in header
    # magics are commented, as Jupytext writes them; the code is the cell's code
    assert "# %load_ext tinytorch_notebook" in percent
    assert "# %%write_def tinytorch.core.tensor Acc.add\ndef add(self, v):" in percent
    jupytext = pytest.importorskip("jupytext", reason=f"{OPTIONAL} jupytext is not installed ({EXTRA})")
    read = jupytext.read(str(out / "notebooks/01_tensor.py"))
    assert len(read.cells) == len(cs)
    for a, c in zip(read.cells, cs):
        meta = {k: v for k, v in a.metadata.items() if k != "lines_to_next_cell"}  # spacing only
        assert (a.cell_type, a.source, meta) == (c["cell_type"], text(c), c["metadata"])


def test_nbformat_validates(repo, tmp_path):
    nbformat = pytest.importorskip("nbformat", reason=f"{OPTIONAL} nbformat is not installed ({EXTRA})")
    out = release_of(repo, tmp_path / "student", solutions=False)
    nbformat.validate(nbformat.read(str(out / "notebooks/01_tensor.ipynb"), as_version=4))


def test_rst_to_markdown():
    got = nb.rst_to_markdown(
        "Uses :class:`~tinytorch.core.autograd.Function` and ``x``::\n\n    a = 1\n\nEnd."
    )
    assert got == "Uses `Function` and `x`:\n\n```python\na = 1\n```\n\nEnd.\n"


def test_check_run_judges_student_and_instructor_runs(tmp_path):
    stub = (
        "CheckFailed: f: 1 of 1 tests failed\n  t: NotImplementedError: Module 02 (activations): implement f"
    )
    cells_ = [("setup", "code", 0.1), ("f", "solution", 0.1), ("f-check", "check", 1.0)]
    good = nb.Run(tmp_path, cells_, "f-check", stub)
    assert nb.check_run(good, "first-stub") is None
    assert "raised" in nb.check_run(good, "clean")
    assert nb.check_run(nb.Run(tmp_path, cells_), "clean") is None
    assert "ran to the end" in nb.check_run(nb.Run(tmp_path, cells_), "first-stub")
    early = nb.Run(tmp_path, cells_[:2], "f", "NameError: np")
    assert "not at its first check cell" in nb.check_run(early, "first-stub")
    wrong = nb.Run(tmp_path, cells_, "f-check", "CheckFailed: f: AssertionError: 1 != 2")
    assert "without a stub's message" in nb.check_run(wrong, "first-stub")


# --- writing a cell into the package ----------------------------------------------------------------

SOURCE = '''"""m."""


class K:
    @staticmethod
    def f(x):
        """Doc."""
        raise NotImplementedError("stub")

    def g(self):
        return 1


def h():
    return 2
'''


def test_replace_def_puts_the_cell_in_place():
    cell = f'@staticmethod\ndef f(x):\n    """Doc."""\n    {B}\n    return x + 1\n    {E}\n'
    new = sync.replace_def(SOURCE, "K.f", cell)
    assert B not in new and E not in new
    assert '    @staticmethod\n    def f(x):\n        """Doc."""\n        return x + 1\n\n    def g' in new
    space: dict = {}
    exec(compile(new, "<new>", "exec"), space)
    assert space["K"].f(2) == 3 and space["K"]().g() == 1 and space["h"]() == 2
    # the unedited cell gives the file back
    original = '@staticmethod\ndef f(x):\n    """Doc."""\n    raise NotImplementedError("stub")\n'
    assert sync.replace_def(SOURCE, "K.f", original) == SOURCE
    assert sync.replace_def(SOURCE, "h", "def h():\n    return 3\n").endswith("def h():\n    return 3\n")


@pytest.mark.parametrize(
    "qualname, cell, message",
    [
        ("K.f", "def g(x):\n    return x\n", "the cell defines 'g'; it must define 'f'"),
        ("K.f", "def f(x):\n    return x\ndef f2():\n    pass\n", "exactly one definition"),
        ("K.f", "def f(x):\n    return (x\n", "not valid Python"),
        ("K.nope", "def nope():\n    pass\n", "no definition of 'nope'"),
        ("K", "def K():\n    pass\n", "is a class"),
    ],
)
def test_replace_def_refuses(qualname, cell, message):
    with pytest.raises(sync.NotebookError, match=re.escape(message)):
        sync.replace_def(SOURCE, qualname, cell)


def test_write_def_changes_what_import_sees(tmp_path, monkeypatch):
    root = tmp_path / "release"
    pkg = root / "src" / "tinytorch"
    pkg.mkdir(parents=True)
    (root / "tinytorch-release.json").write_text("{}")
    (pkg / "nbfixture_mod.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(root / "src"))
    import tinytorch.nbfixture_mod as before

    with pytest.raises(NotImplementedError):
        before.K.f(1)
    sync.write_def("tinytorch.nbfixture_mod", "K.f", "@staticmethod\ndef f(x):\n    return x * 10\n", root)
    import tinytorch.nbfixture_mod as after

    assert after is not before and after.K.f(4) == 40
    assert "return x * 10" in (pkg / "nbfixture_mod.py").read_text()
    # a cell that would break the file leaves it untouched
    good = (pkg / "nbfixture_mod.py").read_text()
    with pytest.raises(sync.NotebookError):
        sync.write_def("tinytorch.nbfixture_mod", "K.f", "def f(x:\n", root)
    assert (pkg / "nbfixture_mod.py").read_text() == good
    sys.modules.pop("tinytorch.nbfixture_mod", None)


def test_write_def_refuses_a_module_imported_from_elsewhere(tmp_path):
    root = tmp_path / "release"
    (root / "src" / "tinytorch" / "milestones").mkdir(parents=True)
    (root / "tinytorch-release.json").write_text("{}")
    target = root / "src" / "tinytorch" / "milestones" / "tiers.py"
    target.write_text("def module():\n    pass\n")
    with pytest.raises(sync.NotebookError, match="not from this release"):
        sync.write_def("tinytorch.milestones.tiers", "module", "def module():\n    return 1\n", root)
    assert target.read_text() == "def module():\n    pass\n"


@pytest.mark.parametrize("mode", ["kernel", "fresh"])
def test_check_passes_fails_and_refuses_skips(tmp_path, capsys, monkeypatch, mode):
    """check() on a tiny release: None when all pass; CheckFailed naming a failure or a non-oracle skip.

    Both ways of running the tests: pytest in this process (as in a kernel), and a new Python.
    """
    monkeypatch.setenv(sync.CHECK_MODE_ENV, "fresh" if mode == "fresh" else "")
    monkeypatch.setattr(sys, "path", list(sys.path))  # use_release puts the release first
    root = tmp_path / "release"
    (root / "tests").mkdir(parents=True)
    (root / "tinytorch-release.json").write_text("{}")
    (root / "tests" / "test_k.py").write_text(
        "import pytest\n"
        "def test_ok():\n    assert 1 + 1 == 2\n"
        "def test_bad():\n    assert 1 + 1 == 3\n"
        f"def test_oracle():\n    pytest.skip('{OPTIONAL} torch is not installed')\n"
        "def test_absent():\n    pytest.skip('tinytorch-foundation is not installed')\n"
    )
    loaded = {k: v for k, v in sys.modules.items() if k.startswith("tinytorch.")}
    try:
        ok = ["tests/test_k.py::test_ok", "tests/test_k.py::test_oracle"]
        assert sync.check("ok", ok, root) is None  # None: nbgrader reads a number shown as partial credit
        assert "ok: 2 tests selected, all passed" in capsys.readouterr().out
        failed = r"1 of 2 tests failed\n  test_bad: assert \(1 \+ 1\) == 3"
        with pytest.raises(sync.CheckFailed, match=failed):
            sync.check("bad", ["tests/test_k.py::test_ok", "tests/test_k.py::test_bad"], root)
        absent = "test_absent: skipped: tinytorch-foundation is not installed"
        with pytest.raises(sync.CheckFailed, match=absent):
            sync.check("absent", ["tests/test_k.py::test_ok", "tests/test_k.py::test_absent"], root)
    finally:  # the in-kernel run forgot the tiers' modules: the other tests keep the ones they imported
        sys.modules.update(loaded)


def test_check_in_the_kernel_sees_each_edit(tmp_path, monkeypatch):
    """Two checks in one process, the tested file rewritten between them: the second sees the new code."""
    monkeypatch.delenv(sync.CHECK_MODE_ENV, raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    root = tmp_path / "release"
    (root / "tests").mkdir(parents=True)
    (root / "src" / "tinytorch").mkdir(parents=True)
    (root / "tinytorch-release.json").write_text("{}")
    target = root / "src" / "tinytorch" / "nbfixture_edit.py"
    target.write_text("def scale(x, k):\n    return x - k\n")
    (root / "tests" / "test_e.py").write_text(
        "from tinytorch.nbfixture_edit import scale\ndef test_scale():\n    assert scale(2, 3) == 6\n"
    )
    loaded = {k: v for k, v in sys.modules.items() if k.startswith("tinytorch.")}
    try:
        with pytest.raises(sync.CheckFailed, match="1 of 1 tests failed"):
            sync.check("scale", ["tests/test_e.py::test_scale"], root)
        sync.write_def("tinytorch.nbfixture_edit", "scale", "def scale(x, k):\n    return x * k\n", root)
        assert sync.check("scale", ["tests/test_e.py::test_scale"], root) is None
    finally:
        sys.modules.pop("tinytorch.nbfixture_edit", None)
        sys.modules.update(loaded)


def test_use_release_puts_the_release_first(tmp_path, monkeypatch):
    """The kernel imports the release beside the notebook, even when the module is importable elsewhere."""
    elsewhere, root = tmp_path / "elsewhere", tmp_path / "release"
    for base, value in ((elsewhere, 1), (root / "src", 2)):
        (base / "tinytorch").mkdir(parents=True)
        (base / "tinytorch" / "nbfixture_where.py").write_text(f"WHERE = {value}\n")
    (root / "tinytorch-release.json").write_text("{}")
    monkeypatch.setattr(sys, "path", [str(elsewhere), *sys.path])
    loaded = {k: v for k, v in sys.modules.items() if k.startswith("tinytorch.")}
    try:
        import tinytorch.nbfixture_where as first

        assert first.WHERE == 1
        assert sync.use_release(root) == root / "src" and sys.path[0] == str(root / "src")
        import tinytorch.nbfixture_where as second

        assert second.WHERE == 2
    finally:  # use_release forgot the tiers' modules: the other tests keep the ones they imported
        sys.modules.pop("tinytorch.nbfixture_where", None)
        sys.modules.update(loaded)


# --- execution (nbclient) ---------------------------------------------------------------------------


@pytest.fixture
def jupyter():
    for name in ("nbformat", "nbclient", "ipykernel"):
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"{OPTIONAL} {name} is not installed ({EXTRA})")


def test_instructor_notebook_runs_clean_and_writes_the_reference(repo, tmp_path, monkeypatch, jupyter):
    out = release_of(repo, tmp_path / "instructor", solutions=True)
    monkeypatch.setenv("PYTHONPATH", str(out / "src"))
    assert "raise NotImplementedError" in (out / "src/tinytorch/core/tensor.py").read_text()
    run = nb.execute(out / "notebooks/01_tensor.ipynb")
    assert run.error_cell is None, run.error
    assert [r for _, r, _ in run.cells].count("check") == 2  # graded; and the ungraded rest-check ran
    assert "m01-rest-check" in [cid for cid, _, _ in run.cells]
    # the package now holds the reference (without markers): what the tests and the grader import
    written = (out / "src/tinytorch/core/tensor.py").read_text()
    reference, _ = markers.replace_blocks(TENSOR, only=lambda b: False)
    assert written == reference


def test_student_notebook_stops_at_its_first_stub(repo, tmp_path, monkeypatch, jupyter):
    out = release_of(repo, tmp_path / "student", solutions=False)
    monkeypatch.setenv("PYTHONPATH", str(out / "src"))
    run = nb.execute(out / "notebooks/01_tensor.ipynb")
    assert run.error_cell == "m01-scale-check"
    assert (
        "CheckFailed" in run.error and "NotImplementedError: Module 01 (tensor): implement scale" in run.error
    )
    assert [cid for cid, role, _ in run.cells if role == "check"] == ["m01-scale-check"]


def test_editing_a_cell_changes_the_package_import_and_pytest(repo, tmp_path, monkeypatch, jupyter):
    """The student's edit, made with nbformat and run in a kernel, is what import and pytest see."""
    import nbformat

    out = release_of(repo, tmp_path / "student", solutions=False)
    monkeypatch.setenv("PYTHONPATH", str(out / "src"))
    path = out / "notebooks/01_tensor.ipynb"
    book = nbformat.read(str(path), as_version=4)
    by_id = {c["id"]: c for c in book.cells}
    head = "%%write_def tinytorch.core.tensor scale\n"
    wrong = head + "def scale(x, k):\n    return x - k\n"
    right = head + "def scale(x, k):\n    if k is None:\n        raise ValueError('k')\n    return x * k\n"
    probe = "import tinytorch.core.tensor as T\nprint('scale(2, 3) =', T.scale(2, 3), T.__file__)"
    book.cells = [
        by_id["m01-setup"],
        nbformat.v4.new_code_cell(wrong, id="wrong"),
        nbformat.v4.new_code_cell(probe, id="probe-wrong"),
        nbformat.v4.new_code_cell(right, id="right"),
        nbformat.v4.new_code_cell(probe, id="probe-right"),
        by_id["m01-scale-check"],
    ]
    nbformat.write(book, str(path))
    run = nb.execute(path)
    assert run.error_cell is None, run.error
    # pytest in a fresh process sees the edit too
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_01_tensor.py",
            "-k",
            "scale",
        ],
        cwd=out,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout
    assert "return x * k" in (out / "src/tinytorch/core/tensor.py").read_text()


def test_probe_outputs_show_each_edit(repo, tmp_path, monkeypatch, jupyter):
    """The same as above, reading the kernel's outputs: import sees the wrong edit, then the right one."""
    import nbformat
    from nbclient import NotebookClient

    out = release_of(repo, tmp_path / "student", solutions=False)
    monkeypatch.setenv("PYTHONPATH", str(out / "src"))
    head = "%%write_def tinytorch.core.tensor scale\n"
    probe = "import tinytorch.core.tensor as T\nprint('scale(2, 3) =', T.scale(2, 3))"
    book = nbformat.v4.new_notebook()
    book.cells = [
        nbformat.v4.new_code_cell("%load_ext tinytorch_notebook"),
        nbformat.v4.new_code_cell(head + "def scale(x, k):\n    return x - k\n"),
        nbformat.v4.new_code_cell(probe),
        nbformat.v4.new_code_cell(head + "def scale(x, k):\n    return x * k\n"),
        nbformat.v4.new_code_cell(probe),
    ]
    client = NotebookClient(
        book, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(out / "notebooks")}}
    )
    client.execute()
    printed = ["".join(o.get("text", "") for o in c.outputs) for c in book.cells]
    assert "scale(2, 3) = -1" in printed[2]
    assert "scale(2, 3) = 6" in printed[4]


# --- the real reference ------------------------------------------------------------------------------


def test_notebook_of_a_real_module(tmp_path, require_tier):
    """Module 04 of the repository: a solution cell per stub; each test the reference passes checked once."""
    import xml.etree.ElementTree as ET

    require_tier("foundation")
    out = tmp_path / "rel"
    release = make_release(None, out, root=ROOT, modules=["04"], notebooks=True)
    assert sorted(release.notebooks) == ["04"]
    cs = cells(out / "notebooks/04_losses.ipynb")
    heads = [text(c).splitlines()[0] for c in cs if c["metadata"]["nbgrader"]["solution"]]
    manifest = json.loads((out / "tinytorch-release.json").read_text())
    assert heads == [f"%%write_def {s['file']} {s['function']}" for s in manifest["stubs_by_module"]["04"]]
    checks = [c for c in cs if nb._role(c) == "check"]
    checked = [
        t.split("::", 1)[1]
        for c in checks
        for t in ast.literal_eval(ast.parse(text(c)).body[0].value.args[1])
    ]
    # the oracle: pytest's own report of the module's tests on the reference
    junit = tmp_path / "junit.xml"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
            "tests/foundation/test_04_losses.py",
        ],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT / "packages/tinytorch-foundation/src")),
        capture_output=True,
        text=True,
        timeout=300,
    )
    cases = list(ET.parse(junit).getroot().iter("testcase"))
    passed = {c.get("name") for c in cases if not list(c)}
    assert len(checked) == len(set(checked)) and set(checked) == passed and passed
    skipped = {c.get("name") for c in cases if c.find("skipped") is not None}
    note = [text(c) for c in cs if c["id"] == "m04-unrun"]
    assert bool(note) == bool(skipped) and all(f"`{n.split('[')[0]}`" in note[0] for n in skipped)
    table = points_mod.load(["foundation"])
    hidden = any((ROOT / "tests/hidden/foundation").glob("test_04_*.py"))
    visible = table.module("04").points - (table.module("04").hidden if hidden else 0)
    assert sum(c["metadata"]["nbgrader"]["points"] for c in checks) == pytest.approx(visible)
    assert text(cs[-2]).startswith(nb.SYSTEMS["04"][0].splitlines()[0])


# --- nbgrader: generate_assignment and autograde on the course directory tito writes ------------------


def _nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    """``nbgrader ARGS`` in the course directory, as an instructor types it (its config read from there)."""
    # no user-wide nbgrader config; nbgrader runs `alembic` by name: this Python's scripts come first
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(course / ".jupyter"), PATH=path)
    proc = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=course,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc


def test_nbgrader_generates_and_autogrades_a_module(repo, tmp_path, monkeypatch, jupyter, require_tier):
    """nbgrader's own commands, unedited, on ``tito course release --nbgrader``: reference full, stubs less.

    The oracle for the points is the points file (module 01's points, all visible in the fixture)
    and for the student's the fixture's call graph: ``test_limit`` calls no stub, so it passes on
    the untouched notebook, in an ungraded cell: the untouched notebook scores 0.
    """
    pytest.importorskip("nbgrader", reason=f"{OPTIONAL} nbgrader is not installed (pip install nbgrader)")
    from nbgrader.api import Gradebook
    from tinytorch.milestones.course.nbgrader_course import make_course

    require_tier("foundation")  # the release's tests skip a tier whose distribution is absent
    monkeypatch.delenv("PYTHONPATH", raising=False)  # the runtime puts the assignment's src/ first itself
    course = tmp_path / "course"
    made = make_course(course, "foundation", ["01"], root=repo, verify_imports=False)
    assignment = made["01"]
    assert assignment == course / "source" / "01_tensor" and (course / "nbgrader_config.py").is_file()
    release_files = {"pyproject.toml", "pytest.ini", "src", "tests", "tinytorch-release.json"}
    assert {p.name for p in assignment.iterdir()} == {"01_tensor.ipynb", nb.RUNTIME, *release_files}

    _nbgrader(course, "generate_assignment", "01_tensor")
    released = course / "release" / "01_tensor"
    student = json.loads((released / "01_tensor.ipynb").read_text())
    for cell in student["cells"]:
        if cell["metadata"]["nbgrader"]["solution"]:
            # nbgrader cleared the reference between the markers and kept the %%write_def line
            assert text(cell).startswith("%%write_def tinytorch.core.tensor ")
            assert "raise NotImplementedError()" in text(cell) and B not in text(cell)
    assert "self.total += v" not in (released / "01_tensor.ipynb").read_text()
    assert not (released / "notebooks").exists()  # the instructor's notebooks are not handed out

    for student_id, notebook in (("reference", assignment), ("untouched", released)):
        (course / "submitted" / student_id / "01_tensor").mkdir(parents=True)
        (course / "submitted" / student_id / "01_tensor" / "01_tensor.ipynb").write_bytes(
            (notebook / "01_tensor.ipynb").read_bytes()
        )
    _nbgrader(course, "autograde", "01_tensor", "--create")

    table = points_mod.load(["foundation"])
    full = table.module("01").points
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        scores = {s: gb.find_submission("01_tensor", s).score for s in ("reference", "untouched")}
        grades = gb.find_submission_notebook("01_tensor", "01_tensor", "untouched").grades
        untouched = {g.name: (g.score, g.max_score) for g in grades}
        max_score = gb.find_assignment("01_tensor").max_score
    assert max_score == pytest.approx(full) and scores["reference"] == pytest.approx(full)
    # the untouched notebook: the checks calling stubs score 0; the check calling none is not graded
    assert untouched["m01-scale-check"][0] == 0 and untouched["m01-acc-add-check"][0] == 0
    assert "m01-rest-check" not in untouched
    assert scores["untouched"] == 0
    # each submission was graded in its own copy of the package: the reference's did not leak
    graded = course / "autograded"
    assert "self.total += v" in (graded / "reference/01_tensor/src/tinytorch/core/tensor.py").read_text()
    assert "self.total += v" not in (graded / "untouched/01_tensor/src/tinytorch/core/tensor.py").read_text()
