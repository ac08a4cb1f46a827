"""Grading kits: everything `tito course grade` judges a submission with, built once and reused.

A kit grades the submissions of one set of tiers (one tier, or several for students
who build several, e.g. foundation + architecture). It is a directory::

    kit.json          tiers, version, the tiers' source files, the solution blocks
                      (module, function), and the reference inventory: every test with
                      its module, visibility, its outcome on the reference solution and
                      the solution functions it calls
    wheels/           reference wheels of the tiers the students do not write
    tests/            conftest.py, _oracles.py, <tier>/test_NN_*.py and <tier>/hidden/ (hidden tests)
    points.toml       the points in force when the kit was made (for a bundle)
    reference/        the graded tiers' reference source (a repository kit), or only the files a
                      per-module bundle gives as reference code (never a graded module's solution)
    env-py3.11/       the virtual environment the tests run in (numpy, pytest, hypothesis, the wheels)

Inside the repository ``repository_kit`` builds it into a cache directory
(``$TINYTORCH_GRADER_CACHE``, default ``~/.cache/tinytorch/grader``), keyed by a hash
of the reference sources, the tests and the grader, so the wheels, the environment
and the reference run are made once and reused by every later call. ``tito course
autograder`` copies a kit (without the environment) into a Gradescope bundle;
``tito course grade --kit DIR`` grades with such a copy, anywhere.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tinytorch.milestones.course import markers
from tinytorch.milestones.course.repo import find_root, import_path_of, module_for, tier_dir, version
from tinytorch.milestones.tiers import MODULES, TIERS

KIT_FORMAT = 3  # bumped when what a kit records changes (2: reference durations, 3: env copies)
KIT_JSON = "kit.json"
RUNTIME = ("numpy>=1.24", "pytest>=7", "hypothesis>=6")
TEST_HELPERS = ("conftest.py", "_oracles.py")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".hypothesis", "conftest.py")


class KitError(RuntimeError):
    """A kit that cannot be built, found or used; the message says what to do."""


def cache_root() -> Path:
    return Path(os.environ.get("TINYTORCH_GRADER_CACHE") or Path.home() / ".cache" / "tinytorch" / "grader")


def _run(cmd, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        raise KitError(f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def build_wheel(package: Path, out: Path) -> Path:
    """One reference wheel (uv build when available, else python -m build)."""
    uv = shutil.which("uv")
    if uv:
        _run([uv, "build", "--wheel", "--quiet", "-o", out, package])
    else:
        _run([sys.executable, "-m", "build", "--wheel", "--outdir", out, package])
    name = package.name.replace("-", "_")
    (wheel,) = sorted(out.glob(f"{name}-*.whl"))
    return wheel


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock on ``path`` (a lock file) while the block runs; waits for other builders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            import fcntl

            fcntl.flock(handle, fcntl.LOCK_EX)
        except ImportError:  # Windows: no advisory locks; concurrent builds just race
            pass
        yield


# --- what a kit knows about the source -----------------------------------------------------------


def function_lines(source: str, blocks: list[markers.Block]) -> dict[int, list[int]]:
    """For each block (by BEGIN line), the lines that start its enclosing function: def and decorator.

    A code object's ``co_firstlineno`` is the first decorator's line when there is one, so
    tracing maps both to the block.
    """
    tree = ast.parse(source)
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    out = {}
    for block in blocks:
        # The END marker is a comment after the last statement: contain the first statement only.
        around = [f for f in functions if f.lineno < block.begin < f.end_lineno]
        if not around:
            continue
        inner = max(around, key=lambda f: f.lineno)
        out[block.begin] = sorted({inner.lineno, *(d.lineno for d in inner.decorator_list)})
    return out


def describe_source(src: Path, tier: str) -> tuple[list[str], list[dict]]:
    """(every .py file under ``src`` as a relative path, every solution block with its module and lines)."""
    files, blocks = [], []
    for path in sorted(src.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        rel = path.relative_to(src).as_posix()
        files.append(rel)
        import_path = import_path_of(Path(rel))
        info = module_for(import_path)
        source = path.read_text(encoding="utf-8")
        try:
            found = markers.check_file(path, import_path, tier)
        except markers.MarkerError as exc:
            raise KitError(str(exc)) from None
        lines = function_lines(source, found)
        for b in found:
            blocks.append(
                {
                    "file": rel,
                    "import_path": import_path,
                    "function": b.qualname,
                    "module": b.module,
                    "file_module": info.number if info else None,
                    "key": f"{import_path}:{b.qualname}",
                    "lines": lines.get(b.begin, []),
                }
            )
    return files, blocks


# --- the kit -------------------------------------------------------------------------------------


@dataclass
class Kit:
    path: Path
    meta: dict

    @property
    def tiers(self) -> list[str]:
        return self.meta["tiers"]

    @property
    def version(self) -> str:
        return self.meta["version"]

    @property
    def files(self) -> dict[str, list[str]]:
        return self.meta["files"]

    @property
    def blocks(self) -> list[dict]:
        return self.meta["blocks"]

    @property
    def inventory(self) -> dict[str, dict]:
        return self.meta.get("inventory") or {}

    @property
    def modules(self) -> list[str]:
        """The modules this kit grades (a per-module bundle grades only some)."""
        return self.meta.get("modules") or [m.number for m in MODULES if m.tier in self.tiers]

    @property
    def tests(self) -> Path:
        return self.path / "tests"

    def reference_file(self, tier: str, rel: str) -> Path | None:
        path = self.path / "reference" / tier / "src" / rel
        return path if path.is_file() else None

    def prebuilt(self) -> list[str]:
        return [t for t in TIERS if t not in self.tiers]

    def wheels(self) -> list[Path]:
        return sorted((self.path / "wheels").glob("*.whl"))

    def save(self) -> None:
        tmp = self.path / (KIT_JSON + ".tmp")
        tmp.write_text(json.dumps(self.meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.path / KIT_JSON)


def load_kit(path: str | os.PathLike) -> Kit:
    path = Path(path).resolve()
    meta_path = path / KIT_JSON
    if not meta_path.is_file():
        raise KitError(
            f"{path} is not a grading kit (no {KIT_JSON}; made by `tito course kit` or `autograder`)"
        )
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("format") != KIT_FORMAT:
        raise KitError(f"{meta_path}: kit format {meta.get('format')!r}, this tito reads {KIT_FORMAT}")
    if not meta.get("inventory"):
        raise KitError(f"{meta_path}: the kit has no reference inventory (it was never run on the reference)")
    return Kit(path, meta)


def check_kit(path: str | os.PathLike) -> str:
    """A one-line description of a usable kit (``tito course kit-check``); raises KitError otherwise."""
    kit = load_kit(path)
    missing = [
        t for t in kit.prebuilt() if not any(w.name.startswith(f"tinytorch_{t}-") for w in kit.wheels())
    ]
    if missing:
        raise KitError(f"{kit.path}: no wheel for the prebuilt tiers {missing} in wheels/")
    tests = sum(1 for _ in kit.tests.rglob("test_*.py"))
    return (
        f"kit for tinytorch-{'+'.join(kit.tiers)} {kit.version}: {tests} test files, "
        f"{len(kit.inventory)} tests in the reference inventory, modules {', '.join(kit.modules)}"
    )


def _digest(root: Path, tiers: list[str], python: str | None = None) -> str:
    """Hash of everything a repository kit depends on (sources, tests, grader, Python)."""
    h = hashlib.sha256()
    h.update(f"{KIT_FORMAT} {sys.version_info[:2]} {'+'.join(tiers)} {python or 'own env'}".encode())
    here = Path(__file__).resolve().parent
    # The grader's own code enters through the plugin (it produces the inventory) and KIT_FORMAT,
    # bumped whenever what a kit records changes.
    paths = [root / "packages" / "VERSION", here / "grader_plugin.py"]
    for tier in TIERS:
        paths.append(tier_dir(root, tier) / "pyproject.toml")
        paths += sorted((tier_dir(root, tier) / "src").rglob("*.py"))
    paths += [root / "tests" / name for name in TEST_HELPERS]
    for tier in tiers:
        paths += sorted((root / "tests" / tier).rglob("*.py"))
        paths += sorted((root / "tests" / "hidden" / tier).rglob("*.py"))
    for path in paths:
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(root) if path.is_relative_to(root) else path.name).encode())
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:16]


def _copy_tests(root: Path, tiers: list[str], out: Path) -> None:
    tests = out / "tests"
    tests.mkdir(parents=True)
    for name in TEST_HELPERS:
        if (root / "tests" / name).is_file():
            shutil.copy2(root / "tests" / name, tests / name)
    for tier in tiers:
        shutil.copytree(root / "tests" / tier, tests / tier, ignore=IGNORE)
        hidden = root / "tests" / "hidden" / tier
        if hidden.is_dir():
            shutil.copytree(hidden, tests / tier / "hidden", ignore=IGNORE)


def build_kit(
    root: Path, tiers: list[str], out: Path, log=lambda msg: None, python: str | None = None
) -> Kit:
    """Build a kit for ``tiers`` from the repository at ``root`` into ``out`` (which must not exist).

    Builds the prebuilt tiers' wheels, copies the tests (visible and hidden) and the graded
    tiers' reference source, creates the environment and runs the reference through it to
    record the inventory (which tests pass on the reference, and what each calls). With
    ``python``, the tests run in that interpreter's environment (prepared by the caller: the
    other tiers installed), and no wheels are built.
    """
    from tinytorch.milestones.course import grade as grading

    tiers = [t for t in TIERS if t in tiers]
    out.mkdir(parents=True)
    meta = {
        "format": KIT_FORMAT,
        "tiers": tiers,
        "version": version(root),
        "files": {},
        "blocks": [],
        "inventory": {},
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    for tier in tiers:
        src = tier_dir(root, tier) / "src"
        files, blocks = describe_source(src, tier)
        meta["files"][tier] = files
        meta["blocks"] += blocks
        shutil.copytree(src, out / "reference" / tier / "src", ignore=IGNORE)
    _copy_tests(root, tiers, out)
    prebuilt = [t for t in TIERS if t not in tiers]
    (out / "wheels").mkdir()
    if python is None:  # tito makes the environment: it needs the other tiers' wheels
        log(f"building the reference wheels of {', '.join(prebuilt) or 'no other tier'}")
        for tier in prebuilt:
            build_wheel(tier_dir(root, tier), out / "wheels")
    kit = Kit(out, meta)
    kit.save()
    python = python or ensure_env(kit, log)
    log("running the reference solution through the tests (the inventory of what is graded)")
    meta["inventory"] = grading.reference_inventory(kit, python, log)
    kit.save()
    return kit


def repository_kit(tiers: list[str], root: Path | None = None, log=lambda msg: None, python=None) -> Kit:
    """The cached kit of ``tiers`` for the repository at ``root`` (built on first use).

    Built in place under a lock (a venv records its own path, so it cannot be moved): an
    interrupted build leaves no kit.json with an inventory, and the next call starts over.
    """
    root = Path(root) if root else find_root()
    tiers = [t for t in TIERS if t in tiers]
    key = f"{'+'.join(tiers)}-{_digest(root, tiers, python)}"
    cache = cache_root()
    target = cache / key
    with _locked(cache / f"{key}.lock"):
        try:
            return load_kit(target)
        except KitError:
            shutil.rmtree(target, ignore_errors=True)
        log(f"building the grading kit of tinytorch-{'+'.join(tiers)} (once; cached in {target})")
        try:
            kit = build_kit(root, tiers, target, log, python)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
    _prune(cache, f"{'+'.join(tiers)}-", keep=target)
    return kit


def _prune(cache: Path, prefix: str, keep: Path) -> None:
    """Remove the older kits of the same tiers (the sources changed since), unless one is in use."""
    try:
        import fcntl
    except ImportError:
        return
    for old in cache.glob(f"{prefix}*"):
        if old == keep or not old.is_dir():
            continue
        lock = cache / f"{old.name}.lock"
        with open(lock, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # being built or used right now
            shutil.rmtree(old, ignore_errors=True)
        lock.unlink(missing_ok=True)


# --- the environment ----------------------------------------------------------------------------


def env_dir(kit: Kit) -> Path:
    name = f"env-py{sys.version_info.major}.{sys.version_info.minor}"
    if os.access(kit.path, os.W_OK):
        return kit.path / name
    digest = hashlib.sha256(str(kit.path).encode()).hexdigest()[:12]
    return cache_root() / f"external-{digest}" / name


def _env_python(path: Path) -> Path:
    return path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_env(kit: Kit, log=lambda msg: None) -> str:
    """The Python of the kit's environment, created on first use: the runtime and the prebuilt wheels."""
    path = env_dir(kit)
    python = _env_python(path)
    ready = path / ".tinytorch-ready"
    with _locked(path.parent / f"{path.name}.lock"):
        if ready.is_file() and python.exists():
            return str(python)
        shutil.rmtree(path, ignore_errors=True)
        uv = shutil.which("uv")
        log(f"creating the grading environment {path} ({'uv' if uv else 'venv + pip'})")
        if uv:
            _run([uv, "venv", "--quiet", "--python", sys.executable, path])
            # Copies, not hard links into uv's cache: a shared inode's status changes whenever any other
            # environment links or unlinks it, which would defeat the fingerprint.
            install = [uv, "pip", "install", "--quiet", "--compile-bytecode", "--link-mode", "copy",
                       "--python", python]  # fmt: skip
        else:
            _run([sys.executable, "-m", "venv", path])
            install = [python, "-m", "pip", "install", "--quiet"]
        _run([*install, *RUNTIME])
        if kit.wheels():
            _run([*install, "--no-deps", *kit.wheels()])
        warm_pytest_cache(str(python))
        record_fingerprint(str(python))
    return str(python)


