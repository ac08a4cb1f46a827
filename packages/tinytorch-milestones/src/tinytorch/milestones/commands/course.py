"""``tito course``: student releases of a tier, the course configurations, grading.

tito course release --tier architecture --out student-architecture
tito course configs
tito course grade student-architecture [--json]
tito course check-markers
"""

from __future__ import annotations

import json
import sys


def _release(args) -> int:
    from tinytorch.milestones.course.release import ReleaseError, make_release
    from tinytorch.milestones.course.repo import RepoNotFound, tier_modules

    try:
        release = make_release(args.tier, args.out, verify_imports=not args.no_import_check, force=args.force)
    except (ReleaseError, RepoNotFound, ValueError) as exc:
        print(f"tito course release: {exc}", file=sys.stderr)
        return 1
    print(f"wrote the student release of tinytorch-{release.tier} {release.version} to {release.path}")
    print(
        f"  {release.stub_count} stubs in {len(release.stubs)} files; verified: compiles, imports, "
        "no solution text left"
    )
    for info in tier_modules(release.tier):
        names = release.stubs.get(info.import_path, [])
        print(f"  {info.number} {info.name:<13} {len(names):>3} to write")
    print(f"next: pip install -e {release.path}")
    print("      (next to the other tiers' reference wheels; see the README.md there)")
    return 0


def _configs(args) -> int:
    from tinytorch.milestones.course.configs import render
    from tinytorch.milestones.course.repo import RepoNotFound, find_root, version
    from tinytorch.milestones.tiers import installed_version

    try:
        ver = version(find_root())
    except RepoNotFound:
        ver = installed_version("milestones") or "VERSION"
    from tinytorch.milestones.course.wheelhouse import configured

    print(render(ver, configured()))
    return 0


def _grade(args) -> int:
    from tinytorch.milestones.course.grade import GradeError, grade, render
    from tinytorch.milestones.course.repo import RepoNotFound

    log = (lambda msg: None) if args.json else (lambda msg: print(f"... {msg}", flush=True))
    try:
        report = grade(args.release, log=log)
    except (GradeError, RepoNotFound) as exc:
        print(f"tito course grade: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0 if report["failed"] == 0 and report["passed"] > 0 else 1


def _check_markers(args) -> int:
    from tinytorch.milestones.course.markers import check_tree
    from tinytorch.milestones.course.repo import RepoNotFound, find_root, tier_dir
    from tinytorch.milestones.tiers import TIERS

    try:
        root = find_root()
    except RepoNotFound as exc:
        print(f"tito course check-markers: {exc}", file=sys.stderr)
        return 2
    failed = False
    for tier in (*TIERS, "milestones"):
        src = (
            tier_dir(root, tier) / "src"
            if tier != "milestones"
            else root / "packages/tinytorch-milestones/src"
        )
        results, problems = check_tree(src)
        count = sum(len(b) for b in results.values())
        print(f"tinytorch-{tier}: {count} solution blocks in {sum(1 for b in results.values() if b)} files")
        for p in problems:
            print(f"  ERROR {p}")
        failed = failed or bool(problems)
    return 1 if failed else 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "course",
        help="student releases, course configurations, grading",
        description=__doc__.strip().splitlines()[0],
    )
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1], parser=parser)
    sub = parser.add_subparsers(dest="course_command", metavar="ACTION")

    p = sub.add_parser("release", help="write the student release of a tier (run inside the repository)")
    p.add_argument("--tier", required=True, choices=("foundation", "architecture", "optimization"))
    p.add_argument("--out", required=True, help="directory to write (must not exist or be empty)")
    p.add_argument("--force", action="store_true", help="replace an earlier release in --out")
    p.add_argument(
        "--no-import-check",
        action="store_true",
        help="skip importing the release (when the other tiers are not installed here)",
    )
    p.set_defaults(func=_release, parser=p)

    p = sub.add_parser("configs", help="the course configurations and the commands each needs")
    p.set_defaults(func=_configs, parser=p)

    p = sub.add_parser("grade", help="run the reference tests of a tier against a student release")
    p.add_argument("release", help="the student's release directory")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_grade, parser=p)

    p = sub.add_parser("check-markers", help="check the solution markers of every package (repository only)")
    p.set_defaults(func=_check_markers, parser=p)

    from tinytorch.milestones.course.wheelhouse import register_command  # tito course wheelhouse

    register_command(sub)
