"""Student releases: a tier with its solution blocks replaced by stubs.

``make_release(tier, out, modules=None)`` reads ``packages/tinytorch-<tier>/`` of the
repository and writes, atomically (a temporary directory renamed into place, so a
failed release leaves nothing behind):

* ``src/``: the tier's source, each solution block of the chosen modules (all of
  the tier's by default) replaced by ``raise NotImplementedError("Module NN (name):
  implement Q")``, where NN is the module the block belongs to (its tag, else its
  file's module). Blocks of the other modules stay as given reference code, their
  marker lines removed;
* ``pyproject.toml``: the same distribution (name, version, import paths), made
  static: the repository's shared version hook is not there, so the version is
  written out and sibling pins are exact;
* ``tests/``: the tier's tests and the repository's ``tests/conftest.py``, with a
  ``pytest.ini`` so plain ``pytest`` runs them in the release directory;
* ``README.md`` (what to install, what to write) and ``tinytorch-release.json``
  (tier, version, the modules stubbed and the stubs per module, read by
  ``tito module status`` and ``tito course grade``);
* ``.github/workflows/classroom.yml``: a GitHub Classroom autograding workflow that
  runs each stubbed module's visible tests for that module's visible points, and
  ``wheels/`` with the reference wheels it installs when ``wheels`` is given.

Before the rename the release is verified: every file compiles, every module
imports (stubs fail when called, not when imported) and no block's solution
text survives.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tinytorch.milestones.course import _toml, markers
from tinytorch.milestones.course.repo import (
    RELEASE_MANIFEST,
    find_root,
    import_path_of,
    module_for,
    tier_dir,
    tier_modules,
    version,
)
from tinytorch.milestones.course.wheelhouse import MANIFEST_KEY as WHEELHOUSE_KEY
from tinytorch.milestones.course.wheelhouse import configured as configured_wheelhouse
from tinytorch.milestones.course.wheelhouse import student_install_lines
from tinytorch.milestones.tiers import MODULES, TIERS

IGNORE_NAMES = ("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache", ".hypothesis")
IGNORE = shutil.ignore_patterns(*IGNORE_NAMES)
# Shared helpers of the tests (next to tests/conftest.py) that a release carries with its tests.
HELPERS = ("_oracles.py",)


class ReleaseError(RuntimeError):
    """The release could not be written or failed its verification."""


@dataclass
class Release:
    tier: str
    version: str
    path: Path
    modules: list[str] = field(default_factory=list)  # the modules stubbed ("05", ...)
    stubs: dict[str, list[str]] = field(default_factory=dict)  # import path -> qualnames
    by_module: dict[str, list[dict]] = field(default_factory=dict)  # "05" -> [{file, function}]
    hidden: dict[str, bool] = field(default_factory=dict)  # module -> has hidden tests (not shipped)
    wheelhouse: str | None = None  # the course's wheelhouse URL or folder (README, manifest, hints)
    files: int = 0
    notebooks: dict = field(default_factory=dict)  # module -> notebook summary (with --notebooks)

    @property
    def stub_count(self) -> int:
        return sum(len(v) for v in self.stubs.values())


# --- pyproject ---------------------------------------------------------------------------


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _toml_table(name: str, table: dict, out: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if scalars or not tables:
        out.append(f"[{name}]")
        out.extend(f"{_key(k)} = {_toml_value(v)}" for k, v in scalars.items())
        out.append("")
    for key, sub in tables.items():
        _toml_table(f"{name}.{_key(key)}", sub, out)


def static_pyproject(reference: Path, release_version: str) -> str:
    """The reference pyproject with the version hook resolved: static version and exact pins."""
    data = _toml.loads(reference.read_text(encoding="utf-8"))
    project = dict(data["project"])
    hook = data.get("tool", {}).get("hatch", {}).get("metadata", {}).get("hooks", {}).get("custom", {})
    dynamic = set(project.pop("dynamic", []))
    if "version" in dynamic:
        project["version"] = release_version
    if "dependencies" in dynamic:
        project["dependencies"] = [d.format(version=release_version) for d in hook.get("dependencies", [])]
    if "optional-dependencies" in dynamic:
        extras = hook.get("optional-dependencies", {})
        project["optional-dependencies"] = {
            k: [d.format(version=release_version) for d in v] for k, v in extras.items()
        }
        if not project["optional-dependencies"]:
            del project["optional-dependencies"]
    leftover = dynamic - {"version", "dependencies", "optional-dependencies"}
    if leftover:
        project["dynamic"] = sorted(leftover)
    tool = json.loads(json.dumps(data.get("tool", {})))
    tool.get("hatch", {}).get("metadata", {}).get("hooks", {}).pop("custom", None)
    out = [
        "# Student release of a TinyTorch tier, generated by `tito course release`.",
        "# Static metadata: the same distribution name, version and import paths as the reference.",
        "",
    ]
    _toml_table("build-system", data["build-system"], out)
    _toml_table("project", project, out)
    hatch = tool.get("hatch", {})
    if hatch.get("metadata", {}).get("hooks") == {}:
        del hatch["metadata"]["hooks"]
    if hatch.get("metadata") == {}:
        del hatch["metadata"]
    for key, sub in tool.items():
        if sub:
            _toml_table(f"tool.{_key(key)}", sub, out)
    text = "\n".join(out).rstrip() + "\n"
    _toml.loads(text)  # what we write must read back
    return text


# --- README --------------------------------------------------------------------------------


def _readme(release: Release, reference_readme: str) -> str:
    tier, ver = release.tier, release.version
    stubbed = [m for m in tier_modules(tier) if m.number in release.modules]
    first = stubbed[0] if stubbed else tier_modules(tier)[0]
    first_test = Path(first.test_file).name
    everything = len(stubbed) == len(tier_modules(tier))
    scope = (
        "every part you write"
        if everything
        else f"the parts of module{'s' if len(stubbed) > 1 else ''} "
        + ", ".join(f"{m.number} ({m.name})" for m in stubbed)
        + " (the other modules of the tier are given as reference code)"
    )
    lines = [
        f"# tinytorch-{tier} {ver}: student release",
        "",
        f"This is the `tinytorch-{tier}` distribution with {scope} replaced by",
        '`raise NotImplementedError("Module NN (name): implement ...")`. Signatures, docstrings',
        "and the surrounding classes are there; the tests say what each function must do.",
        "",
        "## Install",
        "",
        "In a fresh virtual environment (Python 3.10+):",
        "",
        "```bash",
    ]
    # The tiers below (and tito) come prebuilt from the course's wheelhouse (`tito course wheelhouse`).
    lines += student_install_lines(tier, ver, release.wheelhouse)
    lines += [
        "```",
        "",
        "Without a wheelhouse, use a folder of the reference wheels instead (the `wheels/` folder of",
        "this release when it has one, or the wheels your instructor hands out): replace",
        "`--extra-index-url .../simple` by `--find-links wheels`.",
        "",
        "## Test",
        "",
        "```bash",
        "pytest                      # every module of this tier; each failure names the function to write",
        f"pytest tests/{first_test} -x   # one module: the file of the module you work on",
        f"tito module test {first.number}          # the same, with tinytorch-milestones installed",
        "tito module status          # with tinytorch-milestones installed: which modules are complete",
        "```",
        "",
        "## What to write",
        "",
        "A function belongs to the module that teaches it, which is not always the module of its",
        "file: every operation's derivative (`backward`) is Module 05's lesson wherever the op lives.",
        "",
        "| module | files | functions to implement |",
        "|---|---|---|",
    ]
    for info in tier_modules(tier):
        if info.number not in release.modules:
            lines.append(f"| {info.number} {info.name} | - | given (reference code) |")
            continue
        entries = release.by_module.get(info.number, [])
        files = sorted({"src/" + e["file"].replace(".", "/") + ".py" for e in entries})
        names = ", ".join(f"`{e['function']}`" for e in entries) or "-"
        lines.append(f"| {info.number} {info.name} | {', '.join(f'`{f}`' for f in files) or '-'} | {names} |")
    about = [line for line in reference_readme.strip().splitlines() if not line.startswith("# ")]
    lines += ["", "## About this tier", "", "\n".join(about).strip(), ""]
    return "\n".join(lines)


PYTEST_INI = """\
[pytest]
addopts = --import-mode=importlib -ra
testpaths = tests
pythonpath = tests
markers =
    slow: long-running end-to-end tests
