"""`tito module status` / `tito module test` on a fixture release: the status flips as stubs are filled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tinytorch.milestones.cli import main
from tinytorch.milestones.course.release import make_release
from tinytorch.milestones.course.status import stubs_in_source

ROOT = Path(__file__).resolve().parents[2]
B, E = "### BEGIN SOLUTION", "### END SOLUTION"

TENSOR = f'''
"""Fixture module 01."""


class Base:
    def forward(self, x):
        """Abstract: subclasses implement it (a plain NotImplementedError is not a stub)."""
        raise NotImplementedError


def double(x):
    """2 x."""
    {B}
    return 2 * x
    {E}


def square(x):
    """x squared."""
    {B}
    return x * x
    {E}
'''

TESTS = """
from tinytorch.core.tensor import double, square


def test_double():
    assert double(3) == 6


def test_square():
    assert square(3) == 9
"""


@pytest.fixture
def release(tmp_path) -> Path:
    root = tmp_path / "repo"
    pkg = root / "packages/tinytorch-foundation"
    (pkg / "src/tinytorch/core").mkdir(parents=True)
    (root / "packages/VERSION").write_text("1.2.3\n")
    (pkg / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
        '[project]\nname = "tinytorch-foundation"\nversion = "1.2.3"\ndependencies = ["numpy"]\n'
    )
    (pkg / "src/tinytorch/core/tensor.py").write_text(TENSOR)
    (root / "tests/foundation").mkdir(parents=True)
    (root / "tests/conftest.py").write_text((ROOT / "tests/conftest.py").read_text())
    (root / "tests/foundation/test_01_tensor.py").write_text(TESTS)
    out = tmp_path / "student"
    make_release("foundation", out, root=root)
    return out


def tito(release: Path, *args) -> subprocess.CompletedProcess:
    """tito with the release first on sys.path: what `pip install -e release` gives."""
    env = dict(os.environ, PYTHONPATH=str(release / "src"))
    return subprocess.run(
        [sys.executable, "-m", "tinytorch.milestones.cli", *args],
        cwd=release,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def status(release: Path) -> dict:
    proc = tito(release, "module", "status", "01", "--json")
    (entry,) = json.loads(proc.stdout)
    entry["exit"] = proc.returncode
    return entry


def test_status_flips_as_stubs_are_filled(release):
    path = release / "src/tinytorch/core/tensor.py"
    first = status(release)
    assert Path(first["source"]) == path and first["tests"] == str(release / "tests/test_01_tensor.py")
    assert first["complete"] is False and first["stubs"] == ["double", "square"] and first["exit"] == 1
    assert first["results"]["failed"] == 2 and first["results"]["passed"] == 0
    assert "implement double" in first["results"]["first_failure"]["summary"]

    text = path.read_text()
    path.write_text(
        text.replace("raise NotImplementedError('Module 01 (tensor): implement double')", "return x + x")
    )
    second = status(release)
    assert second["stubs"] == ["square"] and second["complete"] is False
    assert (second["results"]["passed"], second["results"]["failed"]) == (1, 1)

    path.write_text(
        path.read_text().replace(
            "raise NotImplementedError('Module 01 (tensor): implement square')", "return x ** 2"
        )
    )
    third = status(release)
    assert third["complete"] is True and third["stubs"] == [] and third["exit"] == 0
    assert (third["results"]["passed"], third["results"]["failed"]) == (2, 0)


def test_module_test_runs_that_module_with_pytest_exit_code(release):
    proc = tito(release, "module", "test", "01")
    assert proc.returncode == 1
    assert "NotImplementedError: Module 01 (tensor): implement square" in proc.stdout
    assert "still has 2 stubs" in proc.stdout
    path = release / "src/tinytorch/core/tensor.py"
    path.write_text(TENSOR)  # the reference solution back
    proc = tito(release, "module", "test", "tensor")
    assert proc.returncode == 0, proc.stdout
    assert "2 passed" in proc.stdout


def test_stub_detection_ignores_abstract_methods():
    from tinytorch.milestones.course.markers import replace_blocks

    stubbed, _ = replace_blocks(
        TENSOR,
        message=lambda b: (
            f"{b.indent}raise NotImplementedError('Module 01 (tensor): implement {b.qualname}')"
        ),
    )
    assert stubs_in_source(TENSOR) == []
    assert stubs_in_source(stubbed) == ["double", "square"]


def test_module_list_shows_all_twenty(capsys):
    assert main(["module", "list"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line[:2].isdigit()]
    assert [line.split()[0] for line in lines] == [f"{i:02d}" for i in range(1, 21)]
    assert "tinytorch.generation.kv_cache" in lines[16] and lines[16].split()[2] == "optimization"


def test_unknown_module_is_a_clear_error(capsys):
    assert main(["module", "test", "42"]) == 2
    assert "unknown module" in capsys.readouterr().err


OUTCOME_TESTS = """
import pytest

