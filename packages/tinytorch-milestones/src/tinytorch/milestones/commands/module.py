"""``tito module``: the 20 modules, whether each is complete, and their tests.

tito module list
tito module status [NN ...] [--no-tests] [--json]
tito module test NN [-- pytest options]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys


def _list(args) -> int:
    from tinytorch.milestones.tiers import MODULES, is_installed

    installed = {t: is_installed(t) for t in {m.tier for m in MODULES}}
    print(f"{'#':<3} {'name':<13} {'tier':<13} {'import path':<38} installed")
    for m in MODULES:
        mark = "yes" if installed[m.tier] else "no"
        print(f"{m.number:<3} {m.name:<13} {m.tier:<13} {m.import_path:<38} {mark}")
    missing = sorted(t for t, ok in installed.items() if not ok)
    if missing:
        from tinytorch.milestones.tiers import install_hint

        for tier in missing:
            print(install_hint(tier))
    return 0


def _numbers(values) -> list[str]:
    from tinytorch.milestones.tiers import module

    return [module(v).number for v in values or []]


def _status(args) -> int:
    from tinytorch.milestones.course.status import run_tests, statuses

    try:
        states = statuses(_numbers(args.modules))
    except ValueError as exc:
        print(f"tito module status: {exc}", file=sys.stderr)
        return 2
    with_tests = [s for s in states if s.tests is not None and s.complete is not None]
    if not args.no_tests and with_tests:
        if not args.json:
            print(f"running the tests of {len(with_tests)} modules ...", flush=True)
        run_tests(with_tests)
    if args.json:
        print(json.dumps([_as_dict(s) for s in states], indent=2))
    else:
        print(f"{'#':<3} {'name':<13} {'implementation':<24} {'tests':<22} source")
        for s in states:
            tests = _tests(s, args.no_tests)
            print(f"{s.info.number:<3} {s.info.name:<13} {_impl(s):<24} {tests:<22} {s.source or ''}")
        for s in states:
            if s.stubs:
                print(f"{s.info.number} {s.info.name}: to write: {', '.join(s.stubs)}")
            if s.error:
                print(f"{s.info.number} {s.info.name}: {s.error}")
    done = all(s.complete for s in states if s.installed)
    passing = all(not s.results or s.results["failed"] == 0 for s in states)
    return 0 if done and passing else 1


def _impl(s) -> str:
    if not s.installed:
        return "tier not installed"
    if s.error:
        return "syntax error" if s.error.startswith("syntax error") else "missing"
    if s.given and not s.stubs:
        return "given (reference)"
    return "complete" if s.complete else f"{len(s.stubs)} stub{'s' if len(s.stubs) != 1 else ''} left"


def _tests(s, skipped: bool) -> str:
    if s.tests is None:
        return "-" if s.installed else ""
    if s.results is None:
        return "not run" if skipped else "-"
    r = s.results
    if r["failed"]:
        return f"FAIL {r['failed']} of {r['passed'] + r['failed']}"
    return f"pass ({r['passed']})" if r["passed"] else f"none ran ({r['skipped']} skipped)"


def _as_dict(s) -> dict:
    return {
        "module": s.info.number,
        "name": s.info.name,
        "tier": s.info.tier,
        "installed": s.installed,
        "complete": s.complete,
        "given": s.given,
        "stubs": s.stubs,
        "source": str(s.source) if s.source else None,
        "error": s.error,
        "tests": str(s.tests) if s.tests else None,
        "results": s.results,
    }


def _test(args) -> int:
    from tinytorch.milestones.course.status import module_state
    from tinytorch.milestones.tiers import install_hint, module

    try:
        info = module(args.module)
    except ValueError as exc:
        print(f"tito module test: {exc}", file=sys.stderr)
        return 2
    state = module_state(info)
    if not state.installed:
        print(f"tito module test: {install_hint(info.tier)}", file=sys.stderr)
        return 2
    if state.tests is None:
        print(
            f"tito module test: the tests of module {info.number} are not at hand: run inside the repository "
            f"({info.test_file}) or inside a student release (tests/{info.test_file.rsplit('/', 1)[1]})",
            file=sys.stderr,
        )
        return 2
    if state.stubs:
        print(
            f"module {info.number} ({info.name}) still has {len(state.stubs)} stubs: {', '.join(state.stubs)}"
        )
    extra = [a for a in args.pytest_args if a != "--"]
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--import-mode=importlib",
        "-p",
        "no:cacheprovider",
        "--tb=short",
        "-rfE",
        "--no-header",
        *extra,
        str(state.tests),
    ]
    print(f"$ {' '.join(cmd[2:])}   (in {state.test_root})", flush=True)
    return subprocess.run(cmd, cwd=state.test_root).returncode


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "module",
        help="list modules, check their status, run their tests",
        description=__doc__.strip().splitlines()[0],
    )
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1], parser=parser)
    sub = parser.add_subparsers(dest="module_command", metavar="ACTION")

    p = sub.add_parser("list", help="the 20 modules: number, name, tier, import path, installed")
    p.set_defaults(func=_list, parser=p)

    p = sub.add_parser("status", help="per module: implementation complete? tests passing?")
    p.add_argument("modules", nargs="*", metavar="NN", help="only these modules (number or name)")
    p.add_argument("--no-tests", action="store_true", help="only the static check, do not run tests")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.set_defaults(func=_status, parser=p)

    p = sub.add_parser("test", help="run one module's tests with readable output")
    p.add_argument("module", metavar="NN", help="module number or name, e.g. 09 or spatial")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra pytest options after --")
    p.set_defaults(func=_test, parser=p)
