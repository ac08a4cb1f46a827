"""Grading: submissions judged by the reference tests, scored by points.

``grade_many(submissions, ...)`` grades student releases (directories made by
``tito course release``, or a directory holding one release per tier for students who
build several tiers) with one :mod:`kit <tinytorch.milestones.course.kit>`, in
parallel. For each submission, in a temporary directory that is removed afterwards:

1. **Overlay.** The graded tiers' files are taken from the submission's ``src/`` (only
   the files the reference has, so a submission cannot shadow anything else), next to
   a ``dist-info`` naming the tier; with ``--modules``, files holding no block of a
   graded module come from the reference. Each file is compiled (a syntax error is
   reported as file:line and message) and scanned for stubs left.
2. **Run.** The kit's tests (a fresh copy) run in the kit's environment with the
   grader plugin (:mod:`grader_plugin`): per-test timeouts, integrity checks, one event
   per test. A test that outlives its timeout even after the plugin's alarm is ended by
   killing the run, which then resumes after it; the submission's own time limit ends
   everything. The process group and every process carrying the run's marker are
   killed at the end, so nothing is left behind.
3. **Score.** Every test the reference passes (the kit's inventory) is graded in its
   module when it calls one of that module's solution functions on the reference (a test of
   given code alone passes on the untouched release and earns nothing). A test
   passes only if it passed in this run, its module imports, it calls no function that
   is still a stub (static check: a stub costs the points of every test that calls that
   function in the reference, even when the submission's code no longer calls it) and
   no integrity violation happened during it. Points per module and visibility come
   from the points file (:mod:`points`).

The report of a submission is a plain dict (see ``score``); :mod:`report` renders it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tinytorch.milestones.course import grader_plugin
from tinytorch.milestones.course import points as points_mod
from tinytorch.milestones.course.kit import (
    Kit,
    KitError,
    discard_env,
    ensure_env,
    env_intact,
    record_fingerprint,
)
from tinytorch.milestones.course.repo import RELEASE_MANIFEST, import_path_of, module_for
from tinytorch.milestones.course.status import stub_entries
from tinytorch.milestones.tiers import MODULES, TIERS

PLUGIN_NAME = "tinytorch_grader_plugin"
RUN_MARKER = "TINYTORCH_GRADER_RUN"
GRACE = 10.0  # seconds past a test's timeout before the run is killed (the plugin's alarm failed)
MODULE_RE = re.compile(r"(?:^|/)test_(\d\d)_[^/]*\.py")
PYTEST_INI = """\
[pytest]
markers =
    slow: long-running end-to-end tests
