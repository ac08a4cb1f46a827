"""Every check of the repository, as nox sessions.

    nox                      all default sessions (tier matrix, packaging, course, milestones, lint)
    nox -s build             wheels of the four distributions into dist/
    nox -s "tests(foundation)"               one tier combination
    nox -s bench             benchmarks in fresh processes (not a default session)

The tier sessions install reference *wheels*, never the source tree, so they
test what a course would install.
"""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
DIST = ROOT / "dist"
TIERS = ("foundation", "architecture", "optimization")
PACKAGES = TIERS + ("milestones",)
TEST_DEPS = ("pytest>=7", "hypothesis>=6")
# Each dependency-closed set of reference tiers: a course can install exactly these.
TIER_SETS = {
    "foundation": TIERS[:1],
    "foundation+architecture": TIERS[:2],
    "foundation+architecture+optimization": TIERS,
}

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = [
    "lint",
    "packaging",
    *[f"tests({name})" for name in TIER_SETS],
    "oracle",
    "course(foundation)",
    "course(architecture)",
    "course(optimization)",
    *[f"notebooks({tier})" for tier in TIERS],
    "milestones",
]

_built = False


def build_wheels(session: nox.Session) -> dict[str, str]:
    """Build the four wheels into dist/ (once per nox run); return {package: wheel path}."""
    global _built
    if not _built:
        shutil.rmtree(DIST, ignore_errors=True)
        for name in PACKAGES:
            source = ROOT / "packages" / f"tinytorch-{name}"
            session.run("uv", "build", "--wheel", "--quiet", "-o", str(DIST), str(source), external=True)
        _built = True
    return {name: wheel(name) for name in PACKAGES}


def wheel(name: str) -> str:
    (path,) = glob.glob(str(DIST / f"tinytorch_{name}-*.whl"))
    return path


def install_wheels(session: nox.Session, names) -> None:
    """Runtime dependencies from the index, then our wheels forcibly (venvs are reused)."""
    wheels = build_wheels(session)
    session.install("numpy>=1.24", "tqdm>=4.60", "requests>=2.28", *TEST_DEPS)
    session.install("--force-reinstall", "--no-deps", *(wheels[n] for n in names))


@nox.session
def build(session: nox.Session) -> None:
    """Wheels of the four distributions into dist/."""
    global _built
    _built = False
    build_wheels(session)
    session.log("built: " + ", ".join(sorted(os.listdir(DIST))))


@nox.session
@nox.parametrize("tiers", list(TIER_SETS), ids=list(TIER_SETS))
def tests(session: nox.Session, tiers: str) -> None:
    """One tier combination: its reference wheels plus milestones; absent tiers must skip."""
    installed = TIER_SETS[tiers]
    # Reused venvs may hold tiers from an earlier run of another combination.
    absent = [f"tinytorch-{t}" for t in TIERS if t not in installed]
    session.run("uv", "pip", "uninstall", "--python", session.virtualenv.location, *absent, external=True,
                silent=True, success_codes=[0, 1, 2])
    install_wheels(session, (*installed, "milestones"))
    dirs = [f"tests/{t}" for t in (*TIERS, "milestones", "benchmarks")]
    session.run("pytest", "--tier-check", "-q", *dirs, *_once_per_run(tiers), *session.posargs)


# The course tools release and grade the repository's *source* tiers, whichever reference wheels are
# installed: their tests run once, with every tier (the course sessions stub each tier in turn).
COURSE_TOOL_TESTS = ("tests/milestones/test_course_release.py", "tests/milestones/test_course_grade.py",
                     "tests/milestones/test_course_notebooks.py")


def _once_per_run(tiers: str) -> list[str]:
    """pytest arguments that keep the slow tests to one tier combination each.

    With every tier installed, only the milestone parts that need the optimization tier (06) run:
    the others already ran in the smaller combinations, and the milestones session runs them all
    with every tier, as the README's main command does.
    """
    if TIER_SETS[tiers] != TIERS:
        return [f"--ignore={path}" for path in COURSE_TOOL_TESTS]
    return ["-k", "not test_default_part_passes or 06-"]


# PyTorch is the optional oracle of many tests. Only this exact CPU build is
# installed: any other version pulls gigabytes of CUDA packages.
TORCH = "torch==2.13.0"
# PyTorch's own index of CPU-only wheels. Used as an *extra* index: its `2.13.0+cpu` sorts above
# PyPI's `2.13.0` (a local version label), so pip takes the CPU build, and the dependencies of
# torch still come from the usual index.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def install_torch(session: nox.Session) -> bool:
    """Install the CPU build of TORCH with pip; False when it cannot be had.

    A machine that already has the wheel where pip looks without an index (its configured
    find-links, e.g. a wheel on local disk) installs that one, with no download. Any other
    machine gets it from PyTorch's CPU index, never PyPI's default (CUDA) build.
    """
    try:  # resolve torch alone from local locations only: no download, no index
        session.run("python", "-m", "pip", "install", "--dry-run", "--quiet", "--no-deps", "--no-index",
                    "--only-binary=:all:", TORCH, silent=True)
        local = True
    except nox.command.CommandFailed:
        local = False
    extra = [] if local else ["--extra-index-url", TORCH_CPU_INDEX]
    session.log(f"{TORCH}: " + ("from this machine's local wheels" if local else f"from {TORCH_CPU_INDEX}"))
    try:
        session.install(TORCH, "--only-binary=:all:", *extra, silent=True)
    except nox.command.CommandFailed:
        return False
    return True


