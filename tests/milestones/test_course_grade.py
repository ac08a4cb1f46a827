"""`tito course grade` on a small fixture tier: scores, hidden tests, integrity, timeouts, formats.

The fixture repository has a "foundation" tier of two module files (tensor.py for module
01, with a derivative block tagged ``(Module 05)``, and autograd.py for module 05), their
tests, a hidden test and the real ``tests/_oracles.py``. One kit is built per test module
run, with this interpreter as the grading environment (no wheels, no virtual environment),
and every submission is a student release with some source put back or changed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from tinytorch.milestones.course import points as points_mod
from tinytorch.milestones.course import report as report_mod
from tinytorch.milestones.course.grade import GradeError, grade_many, kill_marked, locate_sources
from tinytorch.milestones.course.kit import build_kit, fingerprint
from tinytorch.milestones.course.release import make_release

ROOT = Path(__file__).resolve().parents[2]
B, E = "### BEGIN SOLUTION", "### END SOLUTION"

TENSOR = f'''"""Fixture module 01."""

import numpy as np


def scale(x, k):
    """x times k, elementwise."""
    {B}
    return np.asarray(x, dtype=np.float64) * k
    {E}


def scale_grad(x, k):
    """d(scale)/dx: the derivative is Module 05's lesson."""
    {B} (Module 05)
    return np.full(np.shape(x), float(k))
    {E}


def total(values):
    """Sum of the values."""
    {B}
    return float(np.sum(values))
    {E}


def shape_of(x):
    """Given code (no solution block): the release ships it as it is."""
    return np.shape(x)


def spin(n):
    """Returns n (a loop in a submission hangs here)."""
    {B}
    return n
    {E}
'''

AUTOGRAD = f'''"""Fixture module 05."""

from tinytorch.core.tensor import scale_grad


def grad_of_scale(x, k):
    """The gradient of scale at x."""
    {B}
    return scale_grad(x, k)
    {E}
