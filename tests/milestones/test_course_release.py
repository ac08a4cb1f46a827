"""Student releases of a small fixture tier, and of the real foundation tier when its source is there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tinytorch.milestones.cli import main
from tinytorch.milestones.course import _toml as tomllib
from tinytorch.milestones.course import markers
from tinytorch.milestones.course.release import ReleaseError, make_release, static_pyproject
from tinytorch.milestones.course.repo import RELEASE_MANIFEST, RepoNotFound, find_root

ROOT = Path(__file__).resolve().parents[2]
B, E = "### BEGIN SOLUTION", "### END SOLUTION"

# A fixture "foundation" tier: module 01's import path, so stubs carry "Module 01 (tensor)".
TENSOR = f'''
"""Fixture module 01."""


def ident(x):
    return x


def scale(x, k):
    """x times k."""
    if k is None:
        raise ValueError("k must be a number")
    {B}
    y = x * k
    return y
    {E}


def same(x):
    """Returns x (its solution line also appears, legitimately, in ident)."""
    {B}
    return x
    {E}


class Acc:
    """Running total."""

    def __init__(self):
        {B}
        self.total = 0
        {E}

    def add(self, v):
        {B}
        self.total += v
        return self.total
        {E}

    def reset(self):
        self.total = 0
        return self.total
'''

TEST_TENSOR = """
from tinytorch.core.tensor import Acc, ident, same, scale


def test_ident():
    assert ident(3) == 3


def test_scale():
    assert scale(2, 3) == 6


def test_same():
    assert same(4) == 4


def test_acc():
    acc = Acc()
    acc.add(2)
    assert acc.add(3) == 5
"""

PYPROJECT = """
[build-system]
requires = ["hatchling>=1.21"]
build-backend = "hatchling.build"

[project]
name = "tinytorch-foundation"
description = "fixture"
readme = "README.md"
requires-python = ">=3.10"
dynamic = ["version", "dependencies", "optional-dependencies"]

[tool.hatch.metadata.hooks.custom]
path = "../version_hook.py"
dependencies = ["numpy>=1.24", "tinytorch-other=={version}"]
optional-dependencies = {extra = ["tinytorch-more=={version}"]}