"""


class GradeError(RuntimeError):
    """A submission or an option that cannot be graded; the message says why."""


# --- finding the submission's source ----------------------------------------------------------


def _manifest(path: Path) -> dict | None:
    try:
        return json.loads((path / RELEASE_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def locate_sources(submission: Path, tiers: list[str]) -> dict[str, Path]:
    """{tier: the ``src`` directory of the submission's release of that tier}.

    A submission is a release directory (it holds ``tinytorch-release.json``) or a
    directory whose subdirectories (up to two levels) are releases, one per tier;
    failing a manifest, a ``src/tinytorch`` directory is taken for the only graded tier.
    """
    found: dict[str, Path] = {}
    candidates = [submission, *sorted(p for p in submission.glob("*") if p.is_dir())]
    candidates += sorted(p for p in submission.glob("*/*") if p.is_dir())
    for folder in candidates:
        manifest = _manifest(folder)
        if manifest and manifest.get("tier") in tiers and manifest["tier"] not in found:
            found[manifest["tier"]] = folder / "src"
    if not found and len(tiers) == 1:
        for folder in candidates:
            if (folder / "src" / "tinytorch").is_dir():
                found[tiers[0]] = folder / "src"
                break
    missing = [t for t in tiers if t not in found]
    if missing:
        raise GradeError(
            f"{submission}: no student release of tinytorch-{', tinytorch-'.join(missing)} "
            f"(a directory with {RELEASE_MANIFEST} and src/, made by `tito course release`)"
        )
    return found


def detect_tiers(submissions: list[Path]) -> list[str]:
    """The tiers of the releases in the submissions (the same set for all of them)."""
    sets = set()
    for submission in submissions:
        tiers = set()
        for folder in [submission, *submission.glob("*"), *submission.glob("*/*")]:
            manifest = _manifest(folder) if folder.is_dir() else None
            if manifest and manifest.get("tier") in TIERS:
                tiers.add(manifest["tier"])
        if tiers:
            sets.add(tuple(t for t in TIERS if t in tiers))
    if len(sets) != 1:
        found = " / ".join("+".join(s) for s in sorted(sets)) or "none"
        raise GradeError(
            f"cannot tell which tiers to grade (releases found: {found}): give --tier, or --tiers a,b"
        )
    return list(sets.pop())


# --- the overlay ---------------------------------------------------------------------------------


def _owners(kit: Kit) -> dict[str, set[str]]:
    """file -> the modules it belongs to: its own and those of the blocks it holds."""
    out: dict[str, set[str]] = {}
    for files in kit.files.values():
        for rel in files:
            info = module_for(import_path_of(Path(rel)))
            out[rel] = {info.number} if info else set()
    for block in kit.blocks:
        out.setdefault(block["file"], set()).add(block["module"])
    return out


def build_overlay(kit: Kit, sources: dict[str, Path], site: Path, graded: list[str]) -> dict:
    """Write the submission's files of the graded tiers under ``site``; return the static findings.

    Returns {"syntax": [{file, line, message, modules}], "missing": [...], "stubs": [{key, module,
    function, file}], "given": [files taken from the reference]}.
    """
    owners = _owners(kit)
    whole = {t: all(m.number in graded for m in MODULES if m.tier == t) for t in kit.tiers}
    found = {"syntax": [], "missing": [], "stubs": [], "given": []}
    for tier in kit.tiers:
        for rel in kit.files[tier]:
            target = site / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            reference = (
                None if whole[tier] or owners.get(rel, set()) & set(graded) else kit.reference_file(tier, rel)
            )
            if reference is not None:
                shutil.copyfile(reference, target)
                found["given"].append(rel)
                continue
            source = sources[tier] / rel
            if not source.is_file():
                found["missing"].append({"file": f"src/{rel}", "modules": sorted(owners.get(rel, ()))})
                target.write_text(
                    f"raise ImportError({f'src/{rel} is missing from the submission'!r})\n", encoding="utf-8"
                )
                continue
            data = source.read_bytes()
            target.write_bytes(data)
            text = data.decode("utf-8", "replace")
            try:
                compile(text, f"src/{rel}", "exec", dont_inherit=True)
            except SyntaxError as exc:
                found["syntax"].append(
                    {
                        "file": f"src/{rel}",
                        "line": exc.lineno,
                        "message": f"{type(exc).__name__}: {exc.msg}",
                        "text": (exc.text or "").strip(),
                        "modules": sorted(owners.get(rel, ())),
                    }
                )
                continue
            import_path = import_path_of(Path(rel))
            for function, module in stub_entries(text, f"src/{rel}"):
                found["stubs"].append(
                    {
                        "key": f"{import_path}:{function}",
                        "function": function,
                        "module": module,
                        "file": f"src/{rel}",
                    }
                )
    for tier in kit.tiers:
        dist = site / f"tinytorch_{tier}-{kit.version}.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: tinytorch-{tier}\nVersion: {kit.version}\n"
            "Summary: a submission under grading\n",
            encoding="utf-8",
        )
        (dist / "RECORD").write_text("", encoding="utf-8")
    return found


# --- running the tests ---------------------------------------------------------------------------


def _test_paths(kit: Kit, tests: Path, graded: list[str], hidden: bool) -> list[str]:
    paths = []
    for tier in kit.tiers:
        for folder in [tests / tier] + ([tests / tier / "hidden"] if hidden else []):
            for path in sorted(folder.glob("test_*.py")):
                match = MODULE_RE.search(path.name)
                if match is None or match.group(1) in graded:
                    paths.append(str(path.relative_to(tests.parent)))
    return paths


def _trace_map(kit: Kit, site: Path) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for block in kit.blocks:
        lines = out.setdefault(str((site / block["file"]).resolve()), {})
        for line in block["lines"]:
            lines[str(line)] = block["key"]
    return out


def _read_events(path: Path, offset: int) -> tuple[list[dict], int]:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    events, consumed = [], 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break  # a line still being written
        consumed += len(line)
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events, offset + consumed


def _reap(proc: subprocess.Popen, block: bool) -> float | None:
    """CPU seconds (user + system) of the finished run, reaping it; None while it still runs.

    ``os.wait4`` gives the resource usage of this one child (and the children it waited
    for), which stays meaningful when several submissions are graded at once.
    """
    if proc.returncode is not None:
        return 0.0
    try:
        pid, status, usage = os.wait4(proc.pid, 0 if block else os.WNOHANG)
    except ChildProcessError:
        proc.returncode = -1
        return 0.0
    if pid == 0:
        return None
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def _kill(proc: subprocess.Popen, marker: str) -> float:
    """Kill the run's process group and any process (even one that left the group) carrying the marker.

    Returns the CPU seconds of the run (0 when it had been reaped already).
    """
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass
    cpu = _reap(proc, block=True) or 0.0
    kill_marked(marker)
    return cpu


def kill_marked(marker: str) -> int:
    """SIGKILL every process whose environment holds ``RUN_MARKER=marker`` (Linux /proc); returns how many."""
    needle = f"{RUN_MARKER}={marker}".encode()
    killed = 0
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():
        return 0
    for entry in proc_dir.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
            except OSError:
                pass
    return killed


def run_tests(
    kit: Kit,
    python: str,
    work: Path,
    site: Path,
    graded: list[str],
    *,
    test_timeout: float,
    submission_timeout: float,
    hidden: bool = True,
    trace: bool = False,
) -> dict:
    """Run the kit's tests against ``site`` in ``work``; return {events, timeouts, overtime, attempts}.

    ``trace`` (the reference run) records the solution functions each test calls and lets
    Python write bytecode (the rewritten tests' cache, copied back into the kit).
    """
    tests = work / "tests"
    shutil.copytree(kit.tests, tests, ignore=shutil.ignore_patterns(".pytest_cache", ".hypothesis"))
    plugin_dir = work / "plugin"
    plugin_dir.mkdir()
    shutil.copyfile(grader_plugin.__file__, plugin_dir / f"{PLUGIN_NAME}.py")
    tmp = work / "tmp"
    tmp.mkdir()
    (work / "pytest.ini").write_text(PYTEST_INI, encoding="utf-8")
    present = {import_path_of(Path(rel)) for files in kit.files.values() for rel in files}
    graded_imports = [m.import_path for m in MODULES if m.tier in kit.tiers and m.import_path in present]
    prebuilt = [m.import_path for m in MODULES if m.tier in TIERS[: TIERS.index(kit.tiers[0])]]
    paths = _test_paths(kit, tests, graded, hidden)
    marker = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not trace:
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # read the kit's and the environment's caches, write nothing
    env.update(
        PYTHONPATH=os.pathsep.join([str(plugin_dir), str(site), str(tests)]),
        PYTHONNOUSERSITE="1",
        PYTHONHASHSEED="0",
        TMPDIR=str(tmp),
        TEMP=str(tmp),
        TMP=str(tmp),
        **{RUN_MARKER: marker},
    )
    deadline = time.monotonic() + submission_timeout
    durations = {n: r["duration"] for n, r in kit.inventory.items() if r.get("duration") is not None}
    events: list[dict] = []
    done: set[str] = set()
    timeouts: list[str] = []
    overtime = False
    attempts = 0
    cpu = 0.0
    while True:
        attempts += 1
        config = {
            "events": str(work / f"events-{attempts}.jsonl"),
            "overlay": str(site),
            "graded_imports": graded_imports,
            "watch_imports": prebuilt,
            "oracles": "_oracles" if (tests / "_oracles.py").is_file() else None,
            "tests_root": str(tests),
            "test_timeout": test_timeout,
            "durations": durations,
            "hung": bool(timeouts)
            or any(e.get("type") == "GradingTimeout" for e in events if e["e"] == "phase"),
            "skip": sorted(done | set(timeouts)),
            "trace": _trace_map(kit, site) if trace else None,
        }
        config_path = work / f"config-{attempts}.json"
        config_path.write_text(json.dumps(config), encoding="utf-8")
        cmd = [
            python, "-m", "pytest", "-q", "-p", PLUGIN_NAME, "-p", "no:cacheprovider",
            "--import-mode=importlib", "-c", str(work / "pytest.ini"), "--rootdir", str(work),
            "--confcutdir", str(tests), "--basetemp", str(tmp / "pytest"), "--continue-on-collection-errors",
            "--tb=line", "-o", "console_output_style=classic", *paths,
        ]  # fmt: skip
        with open(work / f"pytest-{attempts}.log", "wb") as log:
            proc = subprocess.Popen(
                cmd,
                cwd=work,
                env=dict(env, **{grader_plugin.CONFIG_ENV: str(config_path)}),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            offset, current, started, killed_for, limit = 0, None, 0.0, None, test_timeout
            try:
                while True:
                    used = _reap(proc, block=False)
                    finished = used is not None
                    if finished:
                        cpu += used
                    else:
                        time.sleep(0.2)
                    new, offset = _read_events(Path(config["events"]), offset)
                    for event in new:
                        events.append(event)
                        if event["e"] == "start":
                            current, started = event["id"], time.monotonic()
                            limit = event.get("limit", test_timeout)
                        elif event["e"] == "end":
                            done.add(event["id"])
                            current = None
                    if finished:
                        break
                    now = time.monotonic()
                    if now > deadline:
                        killed_for = "overtime"
                        break
                    if current is not None and test_timeout > 0 and now - started > limit + GRACE:
                        killed_for = current
                        break
            finally:
                cpu += _kill(proc, marker)
            new, offset = _read_events(Path(config["events"]), offset)
            events += new
        if killed_for == "overtime":
            overtime = True
            break
        if killed_for is not None:
            timeouts.append(killed_for)
            events.append({"e": "killed", "id": killed_for})
            continue
        break
    return {"events": events, "timeouts": timeouts, "overtime": overtime, "attempts": attempts, "cpu": cpu}


# --- from events to results -----------------------------------------------------------------------


def collect_results(events: list[dict]) -> dict:
    """{tests: {nodeid: {outcome, type, message, where, ...}}, imports, integrity, collect_errors}."""
    tests: dict[str, dict] = {}
    imports: dict[str, dict | None] = {}
    integrity: list[dict] = []
    collect_errors: dict[str, str] = {}
    started: set[str] = set()
    ended: set[str] = set()
    killed: set[str] = set()
    for event in events:
        kind = event["e"]
        if kind == "import":
            imports[event["module"]] = event["error"]
        elif kind in ("integrity", "import_integrity"):
            integrity.append(event)
        elif kind == "collect_error":
            collect_errors[event["path"]] = event["message"]
        elif kind == "start":
            started.add(event["id"])
        elif kind == "end":
            ended.add(event["id"])
        elif kind == "killed":
            killed.add(event["id"])
        elif kind == "phase":
            record = tests.setdefault(event["id"], {"outcome": "passed"})
            record["duration"] = record.get("duration", 0.0) + event.get("duration", 0.0)
            outcome = event["outcome"]
            if outcome == "failed" and record["outcome"] != "failed":
                record.update(
                    outcome="failed",
                    type=event.get("type"),
                    message=event.get("message") or "",
                    where=event.get("where"),
                    test=event.get("test"),
                    longrepr=event.get("longrepr") or "",
                    when=event["when"],
                )
            elif outcome == "skipped" and record["outcome"] == "passed":
                record.update(outcome="skipped", message=event.get("message") or "")
        elif kind == "reach":
            tests.setdefault(event["id"], {"outcome": "passed"})["reach"] = event["keys"]
    for nodeid in started - ended:
        record = tests.setdefault(nodeid, {"outcome": "failed"})
        record.update(outcome="failed", type="GradingTimeout" if nodeid in killed else "Crash")
        record["message"] = (
            "the test did not finish: killed after its time limit"
            if nodeid in killed
            else "the test process ended during this test (a crash, os._exit, or the submission's time limit)"
        )
    for record in tests.values():
        if record.get("type") == "GradingTimeout":
            record["outcome"] = "timeout"
    return {"tests": tests, "imports": imports, "integrity": integrity, "collect_errors": collect_errors}


def reference_inventory(kit: Kit, python: str, log=lambda msg: None) -> dict[str, dict]:
    """Run the reference solution through every test (with tracing); the kit's inventory."""
    graded = [m.number for m in MODULES if m.tier in kit.tiers]
    work = Path(tempfile.mkdtemp(prefix="tito-kit-"))
    try:
        site = work / "site"
        sources = {t: kit.path / "reference" / t / "src" for t in kit.tiers}
        build_overlay(kit, sources, site, graded)
        run = run_tests(
            kit,
            python,
            work,
            site,
            graded,
            test_timeout=600,
            submission_timeout=7200,
            hidden=True,
            trace=True,
        )
        results = collect_results(run["events"])
        # Keep pytest's rewritten test modules: every later run reads them instead of rewriting.
        for cache in (work / "tests").rglob("__pycache__"):
            target = kit.tests / cache.relative_to(work / "tests")
            shutil.copytree(cache, target, dirs_exist_ok=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if (Path(python).parent.parent / ".tinytorch-ready").is_file():
        record_fingerprint(python)  # the reference run is trusted: what it wrote belongs to the environment
    broken = [f"{name}: {error['message']}" for name, error in results["imports"].items() if error]
    if broken or results["collect_errors"]:
        details = broken + [
            f"{p}: {m.strip().splitlines()[-1]}" for p, m in results["collect_errors"].items()
        ]
        raise KitError(
            "the reference solution does not import in the grading environment:\n  " + "\n  ".join(details)
        )
    if results["integrity"]:
        raise KitError(f"the reference run reported integrity changes (a grader bug): {results['integrity']}")
    inventory = {}
    for nodeid, record in results["tests"].items():
        match = MODULE_RE.search(nodeid.split("::")[0])
        inventory[nodeid] = {
            "module": match.group(1) if match else None,
            "visibility": "hidden" if "/hidden/" in nodeid.split("::")[0] else "visible",
            "outcome": record["outcome"],
            "reason": record.get("message", "")[:300] if record["outcome"] != "passed" else "",
            "reach": record.get("reach", []),
            "duration": round(record.get("duration", 0.0), 4),
        }
    ungraded = [n for n, r in inventory.items() if r["outcome"] != "passed"]
    log(f"reference inventory: {len(inventory) - len(ungraded)} tests graded, {len(ungraded)} not graded")
    for nodeid in ungraded:
        log(f"  not graded ({inventory[nodeid]['outcome']} on the reference): {nodeid}")
    return inventory


# --- scoring -----------------------------------------------------------------------------------------


def _test_name(nodeid: str) -> str:
    return nodeid.split("::", 1)[1] if "::" in nodeid else nodeid


def _first_line(text: str) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def _short_message(record: dict, limit_lines: int = 12) -> str:
    """The failure as a student reads it: exception type and message (assertion diffs kept)."""
    message = (record.get("message") or "").strip("\n")
    kind = record.get("type") or "failure"
    lines = message.splitlines()
    if len(lines) > limit_lines:
        lines = lines[:limit_lines] + [f"... ({len(lines) - limit_lines} more lines)"]
    text = "\n".join(lines).strip("\n")
    if not text and record.get("longrepr"):
        text = "\n".join(record["longrepr"].strip().splitlines()[-limit_lines:])
    return f"{kind}: {text}" if text else kind


def unreached_blocks(kit: Kit) -> list[str]:
    """Solution functions no graded test calls on the reference (the static check still covers them)."""
    reached = set()
    for record in kit.inventory.values():
        if record["outcome"] == "passed":
            reached.update(record["reach"])
    return [f"{b['module']} {b['key']}" for b in kit.blocks if b["key"] not in reached]


def score(
    kit: Kit,
    points: points_mod.Points,
    graded: list[str],
    static: dict,
    results: dict,
    run: dict,
    *,
    hidden: bool = True,
) -> dict:
    """The report of one submission: per module and per test, with points (see the module doc)."""
    infos = {m.number: m for m in MODULES}
    failed_imports = {}
    for import_path, error in results["imports"].items():
        info = module_for(import_path)
        if error and info is not None:
            where = error.get("where") or {}
            place = f"src/{where['file']}:{where['line']}: " if where.get("file") else ""
            failed_imports[info.number] = f"{place}{error['type']}: {error['message']}"
    for entry in static["syntax"]:
        text = f"{entry['file']}:{entry['line']}: {entry['message']}" + (
            f": {entry['text']}" if entry["text"] else ""
        )
        for number in entry["modules"]:
            failed_imports[number] = text
    for entry in static["missing"]:
        for number in entry["modules"]:
            failed_imports.setdefault(number, f"{entry['file']} is missing from the submission")
    stub_by_key = {s["key"]: s for s in static["stubs"]}
    import_integrity = {}
    for event in results["integrity"]:
        if event["e"] == "import_integrity":
            info = module_for(event["module"])
            if info is not None:
                import_integrity[info.number] = "; ".join(event["changes"])
    test_integrity = {
        e["phase"]: "; ".join(e["changes"]) for e in results["integrity"] if e["e"] == "integrity"
    }

    modules, tests, ungraded = [], [], []
    own_functions = {}  # module -> the keys of its solution functions (what its students write)
    for block in kit.blocks:
        own_functions.setdefault(block["module"], set()).add(block["key"])
    for number in graded:
        info, table = infos[number], points.module(number)
        entries = [
            (nodeid, rec)
            for nodeid, rec in kit.inventory.items()
            if rec["module"] == number and (hidden or rec["visibility"] == "visible")
        ]
        graded_entries = []
        for nodeid, rec in entries:
            weight = table.weight(_test_name(nodeid))
            why = None
            if rec["outcome"] != "passed":
                why = f"{rec['outcome']} on the reference"
            elif weight == 0:
                why = "weight 0"
            elif not own_functions.get(number, set()).intersection(rec["reach"]):
                # It tests given code (argument checks, file loading) or earlier modules only:
                # it passes on the untouched release, so it must not earn module `number` points.
                why = f"calls no solution function of module {number} (it passes on the untouched release)"
            if why:
                ungraded.append({"test": nodeid, "why": why})
                continue
            graded_entries.append((nodeid, rec, weight))
        has_hidden = any(rec["visibility"] == "hidden" for _, rec, _ in graded_entries)
        part_points = {
            "visible": table.points - table.hidden if has_hidden else table.points,
            "hidden": table.hidden if has_hidden else 0.0,
        }
        totals = {v: sum(w for _, rec, w in graded_entries if rec["visibility"] == v) for v in part_points}
        module_tests = []
        for nodeid, rec, weight in graded_entries:
            result = results["tests"].get(nodeid)
            outcome, reason = _judge(nodeid, rec, result, number, failed_imports, import_integrity,
                                     test_integrity, stub_by_key, results, run)  # fmt: skip
            max_points = part_points[rec["visibility"]] * weight / totals[rec["visibility"]]
            function = _function(rec, result, number)
            entry = {
                "test": nodeid,
                "name": _test_name(nodeid),
                "module": number,
                "visibility": rec["visibility"],
                "outcome": outcome,
                "weight": weight,
                "max_points": round(max_points, 4),
                "points": round(max_points if outcome == "passed" else 0.0, 4),
                "function": function,
                "message": "" if outcome == "passed" else reason,
            }
            module_tests.append(entry)
        if number in failed_imports:
            for entry in module_tests:
                if entry["outcome"] == "passed":  # a module that does not import scores zero
                    entry.update(
                        outcome="failed",
                        points=0.0,
                        message=f"the module does not import: {failed_imports[number]}",
                    )
        by_vis = {}
        for vis in ("visible", "hidden"):
            chosen = [t for t in module_tests if t["visibility"] == vis]
            by_vis[vis] = {
                "score": round(sum(t["points"] for t in chosen), 4),
                "max": round(part_points[vis] if chosen else 0.0, 4),
                "passed": sum(t["outcome"] == "passed" for t in chosen),
                "failed": sum(t["outcome"] != "passed" for t in chosen),
            }
        own_file = "src/" + info.import_path.replace(".", "/") + ".py"
        stubs = [
            s["function"] + ("" if s["file"] == own_file else f" (in {s['file']})")
            for s in static["stubs"]
            if s["module"] == number
        ]
        module_score = by_vis["visible"]["score"] + by_vis["hidden"]["score"]
        module_max = by_vis["visible"]["max"] + by_vis["hidden"]["max"]
        modules.append(
            {
                "module": number,
                "name": info.name,
                "tier": info.tier,
                "score": round(module_score, 2),
                "max": round(module_max, 2),
                "visible": by_vis["visible"],
                "hidden": by_vis["hidden"],
                "passed": sum(t["outcome"] == "passed" for t in module_tests),
                "failed": sum(t["outcome"] != "passed" for t in module_tests),
                "stubs": stubs,
                "import_error": failed_imports.get(number),
                "integrity": import_integrity.get(number),
            }
        )
        tests += module_tests
    total = round(sum(m["score"] for m in modules), 2)
    maximum = round(sum(m["max"] for m in modules), 2)
    integrity = [
        f"{e['phase']}: {'; '.join(e['changes'])}" for e in results["integrity"] if e["e"] == "integrity"
    ]
    return {
        "tiers": kit.tiers,
        "modules_graded": graded,
        "score": total,
        "max_score": maximum,
        "percent": round(100.0 * total / maximum, 1) if maximum else 0.0,
        "visible": {
            "score": round(sum(m["visible"]["score"] for m in modules), 2),
            "max": round(sum(m["visible"]["max"] for m in modules), 2),
        },
        "hidden": {
            "score": round(sum(m["hidden"]["score"] for m in modules), 2),
            "max": round(sum(m["hidden"]["max"] for m in modules), 2),
        },
        "passed": sum(t["outcome"] == "passed" for t in tests),
        "failed": sum(t["outcome"] != "passed" for t in tests),
        "errors": sorted(set(failed_imports.values())),
        "integrity": integrity,
        "timeouts": sorted(set(run["timeouts"]) | {t["test"] for t in tests if t["outcome"] == "timeout"}),
        "overtime": run["overtime"],
        "modules": modules,
        "tests": tests,
        "ungraded": ungraded,
    }  # fmt: skip


def _judge(
    nodeid, rec, result, number, failed_imports, import_integrity, test_integrity, stub_by_key, results, run
):
    """(outcome, reason) of one graded test; the reason names what to fix."""
    stubs = [stub_by_key[k] for k in rec["reach"] if k in stub_by_key]
    if stubs:
        names = ", ".join(f"Module {s['module']}: {s['function']}" for s in stubs[:4])
        return "failed", f"not written yet (still a stub): {names}"
    if number in import_integrity:
        return "failed", f"integrity: importing the module changed the judges: {import_integrity[number]}"
    if nodeid in test_integrity:
        return "failed", f"integrity: {test_integrity[nodeid]}"
    if result is None:
        if run["overtime"]:
            return "failed", "not run: the submission's time limit ran out first"
        path = nodeid.split("::")[0]
        error = next((m for p, m in results["collect_errors"].items() if p == path), None)
        if number in failed_imports:
            return "failed", f"the module does not import: {failed_imports[number]}"
        if error:
            return "failed", f"the test file does not import: {_first_line(error.strip().splitlines()[-1])}"
        return "failed", "not run"
    outcome = result["outcome"]
    if outcome == "passed":
        return "passed", ""
    if outcome == "skipped":
        return "failed", f"skipped, but it runs on the reference: {result.get('message', '')}"
    if outcome == "timeout":
        return "timeout", f"timed out: {result.get('message', '')}"
    where = result.get("where") or {}
    place = f" at src/{where['file']}:{where['line']}" if where.get("file") else ""
    return "failed", f"{_short_message(result)}{place}"


def _function(rec: dict, result: dict | None, number: str) -> str:
    """The function a failure points at: where it was raised in the submission, else what the test checks."""
    where = (result or {}).get("where") or {}
    if where.get("function"):
        return where["function"]
    own = [k.split(":", 1)[1] for k in rec["reach"]]
    return ", ".join(own[:3]) + (" ..." if len(own) > 3 else "") if own else ""


# --- one submission, many submissions ----------------------------------------------------------------


def grade_one(
    kit: Kit,
    python: str,
    submission: Path,
    points: points_mod.Points,
    graded: list[str],
    *,
    workroot: Path,
    hidden: bool = True,
) -> dict:
    """Grade one submission directory; always returns a report (errors included), never raises."""
    started, cpu_started = time.monotonic(), time.thread_time()
    cpu_run: dict = {}
    work = Path(tempfile.mkdtemp(prefix="sub-", dir=workroot))
    report: dict
    try:
        try:
            sources = locate_sources(submission, kit.tiers)
        except GradeError as exc:
            report = _empty_report(kit, points, graded, str(exc))
        else:
            site = work / "site"
            static = build_overlay(kit, sources, site, graded)
            run = run_tests(
                kit,
                python,
                work,
                site,
                graded,
                test_timeout=points.test_timeout,
                submission_timeout=points.submission_timeout,
                hidden=hidden,
            )
            cpu_run = run
            results = collect_results(run["events"])
            report = score(kit, points, graded, static, results, run, hidden=hidden)
    except Exception as exc:  # a grader bug must not stop a batch: this submission gets an error report
        report = _empty_report(kit, points, graded, f"the grader failed on this submission: {exc!r}")
    finally:
        if not os.environ.get("TINYTORCH_GRADER_KEEP"):  # debugging the grader: keep the work directory
            shutil.rmtree(work, ignore_errors=True)
    report["submission"] = str(submission)
    report["seconds"] = round(time.monotonic() - started, 2)
    report["cpu_seconds"] = round(cpu_run.get("cpu", 0.0) + time.thread_time() - cpu_started, 2)
    return report


def _empty_report(kit: Kit, points: points_mod.Points, graded: list[str], error: str) -> dict:
    infos = {m.number: m for m in MODULES}
    modules = [
        {
            "module": n,
            "name": infos[n].name,
            "tier": infos[n].tier,
            "score": 0.0,
            "max": points.module(n).points,
            "visible": {"score": 0.0, "max": 0.0, "passed": 0, "failed": 0},
            "hidden": {"score": 0.0, "max": 0.0, "passed": 0, "failed": 0},
            "passed": 0,
            "failed": 0,
            "stubs": [],
            "import_error": error,
            "integrity": None,
        }
        for n in graded
    ]
    maximum = round(sum(m["max"] for m in modules), 2)
    return {
        "tiers": kit.tiers,
        "modules_graded": graded,
        "score": 0.0,
        "max_score": maximum,
        "percent": 0.0,
        "visible": {"score": 0.0, "max": 0.0},
        "hidden": {"score": 0.0, "max": 0.0},
        "passed": 0,
        "failed": 0,
        "errors": [error],
        "integrity": [],
        "timeouts": [],
        "overtime": False,
        "modules": modules,
        "tests": [],
        "ungraded": [],
    }


def submission_names(submissions: list[Path]) -> list[str]:
    """File-name-safe names, after each directory; parents added where two share a name."""
    names = [s.name or "submission" for s in submissions]
    for i, s in enumerate(submissions):
        if names.count(names[i]) > 1:
            names[i] = "-".join(s.parts[-2:])
    return [re.sub(r"[^\w.-]+", "_", n) for n in names]


def grade_many(
    kit: Kit,
    submissions: list[Path],
    points: points_mod.Points,
    *,
    modules: list[str] | None = None,
    jobs: int = 1,
    python: str | None = None,
    hidden: bool = True,
    log: Callable[[str], None] = lambda msg: None,
    on_report: Callable[[str, dict], None] | None = None,
) -> list[dict]:
    """Grade every submission with ``kit`` on ``jobs`` workers; reports in the submissions' order.

    The environment is made once (``ensure_env``) and checked after every submission:
    if a submission changed it, that submission is reported for it, the environment is
    rebuilt and the submissions that ran at the same time are graded again.
    """
    if jobs < 1:
        raise GradeError(f"--jobs must be at least 1, got {jobs}")
    graded = sorted(modules) if modules else list(kit.modules)
    outside = sorted(set(graded) - set(kit.modules))
    if outside:
        raise GradeError(f"modules {outside} are not graded by this kit (it grades {', '.join(kit.modules)})")
    own = python is None
    python = python or ensure_env(kit, log)
    names = submission_names(submissions)
    reports: list[dict | None] = [None] * len(submissions)
    lock = threading.Lock()
    windows: dict[int, tuple[float, float]] = {}
    tampered: list[int] = []
    workroot = Path(tempfile.mkdtemp(prefix="tito-grade-"))

    def job(index: int) -> None:
        begin = time.monotonic()
        report = grade_one(kit, python, submissions[index], points, graded, workroot=workroot, hidden=hidden)
        report["name"] = names[index]
        end = time.monotonic()
        if own and not env_intact(python):
            report["integrity"].append("the submission modified the shared grading environment")
            report["errors"].append("integrity: the submission modified the grading environment; graded zero")
            _zero(report)
            with lock:
                tampered.append(index)
        with lock:
            windows[index] = (begin, end)
            reports[index] = report
        if on_report is not None:
            on_report(names[index], report)
        log(
            f"graded {names[index]}: {report['score']:g}/{report['max_score']:g} "
            f"in {report['seconds']:.1f} s ({report.get('cpu_seconds', 0):.1f} s CPU)"
        )

    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(job, range(len(submissions))))
        if tampered:
            log("a submission modified the grading environment: rebuilding it and regrading its neighbours")
            discard_env(python)
            python = ensure_env(kit, log)
            again = set()
            for t in tampered:
                b0, e0 = windows[t]
                again |= {i for i, (b, e) in windows.items() if i not in tampered and b < e0 and e > b0}
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                list(pool.map(job, sorted(again)))
    finally:
        if not os.environ.get("TINYTORCH_GRADER_KEEP"):
            shutil.rmtree(workroot, ignore_errors=True)
    return [r for r in reports if r is not None]


def _zero(report: dict) -> None:
    report["score"] = 0.0
    report["percent"] = 0.0
    report["visible"]["score"] = report["hidden"]["score"] = 0.0
    for m in report["modules"]:
        m["score"] = 0.0
        m["visible"]["score"] = m["hidden"]["score"] = 0.0
    for t in report["tests"]:
        if t["outcome"] == "passed":
            t.update(
                outcome="failed",
                points=0.0,
                message="integrity: the submission modified the grading environment",
            )


def resolve_kit(
    tiers: list[str] | None,
    submissions: list[Path],
    *,
    kit_dir: str | None = None,
    root: Path | None = None,
    python: str | None = None,
    log=lambda msg: None,
) -> Kit:
    """The kit to grade with: ``--kit DIR``, else the repository's cached kit for the tiers."""
    from tinytorch.milestones.course.kit import load_kit, repository_kit

    if kit_dir:
        kit = load_kit(kit_dir)
        if tiers and set(tiers) != set(kit.tiers):
            raise GradeError(f"the kit grades tinytorch-{'+'.join(kit.tiers)}, not {'+'.join(tiers)}")
        return kit
    tiers = tiers or detect_tiers(submissions)
    try:
        return repository_kit(tiers, root, log, python)
    except KitError:
        raise
