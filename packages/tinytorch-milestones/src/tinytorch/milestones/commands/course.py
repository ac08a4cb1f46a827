"""``tito course``: student releases, course configurations, grading kits and grading.

tito course release --tier architecture --out student-architecture [--modules 09,10]
tito course release --tier foundation --nbgrader --out course/     # nbgrader's source/, one per module
tito course configs
tito course points --tier architecture > points.toml
tito course grade SUBMISSION... [--jobs N] [--out DIR] [--format table|json|csv|gradescope]
tito course kit --tier architecture --out kit/                # a grading kit, usable anywhere
tito course autograder --tier architecture --out bundle/ --zip bundle.zip   # Gradescope
tito course check-markers
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _modules_arg(args):
    """(tier, modules) from --tier/--modules; the tier is inferred from the modules when omitted."""
    from tinytorch.milestones.course.repo import parse_modules, tier_of_modules

    modules = parse_modules(args.modules) if getattr(args, "modules", None) else None
    tier = getattr(args, "tier", None)
    if modules:
        inferred = tier_of_modules(modules)
        if tier and tier != inferred:
            raise ValueError(
                f"--modules {','.join(modules)} belong to tinytorch-{inferred}, not --tier {tier}"
            )
        tier = inferred
    return tier, modules


def _release(args) -> int:
    from tinytorch.milestones.course.release import ReleaseError, make_release
    from tinytorch.milestones.course.repo import RepoNotFound, tier_modules

    try:
        tier, modules = _modules_arg(args)
        if tier is None:
            raise ValueError("give --tier, or --modules (the tier is that of the modules)")
        if args.nbgrader:
            return _nbgrader_course(args, tier, modules)
        release = make_release(
            tier,
            args.out,
            modules=modules,
            verify_imports=not args.no_import_check,
            force=args.force,
            wheels=args.wheels,
            points_file=args.points,
            notebooks=args.notebooks,
            with_solutions=args.with_solutions,
            wheelhouse=args.wheelhouse,
        )
    except (ReleaseError, RepoNotFound, ValueError) as exc:
        print(f"tito course release: {exc}", file=sys.stderr)
        return 1
    print(f"wrote the student release of tinytorch-{release.tier} {release.version} to {release.path}")
    print(
        f"  {release.stub_count} stubs in {len(release.stubs)} files; verified: compiles, imports, "
        "no solution text left"
    )
    for info in tier_modules(release.tier):
        if info.number in release.modules:
            count = len(release.by_module.get(info.number, []))
            print(f"  {info.number} {info.name:<13} {count:>3} to write")
        else:
            print(f"  {info.number} {info.name:<13}   given (reference code)")
    if release.notebooks:
        kind = "instructor (reference filled in)" if args.with_solutions else "student"
        print(f"  {len(release.notebooks)} {kind} notebooks in {release.path / 'notebooks'} (.ipynb and .py)")
    print(f"next: pip install -e {release.path}")
    print("      (next to the other tiers' reference wheels; see the README.md there)")
    return 0


def _nbgrader_course(args, tier: str, modules: list[str] | None) -> int:
    """``--nbgrader``: --out is an nbgrader course directory, one assignment per module (nbgrader_course)."""
    from tinytorch.milestones.course.nbgrader_course import CONFIG, make_course
    from tinytorch.milestones.course.repo import tier_modules

    chosen = modules or [m.number for m in tier_modules(tier)]
    made = make_course(
        args.out,
        tier,
        chosen,
        verify_imports=not args.no_import_check,
        points_file=args.points,
        wheelhouse=args.wheelhouse,
    )
    course = Path(args.out).resolve()
    print(f"wrote {len(made)} nbgrader assignments of tinytorch-{tier} to {course / 'source'}:")
    for number, folder in made.items():
        print(f"  {number} {folder.name}")
    print(f"next, in {course} ({CONFIG} there sets the time a check cell may take):")
    print(f"  nbgrader generate_assignment {next(iter(made.values())).name}")
    print("  then collect submissions into submitted/<student>/<assignment>/ and run nbgrader autograde")
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


def _points(args) -> int:
    from tinytorch.milestones.course.points import default_text

    print(default_text(args.tier), end="")
    return 0


def _tiers_arg(args) -> list[str] | None:
    from tinytorch.milestones.tiers import TIERS

    tiers = []
    if args.tier:
        tiers.append(args.tier)
    if args.tiers:
        tiers += [t.strip() for t in args.tiers.split(",") if t.strip()]
    unknown = [t for t in tiers if t not in TIERS]
    if unknown:
        raise ValueError(f"unknown tiers {unknown}: expected {', '.join(TIERS)}")
    return [t for t in TIERS if t in tiers] or None


def _grade(args) -> int:
    from tinytorch.milestones.course import points as points_mod
    from tinytorch.milestones.course import report as report_mod
    from tinytorch.milestones.course.grade import GradeError, grade_many, resolve_kit
    from tinytorch.milestones.course.kit import KitError
    from tinytorch.milestones.course.repo import RepoNotFound, parse_modules

    fmt = "json" if args.json else args.format
    quiet = fmt in ("json", "gradescope", "csv") and not args.out
    log = (
        (lambda msg: print(f"... {msg}", file=sys.stderr, flush=True)) if not args.quiet else (lambda m: None)
    )
    if quiet and not args.verbose:
        log = lambda msg: None  # noqa: E731 - machine-readable stdout: keep stderr quiet too
    submissions = [Path(s).resolve() for s in args.submissions]
    missing = [str(s) for s in submissions if not s.is_dir()]
    if missing:
        print(f"tito course grade: not a directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    out = Path(args.out).resolve() if args.out else None
    try:
        tiers = _tiers_arg(args)
        modules = parse_modules(args.modules) if args.modules else None
        if modules and not tiers:
            from tinytorch.milestones.course.repo import tier_of_modules

            tiers = [tier_of_modules(modules)] if not args.kit else None
        kit = resolve_kit(tiers, submissions, kit_dir=args.kit, python=args.python, log=log)
        if modules and set(modules) - set(kit.modules):
            raise GradeError(
                f"--modules {','.join(modules)}: the kit grades modules {', '.join(kit.modules)}"
            )
        points_file = args.points
        if points_file is None and args.kit and (Path(args.kit) / "points.toml").is_file():
            points_file = Path(args.kit) / "points.toml"
        table = points_mod.load(kit.tiers, points_file)
        if args.test_timeout is not None:
            table.test_timeout = _positive(args.test_timeout, "--test-timeout")
        if args.timeout is not None:
            table.submission_timeout = _positive(args.timeout, "--timeout")
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)

        def write(name: str, report: dict) -> None:
            if out is not None:
                path = out / f"{name}{report_mod.EXTENSIONS[fmt]}"
                tmp = path.with_suffix(path.suffix + ".tmp")
                tmp.write_text(report_mod.render(report, fmt) + "\n", encoding="utf-8")
                os.replace(tmp, path)

        reports = grade_many(
            kit,
            submissions,
            table,
            modules=modules,
            jobs=args.jobs,
            python=args.python,
            hidden=not args.no_hidden,
            log=log,
            on_report=write,
        )
    except (GradeError, KitError, RepoNotFound, points_mod.PointsError, ValueError) as exc:
        print(f"tito course grade: {exc}", file=sys.stderr)
        return 2
    if out is not None:
        book = out / "gradebook.csv"
        book.write_text(report_mod.gradebook(reports), encoding="utf-8")
        print(report_mod.summary_table(reports))
        print(f"\nwrote {len(reports)} {fmt} report{'s' if len(reports) != 1 else ''} and {book}")
    elif len(reports) == 1:
        print(report_mod.render(reports[0], fmt))
    elif fmt == "table":
        print("\n\n".join(report_mod.render_table(r) for r in reports))
        print("\n" + report_mod.summary_table(reports))
    elif fmt == "json":
        import json

        print(json.dumps(reports, indent=1))
    elif fmt == "csv":
        print(report_mod.gradebook(reports), end="")
    else:
        print(
            "tito course grade: --format gradescope with several submissions needs --out DIR", file=sys.stderr
        )
        return 2
    full = all(r["score"] >= r["max_score"] > 0 for r in reports)
    return 0 if full else 1


def _positive(value: float, name: str) -> float:
    import math

    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value}")
    return value


def _kit(args) -> int:
    import shutil

    from tinytorch.milestones.course.kit import KitError, check_kit, repository_kit
    from tinytorch.milestones.course.repo import RepoNotFound

    log = lambda msg: print(f"... {msg}", file=sys.stderr, flush=True)  # noqa: E731
    try:
        tiers = _tiers_arg(args)
        if not tiers:
            raise ValueError("give --tier (or --tiers foundation,architecture)")
        kit = repository_kit(tiers, log=log)
        out = Path(args.out).resolve()
        if out.exists() and any(out.iterdir()):
            raise ValueError(f"{out} exists and is not empty")
        shutil.copytree(kit.path, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns("env-*", "*.lock"))
        print(check_kit(out))
    except (KitError, RepoNotFound, ValueError) as exc:
        print(f"tito course kit: {exc}", file=sys.stderr)
        return 2
    _print_unreached(kit)
    print(f"wrote the grading kit to {out}: tito course grade SUBMISSION... --kit {out}")
    return 0


def _print_unreached(kit) -> None:
    from tinytorch.milestones.course.grade import unreached_blocks

    unreached = unreached_blocks(kit)
    if unreached:
        print(
            f"note: {len(unreached)} solution functions are called by no graded test on the reference "
            "(the static stub check still catches them unwritten):"
        )
        for line in unreached:
            print(f"  Module {line}")


def _kit_check(args) -> int:
    from tinytorch.milestones.course.kit import KitError, check_kit

    try:
        print(check_kit(args.kit))
    except KitError as exc:
        print(f"tito course kit-check: {exc}", file=sys.stderr)
        return 2
    return 0


def _autograder(args) -> int:
    from tinytorch.milestones.course import points as points_mod
    from tinytorch.milestones.course.kit import KitError, make_bundle, repository_kit, zip_bundle
    from tinytorch.milestones.course.repo import RepoNotFound, find_root

    log = lambda msg: print(f"... {msg}", file=sys.stderr, flush=True)  # noqa: E731
    try:
        tier, modules = _modules_arg(args)
        tiers = _tiers_arg(args) or ([tier] if tier else None)
        if not tiers:
            raise ValueError("give --tier, --tiers or --modules")
        root = find_root()
        kit = repository_kit(tiers, root, log)
        bundle = make_bundle(kit, Path(args.out), root, modules, args.points, log)
        made = zip_bundle(bundle, Path(args.zip)) if args.zip else None
    except (KitError, RepoNotFound, ValueError, points_mod.PointsError) as exc:
        print(f"tito course autograder: {exc}", file=sys.stderr)
        return 2
    print(f"wrote the Gradescope autograder bundle to {bundle} (setup.sh, run_autograder, kit/)")
    if made:
        print(f"zipped for upload: {made}")
    return 0


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
        by_module: dict[str, int] = {}
        for blocks in results.values():
            for b in blocks:
                by_module[b.module or "?"] = by_module.get(b.module or "?", 0) + 1
        per = ", ".join(f"{n}: {c}" for n, c in sorted(by_module.items()))
        files = sum(1 for b in results.values() if b)
        print(
            f"tinytorch-{tier}: {count} solution blocks in {files} files"
            + (f" (by module: {per})" if per else "")
        )
        for p in problems:
            print(f"  ERROR {p}")
        failed = failed or bool(problems)
    return 1 if failed else 0


def register(subparsers) -> None:
    from tinytorch.milestones.course.report import FORMATS
    from tinytorch.milestones.tiers import TIERS

    parser = subparsers.add_parser(
        "course",
        help="student releases, course configurations, grading",
        description=__doc__.strip().splitlines()[0],
    )
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1], parser=parser)
    sub = parser.add_subparsers(dest="course_command", metavar="ACTION")

    p = sub.add_parser("release", help="write the student release of a tier (run inside the repository)")
    p.add_argument("--tier", choices=TIERS, help="the tier (optional with --modules: their tier)")
    p.add_argument(
        "--modules",
        help="stub only these modules, e.g. 05, 01-03, 01,03,07 (default: every module of the tier)",
    )
    p.add_argument("--out", required=True, help="directory to write (must not exist or be empty)")
    p.add_argument("--force", action="store_true", help="replace an earlier release in --out")
    p.add_argument(
        "--wheels", help="directory of reference wheels (dist/): copies the tiers below into wheels/"
    )
    p.add_argument(
        "--points", help="points TOML for the GitHub Classroom workflow (default: the shipped points)"
    )
    p.add_argument(
        "--wheelhouse",
        help="the course's wheelhouse URL or folder (tito course wheelhouse): the README installs from it "
        "and tito's hints name it (default: $TINYTORCH_WHEELHOUSE)",
    )
    p.add_argument(
        "--notebooks",
        action="store_true",
        help="also write one Jupyter notebook per module into notebooks/ (Jupytext .py and .ipynb)",
    )
    p.add_argument(
        "--with-solutions",
        action="store_true",
        help="the instructor's notebooks: the reference filled in (implies --notebooks)",
    )
    p.add_argument(
        "--nbgrader",
        action="store_true",
        help="--out is an nbgrader course directory: write source/NN_name/ per module (the instructor's "
        "notebook and a release of that module) and nbgrader_config.py",
    )
    p.add_argument(
        "--no-import-check",
        action="store_true",
        help="skip importing the release (when the other tiers are not installed here)",
    )
    p.set_defaults(func=_release, parser=p)

    p = sub.add_parser("configs", help="the course configurations and the commands each needs")
    p.set_defaults(func=_configs, parser=p)

    p = sub.add_parser(
        "points", help="print the default points TOML of a tier (edit it, pass it with --points)"
    )
    p.add_argument("--tier", required=True, choices=TIERS)
    p.set_defaults(func=_points, parser=p)

    p = sub.add_parser(
        "grade", help="grade submissions (student releases) with the reference tests and points"
    )
    p.add_argument("submissions", nargs="+", metavar="SUBMISSION", help="student release directories")
    p.add_argument("--tier", choices=TIERS, help="the tier graded (default: from the releases)")
    p.add_argument("--tiers", help="several tiers built by the same students, e.g. foundation,architecture")
    p.add_argument(
        "--modules", help="grade only these modules (e.g. 05); other files come from the reference"
    )
    p.add_argument("--jobs", type=int, default=1, help="submissions graded in parallel (default 1)")
    p.add_argument("--out", help="write one report per submission and gradebook.csv into this directory")
    p.add_argument("--format", choices=FORMATS, default="table", help="report format (default table)")
    p.add_argument("--json", action="store_true", help="the same as --format json")
    p.add_argument("--points", help="points TOML (default: the shipped points, or the kit's points.toml)")
    p.add_argument("--kit", help="grade with this kit (tito course kit / the Gradescope bundle's kit/)")
    p.add_argument("--python", help="run the tests with this Python (its environment prepared by setup.sh)")
    p.add_argument("--test-timeout", type=float, help="seconds per test (default: the points file's)")
    p.add_argument("--timeout", type=float, help="seconds per submission (default: the points file's)")
    p.add_argument("--no-hidden", action="store_true", help="run only the visible tests")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--verbose", action="store_true", help="progress lines even with machine-readable output")
    p.set_defaults(func=_grade, parser=p)

    p = sub.add_parser("kit", help="write a grading kit (wheels, tests, hidden tests, reference inventory)")
    p.add_argument("--tier", choices=TIERS)
    p.add_argument("--tiers", help="several tiers graded together, e.g. foundation,architecture")
    p.add_argument("--out", required=True, help="directory to write")
    p.set_defaults(func=_kit, parser=p)

    p = sub.add_parser("kit-check", help="check that a directory is a usable grading kit")
    p.add_argument("kit")
    p.set_defaults(func=_kit_check, parser=p)

    p = sub.add_parser(
        "autograder", help="write a Gradescope autograder bundle (setup.sh, run_autograder, kit)"
    )
    p.add_argument("--tier", choices=TIERS)
    p.add_argument("--tiers", help="several tiers graded together, e.g. foundation,architecture")
    p.add_argument("--modules", help="grade only these modules (a weekly assignment)")
    p.add_argument("--points", help="points TOML (default: the shipped points)")
    p.add_argument("--out", required=True, help="bundle directory to write")
    p.add_argument("--zip", help="also write this zip for upload to Gradescope")
    p.set_defaults(func=_autograder, parser=p)

    p = sub.add_parser("check-markers", help="check the solution markers of every package (repository only)")
    p.set_defaults(func=_check_markers, parser=p)

    from tinytorch.milestones.course.wheelhouse import register_command  # tito course wheelhouse

    register_command(sub)