[tool.hatch.build.targets.wheel]
packages = ["src/tinytorch"]
"""


@pytest.fixture
def repo(tmp_path) -> Path:
    root = tmp_path / "repo"
    pkg = root / "packages" / "tinytorch-foundation"
    (pkg / "src" / "tinytorch" / "core").mkdir(parents=True)
    (root / "packages" / "VERSION").write_text("9.8.7\n")
    (pkg / "pyproject.toml").write_text(PYPROJECT)
    (pkg / "README.md").write_text("# tinytorch-foundation\n\nFixture tier.\n")
    (pkg / "src" / "tinytorch" / "core" / "tensor.py").write_text(TENSOR)
    (root / "tests" / "foundation").mkdir(parents=True)
    (root / "tests" / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (root / "tests" / "foundation" / "test_01_tensor.py").write_text(TEST_TENSOR)
    return root


def run_pytest(cwd: Path, src: Path, tmp_path: Path) -> list[dict]:
    out = tmp_path / "outcomes.json"
    env = dict(os.environ, PYTHONPATH=str(src), TINYTORCH_OUTCOMES=str(out))
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
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return json.loads(out.read_text())


def test_fixture_release(repo, tmp_path):
    out = tmp_path / "student"
    release = make_release("foundation", out, root=repo)
    assert release.stubs == {"tinytorch.core.tensor": ["scale", "same", "Acc.__init__", "Acc.add"]}
    text = (out / "src/tinytorch/core/tensor.py").read_text()
    compile(text, "tensor.py", "exec")
    # scaffolding stays, solutions go (by block: `return x` of ident is legitimate)
    assert 'raise ValueError("k must be a number")' in text and '"""Running total."""' in text
    assert "y = x * k" not in text and "self.total += v" not in text and B not in text and E not in text
    assert text.count("return x") == 1 and "def reset(self):\n        self.total = 0" in text
    assert "        raise NotImplementedError('Module 01 (tensor): implement Acc.add')" in text

    # stubs fail when called, with the module and the function to write
    ns: dict = {}
    exec(compile(text, "tensor.py", "exec"), ns)
    assert ns["ident"](5) == 5
    with pytest.raises(NotImplementedError, match=r"^Module 01 \(tensor\): implement scale$"):
        ns["scale"](1, 2)
    with pytest.raises(ValueError):
        ns["scale"](1, None)

    # static pyproject: same name, the repository's version, exact pins, no hook
    meta = tomllib.loads((out / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "tinytorch-foundation" and meta["project"]["version"] == "9.8.7"
    assert meta["project"]["dependencies"] == ["numpy>=1.24", "tinytorch-other==9.8.7"]
    assert meta["project"]["optional-dependencies"] == {"extra": ["tinytorch-more==9.8.7"]}
    assert "dynamic" not in meta["project"] and "hooks" not in str(meta["tool"])
    assert meta["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["src/tinytorch"]

    # tests, conftest, pytest config, README, manifest
    assert (out / "tests/test_01_tensor.py").read_text() == TEST_TENSOR
    assert (out / "tests/conftest.py").is_file() and "--import-mode=importlib" in (
        out / "pytest.ini"
    ).read_text()
    readme = (out / "README.md").read_text()
    assert "pip install --no-deps -e ." in readme and "`Acc.add`" in readme and "Fixture tier." in readme
    manifest = json.loads((out / RELEASE_MANIFEST).read_text())
    assert manifest["tier"] == "foundation" and manifest["version"] == "9.8.7"

    # plain pytest in the release: the stubbed tests fail with the stub messages, nothing else
    records = {r["nodeid"].split("::")[-1]: r for r in run_pytest(out, out / "src", tmp_path)}
    assert records["test_ident"]["outcome"] == "passed"
    for name in ("test_scale", "test_same", "test_acc"):
        assert records[name]["outcome"] == "failed" and records[name]["stub"], records[name]
    assert records["test_acc"]["exceptions"][0]["message"] == "Module 01 (tensor): implement Acc.__init__"


def test_release_installs_from_the_course_wheelhouse(repo, tmp_path, monkeypatch):
    """The README's install lines and tito's hints use the course's wheelhouse, given or from the env."""
    from tinytorch.milestones.course import wheelhouse

    monkeypatch.delenv(wheelhouse.ENV_VAR, raising=False)
    out = tmp_path / "given"
    make_release("foundation", out, root=repo, verify_imports=False,
                 wheelhouse="https://course.example.org/tt")  # fmt: skip
    readme = (out / "README.md").read_text()
    assert (
        "pip install --extra-index-url https://course.example.org/tt/simple "
        "tinytorch-milestones==9.8.7 pytest hypothesis"
    ) in readme
    assert "pip install --no-deps -e ." in readme and ".whl" not in readme
    assert json.loads((out / RELEASE_MANIFEST).read_text())["wheelhouse"] == "https://course.example.org/tt"
    assert wheelhouse.configured(out / "src") == "https://course.example.org/tt"  # tito's hints find it

    monkeypatch.setenv(wheelhouse.ENV_VAR, "file:///srv/wheelhouse")
    out = tmp_path / "from-env"
    make_release("foundation", out, root=repo, verify_imports=False)
    assert "--extra-index-url file:///srv/wheelhouse/simple" in (out / "README.md").read_text()

    monkeypatch.delenv(wheelhouse.ENV_VAR)
    out = tmp_path / "none"
    make_release("foundation", out, root=repo, verify_imports=False)
    assert "--extra-index-url WHEELHOUSE/simple" in (out / "README.md").read_text()
    assert "wheelhouse" not in json.loads((out / RELEASE_MANIFEST).read_text())


def test_restoring_the_reference_makes_the_release_pass(repo, tmp_path):
    out = tmp_path / "student"
    make_release("foundation", out, root=repo)
    (out / "src/tinytorch/core/tensor.py").write_text(TENSOR)
    records = run_pytest(out, out / "src", tmp_path)
    assert len(records) == 4 and all(r["outcome"] == "passed" for r in records)


def test_release_refuses_bad_markers_and_leaves_nothing(repo, tmp_path):
    path = repo / "packages/tinytorch-foundation/src/tinytorch/core/tensor.py"
    path.write_text(TENSOR + f"\n{B}\nX = 1\n{E}\n")
    out = tmp_path / "student"
    with pytest.raises(ReleaseError, match="module level"):
        make_release("foundation", out, root=repo)
    assert not out.exists() and list(tmp_path.glob(".student-*")) == []


def test_release_refuses_a_non_empty_directory_and_replaces_only_with_force(repo, tmp_path):
    out = tmp_path / "student"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ReleaseError, match="not empty"):
        make_release("foundation", out, root=repo)
    assert (out / "keep.txt").read_text() == "mine"
    other = tmp_path / "again"
    make_release("foundation", other, root=repo)
    with pytest.raises(ReleaseError, match="--force"):
        make_release("foundation", other, root=repo)
    make_release("foundation", other, root=repo, force=True)