@nox.session(venv_backend="virtualenv")
def oracle(session: nox.Session) -> None:
    """Every tier's tests with PyTorch installed, so the PyTorch comparisons run instead of skipping.

    Uses pip (virtualenv backend): pip honours the machine's configured wheel locations and
    the extra CPU index (install_torch); uv would resolve a CUDA build.
    """
    install_wheels(session, (*TIERS, "milestones"))
    if not install_torch(session):
        session.skip(f"{TORCH} could not be installed here; the PyTorch comparisons stay skipped")
    tier_tests = [f"tests/{tier}" for tier in (*TIERS, "benchmarks")]
    session.run("pytest", "-q", *tier_tests, *session.posargs)


WHEELHOUSE = DIST / "wheelhouse"


@nox.session
def wheelhouse(session: nox.Session) -> None:
    """`tito course wheelhouse`: the four sdists, wheels built from them, a PEP 503 index (dist/wheelhouse/).

    ``nox -s wheelhouse -- --url https://course.example.org/tinytorch`` bakes the hosting URL
    into index.html. Not a default session: the release workflow and instructors run it.
    """
    wheels = build_wheels(session)
    session.install("numpy>=1.24", "tqdm>=4.60", "requests>=2.28", "build", "hatchling>=1.24")
    session.install("--force-reinstall", "--no-deps", wheels["foundation"], wheels["milestones"])
    shutil.rmtree(WHEELHOUSE, ignore_errors=True)
    session.run("tito", "course", "wheelhouse", "--out", str(WHEELHOUSE), "--no-isolation", *session.posargs)


@nox.session
def release_check(session: nox.Session) -> None:
    """Check built distributions before a release: metadata (twine check) and the packaging guards.

    ``nox -s release_check -- DIR [TAG]``: DIR holds one wheel and one sdist per distribution
    (default dist/wheelhouse); with TAG (v1.2.3) the tag must match packages/VERSION.
    """
    target = Path(session.posargs[0]).resolve() if session.posargs else WHEELHOUSE
    files = sorted(str(p) for p in target.iterdir() if p.suffix == ".whl" or p.name.endswith(".tar.gz"))
    if len(files) != 2 * len(PACKAGES):
        session.error(f"{target}: expected a wheel and an sdist of each of {PACKAGES}, got {files}")
    if len(session.posargs) > 1:
        session.run("python", "scripts/check_version_tag.py", session.posargs[1])
    session.install("twine>=5", "numpy>=1.24", "tqdm>=4.60", "requests>=2.28", "build", "hatchling>=1.24",
                    *TEST_DEPS)
    session.run("twine", "check", "--strict", *files)
    # tests/packaging/test_wheelhouse.py imports tito's wheelhouse module: from the files under check
    checked = [f for f in files if f.endswith(".whl") and ("_foundation-" in f or "_milestones-" in f)]
    session.install("--force-reinstall", "--no-deps", *checked)
    session.run("pytest", "-q", "tests/packaging",
                env={"TINYTORCH_DIST": str(target), "TINYTORCH_FULL_INSTALL_MATRIX": "1"})


@nox.session
def packaging(session: nox.Session) -> None:
    """Wheel-content guards, version pins, namespace probe, editable installs together."""
    wheels = build_wheels(session)
    session.install("numpy>=1.24", "tqdm>=4.60", "requests>=2.28", "build", "hatchling>=1.24", *TEST_DEPS)
    # test_wheelhouse.py builds a wheelhouse with tito's module and checks its hints
    session.install("--force-reinstall", "--no-deps", wheels["foundation"], wheels["milestones"])
    session.run("pytest", "-q", "tests/packaging", *session.posargs, env={"TINYTORCH_DIST": str(DIST)})


