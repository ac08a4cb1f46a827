"""Grading: the reference tests of a tier, run against a student's release.

``grade(release_dir)`` builds a throwaway virtual environment (``uv venv`` when
uv is on PATH, else ``python -m venv``), installs the reference wheels of the
*other* tiers (built from the repository), the student's release (a regular,
non-editable install: what is graded is a snapshot) and pytest, then runs the
repository's ``tests/<tier>/`` (not the copy inside the release, which the
student could have edited) and reports per module: passed, failed, skipped and
the first failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tinytorch.milestones.course import pytest_outcomes
from tinytorch.milestones.course.repo import RELEASE_MANIFEST, find_root, tier_dir, tier_modules
from tinytorch.milestones.tiers import TIERS

RUNTIME = ("numpy>=1.24", "pytest>=7", "hypothesis>=6")


class GradeError(RuntimeError):
    pass


def _run(cmd, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        raise GradeError(f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


class _Env:
    def __init__(self, path: Path, log):
        self.uv = shutil.which("uv")
        log(f"creating a virtual environment in {path} ({'uv' if self.uv else 'venv'})")
        if self.uv:
            _run([self.uv, "venv", "--quiet", "--python", sys.executable, path])
        else:
            _run([sys.executable, "-m", "venv", path])
        self.python = path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")

    def install(self, *args) -> None:
        if self.uv:
            _run([self.uv, "pip", "install", "--quiet", "--python", self.python, *args])
        else:
            _run([self.python, "-m", "pip", "install", "--quiet", *args])


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


def release_tier(release: Path) -> str:
    manifest = release / RELEASE_MANIFEST
    if not manifest.is_file():
        raise GradeError(
            f"{release} is not a student release (no {RELEASE_MANIFEST}; made by `tito course release`)"
        )
    tier = json.loads(manifest.read_text(encoding="utf-8"))["tier"]
    if tier not in TIERS:
        raise GradeError(f"{manifest}: unknown tier {tier!r}")
    return tier


def grade(release: str | os.PathLike, root: Path | None = None, log=lambda msg: None) -> dict:
    """Run the reference tests of the release's tier against it; returns the report (see module doc)."""
    release = Path(release).resolve()
    tier = release_tier(release)
    root = Path(root) if root else find_root()
    with tempfile.TemporaryDirectory(prefix="tito-grade-") as tmp:
        tmp = Path(tmp)
        env = _Env(tmp / "venv", log)
        others = [t for t in TIERS if t != tier]
        log(f"building the reference wheels of {', '.join(others)}")
        wheels = [build_wheel(tier_dir(root, t), tmp / "dist") for t in others]
        log("installing numpy, pytest, hypothesis, the reference wheels and the release")
        env.install(*RUNTIME)
        env.install("--no-deps", *wheels)
        env.install("--no-deps", release)
        plugin_dir = tmp / "plugin"
        plugin_dir.mkdir()
        shutil.copy2(pytest_outcomes.__file__, plugin_dir / "tinytorch_outcomes_plugin.py")
        outcomes = tmp / "outcomes.json"
        run_env = dict(os.environ, PYTHONPATH=str(plugin_dir), **{pytest_outcomes.ENV: str(outcomes)})
        run_env.pop("VIRTUAL_ENV", None)
        log(f"running the reference tests tests/{tier}/")
        proc = subprocess.run(
            [
                str(env.python),
                "-m",
                "pytest",
                "-q",
                "-p",
                "tinytorch_outcomes_plugin",
                "-p",
                "no:cacheprovider",
                "--continue-on-collection-errors",
                f"tests/{tier}",
            ],
            cwd=root,
            env=run_env,
            capture_output=True,
            text=True,
        )
        if not outcomes.exists():
            raise GradeError(
                f"pytest did not run (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"
            )
        records = pytest_outcomes.load(str(outcomes))
    summary = pytest_outcomes.by_module(records)
    modules = []
    for info in tier_modules(tier):
        entry = summary.get(info.number, {"passed": 0, "failed": 0, "skipped": 0, "first_failure": None})
        modules.append(
            {
                "module": info.number,
                "name": info.name,
                "passed": entry["passed"],
                "failed": entry["failed"],
                "skipped": entry["skipped"],
                "first_failure": entry["first_failure"],
            }
        )
    return {
        "tier": tier,
        "release": str(release),
        "pytest_exit": proc.returncode,
        "passed": sum(m["passed"] for m in modules),
        "failed": sum(m["failed"] for m in modules),
        "modules": modules,
    }


def render(report: dict) -> str:
    lines = [
        f"grade of {report['release']} (tinytorch-{report['tier']}): "
        f"{report['passed']} passed, {report['failed']} failed",
        "",
    ]
    width = max(len(m["name"]) for m in report["modules"]) + 3
    for m in report["modules"]:
        mark = "ok  " if m["failed"] == 0 and m["passed"] > 0 else "FAIL" if m["failed"] else "----"
        lines.append(
            f"  {mark} {m['module']} {m['name']:<{width}} {m['passed']:>4} passed {m['failed']:>4} failed"
        )
        if m["first_failure"]:
            lines.append(f"         first failure: {m['first_failure']['test']}")
            summary = m["first_failure"]["summary"] or ""
            lines.append(f"           {summary.splitlines()[0] if summary else ''}")
    return "\n".join(lines)