def test_release_outside_the_repository_fails_clearly(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RepoNotFound, match="not inside the TinyTorch repository"):
        find_root()
    assert main(["course", "release", "--tier", "foundation", "--out", str(tmp_path / "x")]) == 1
    assert "run them from a clone of the repository" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_static_pyproject_of_every_real_package_reads_back():
    version = (ROOT / "packages/VERSION").read_text().strip()
    for tier in ("foundation", "architecture", "optimization"):
        meta = tomllib.loads(static_pyproject(ROOT / f"packages/tinytorch-{tier}/pyproject.toml", version))
        assert meta["project"]["version"] == version
        pins = [d for d in meta["project"]["dependencies"] if d.startswith("tinytorch-")]
        assert all(d.endswith(f"=={version}") for d in pins) and len(pins) == (tier != "foundation")


@pytest.mark.parametrize("tier", ("foundation", "architecture", "optimization"))
def test_release_of_the_real_tier(tier, tmp_path, require_tier):
    """Compiles, imports (checked inside make_release), stubs match the blocks, no solution text."""
    # The release's import check runs against the installed tiers below it.
    tiers = ("foundation", "architecture", "optimization")
    for below in tiers[: tiers.index(tier)]:
        require_tier(below)
    src = ROOT / f"packages/tinytorch-{tier}/src"
    results, problems = markers.check_tree(src)
    assert not problems and any(results.values())
    release = make_release(tier, tmp_path / "rel", root=ROOT)
    assert release.stub_count == sum(len(b) for b in results.values())
    for import_path, names in release.stubs.items():
        text = (tmp_path / "rel/src" / (import_path.replace(".", "/") + ".py")).read_text()
        for name in names:
            assert any(
                markers.STUB_RE.match(m) and m.endswith(f"implement {name}") for m in _raise_messages(text)
            ), (import_path, name)
    assert sorted(p.name for p in (tmp_path / "rel/tests").glob("test_*.py")) == sorted(
        p.name for p in (ROOT / f"tests/{tier}").glob("test_*.py")
    )


def _raise_messages(text: str) -> list[str]:
    import ast

    return [
        n.exc.args[0].value
        for n in ast.walk(ast.parse(text))
        if isinstance(n, ast.Raise)
        and isinstance(n.exc, ast.Call)
        and n.exc.args
        and isinstance(n.exc.args[0], ast.Constant)
    ]


def test_configs_lists_every_configuration_with_its_commands(capsys):
    assert main(["course", "configs"]) == 0
    out = capsys.readouterr().out
    for name in ("Foundation only", "Foundation + Architecture", "Architecture focus", "Optimization focus"):
        assert name in out
    section = out.split("Architecture focus:")[1].split("Optimization focus:")[0]
    assert "tito course release --tier architecture" in section
    assert "--extra-index-url URL/simple tinytorch-foundation==" in section
    assert "-e ./student-architecture" in section
    assert "tinytorch-architecture==" not in section  # the students build it


# --- per-module releases ------------------------------------------------------------------------

TENSOR_TAGGED = f'''
"""Fixture module 01 with a derivative (module 05) and a second module-01 function."""


def scale(x, k):
    {B}
    return x * k
    {E}


def scale_backward(g, k):
    {B} (Module 05)
    return g * k
    {E}
'''

AUTOGRAD = f'''
"""Fixture module 05."""


def grad(f, x):
    {B}
    return (f(x + 1e-6) - f(x - 1e-6)) / 2e-6
    {E}
'''


@pytest.fixture
def tagged_repo(repo) -> Path:
    core = repo / "packages/tinytorch-foundation/src/tinytorch/core"
    (core / "tensor.py").write_text(TENSOR_TAGGED)
    (core / "autograd.py").write_text(AUTOGRAD)
    (repo / "tests/foundation/test_01_tensor.py").write_text(
        "from tinytorch.core.tensor import scale\n\ndef test_scale():\n    assert scale(2, 3) == 6\n"
    )
    (repo / "tests/foundation/test_05_autograd.py").write_text(
        "from tinytorch.core.tensor import scale_backward\nfrom tinytorch.core.autograd import grad\n\n"
        "def test_backward():\n    assert scale_backward(1.0, 3.0) == 3.0\n\n"
        "def test_grad():\n    assert abs(grad(lambda x: 3 * x, 1.0) - 3.0) < 1e-6\n"
    )
    (repo / "tests/hidden/foundation").mkdir(parents=True)
    (repo / "tests/hidden/foundation/test_05_autograd_hidden.py").write_text("def test_hidden():\n    pass\n")
    return repo