# The oldest Python the distributions declare (requires-python = ">=3.10").
MIN_PYTHON = "3.10"
LINT_PATHS = ("packages", "tests", "benchmarks", "scripts", "noxfile.py")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the whole repository; vermin: no file needs a Python newer than MIN_PYTHON.

    vermin reads each file statically and reports the newest Python a construct or import
    needs (``import tomllib``: 3.11). A fallback import inside ``try``/``except ImportError``
    is exempt only when its line says so (``# novm``); ``sys.version_info`` checks are understood.
    """
    session.install("ruff", "vermin>=1.6")
    session.run("ruff", "check", ".")
    session.run("vermin", f"--target={MIN_PYTHON}-", "--violations", "--no-tips", "--quiet", *LINT_PATHS)


# The oldest NumPy the distributions declare (numpy>=1.24); 1.24.4 has wheels up to Python 3.11.
NUMPY_FLOOR = "numpy==1.24.4"


@nox.session(python="3.11")
def numpy_floor(session: nox.Session) -> None:
    """The tier tests and every milestone on the oldest declared NumPy."""
    wheels = build_wheels(session)
    session.install(NUMPY_FLOOR, "tqdm>=4.60", "requests>=2.28", "threadpoolctl", *TEST_DEPS)
    session.install("--force-reinstall", "--no-deps", *(wheels[n] for n in (*TIERS, "milestones")))
    version = NUMPY_FLOOR.split("==")[1]
    session.run("python", "-c", f"import numpy; assert numpy.__version__ == {version!r}, numpy.__version__; "
                "print('numpy', numpy.__version__)")
    session.run("pytest", "--tier-check", "-q", *(f"tests/{t}" for t in TIERS), *session.posargs)
    session.run("tito", "milestone", "run", "all", "--no-progress")


# --- course: a student release of one tier against the other tiers' reference wheels ------------

COURSE_PLUGIN = "tinytorch.milestones.course.pytest_outcomes"
COURSE_IMPORT_PROBE = """
import importlib, sys
from pathlib import Path
from tinytorch.milestones.tiers import MODULES
where, tier = Path(sys.argv[1]).resolve(), sys.argv[2]
for m in MODULES:
    if m.tier == tier:
        mod = importlib.import_module(m.import_path)
        assert Path(mod.__file__).resolve().is_relative_to(where), f"{m.import_path} from {mod.__file__}"
print(f"tinytorch-{tier}: every module imports from {where}")
"""


def _course_pytest(session: nox.Session, label: str, *args: str, cwd: Path) -> list[dict]:
    """Run pytest with the outcomes plugin in ``cwd``; return one record per test (see pytest_outcomes)."""
    import json

    out = Path(session.create_tmp()).resolve() / f"outcomes-{label}.json"
    out.unlink(missing_ok=True)
    session.chdir(cwd)
    try:
        # --tb=line: the plugin's records say why each test failed; formatting full tracebacks of a
        # stubbed tier's 250 failures took 40 s against 6 s for the run itself.
        session.run("pytest", "-q", "-p", COURSE_PLUGIN, "-p", "no:cacheprovider", "--tb=line",
                    "--continue-on-collection-errors", *args, env={"TINYTORCH_OUTCOMES": str(out)},
                    success_codes=[0, 1, 5])  # 5: no tests collected
    finally:
        session.chdir(ROOT)
    return json.loads(out.read_text())


def _course_require(session: nox.Session, label: str, records: list[dict], *, stubs_allowed: bool):
    """Every test passed (or skipped); with ``stubs_allowed``, failures are allowed only as stub errors."""
    failed = [r for r in records if r["outcome"] == "failed"]
    bad = [r for r in failed if not (stubs_allowed and r["stub"])]
    if bad:
        lines = [f"  {r['nodeid']}: {(r['summary'] or str(r['exceptions'])).splitlines()[0]}" for r in bad]
        what = "failed with something other than a stub's NotImplementedError" if stubs_allowed else "failed"
        session.error(f"{label}: {len(bad)} tests {what}:\n" + "\n".join(lines[:30]))
    counts = {k: sum(r["outcome"] == k for r in records) for k in ("passed", "failed", "skipped")}
    note = " (all stub errors)" if stubs_allowed else ""
    passed, n_failed, skipped = counts["passed"], counts["failed"], counts["skipped"]
    session.log(f"{label}: {passed} passed, {n_failed} failed{note}, {skipped} skipped")
    return failed


def _course_grade(session: nox.Session, release: Path, *, solved: bool) -> None:
    """`tito course grade`: a stubbed release fails in each module with stubs; a solved one passes all."""
    import json

    out = Path(session.create_tmp()).resolve() / "grade.json"
    with out.open("w") as f:
        session.run("tito", "course", "grade", str(release), "--json", stdout=f,
                    success_codes=[0] if solved else [1],
                    env={"TINYTORCH_GRADER_CACHE": _grader_cache(session)})
    report = json.loads(out.read_text())
    manifest = json.loads((release / "tinytorch-release.json").read_text())
    for m in report["modules"]:
        has_stubs = bool(manifest["stubs"].get(manifest["modules"][m["module"]]))
        ok = (m["failed"] == 0 and m["passed"] > 0) if solved else (m["failed"] > 0 or not has_stubs)
        if not ok:
            session.error(f"tito course grade {release.name}: module {m['module']} {m['name']}: {m}")
    session.log(f"tito course grade {release.name}: {report['passed']} passed, {report['failed']} failed")


@nox.session
@nox.parametrize("tier", list(TIERS), ids=list(TIERS))
def course(session: nox.Session, tier: str) -> None:
    """Student release of one tier, installed editable with the other tiers' reference wheels.

    1. `tito course release` (from the milestones wheel) writes the release; it installs
       editable over the reference wheels of the other tiers and imports from its own source.
    2. Its tests (plain `pytest` in the release) fail only with the stubs' NotImplementedError
       ("Module NN (name): implement ..."), and every module of the tier has failing tests.
    3. Other tiers: a tier *below* the student's (it never imports the stubs) must pass entirely;
       a tier *above* (it imports the stubs) may fail, but only with stub NotImplementedErrors.
    4. The reference source copied into a copy of the release: its tests and the tests of the
       tiers above must all pass (tiers below ran against the same wheels in step 3).
    """
    import json

    below, above = TIERS[: TIERS.index(tier)], TIERS[TIERS.index(tier) + 1 :]
    venv = session.virtualenv.location
    session.run("uv", "pip", "uninstall", "--python", venv, f"tinytorch-{tier}", external=True, silent=True,
                success_codes=[0, 1, 2])
    install_wheels(session, (*below, *above, "milestones"))
    work = Path(session.create_tmp()).resolve() / "course"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    release = work / f"student-{tier}"

    # 1. release, editable install, imports
    session.run("tito", "course", "release", "--tier", tier, "--out", str(release))
    session.install("--no-deps", "-e", str(release))
    session.run("python", "-c", COURSE_IMPORT_PROBE, str(release / "src"), tier)
    session.chdir(release)
    session.run("tito", "module", "status", "--no-tests", success_codes=[1])  # stubs left: exit 1
    session.chdir(ROOT)

    # 2. the release's own tests: stub failures only, naming every module of the tier
    records = _course_pytest(session, f"student-{tier}", cwd=release)
    failed = _course_require(session, f"release tests of {tier}", records, stubs_allowed=True)
    manifest = json.loads((release / "tinytorch-release.json").read_text())
    # Each module with stubs has failing tests in its own test file (they may stop at an earlier
    # module's stub first: module 02's tests build Tensors, so they name module 01 until it is written).
    failing_files = {r["module"] for r in failed}
    expected = {number for number, path in manifest["modules"].items() if manifest["stubs"].get(path)}
    if not failed or expected - failing_files:
        missing = sorted(expected - failing_files)
        session.error(f"release tests of {tier}: no failing test for modules {missing}")
    _course_grade(session, release, solved=False)

    # 3. the other tiers' reference tests against the stubbed tier
    for other in below:
        records = _course_pytest(session, other, "--tier-check", f"tests/{other}", cwd=ROOT)
        _course_require(session, f"tests/{other}", records, stubs_allowed=False)
    for other in above:
        _course_require(session, f"tests/{other} over stubs", _course_pytest(
            session, other, "--tier-check", f"tests/{other}", cwd=ROOT), stubs_allowed=True)

    # 4. the reference solution put back into a copy of the release
    solved = work / f"solved-{tier}"
    shutil.copytree(release, solved, ignore=shutil.ignore_patterns(".hypothesis", "__pycache__"))
    shutil.rmtree(solved / "src")
    shutil.copytree(ROOT / "packages" / f"tinytorch-{tier}" / "src", solved / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    session.run("uv", "pip", "uninstall", "--python", venv, f"tinytorch-{tier}", external=True, silent=True)
    session.install("--no-deps", "-e", str(solved))
    session.run("python", "-c", COURSE_IMPORT_PROBE, str(solved / "src"), tier)
    _course_require(session, f"solved {tier}", _course_pytest(session, f"solved-{tier}", cwd=solved),
                    stubs_allowed=False)
    _course_grade(session, solved, solved=True)
    for other in above:
        _course_require(session, f"tests/{other} over the solution", _course_pytest(
            session, f"{other}-solved", "--tier-check", f"tests/{other}", cwd=ROOT), stubs_allowed=False)


# --- course: student notebooks (issue 17) ------------------------------------------------------------

NOTEBOOK_DEPS = ("nbformat>=5.7", "nbclient>=0.7", "ipykernel>=6", "jupytext>=1.14")
# nbgrader for the test that runs generate_assignment and autograde on a fixture module's notebook
# (about 8 s to install with its dependencies on top of the others, uv without a cache).
NBGRADER = "nbgrader>=0.9"
NOTEBOOK_RUNNER = ("python", "-m", "tinytorch.milestones.course.notebooks")


@nox.session
@nox.parametrize("tier", list(TIERS), ids=list(TIERS))
def notebooks(session: nox.Session, tier: str) -> None:
    """`tito course release --notebooks` of one tier, executed with nbclient (a default session).

    1. The student release (installed editable over the other tiers' wheels): every notebook
       runs until its first check cell and fails there with a stub's NotImplementedError message.
    2. The instructor release (`--with-solutions`), installed instead: every notebook runs top to
       bottom without an error, in module order (each writes its reference into the package the
       next ones import). ``nox -s "notebooks(foundation)" -- 01 02`` runs only those modules; a
       selection must start at the tier's first module, whose notebook writes the code the later
       instructor notebooks import (``-- 04`` alone stops at "implement Tensor.__init__").
    3. With foundation: nbgrader's generate_assignment and autograde on `tito course release
       --nbgrader` of a fixture module (the reference scores its points, the stubs less).
    """
    _course_venv_for(session, tier)
    session.install(*NOTEBOOK_DEPS, NBGRADER)
    venv = session.virtualenv.location
    work = Path(session.create_tmp()).resolve() / "notebooks"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    chosen = [a.zfill(2) for a in session.posargs]
    for kind, flag, expect in (("student", "--notebooks", "first-stub"),
                               ("instructor", "--with-solutions", "clean")):
        release = work / f"{kind}-{tier}"
        session.run("tito", "course", "release", "--tier", tier, flag, "--out", str(release))
        session.run("uv", "pip", "uninstall", "--python", venv, f"tinytorch-{tier}", external=True,
                    silent=True, success_codes=[0, 1, 2])
        session.install("--no-deps", "-e", str(release))
        books = sorted((release / "notebooks").glob("*.ipynb"))
        if chosen:
            books = [b for b in books if b.name[:2] in chosen]
        if not books:
            session.error(f"{release}/notebooks holds no notebook of modules {chosen or 'any'}")
        session.log(f"{kind} notebooks of {tier}: {', '.join(b.name for b in books)}")
        session.run(*NOTEBOOK_RUNNER, expect, *map(str, books))
    if tier == "foundation":  # the test's fixture is a foundation module: once is enough
        session.run("pytest", "-q", "-p", "no:cacheprovider", "tests/milestones/test_course_notebooks.py",
                    "-k", "nbgrader_generates_and_autogrades")


# --- course: per-module releases, grading, Gradescope and GitHub Classroom -------------------------
# These sessions install the milestones wheel (tito) next to the other tiers' reference wheels and
# keep the grader's cache (kits, environments) under .nox/, so reruns reuse what did not change.

def _course_venv_for(session: nox.Session, tier: str) -> None:
    """The other tiers' reference wheels and tito, without the tier itself (a release replaces it)."""
    venv = session.virtualenv.location
    session.run(
        "uv",
        "pip",
        "uninstall",
        "--python",
        venv,
        f"tinytorch-{tier}",
        external=True,
        silent=True,
        success_codes=[0, 1, 2],
    )
    install_wheels(session, (*[t for t in TIERS if t != tier], "milestones"))


def _stub_modules(record: dict) -> set[str]:
    """The modules named by the stub errors of a failed test record (its exceptions and their output)."""
    return set(record.get("stub_modules") or [])


def _counts(records: list[dict]) -> tuple[int, int]:
    """(passed, failed) among test records."""
    return sum(r["outcome"] == "passed" for r in records), sum(r["outcome"] == "failed" for r in records)


@nox.session
@nox.parametrize("tier", list(TIERS), ids=list(TIERS))
def course_module(session: nox.Session, tier: str) -> None:
    """Every module of a tier alone: a release stubbing only module N (issue 11, item 2).

    For each module N: `tito course release --modules N`, installed editable next to the other
    tiers' wheels; then over the tests of the tier and of the tiers above it:
      * the tests of the modules before N pass;
      * module N's tests fail, and every failure is a stub error naming module N;
      * the tests of the modules after N (this tier's and the tiers' above) pass or fail only
        on module N's stubs.
    Finally the reference solution put back into the release passes everything. Every module
    is checked and reported (a table); the session fails at the end if any module broke a rule.
    ``nox -s "course_module(architecture)" -- 09 12`` checks only those modules.
    """
    import json
    import time

    _course_venv_for(session, tier)
    above = TIERS[TIERS.index(tier) + 1 :]
    work = Path(session.create_tmp()).resolve() / "course-module"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    numbers = json.loads(
        session.run(
            "python",
            "-c",
            "import json; from tinytorch.milestones.tiers import MODULES; "
            f"print(json.dumps([m.number for m in MODULES if m.tier == {tier!r}]))",
            silent=True,
        )
        .strip()
        .splitlines()[-1]
    )
    chosen = [n for n in numbers if not session.posargs or n in session.posargs]
    dirs = [f"tests/{tier}", *[f"tests/{t}" for t in above]]
    started = time.monotonic()

    def install(tree: Path) -> None:
        session.run("uv", "pip", "install", "--quiet", "--python", session.virtualenv.location, "--no-deps",
                    "-e", str(tree), external=True)  # fmt: skip

    # The reference put back into a release passes everything; a test it fails is reported (and
    # fails the session) but does not count against the modules below.
    solved = work / "solved"
    session.run("tito", "course", "release", "--tier", tier, "--out", str(solved), silent=True)
    shutil.rmtree(solved / "src")
    shutil.copytree(ROOT / "packages" / f"tinytorch-{tier}" / "src", solved / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
    install(solved)
    reference = _course_pytest(session, "solved", *dirs, cwd=ROOT)
    ref_failed = [r["nodeid"] for r in reference if r["outcome"] == "failed"]

    rows, problems = [], {}
    for number in chosen:
        t0 = time.monotonic()
        release = work / f"module-{number}"
        session.run("tito", "course", "release", "--modules", number, "--out", str(release), silent=True)
        install(release)
        records = [r for r in _course_pytest(session, f"module-{number}", *dirs, cwd=ROOT)
                   if r["nodeid"] not in ref_failed]  # fmt: skip
        before = [r for r in records if r["module"] and r["module"] < number and r["module"] in numbers]
        own = [r for r in records if r["module"] == number]
        after = [r for r in records if r not in before and r not in own]
        bad = [
            f"before: {r['nodeid']}: {r['summary'].splitlines()[0] if r['summary'] else r['exceptions']}"
            for r in before
            if r["outcome"] == "failed"
        ]
        own_failed = [r for r in own if r["outcome"] == "failed"]
        if not own_failed:
            bad.append(f"module {number}'s tests all pass with its code stubbed")
        for r in own_failed + [r for r in after if r["outcome"] == "failed"]:
            named = _stub_modules(r)
            if not r["stub"] or named != {number}:
                text = r["summary"] or str(r["exceptions"])
                first = text.splitlines()[0] if text else ""
                why = f"names modules {sorted(named)}" if r["stub"] else "not a stub error"
                bad.append(f"{'own' if r in own_failed else 'after'}: {r['nodeid']}: {why}: {first[:160]}")
        rows.append((number, _counts(before), _counts(own), _counts(after), time.monotonic() - t0, len(bad)))
        if bad:
            problems[number] = bad

    lines = [
        f"per-module releases of tinytorch-{tier} (tests of {', '.join(dirs)}):",
        "  module  before N (pass/fail)  module N (pass/fail)  after N (pass/fail)  seconds  problems",
    ]
    for number, b, o, a, secs, nbad in rows:
        lines.append(
            f"  {number}      {b[0]:>4}/{b[1]:<4}             {o[0]:>4}/{o[1]:<4}             "
            f"{a[0]:>4}/{a[1]:<4}            {secs:6.1f}   {nbad}"
        )
    lines.append(
        f"  reference put back: {len(reference) - len(ref_failed)} passed or skipped, "
        f"{len(ref_failed)} failed; total {time.monotonic() - started:.0f} s"
    )
    session.log("\n".join(lines))
    for number, bad in problems.items():
        shown = "\n    ".join(bad[:12]) + (f"\n    ... and {len(bad) - 12} more" if len(bad) > 12 else "")
        session.warn(f"module {number}: {len(bad)} rule violations:\n    {shown}")
    if ref_failed:
        session.warn("the reference fails: " + ", ".join(ref_failed[:10]))
    if problems or ref_failed:
        session.error(
            f"tinytorch-{tier}: modules {sorted(problems)} break the per-module rules"
            + (" and the reference fails" if ref_failed else "")
        )


def _grader_cache(session: nox.Session) -> str:
    cache = ROOT / ".nox" / "_grader_cache"
    cache.mkdir(parents=True, exist_ok=True)
    return str(cache)


UNREACHED_PROBE = """
import sys
from tinytorch.milestones.course.grade import unreached_blocks
from tinytorch.milestones.course.kit import load_kit
kit = load_kit(sys.argv[1])
missing = unreached_blocks(kit)
if missing:
    sys.exit("solution functions no graded test reaches on the reference: " + ", ".join(missing))
print(f"each of the {len(kit.blocks)} solution functions is reached by a graded test")
"""


def _check_expectations(session: nox.Session, subs: list[dict], reports: dict[str, dict]) -> list[str]:
    """The constructed submissions' grades against what each must show (course_submissions.py)."""
    problems = []
    for sub in subs:
        report = reports[sub["name"]]
        scores = {m["module"]: m for m in report["modules"]}
        expect = sub["expect"]
        if expect.get("full") is True and report["score"] < report["max_score"]:
            problems.append(f"{sub['name']}: {report['score']} < {report['max_score']}")
        for number in expect.get("full", []) if isinstance(expect.get("full"), list) else []:
            if scores[number]["score"] < scores[number]["max"]:
                problems.append(f"{sub['name']}: module {number} lost points ({scores[number]['score']})")
        for number in expect.get("lost", []):
            if scores[number]["score"] >= scores[number]["max"]:
                problems.append(f"{sub['name']}: the bug in module {number} was not caught")
        for number in expect.get("zero", []):
            if scores[number]["score"] != 0:
                problems.append(f"{sub['name']}: module {number} scored {scores[number]['score']}, not 0")
        if expect.get("integrity") and not report["integrity"]:
            problems.append(f"{sub['name']}: no integrity violation reported")
        if expect.get("timeouts") and not (report["timeouts"] or report["overtime"]):
            problems.append(f"{sub['name']}: no timeout reported")
        if expect.get("error_line") and not any(e.startswith(expect["error_line"]) for e in report["errors"]):
            problems.append(
                f"{sub['name']}: errors {report['errors']} do not start with {expect['error_line']}"
            )
        rival = expect.get("no_better_than")
        if rival and report["score"] > reports[rival]["score"]:
            problems.append(
                f"{sub['name']}: the cheat gained ({report['score']} > {reports[rival]['score']})"
            )
    return problems


def _leftovers(before: set[str]) -> list[str]:
    import tempfile

    now = {
        p.name
        for p in Path(tempfile.gettempdir()).iterdir()
        if p.name.startswith(("tito-grade-", "tito-kit-"))
    }
    return sorted(now - before)


@nox.session
@nox.parametrize("tier", list(TIERS), ids=list(TIERS))
def course_grade(session: nox.Session, tier: str) -> None:
    """Grading a class (issue 12): constructed submissions of a tier graded in one batch, with --jobs 2.

    Builds the submissions of tests/milestones/course_submissions.py (complete, half done, each module
    stubbed, a planted bug per module, three cheats, an infinite loop, a syntax error), grades them
    all with `tito course grade --jobs 2 --out DIR --format json`, checks every expectation (the
    cheats gain nothing and are reported, the loop times out and the batch finishes, the syntax
    error is reported as file:line), checks that no grading process or temporary directory is
    left, and prints the scores and the time per submission.
    """
    import json
    import subprocess
    import tempfile

    _course_venv_for(session, tier)
    work = Path(session.create_tmp()).resolve() / "course-grade"
    shutil.rmtree(work, ignore_errors=True)
    session.run(
        "python", "tests/milestones/course_submissions.py", "--tier", tier, "--out", str(work / "subs")
    )
    subs = json.loads((work / "subs" / "submissions.json").read_text())
    env = {"TINYTORCH_GRADER_CACHE": _grader_cache(session)}
    # The kit (reference wheels, environment, reference run) is built once, before the clock starts.
    session.run("tito", "course", "kit", "--tier", tier, "--out", str(work / "kit"), env=env)
    # Every solution function is called by a graded test that needs no optional dependency (PyTorch,
    # SciPy): the kit's reference run records what each passing test reached.
    session.run("python", "-c", UNREACHED_PROBE, str(work / "kit"))
    before = {p.name for p in Path(tempfile.gettempdir()).iterdir()}
    out = work / "out"
    dirs = [work / "subs" / s["name"] for s in subs]
    elapsed = _grade_batch(session, dirs, out, "json", env, "--test-timeout", "20")
    reports = {s["name"]: json.loads((out / f"{s['name']}.json").read_text()) for s in subs}
    problems = _check_expectations(session, subs, reports)
    leftovers = _leftovers(before)
    running = subprocess.run(
        ["pgrep", "-f", "tinytorch_grader_plugin"], capture_output=True, text=True
    ).stdout.split()
    lines = [
        f"{len(subs)} submissions of tinytorch-{tier} graded in {elapsed:.0f} s with --jobs 2 "
        f"({elapsed / len(subs):.1f} s each):",
        "",
    ]
    numbers = [m["module"] for m in reports["complete"]["modules"]]
    lines.append(
        f"  {'submission':<16} {'score':>7}  "
        + "  ".join(f"{n:>5}" for n in numbers)
        + "   wall s   CPU s  notes"
    )
    for sub in subs:
        r = reports[sub["name"]]
        notes = "; ".join(
            ([f"integrity: {len(r['integrity'])}"] if r["integrity"] else [])
            + ([f"timeouts: {len(r['timeouts'])}"] if r["timeouts"] else [])
            + [e[:70] for e in r["errors"]]
        )
        lines.append(
            f"  {sub['name']:<16} {r['score']:>7.2f}  "
            + "  ".join(f"{m['score']:>5.1f}" for m in r["modules"])
            + f"   {r['seconds']:>6.1f}  {r.get('cpu_seconds', 0):>6.1f}  {notes}"
        )
    session.log("\n".join(lines))
    if leftovers:
        problems.append(f"temporary directories left behind: {leftovers}")
    if running:
        problems.append(f"grading processes left running: {running}")
    if problems:
        session.error("grading expectations failed:\n  " + "\n  ".join(problems))
    session.log(f"every expectation holds; the gradebook is {out / 'gradebook.csv'}")


@nox.session
def course_grade_scale(session: nox.Session) -> None:
    """Time for N architecture submissions with --jobs 2 (not a default session; N = posargs[0], default 50).

    The submissions cycle through the constructed ones (complete, half, stubbed, planted bugs...).
    """
    import itertools
    import json

    count = int(session.posargs[0]) if session.posargs else 50
    _course_venv_for(session, "architecture")
    work = Path(session.create_tmp()).resolve() / "course-scale"
    shutil.rmtree(work, ignore_errors=True)
    session.run(
        "python",
        "tests/milestones/course_submissions.py",
        "--tier",
        "architecture",
        "--out",
        str(work / "subs"),
    )
    subs = [s for s in json.loads((work / "subs" / "submissions.json").read_text()) if s["name"] != "loop"]
    batch = work / "batch"
    batch.mkdir()
    for i, sub in zip(range(count), itertools.cycle(subs)):
        shutil.copytree(work / "subs" / sub["name"], batch / f"student{i:03d}-{sub['name']}")
    env = {"TINYTORCH_GRADER_CACHE": _grader_cache(session)}
    session.run("tito", "course", "kit", "--tier", "architecture", "--out", str(work / "kit"), env=env)
    elapsed = _grade_batch(session, sorted(batch.iterdir()), work / "out", "csv", env, "--quiet")
    session.log(
        f"{count} submissions graded with --jobs 2 in {elapsed:.0f} s ({elapsed / count:.1f} s each; "
        f"200 would take about {200 * elapsed / count / 60:.0f} min)"
    )


def _grade_batch(session: nox.Session, dirs, out: Path, fmt: str, env: dict, *extra) -> float:
    """`tito course grade` of the submission directories ``dirs`` with two workers; returns its seconds."""
    import time

    t0 = time.monotonic()
    session.run(
        "tito", "course", "grade", *map(str, dirs), "--jobs", "2", "--out", str(out), "--format", fmt, *extra,
        env=env, success_codes=[0, 1],
    )  # fmt: skip
    return time.monotonic() - t0


@nox.session
def course_combined(session: nox.Session) -> None:
    """Foundation + Architecture (students build both tiers): both releases installed editable together,
    their tests fail only with stubs, and `tito course grade --tiers foundation,architecture` gives one
    combined grade: the stubbed pair scores low, the solved pair full marks."""
    import json

    venv = session.virtualenv.location
    session.run(
        "uv",
        "pip",
        "uninstall",
        "--python",
        venv,
        "tinytorch-foundation",
        "tinytorch-architecture",
        external=True,
        silent=True,
        success_codes=[0, 1, 2],
    )
    install_wheels(session, ("optimization", "milestones"))
    work = Path(session.create_tmp()).resolve() / "course-combined"
    shutil.rmtree(work, ignore_errors=True)
    student = work / "student"
    for tier in ("foundation", "architecture"):
        session.run(
            "tito",
            "course",
            "release",
            "--tier",
            tier,
            "--out",
            str(student / f"student-{tier}"),
            "--no-import-check",
        )
    session.install(
        "--no-deps", "-e", str(student / "student-foundation"), "-e", str(student / "student-architecture")
    )
    for tier in ("foundation", "architecture"):
        records = _course_pytest(session, f"combined-{tier}", cwd=student / f"student-{tier}")
        _course_require(session, f"release tests of {tier} (both tiers stubbed)", records, stubs_allowed=True)
    solved = work / "solved"
    for tier in ("foundation", "architecture"):
        shutil.copytree(
            student / f"student-{tier}",
            solved / f"student-{tier}",
            ignore=shutil.ignore_patterns(".hypothesis", "__pycache__"),
        )
        shutil.rmtree(solved / f"student-{tier}" / "src")
        shutil.copytree(
            ROOT / "packages" / f"tinytorch-{tier}" / "src",
            solved / f"student-{tier}" / "src",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
    env = {"TINYTORCH_GRADER_CACHE": _grader_cache(session)}
    out = work / "out"
    session.run(
        "tito",
        "course",
        "grade",
        str(student),
        str(solved),
        "--tiers",
        "foundation,architecture",
        "--jobs",
        "2",
        "--out",
        str(out),
        "--format",
        "json",
        env=env,
        success_codes=[1],
    )
    stubbed = json.loads((out / "student.json").read_text())
    full = json.loads((out / "solved.json").read_text())
    modules = [m["module"] for m in full["modules"]]
    if modules != [f"{n:02d}" for n in range(1, 14)]:
        session.error(f"the combined grade covers modules {modules}, not 01-13")
    if full["score"] != full["max_score"] or stubbed["score"] > 0.2 * stubbed["max_score"]:
        session.error(
            f"combined grades: solved {full['score']}/{full['max_score']}, "
            f"stubbed {stubbed['score']}/{stubbed['max_score']}"
        )
    session.log(
        f"combined grade (modules 01-13): solved {full['score']}/{full['max_score']}, "
        f"all stubs {stubbed['score']}/{stubbed['max_score']}"
    )


@nox.session
def course_autograder(session: nox.Session) -> None:
    """The engines instructors run, exercised locally (issue 12, item 7).

    Gradescope: `tito course autograder` writes the bundle; a directory laid out like /autograder
    (source/ = the bundle, submission/, results/) gets setup.sh run into a fresh virtual environment
    and run_autograder run for a complete and a stubbed submission; results.json must have
    Gradescope's fields, full marks for the first and less for the second, and no solution of a
    graded module in the bundle. GitHub Classroom: the release's workflow is read with PyYAML and
    each grading step's command is run as the command grader would, in the student's environment.
    """
    import json
    import subprocess

    tier = "architecture"
    _course_venv_for(session, tier)
    session.install("pyyaml")
    work = Path(session.create_tmp()).resolve() / "course-autograder"
    shutil.rmtree(work, ignore_errors=True)
    env = {"TINYTORCH_GRADER_CACHE": _grader_cache(session)}
    bundle = work / "bundle"
    session.run(
        "tito",
        "course",
        "autograder",
        "--tier",
        tier,
        "--out",
        str(bundle),
        "--zip",
        str(work / "autograder.zip"),
        env=env,
    )
    reference = (ROOT / "packages/tinytorch-architecture/src/tinytorch/core/spatial.py").read_text()
    leaked = [p for p in bundle.rglob("*.py") if p.read_text() == reference]
    if leaked:
        session.error(f"the bundle carries the reference solution: {leaked}")
    release = work / "release"
    session.run("tito", "course", "release", "--tier", tier, "--out", str(release), "--wheels", str(DIST))
    solved = work / "solved"
    shutil.copytree(release, solved)
    shutil.rmtree(solved / "src")
    shutil.copytree(
        ROOT / "packages" / f"tinytorch-{tier}" / "src",
        solved / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )

    image = work / "image-python"  # stands in for the Gradescope image's python3
    session.run("uv", "venv", "--quiet", "--seed", str(image), external=True)
    python = str(image / "bin" / "python")
    results = {}
    for name, submission in (("complete", solved), ("stubbed", release)):
        root = work / f"autograder-{name}"
        shutil.copytree(bundle, root / "source")
        shutil.copytree(submission, root / "submission")
        (root / "results").mkdir()
        shutil.copy2(bundle / "run_autograder", root / "run_autograder")
        run_env = dict(env, AUTOGRADER_ROOT=str(root), PYTHON=python)
        if name == "complete":
            session.run("bash", str(root / "source" / "setup.sh"), env=run_env, external=True)
        session.run("bash", str(root / "run_autograder"), env=run_env, external=True)
        results[name] = json.loads((root / "results" / "results.json").read_text())
    for name, res in results.items():
        if not isinstance(res.get("score"), (int, float)) or not res.get("tests"):
            session.error(f"results.json of {name}: no score or no tests: {str(res)[:300]}")
        for test in res["tests"]:
            missing = {"name", "score", "max_score", "output", "visibility"} - set(test)
            if missing or test["visibility"] not in (
                "visible",
                "hidden",
                "after_due_date",
                "after_published",
            ):
                session.error(f"results.json of {name}: bad test entry {test}")
    full = sum(t["max_score"] for t in results["complete"]["tests"])
    if results["complete"]["score"] != full or results["stubbed"]["score"] >= full / 2:
        session.error(
            f"Gradescope scores: complete {results['complete']['score']}/{full}, "
            f"stubbed {results['stubbed']['score']}"
        )
    session.log(
        f"Gradescope run_autograder: complete {results['complete']['score']}/{full}, "
        f"stubbed {results['stubbed']['score']}/{full}; hidden tests reported "
        f"{sum(t['visibility'] == 'after_published' for t in results['complete']['tests'])} times "
        "as after_published"
    )

    # GitHub Classroom: each step's command, run as autograding-command-grader does (exit code 0 = points).
    import yaml

    workflow = yaml.safe_load((release / ".github/workflows/classroom.yml").read_text())
    steps = workflow["jobs"]["run-autograding-tests"]["steps"]
    graders = [
        s for s in steps if str(s.get("uses", "")).startswith("classroom-resources/autograding-command")
    ]
    reporter = next(s for s in steps if "grading-reporter" in str(s.get("uses", "")))
    if reporter["with"]["runners"].split(",") != [s["id"] for s in graders]:
        session.error("the reporter does not list every grading step")
    student = work / "student-venv"  # the runner's Python, with pip, as actions/setup-python gives it
    session.run("uv", "venv", "--quiet", "--seed", str(student), external=True)
    spy = str(student / "bin" / "python")
    install = next(s for s in steps if "run" in s)["run"]
    # The install step as written, in the release (its wheels/ and `-e .`), with the runner's python.
    session.run("bash", "-c", f"cd {release} && " + install.replace("python -m pip", f"{spy} -m pip"),
                external=True)  # fmt: skip
    for label, tree in (("stubbed", release), ("complete", solved)):
        session.run(
            "uv", "pip", "install", "--quiet", "--python", spy, "--no-deps", "-e", str(tree), external=True
        )
        earned = 0.0
        for step in graders:
            command = step["with"]["command"].replace("python ", f"{spy} ", 1)
            code = subprocess.run(command, shell=True, cwd=tree, capture_output=True).returncode
            earned += float(step["with"]["max-score"]) if code == 0 else 0.0
        total = sum(float(s["with"]["max-score"]) for s in graders)
        session.log(f"GitHub Classroom workflow on the {label} release: {earned:g}/{total:g} points")
        if (label == "complete") != (earned == total):
            session.error(f"GitHub Classroom workflow: {label} release earned {earned:g}/{total:g}")


@nox.session
def milestones(session: nox.Session) -> None:
    """The main job: every milestone's default parts on the reference wheels (`tito milestone run all`)."""
    install_wheels(session, (*TIERS, "milestones"))
    # Optional: the runner keeps BLAS at one thread with it (small models, shared cores: runner.blas_threads).
    session.install("threadpoolctl")
    session.run("tito", "milestone", "run", "all", *session.posargs)


@nox.session(venv_backend="virtualenv")
def bench(session: nox.Session) -> None:
    """Benchmarks: tinytorch, the NumPy floor, PyTorch CPU, each in a fresh process (not a default session).

    First the suite's own tests (tests/benchmarks: the floors' gradients against
    finite differences, tinytorch and PyTorch against the floors), then
    ``benchmarks/run.py`` with the session's arguments, e.g.
    ``nox -s bench -- --threads 1 --clock cpu``; ``nox -s bench -- sweep`` runs the
    scaling sweep (benchmarks/sweep.py) instead. Uses pip (virtualenv backend) for
    the same reason as ``oracle``: pip honours the machine's configured location of
    the CPU build of torch. Without torch the suite still runs without its PyTorch columns.
    """
    install_wheels(session, (*TIERS, "milestones"))
    session.install("threadpoolctl", "matplotlib")  # thread counts reported by each child; the sweep's plot
    if not install_torch(session):
        session.warn(f"{TORCH} could not be installed here: the PyTorch columns will be empty")
    session.run("pytest", "-q", "tests/benchmarks")
    args = list(session.posargs)
    if args[:1] == ["sweep"]:
        session.run("python", "benchmarks/sweep.py", *args[1:])
    else:
        session.run("python", "benchmarks/run.py", *args)