STUB = "Module 12 (attention): implement MultiHeadAttention.forward"


def test_stub():
    raise NotImplementedError(STUB)


def test_stub_group():
    raise ExceptionGroup("two", [NotImplementedError(STUB), NotImplementedError(STUB)])


def test_abstract():
    raise NotImplementedError  # not a stub: no message of the stub form


def test_other():
    assert 1 == 2


def test_mixed_group():
    raise ExceptionGroup("two", [NotImplementedError(STUB), ValueError("x")])


@pytest.fixture
def broken():
    raise NotImplementedError(STUB)


def test_setup_error(broken):
    pass


def test_ok():
    pass


def test_child_stub():
    import subprocess, sys
    subprocess.run([sys.executable, "-c", f"raise NotImplementedError({STUB!r})"], check=True)


def test_raises_runtime_error_catches_stub():
    with pytest.raises(RuntimeError, match="boom"):
        raise NotImplementedError(STUB)


def test_child_other():
    import subprocess, sys
    subprocess.run([sys.executable, "-c", "raise ValueError('no')"], check=True)


def test_skip():
    pytest.skip("optional oracle: none")
"""


def test_outcomes_plugin_classifies_stub_failures(tmp_path):
    from tinytorch.milestones.course.pytest_outcomes import by_module, load

    (tmp_path / "test_12_attention.py").write_text(OUTCOME_TESTS)
    out = tmp_path / "out.json"
    env = dict(os.environ, TINYTORCH_OUTCOMES=str(out))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "tinytorch.milestones.course.pytest_outcomes",
            "-p",
            "no:cacheprovider",
            "--import-mode=importlib",
            "test_12_attention.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    records = {r["nodeid"].split("::")[1]: r for r in load(str(out))}
    stub = {name: r["stub"] for name, r in records.items() if r["outcome"] == "failed"}
    assert stub == {
        "test_stub": True,
        "test_stub_group": True,
        "test_abstract": False,
        "test_other": False,
        "test_mixed_group": False,
        "test_setup_error": True,
        "test_child_stub": True,
        "test_child_other": False,
        "test_raises_runtime_error_catches_stub": True,
    }
    assert records["test_ok"]["outcome"] == "passed" and records["test_skip"]["outcome"] == "skipped"
    assert records["test_stub"]["module"] == "12"
    # the module a stub names, also when only a child process printed it
    named = {name: r["stub_modules"] for name, r in records.items() if r["outcome"] == "failed"}
    assert named["test_stub"] == named["test_child_stub"] == named["test_setup_error"] == ["12"]
    assert named["test_other"] == [] and named["test_child_other"] == []
    summary = by_module(list(records.values()))["12"]
    assert (summary["passed"], summary["failed"], summary["skipped"]) == (1, 9, 1)
    assert summary["first_failure"]["test"].endswith("test_stub") and not summary["stub_only"]


def test_status_counts_stubs_by_the_module_named_in_them(tmp_path, monkeypatch):
    """A Module 05 stub in tensor.py counts for module 05, not 01; modules a release gives are 'given'."""
    import json

    from tinytorch.milestones.course import status as status_mod
    from tinytorch.milestones.course.status import stub_entries
    from tinytorch.milestones.tiers import module

    text = (
        "def scale(x, k):\n    return x * k\n\n\n"
        "def scale_backward(g, k):\n"
        "    raise NotImplementedError('Module 05 (autograd): implement scale_backward')\n"
    )
    assert stub_entries(text) == [("scale_backward", "05")]

    release = tmp_path / "release"
    core = release / "src" / "tinytorch" / "core"
    core.mkdir(parents=True)
    (core / "tensor.py").write_text(text)
    (core / "autograd.py").write_text(
        "def grad(f, x):\n    raise NotImplementedError('Module 05 (autograd): implement grad')\n"
    )
    (release / "tinytorch-release.json").write_text(
        json.dumps({"tier": "foundation", "modules_stubbed": ["05"], "stubs": {}, "modules": {}})
    )
    sources = {"tinytorch.core.tensor": core / "tensor.py", "tinytorch.core.autograd": core / "autograd.py"}
    monkeypatch.setattr(status_mod, "_source_of", lambda name: sources.get(name))
    monkeypatch.setattr(status_mod, "is_installed", lambda tier: True)

    class Spec:
        def __init__(self, origin):
            self.origin = str(origin)

    monkeypatch.setattr(
        status_mod.importlib.util, "find_spec", lambda name: Spec(sources[name]) if name in sources else None
    )
    tensor, autograd = status_mod.module_state(module("01")), status_mod.module_state(module("05"))
    assert tensor.stubs == [] and tensor.given and tensor.complete
    assert autograd.stubs == ["scale_backward (in core/tensor.py)", "grad"] or sorted(
        autograd.stubs
    ) == sorted(["scale_backward (in core/tensor.py)", "grad"])
    assert not autograd.given and not autograd.complete