def test_module_release_stubs_only_that_module_wherever_its_blocks_live(tagged_repo, tmp_path):
    out = tmp_path / "week5"
    release = make_release(None, out, root=tagged_repo, modules=["05"])
    assert release.tier == "foundation" and release.modules == ["05"]
    tensor = (out / "src/tinytorch/core/tensor.py").read_text()
    assert "return x * k" in tensor and B not in tensor  # module 01 is given, without markers
    assert "raise NotImplementedError('Module 05 (autograd): implement scale_backward')" in tensor
    assert (
        "raise NotImplementedError('Module 05 (autograd): implement grad')"
        in (out / "src/tinytorch/core/autograd.py").read_text()
    )
    manifest = json.loads((out / RELEASE_MANIFEST).read_text())
    assert manifest["modules_stubbed"] == ["05"]
    assert manifest["stubs_by_module"] == {
        "05": [
            {"file": "tinytorch.core.autograd", "function": "grad"},
            {"file": "tinytorch.core.tensor", "function": "scale_backward"},
        ]
    }
    readme = (out / "README.md").read_text()
    assert "| 01 tensor | - | given (reference code) |" in readme
    assert (
        "`src/tinytorch/core/autograd.py`, `src/tinytorch/core/tensor.py` | `grad`, `scale_backward` |"
        in readme
    )
    assert not (out / "tests/hidden").exists()  # hidden tests never ship
    records = {r["nodeid"].split("::")[-1]: r for r in run_pytest(out, out / "src", tmp_path)}
    assert records["test_scale"]["outcome"] == "passed"
    assert records["test_backward"]["stub"] and records["test_grad"]["stub"]


def test_full_release_tags_stubs_by_block_module(tagged_repo, tmp_path):
    release = make_release("foundation", tmp_path / "all", root=tagged_repo)
    assert release.modules == [f"{n:02d}" for n in range(1, 8)]
    assert {k: [e["function"] for e in v] for k, v in release.by_module.items()} == {
        "01": ["scale"],
        "05": ["grad", "scale_backward"],
    }


def test_classroom_workflow_runs_each_module_for_its_visible_points(tagged_repo, tmp_path):
    yaml = pytest.importorskip("yaml", reason="optional oracle: PyYAML is not installed")

    make_release(None, tmp_path / "w", root=tagged_repo, modules=["01", "05"])
    workflow = yaml.safe_load((tmp_path / "w/.github/workflows/classroom.yml").read_text())
    steps = workflow["jobs"]["run-autograding-tests"]["steps"]
    graders = {s["id"]: s["with"] for s in steps if "autograding-command-grader" in str(s.get("uses"))}
    assert set(graders) == {"module-01", "module-05"}
    assert graders["module-01"]["command"].endswith("tests/test_01_tensor.py")
    assert graders["module-01"]["max-score"] == 15  # no hidden tests of module 01: all its points
    assert graders["module-05"]["max-score"] == 16  # 20 points, 4 of them for the hidden tests
    reporter = next(s for s in steps if "grading-reporter" in str(s.get("uses")))
    assert reporter["with"]["runners"] == "module-01,module-05"
    assert reporter["env"]["MODULE-05_RESULTS"] == "${{steps.module-05.outputs.result}}"


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("05", ["05"]),
        ("01-03", ["01", "02", "03"]),
        ("01,03,07", ["01", "03", "07"]),
        ("tensor-losses, 07", ["01", "02", "03", "04", "07"]),
        ("autograd", ["05"]),
        ("9", ["09"]),
    ],
)
def test_parse_modules(spec, expected):
    from tinytorch.milestones.course.repo import parse_modules

    assert parse_modules(spec) == expected


@pytest.mark.parametrize(
    "spec, error", [("", "empty"), ("21", "unknown module"), ("05-03", "backwards"), ("1,,2", "empty")]
)
def test_parse_modules_errors(spec, error):
    from tinytorch.milestones.course.repo import parse_modules

    with pytest.raises(ValueError, match=error):
        parse_modules(spec)


def test_modules_of_two_tiers_are_refused(tagged_repo, tmp_path, capsys):
    from tinytorch.milestones.course.repo import tier_of_modules

    assert tier_of_modules(["09", "13"]) == "architecture"
    with pytest.raises(ValueError, match="span several tiers"):
        tier_of_modules(["05", "09"])
    with pytest.raises(ReleaseError, match="belong to tinytorch-foundation"):
        make_release("architecture", tmp_path / "x", root=tagged_repo, modules=["05"])
    assert main(["course", "release", "--modules", "05,09", "--out", str(tmp_path / "y")]) == 1
    assert "span several tiers" in capsys.readouterr().err