def warm_pytest_cache(python: str) -> None:
    """Let pytest write its assertion-rewritten bytecode of plugin packages (hypothesis) once.

    Grading runs never write bytecode (``PYTHONDONTWRITEBYTECODE``: the environment stays
    as fingerprinted) but read what is cached; without this, every run would rewrite and
    compile the whole hypothesis package again (seconds per submission).
    """
    with tempfile.TemporaryDirectory(prefix="tito-warm-") as tmp:
        Path(tmp, "test_warm.py").write_text("def test_warm():\n    assert True\n", encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
        subprocess.run(
            [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_warm.py"],
            cwd=tmp, env=env, capture_output=True, timeout=600,
        )  # fmt: skip


def record_fingerprint(python: str) -> None:
    env = Path(python).parent.parent
    (env / ".tinytorch-ready").write_text(json.dumps({"fingerprint": fingerprint(env)}), encoding="utf-8")


def fingerprint(env: Path) -> str:
    """A hash of the status of every file and directory of an environment (no content read).

    Compared after every submission: a submission that edits the shared environment (to
    sabotage or help the next ones: a source, a planted bytecode file, a new .pth) is caught
    and the environment rebuilt. The inode change time is part of it: any write, rename or
    ``os.utime`` updates it and no process can set it back, so restoring the modification
    time does not hide an edit. Reading no content keeps it to a stat per file.
    """
    h = hashlib.sha256()
    for folder, dirs, names in os.walk(env):
        dirs.sort()
        for name in sorted(names) + dirs:
            if name == ".tinytorch-ready":
                continue
            path = os.path.join(folder, name)
            try:
                st = os.lstat(path)
                h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\n".encode())
            except OSError:
                h.update(f"{path}\0?\n".encode())
    return h.hexdigest()


def env_intact(python: str) -> bool:
    """Whether the environment of ``python`` still has the fingerprint recorded when it was made."""
    env = Path(python).parent.parent
    ready = env / ".tinytorch-ready"
    if not ready.is_file():
        return True  # an environment tito did not make (--python): nothing recorded to compare
    try:
        recorded = json.loads(ready.read_text(encoding="utf-8"))["fingerprint"]
    except (OSError, ValueError, KeyError):
        return False
    return fingerprint(env) == recorded


def discard_env(python: str) -> None:
    env = Path(python).parent.parent
    if (env / ".tinytorch-ready").is_file():
        shutil.rmtree(env, ignore_errors=True)


# --- Gradescope bundles -------------------------------------------------------------------------


def make_bundle(kit: Kit, out: Path, root: Path, modules: list[str] | None, points_file, log) -> Path:
    """A Gradescope autograder bundle in ``out``: setup.sh, run_autograder and kit/ (no environment).

    Gradescope unpacks the bundle into /autograder/source. It carries no solution of a
    graded module: reference source is kept only for the files a per-module bundle gives
    as reference code.
    """
    from tinytorch.milestones.course import points as points_mod
    from tinytorch.milestones.course import templates

    out = Path(out).resolve()
    if out.exists() and any(out.iterdir()):
        raise KitError(f"{out} exists and is not empty")
    graded = modules or kit.modules
    points_mod.load(kit.tiers, points_file)  # refuse bad points before anything is written
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        dest = staging / "kit"
        skip = shutil.ignore_patterns("env-*", "reference", "__pycache__", "*.lock", ".hypothesis")
        shutil.copytree(kit.path, dest, ignore=skip)
        for tier, rel in _given_files(kit, graded):
            target = dest / "reference" / tier / "src" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(kit.path / "reference" / tier / "src" / rel, target)
        log("building the tinytorch-milestones wheel (tito) for the bundle")
        build_wheel(root / "packages" / "tinytorch-milestones", dest / "wheels")
        if points_file:
            shutil.copy2(points_file, dest / "points.toml")
        else:
            text = "\n".join(points_mod.default_text(t) for t in kit.tiers)
            (dest / "points.toml").write_text(text, encoding="utf-8")
        meta = dict(kit.meta)
        meta["modules"] = graded
        (dest / KIT_JSON).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        wheels = sorted(p.name for p in (dest / "wheels").glob("*.whl"))
        scripts = {
            "setup.sh": templates.gradescope_setup(kit.tiers, kit.version, kit.prebuilt(), wheels),
            "run_autograder": templates.gradescope_run(modules),
        }
        for name, text in scripts.items():
            (staging / name).write_text(text, encoding="utf-8")
            (staging / name).chmod(0o755)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _given_files(kit: Kit, graded: list[str]) -> list[tuple[str, str]]:
    """(tier, file) of the graded tiers' files holding no block of a graded module and belonging to none."""
    graded = set(graded)
    touched = {(b["file"], b["module"]) for b in kit.blocks}
    out = []
    for tier, files in kit.files.items():
        if all(m.number in graded for m in MODULES if m.tier == tier):
            continue  # the whole tier is graded: nothing is given
        for rel in files:
            info = module_for(import_path_of(Path(rel)))
            owners = {m for f, m in touched if f == rel} | ({info.number} if info else set())
            if not owners & graded:
                out.append((tier, rel))
    return out


def zip_bundle(bundle: Path, zip_path: Path) -> Path:
    """Gradescope takes a zip with setup.sh and run_autograder at its top level."""
    base = zip_path.with_suffix("")
    made = shutil.make_archive(str(base), "zip", root_dir=bundle)
    return Path(made)