"""


# --- writing and verifying -----------------------------------------------------------------


def _stub_message(tier: str, import_path: str):
    def message(block: markers.Block) -> str:
        if block.module is not None:
            return markers.stub_line(block)
        text = markers.STUB_OTHER.format(
            dist=f"tinytorch-{tier}", import_path=import_path, qualname=block.qualname
        )
        return f"{block.indent}raise NotImplementedError({text!r})"

    return message


IMPORT_PROBE = """
import importlib, json, sys
src = sys.argv[1]
out = {}
for name in sys.argv[2:]:
    try:
        mod = importlib.import_module(name)
        out[name] = {"file": getattr(mod, "__file__", None) or ""}
    except BaseException as exc:
        out[name] = {"error": f"{type(exc).__name__}: {exc}"}
print(json.dumps(out))
"""


def check_imports(src: Path, module_names: list[str], python: str = sys.executable) -> list[str]:
    """Import every module with ``src`` first on sys.path; problems as readable lines."""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    )
    proc = subprocess.run(
        [python, "-c", IMPORT_PROBE, str(src), *module_names],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    if proc.returncode != 0:
        return [f"import probe failed: {proc.stderr.strip()[-2000:]}"]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    problems = []
    for name, result in results.items():
        if "error" in result:
            problems.append(f"{name} does not import: {result['error']}")
        elif not Path(result["file"]).resolve().is_relative_to(src.resolve()):
            problems.append(f"{name} was imported from {result['file']}, not from the release")
    return problems


def make_release(
    tier: str | None,
    out: str | os.PathLike,
    root: Path | None = None,
    *,
    modules: list[str] | None = None,
    verify_imports: bool = True,
    force: bool = False,
    wheels: str | os.PathLike | None = None,
    points_file: str | os.PathLike | None = None,
    notebooks: bool = False,
    with_solutions: bool = False,
    wheelhouse: str | None = None,
) -> Release:
    """Write the student release of ``tier`` to ``out``; see the module docstring.

    ``modules`` (numbers, e.g. ["05"]) stubs only the blocks of those modules; the tier
    may then be None (it is the tier of the modules). ``wheels`` is a directory holding
    the reference wheels (``dist/``): the release copies the other tiers' wheels into
    ``wheels/`` for the GitHub Classroom workflow. ``points_file`` sets the points the
    workflow reports (default: the shipped points of the tier). ``notebooks`` also writes
    one notebook per stubbed module into ``notebooks/`` (``course/notebooks.py``);
    ``with_solutions`` (implies ``notebooks``) fills them with the reference: the instructor's.
    ``wheelhouse`` (default: ``$TINYTORCH_WHEELHOUSE``) is the course's index of prebuilt wheels:
    the README's install lines use it and the manifest records it for tito's hints.
    """
    from tinytorch.milestones.course.repo import tier_of_modules

    if modules:
        unknown = sorted(set(modules) - {m.number for m in MODULES})
        if unknown:
            raise ReleaseError(f"unknown modules {unknown}: expected 01-20")
        inferred = tier_of_modules(sorted(modules))
        if tier is not None and inferred != tier:
            raise ReleaseError(
                f"--modules {', '.join(sorted(modules))} belong to tinytorch-{inferred}, not tinytorch-{tier}"
            )
        tier = inferred
    if tier is None:
        raise ReleaseError("give --tier or --modules")
    chosen = sorted(modules) if modules else [m.number for m in tier_modules(tier)]
    root = Path(root) if root else find_root()
    ref = tier_dir(root, tier)
    if not (ref / "src").is_dir():
        raise ReleaseError(f"{ref}/src does not exist: is this the TinyTorch repository?")
    tests_src = root / "tests" / tier
    out = Path(out).resolve()
    if out.exists() and any(out.iterdir()):
        if not (force and (out / RELEASE_MANIFEST).is_file()):
            hint = " (--force replaces an earlier release)" if (out / RELEASE_MANIFEST).is_file() else ""
            raise ReleaseError(f"{out} exists and is not empty{hint}")
    if (tests_src / "conftest.py").exists():
        raise ReleaseError(f"{tests_src}/conftest.py would clash with the copied tests/conftest.py")
    out.parent.mkdir(parents=True, exist_ok=True)
    release_version = version(root)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        release = Release(tier, release_version, out, modules=chosen,
                          wheelhouse=wheelhouse or configured_wheelhouse(root))
        hidden = root / "tests" / "hidden" / tier
        release.hidden = {n: any(hidden.glob(f"test_{n}_*.py")) for n in chosen}
        _write(release, root, ref, tests_src, staging)
        _verify(release, ref, staging, verify_imports)
        _write_classroom(release, staging, wheels, points_file)
        if notebooks or with_solutions:
            from tinytorch.milestones.course.notebooks import NotebookError, write_notebooks

            try:
                made = write_notebooks(
                    release, root, staging, solutions=with_solutions, points_file=points_file
                )
            except NotebookError as exc:
                raise ReleaseError(str(exc)) from None
            release.notebooks = made.files
            with (staging / "README.md").open("a", encoding="utf-8") as readme:
                readme.write(_notebooks_section(release, with_solutions))
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return release


def _notebooks_section(release: Release, solutions: bool) -> str:
    """The README part on the notebooks (``--notebooks``): where they are, how a cell reaches ``src/``."""
    lines = [
        "",
        "## Notebooks",
        "",
        "One Jupyter notebook per module to write (the same cells as a Jupytext percent `.py` beside it):",
        "",
        *(f"- Module {n}: `{f['ipynb']}` ({f['functions']} functions, {f['checks']} check cells)"
          for n, f in sorted(release.notebooks.items())),  # fmt: skip
        "",
        "```bash",
        'pip install "tinytorch-milestones[notebooks]" jupyterlab   # after the install lines above',
        "jupyter lab notebooks/",
        "```",
        "",
        "A cell that starts with `%%write_def <module> <function>` writes the function into this",
        "release's `src/` (what `import tinytorch...`, `pytest` and `tito module status` see); the check",
        "cell after it runs that function's tests. Objects made before an edit keep the old code: re-run",
        "the cells that make them.",
    ]
    if solutions:
        lines += ["", "These notebooks hold the reference solutions (the instructor's version)."]
    return "\n".join(lines) + "\n"


def _write(release: Release, root: Path, ref: Path, tests_src: Path, staging: Path) -> None:
    shutil.copytree(ref / "src", staging / "src", ignore=IGNORE)
    chosen = set(release.modules)
    for path in sorted((staging / "src").rglob("*.py")):
        rel = path.relative_to(staging / "src")
        import_path = import_path_of(rel)
        source = path.read_text(encoding="utf-8")
        try:
            markers.check_file(ref / "src" / rel, import_path, release.tier)
            info = module_for(import_path)
            stubbed, blocks = markers.replace_blocks(
                source,
                str(ref / "src" / rel),
                _stub_message(release.tier, import_path),
                module=info.number if info else None,
                only=lambda b: b.module in chosen,
            )
        except markers.MarkerError as exc:
            raise ReleaseError(str(exc)) from None
        if stubbed != source:
            path.write_text(stubbed, encoding="utf-8")
        if blocks:
            release.stubs[import_path] = [b.qualname for b in blocks]
            for b in blocks:
                entry = {"file": import_path, "function": b.qualname}
                release.by_module.setdefault(b.module, []).append(entry)
        release.files += 1
    (staging / "pyproject.toml").write_text(
        static_pyproject(ref / "pyproject.toml", release.version), encoding="utf-8"
    )
    readme = (ref / "README.md").read_text(encoding="utf-8") if (ref / "README.md").exists() else ""
    (staging / "README.md").write_text(_readme(release, readme), encoding="utf-8")
    tests = staging / "tests"
    if tests_src.is_dir():
        shutil.copytree(tests_src, tests, ignore=shutil.ignore_patterns(*IGNORE_NAMES, "hidden"))
    else:
        tests.mkdir()
    shutil.copy2(root / "tests" / "conftest.py", tests / "conftest.py")
    for helper in HELPERS:  # shared test helpers (the oracles), importable by the tests
        if (root / "tests" / helper).is_file():
            shutil.copy2(root / "tests" / helper, tests / helper)
    (staging / "pytest.ini").write_text(PYTEST_INI, encoding="utf-8")
    manifest = {
        "tier": release.tier,
        "distribution": f"tinytorch-{release.tier}",
        "version": release.version,
        "modules_stubbed": release.modules,
        "stubs": release.stubs,
        "stubs_by_module": {n: release.by_module.get(n, []) for n in release.modules},
        "modules": {m.number: m.import_path for m in tier_modules(release.tier)},
    }
    if release.wheelhouse:
        manifest[WHEELHOUSE_KEY] = release.wheelhouse  # tito's install hints in the release name it
    (staging / RELEASE_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _verify(release: Release, ref: Path, staging: Path, verify_imports: bool) -> None:
    problems = []
    modules = []
    for path in sorted((staging / "src").rglob("*.py")):
        rel = path.relative_to(staging / "src")
        text = path.read_text(encoding="utf-8")
        try:
            compile(text, str(path), "exec", dont_inherit=True)
        except SyntaxError as exc:
            problems.append(f"{rel} does not compile: {exc}")
            continue
        import_path = import_path_of(rel)
        modules.append(import_path)
        reference = (ref / "src" / rel).read_text(encoding="utf-8")
        info = module_for(import_path)
        blocks = markers.find_blocks(reference, str(ref / "src" / rel), info.number if info else None)
        stubbed = [b for b in blocks if b.module in set(release.modules) or b.module is None]
        for leak in markers.surviving_solutions(reference, text, stubbed):
            problems.append(f"{rel}: solution of {leak.qualname} (lines {leak.begin}-{leak.end}) survives")
        stubs = [
            line.strip()
            for line in text.splitlines()
            if line.strip().startswith("raise NotImplementedError(")
        ]
        expected = len(release.stubs.get(import_path, []))
        found = sum(1 for s in stubs if markers.STUB_RE.match(_raise_message(s) or ""))
        if found != expected:
            problems.append(f"{rel}: expected {expected} stubs, found {found}")
        if markers.marker_lines(text, str(path)):
            problems.append(f"{rel}: a solution marker survives")
    if verify_imports and not problems:
        problems += check_imports(staging / "src", modules)
    if problems:
        raise ReleaseError("release verification failed:\n  " + "\n  ".join(problems))


def _raise_message(line: str) -> str | None:
    """The string literal of ``raise NotImplementedError("...")``, if the line is exactly that."""
    try:
        node = ast.parse(line).body[0]
    except SyntaxError:
        return None
    exc = getattr(node, "exc", None)
    if isinstance(exc, ast.Call) and exc.args and isinstance(exc.args[0], ast.Constant):
        return exc.args[0].value
    return None


def _write_classroom(release: Release, staging: Path, wheels, points_file) -> None:
    """The GitHub Classroom workflow and, with ``wheels``, the reference wheels it installs."""
    from tinytorch.milestones.course import points as points_mod
    from tinytorch.milestones.course import templates

    try:
        table = points_mod.load([release.tier], points_file)
    except (points_mod.PointsError, ModuleNotFoundError) as exc:
        raise ReleaseError(str(exc)) from None
    visible = {}
    for number in release.modules:
        entry = table.module(number)
        visible[number] = entry.points - entry.hidden if release.hidden.get(number) else entry.points
    workflow = staging / ".github" / "workflows" / "classroom.yml"
    workflow.parent.mkdir(parents=True, exist_ok=True)
    text = templates.classroom_workflow(release.tier, release.version, release.modules, visible)
    workflow.write_text(text, encoding="utf-8")
    if wheels is None:
        return
    below = TIERS[: TIERS.index(release.tier)]
    (staging / "wheels").mkdir()
    for tier in below:
        found = sorted(Path(wheels).glob(f"tinytorch_{tier}-{release.version}-*.whl"))
        if not found:
            raise ReleaseError(
                f"no tinytorch_{tier}-{release.version} wheel in {wheels} (build it: nox -s build)"
            )
        shutil.copy2(found[-1], staging / "wheels" / found[-1].name)
