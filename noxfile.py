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
    session.run("pytest", "--tier-check", "-q", *dirs, *session.posargs)


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
    session.run("pytest", "-q", "tests/packaging", env={"TINYTORCH_DIST": str(target)})


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
        session.run("pytest", "-q", "-p", COURSE_PLUGIN, "-p", "no:cacheprovider",
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
                    success_codes=[0] if solved else [1])
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