'''

TEST_TENSOR = """
import numpy as np
from tinytorch.core.tensor import scale, shape_of, spin, total


def test_scale():
    np.testing.assert_allclose(scale([1.0, 2.0], 3.0), [3.0, 6.0])


def test_scale_zero():
    np.testing.assert_allclose(scale([1.0, -2.0], 0.0), [0.0, 0.0])


def test_total():
    assert total([1.0, 2.0, 3.5]) == 6.5


def test_spin():
    assert spin(4) == 4


def test_shape_of_given_code():
    assert shape_of([[1.0, 2.0]]) == (1, 2)
"""

TEST_AUTOGRAD = """
import numpy as np
from _oracles import assert_close
from tinytorch.core.autograd import grad_of_scale
from tinytorch.core.tensor import scale


def test_grad_matches_finite_differences():
    x, k, eps = np.array([0.5, -1.0]), 2.5, 1e-6
    numeric = (scale(x + eps, k) - scale(x - eps, k)) / (2 * eps)
    assert_close(grad_of_scale(x, k), numeric, rtol=1e-6, what="gradient")


def test_grad_shape():
    assert grad_of_scale(np.zeros((2, 3)), 1.0).shape == (2, 3)
"""

HIDDEN_TENSOR = """
import numpy as np
from tinytorch.core.tensor import scale


def test_scale_negative_factor():
    np.testing.assert_allclose(scale([2.0], -1.5), [-3.0])
"""

PYPROJECT = """
[build-system]
requires = ["hatchling>=1.21"]
build-backend = "hatchling.build"

[project]
name = "tinytorch-foundation"
description = "fixture"
requires-python = ">=3.10"
dynamic = ["version", "dependencies"]

[tool.hatch.metadata.hooks.custom]
path = "../version_hook.py"
dependencies = ["numpy>=1.24"]

[tool.hatch.build.targets.wheel]
packages = ["src/tinytorch"]
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("repo")
    pkg = root / "packages" / "tinytorch-foundation"
    (pkg / "src" / "tinytorch" / "core").mkdir(parents=True)
    (root / "packages" / "VERSION").write_text("9.8.7\n")
    (pkg / "pyproject.toml").write_text(PYPROJECT)
    (pkg / "README.md").write_text("# tinytorch-foundation\n\nFixture tier.\n")
    (pkg / "src/tinytorch/core/tensor.py").write_text(TENSOR)
    (pkg / "src/tinytorch/core/autograd.py").write_text(AUTOGRAD)
    (root / "tests" / "foundation").mkdir(parents=True)
    (root / "tests" / "hidden" / "foundation").mkdir(parents=True)
    (root / "tests" / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (root / "tests" / "_oracles.py").write_text((ROOT / "tests" / "_oracles.py").read_text())
    (root / "tests/foundation/test_01_tensor.py").write_text(TEST_TENSOR)
    (root / "tests/foundation/test_05_autograd.py").write_text(TEST_AUTOGRAD)
    (root / "tests/hidden/foundation/test_01_tensor_hidden.py").write_text(HIDDEN_TENSOR)
    return root


@pytest.fixture(scope="module")
def kit(repo, tmp_path_factory):
    return build_kit(repo, ["foundation"], tmp_path_factory.mktemp("kits") / "kit", python=sys.executable)


@pytest.fixture(scope="module")
def release(repo, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("releases") / "student"
    make_release("foundation", out, root=repo, verify_imports=False)
    return out


def submission(release: Path, where: Path, name: str, tensor: str | None = TENSOR, autograd=AUTOGRAD) -> Path:
    """A copy of the release with the given source (None keeps the stubbed file)."""
    import shutil

    sub = where / name
    shutil.copytree(release, sub)
    core = sub / "src/tinytorch/core"
    if tensor is not None:
        (core / "tensor.py").write_text(tensor)
    if autograd is not None:
        (core / "autograd.py").write_text(autograd)
    return sub


def grade(kit, subs, **options):
    table = points_mod.load(["foundation"], options.pop("points_file", None))
    table.test_timeout = options.pop("test_timeout", 30)
    table.submission_timeout = options.pop("submission_timeout", 300)
    return grade_many(kit, subs, table, python=sys.executable, **options)


def by_test(report: dict) -> dict[str, dict]:
    return {t["name"]: t for t in report["tests"]}


def test_the_kit_records_the_reference_inventory(kit):
    inventory = kit.inventory
    assert all(r["outcome"] == "passed" for r in inventory.values())
    hidden = [n for n, r in inventory.items() if r["visibility"] == "hidden"]
    assert hidden == ["tests/foundation/hidden/test_01_tensor_hidden.py::test_scale_negative_factor"]
    reach = inventory["tests/foundation/test_05_autograd.py::test_grad_matches_finite_differences"]["reach"]
    # the test calls the module-05 function and, through it, the module-05 block of tensor.py
    assert set(reach) >= {"tinytorch.core.autograd:grad_of_scale", "tinytorch.core.tensor:scale_grad"}
    assert {b["key"]: b["module"] for b in kit.blocks}["tinytorch.core.tensor:scale_grad"] == "05"


def test_complete_stubbed_and_wrong_submissions(kit, release, tmp_path):
    wrong = TENSOR.replace(
        "return np.asarray(x, dtype=np.float64) * k", "return np.asarray(x, dtype=np.float64) + k"
    )
    subs = [
        submission(release, tmp_path, "complete"),
        submission(release, tmp_path, "stubbed", tensor=None, autograd=None),
        submission(release, tmp_path, "wrong", tensor=wrong),
    ]
    complete, stubbed, wrong_report = grade(kit, subs)
    points = points_mod.load(["foundation"])
    assert complete["score"] == complete["max_score"] == points.total(["01", "05"])
    assert complete["passed"] == 7 and not complete["errors"] and not complete["integrity"]
    # The untouched release scores nothing: the test of given code passes on it and is not graded.
    assert stubbed["score"] == 0 and all(m["score"] == 0 for m in stubbed["modules"])
    assert by_test(stubbed).get("test_shape_of_given_code") is None
    why = {u["test"].split("::")[-1]: u["why"] for u in stubbed["ungraded"]}
    assert why["test_shape_of_given_code"].startswith("calls no solution function of module 01")
    modules = {m["module"]: m for m in stubbed["modules"]}
    assert modules["05"]["stubs"] == ["grad_of_scale", "scale_grad (in src/tinytorch/core/tensor.py)"]
    # The wrong scale fails its own tests (visible and hidden) and the gradient test that uses it.
    tests = by_test(wrong_report)
    assert (
        tests["test_scale"]["outcome"] == "failed"
        and tests["test_scale_negative_factor"]["outcome"] == "failed"
    )
    assert "Mismatched elements" in tests["test_scale"]["message"]  # the assertion diff reaches the student
    assert tests["test_total"]["outcome"] == "passed"
    assert 0 < wrong_report["score"] < complete["score"]
    # every failure names its module and the function the test exercises
    line = report_mod.failure_line(tests["test_scale"])
    assert line.startswith("Module 01 (tensor) · test_scale · ") and "scale" in line.split("·")[-1]


def test_hidden_tests_carry_their_share_and_are_reported_apart(kit, release, tmp_path):
    (report,) = grade(kit, [submission(release, tmp_path, "complete")])
    module = next(m for m in report["modules"] if m["module"] == "01")
    table = points_mod.load(["foundation"]).module("01")
    assert module["hidden"]["max"] == table.hidden and module["visible"]["max"] == table.points - table.hidden
    results = report_mod.gradescope(report)
    entries = {t["name"]: t for t in results["tests"]}
    assert entries["Module 01 (tensor): hidden tests"]["visibility"] == "after_published"
    assert entries["Module 01 (tensor): visible tests"]["visibility"] == "visible"
    for entry in results["tests"]:
        assert set(entry) == {"name", "score", "max_score", "output", "visibility"}
    assert results["score"] == sum(t["score"] for t in results["tests"])
    (visible_only,) = grade(kit, [submission(release, tmp_path, "again")], hidden=False)
    assert all(t["visibility"] == "visible" for t in visible_only["tests"])


def test_points_file_weights_and_totals(kit, release, tmp_path):
    custom = tmp_path / "points.toml"
    custom.write_text(
        '[modules.01]\npoints = 40\nhidden = 0\n[modules.01.weights]\n"test_scale*" = 3\n"test_spin" = 0\n'
        "[modules.05]\npoints = 10\n"
    )
    wrong = TENSOR.replace(
        "return np.asarray(x, dtype=np.float64) * k", "return np.asarray(x, dtype=np.float64) + k"
    )
    (report,) = grade(kit, [submission(release, tmp_path, "wrong", tensor=wrong)], points_file=custom)
    module = next(m for m in report["modules"] if m["module"] == "01")
    # visible tests of 01: scale (3), scale_zero (3), total (1), spin (0, ungraded); hidden: 1 test, 0 points
    # wrong scale: scale fails; scale_zero passes (0 * k == 0 + ... no: 1 + 0 != 0) -> both fail
    assert module["max"] == 40 and module["score"] == pytest.approx(40 * 1 / 7, abs=0.01)
    assert any(u["test"].endswith("test_spin") and u["why"] == "weight 0" for u in report["ungraded"])
    with pytest.raises(points_mod.PointsError, match="modules.21"):
        bad = tmp_path / "bad.toml"
        bad.write_text("[modules.21]\npoints = 3\n")
        points_mod.load(["foundation"], bad)
    with pytest.raises(points_mod.PointsError, match="exceeds"):
        bad.write_text("[modules.01]\npoints = 3\nhidden = 4\n")
        points_mod.load(["foundation"], bad)


def test_cheats_gain_nothing(kit, release, tmp_path):
    wrong = TENSOR.replace(
        "return np.asarray(x, dtype=np.float64) * k", "return np.asarray(x, dtype=np.float64) + k"
    )
    patch_numpy = wrong.replace(
        "import numpy as np\n",
        "import numpy as np\nimport numpy.testing as npt\nnpt.assert_allclose = lambda *a, **k: None\n",
    )
    patch_oracles = AUTOGRAD.replace(
        "    return scale_grad(x, k)",
        "    import sys\n"
        "    sys.modules['_oracles'].assert_close = lambda *a, **k: None\n"
        "    return scale_grad(x, k) * 2",
    )
    patch_test_file = wrong.replace(
        "import numpy as np\n",
        "import numpy as np\nimport pathlib, sys\n"
        "for p in [q for e in sys.path for q in pathlib.Path(e or '.').glob('*/test_05_autograd.py')]:\n"
        "    p.write_text('def test_grad_matches_finite_differences():\\n    pass\\n')\n",
    )
    subs = [
        submission(release, tmp_path, "wrong", tensor=wrong),
        submission(release, tmp_path, "cheat-numpy", tensor=patch_numpy),
        submission(
            release,
            tmp_path,
            "wrong-grad",
            autograd=AUTOGRAD.replace("scale_grad(x, k)", "scale_grad(x, k) * 2"),
        ),
        submission(release, tmp_path, "cheat-oracles", autograd=patch_oracles),
        submission(release, tmp_path, "cheat-tests", tensor=patch_test_file),
    ]
    wrong_r, cheat_numpy, wrong_grad, cheat_oracles, cheat_tests = grade(kit, subs)
    assert cheat_numpy["score"] <= wrong_r["score"] and cheat_numpy["integrity"]
    assert "numpy.testing.assert_allclose replaced by tinytorch/core/tensor.py" in cheat_numpy["integrity"][0]
    assert cheat_oracles["score"] <= wrong_grad["score"] and cheat_oracles["integrity"]
    assert by_test(cheat_oracles)["test_grad_matches_finite_differences"]["message"].startswith("integrity:")
    assert cheat_tests["score"] <= wrong_r["score"]
    assert any("test files modified (restored)" in line for line in cheat_tests["integrity"])


def test_infinite_loop_times_out_and_leaves_nothing(kit, release, tmp_path):
    doc = '    """Returns n (a loop in a submission hangs here)."""\n'
    loop = TENSOR.replace(doc, doc + "    while True:\n        pass\n")
    swallow = TENSOR.replace(
        '    """Returns n (a loop in a submission hangs here)."""\n',
        '    """Returns n (a loop in a submission hangs here)."""\n'
        "    while True:\n        try:\n            while True:\n                pass\n"
        "        except BaseException:\n            pass\n",
    )
    before = {p.name for p in Path(tempfile.gettempdir()).iterdir()}
    subs = [
        submission(release, tmp_path, "loop", tensor=loop),
        submission(release, tmp_path, "swallow", tensor=swallow),
    ]
    loop_r, swallow_r = grade(kit, subs, test_timeout=2, jobs=2)
    for report in (loop_r, swallow_r):
        spin = by_test(report)["test_spin"]
        assert spin["outcome"] == "timeout" and spin["function"] == "spin", spin
        assert report["timeouts"] == ["tests/foundation/test_01_tensor.py::test_spin"]
        assert by_test(report)["test_scale"]["outcome"] == "passed"  # the run went on after the timeout
    after = {p.name for p in Path(tempfile.gettempdir()).iterdir()}
    assert not [n for n in after - before if n.startswith(("tito-grade-", "sub-"))]
    assert kill_marked("no-such-marker") == 0
    running = subprocess.run(
        ["pgrep", "-f", "tinytorch_grader_plugin"], capture_output=True, text=True
    ).stdout
    assert running.strip() == ""


def test_submission_time_limit_ends_the_grade(kit, release, tmp_path):
    slow = TENSOR.replace(
        '    """Sum of the values."""\n',
        '    """Sum of the values."""\n    import time\n    time.sleep(30)\n',
    )
    (report,) = grade(kit, [submission(release, tmp_path, "slow", tensor=slow)], submission_timeout=4)
    assert report["overtime"] and report["score"] < report["max_score"]
    assert any("time limit" in t["message"] for t in report["tests"] if t["outcome"] != "passed")


def test_syntax_and_import_errors_are_file_line_and_zero_the_module(kit, release, tmp_path):
    broken = AUTOGRAD.replace("def grad_of_scale(x, k):", "def grad_of_scale(x, k)")
    raising = TENSOR.replace("import numpy as np\n", "import numpy as np\nVALUE = undefined_name\n")
    syntax_r, import_r = grade(
        kit,
        [
            submission(release, tmp_path, "syntax", autograd=broken),
            submission(release, tmp_path, "nameerror", tensor=raising),
        ],
    )
    assert syntax_r["errors"][0].startswith("src/tinytorch/core/autograd.py:6: SyntaxError")
    modules = {m["module"]: m for m in syntax_r["modules"]}
    assert modules["05"]["score"] == 0 and modules["01"]["score"] == modules["01"]["max"]
    assert (
        "src/tinytorch/core/tensor.py:4: NameError: name 'undefined_name' is not defined"
        in import_r["errors"]
    )
    assert all(m["score"] == 0 for m in import_r["modules"])


def test_static_stub_check_costs_the_tests_that_reach_the_function(kit, release, tmp_path):
    # grad_of_scale written without calling scale_grad, which stays a stub: tests pass at run time,
    # but every test that reaches scale_grad on the reference loses its points.
    stub = "    raise NotImplementedError('Module 05 (autograd): implement scale_grad')\n"
    stubbed_helper = TENSOR.replace("    return np.full(np.shape(x), float(k))\n", stub)
    inlined = AUTOGRAD.replace(
        "return scale_grad(x, k)", "import numpy as np\n    return np.full(np.shape(x), float(k))"
    )
    (report,) = grade(
        kit, [submission(release, tmp_path, "inlined", tensor=stubbed_helper, autograd=inlined)]
    )
    test = by_test(report)["test_grad_matches_finite_differences"]
    assert (
        test["outcome"] == "failed" and "still a stub" in test["message"] and "scale_grad" in test["message"]
    )


def test_per_module_grading_uses_the_reference_elsewhere(kit, release, tmp_path):
    # Only module 05 graded: tensor.py holds a module-05 block, so it comes from the submission;
    # the module-01 tests are not run and module 01 is not in the report.
    (report,) = grade(kit, [submission(release, tmp_path, "m05")], modules=["05"])
    assert [m["module"] for m in report["modules"]] == ["05"] and report["score"] == report["max_score"]
    assert {t["module"] for t in report["tests"]} == {"05"}
    with pytest.raises(GradeError, match="not graded by this kit"):
        grade(kit, [submission(release, tmp_path, "m09")], modules=["09"])


def test_formats_and_gradebook(kit, release, tmp_path):
    reports = grade(
        kit, [submission(release, tmp_path, "a"), submission(release, tmp_path, "b", autograd=None)]
    )
    for report in reports:
        report["name"] = Path(report["submission"]).name
    table = report_mod.render(reports[1], "table")
    assert "grade of b (tinytorch-foundation" in table and "still to write (stubs):" in table
    assert json.loads(report_mod.render(reports[0], "json"))["score"] == reports[0]["score"]
    rows = list(csv.DictReader(io.StringIO(report_mod.render(reports[1], "csv"))))
    assert {r["outcome"] for r in rows} == {"failed", "passed"} and all(
        r["module"] in ("01", "05") for r in rows
    )
    book = list(csv.DictReader(io.StringIO(report_mod.gradebook(reports))))
    assert [r["submission"] for r in book] == ["a", "b"]
    assert {"01 tensor", "05 autograd", "total", "max"} <= set(book[0])
    assert float(book[0]["total"]) == reports[0]["score"] and float(book[1]["05 autograd"]) == 0


def test_cli_batch_writes_one_file_per_submission_and_the_gradebook(kit, release, tmp_path, capsys):
    from tinytorch.milestones.cli import main

    subs = [submission(release, tmp_path, name) for name in ("alice", "bob")]
    out = tmp_path / "grades"
    code = main(["course", "grade", *map(str, subs), "--kit", str(kit.path), "--python", sys.executable,
                 "--jobs", "2", "--out", str(out), "--format", "gradescope", "--quiet"])  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["alice.json", "bob.json", "gradebook.csv"]
    assert json.loads((out / "alice.json").read_text())["score"] > 0
    assert "alice" in capsys.readouterr().out
    assert main(["course", "grade", str(tmp_path / "nothing-here"), "--kit", str(kit.path)]) == 2


def test_a_directory_without_a_release_is_reported_not_fatal(kit, release, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(GradeError, match="no student release"):
        locate_sources(empty, ["foundation"])
    good, bad = grade(kit, [submission(release, tmp_path, "good"), empty])
    assert (
        good["score"] == good["max_score"] and bad["score"] == 0 and "no student release" in bad["errors"][0]
    )


def test_environment_fingerprint_sees_edits_and_planted_bytecode(tmp_path):
    env = tmp_path / "env"
    (env / "lib" / "pkg" / "__pycache__").mkdir(parents=True)
    module = env / "lib" / "pkg" / "mod.py"
    module.write_text("X = 1\n")
    first = fingerprint(env)
    assert fingerprint(env) == first  # reading changes nothing
    stat = module.stat()
    module.write_text("X = 2\n")  # same size, and the modification time put back:
    os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert fingerprint(env) != first  # the inode change time still tells
    second = fingerprint(env)
    (env / "lib" / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"planted")
    assert fingerprint(env) != second


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups are POSIX")
def test_kill_marked_finds_processes_that_left_the_group():
    marker = "test-marker-123"
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        env=dict(os.environ, TINYTORCH_GRADER_RUN=marker),
        start_new_session=True,
    )
    try:
        assert kill_marked(marker) == 1
        assert child.wait(timeout=10) != 0
    finally:
        child.kill()
