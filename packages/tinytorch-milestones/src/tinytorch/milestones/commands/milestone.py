"""``tito milestone list | info ID | run ID|all``: the six landmark results, re-run on TinyTorch.

Exit codes of ``run``: 0 when every part that ran passed; 1 when a part failed;
3 when a single milestone was asked for and none of its parts could run
(its tier is not installed, its data is not cached). ``list`` and ``info``
return 0; a bad id is a usage error (2).
"""

from __future__ import annotations

import json
import sys

from tinytorch.milestones import runner, tiers
from tinytorch.milestones.cli import non_negative_int, positive_int

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOTHING_RAN = 3


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "milestone",
        help="list, explain and run the six milestones",
        description="The six milestones: landmark results of the field re-run on TinyTorch, each with a "
        "verdict measured on held-out data.",
    )
    parser.set_defaults(func=None, parser=parser)
    sub = parser.add_subparsers(dest="milestone_command", metavar="ACTION")

    p_list = sub.add_parser(
        "list",
        help="id, year, title, tiers needed, ready or what to install",
        description="Every milestone with the tiers it needs and whether it can run here.",
    )
    p_list.set_defaults(func=cmd_list, parser=p_list)

    p_info = sub.add_parser(
        "info",
        help="history, architecture, what it proves, the criterion",
        description="The story of one milestone, its model(s) and its success criteria.",
    )
    p_info.add_argument("id", help="milestone id, 01-06")
    p_info.set_defaults(func=cmd_info, parser=p_info)

    p_run = sub.add_parser(
        "run",
        help="run one milestone or all of them",
        description="Run a milestone (or all): progress bars, then one verdict per part. "
        "Exit 0 only if every "
        "part that ran passed; 3 if a single requested milestone could not run at all.",
    )
    p_run.add_argument("id", help="milestone id (01-06) or 'all'")
    p_run.add_argument("--part", type=positive_int, default=None, metavar="N", help="run only part N")
    p_run.add_argument(
        "--seed", type=non_negative_int, default=0, metavar="S", help="random seed >= 0 (default 0)"
    )
    p_run.add_argument(
        "--download",
        action="store_true",
        help="download MNIST / CIFAR-10 for the parts that need them (else they skip unless cached)",
    )
    p_run.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per part on stdout, then a summary object (text and progress bars go to "
        "stderr); the last line is JSON also on failure",
    )
    p_run.add_argument(
        "--plot",
        metavar="DIR",
        default=None,
        help="write training curves as PNG into DIR (needs matplotlib: tinytorch-milestones[plot])",
    )
    p_run.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p_run.set_defaults(func=cmd_run, parser=p_run)


def _status(m: runner.Milestone) -> str:
    missing = m.missing_tiers()
    if not missing:
        return "ready"
    return "needs " + ", ".join(f"tinytorch-{t}" for t in missing)


def cmd_list(args) -> int:
    from tinytorch.milestones.course.wheelhouse import install_command

    milestones = runner.all_milestones()
    rows = [(m.id, str(m.year), m.title, "+".join(m.tiers), _status(m)) for m in milestones]
    header = ("id", "year", "title", "tiers", "status")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(4)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
    print(fmt.format(*header))
    print(fmt.format(*("-" * w for w in widths), "-" * 6))
    for row in rows:
        print(fmt.format(*row))
    missing = list(dict.fromkeys(t for m in milestones for t in m.missing_tiers()))
    if missing:
        print(f"\nto install what is missing: {install_command(*(f'tinytorch-{t}' for t in missing))}")
    return 0


def cmd_info(args) -> int:
    try:
        m = runner.get(args.id)
    except ValueError as exc:
        print(f"tito milestone info: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"Milestone {m.id} ({m.year}): {m.title}")
    print(f"Tiers needed: {', '.join('tinytorch-' + t for t in m.tiers)}  [{_status(m)}]")
    for tier in m.missing_tiers():
        print(f"  {tiers.install_hint(tier)}")
    print("\nHistory")
    for paragraph in m.history.strip().split("\n\n"):
        print("\n".join("  " + line for line in runner._wrap(paragraph, 76)))
        print()
    print("Architecture")
    print("\n".join("  " + line for line in m.architecture.strip("\n").splitlines()))
    print("\nWhat it proves")
    print("\n".join("  " + line for line in runner._wrap(m.proves, 76)))
    print("\nParts")
    for p in m.parts:
        extra = "  (downloads data: run with --download)" if p.download else ""
        needs = [t for t in p.tiers if t not in m.tiers]
        if needs:
            extra += f"  (also needs tinytorch-{', tinytorch-'.join(needs)})"
        print(f"  {p.number}. {p.title}{extra}")
        print(f"     criterion: {p.criterion}")
    return 0


def cmd_run(args) -> int:
    try:
        milestones = runner.all_milestones() if args.id == "all" else [runner.get(args.id)]
        if args.part is not None:
            for m in milestones:
                m.part(args.part)
    except ValueError as exc:
        print(f"tito milestone run: {exc}", file=sys.stderr)
        if args.json:
            print(json.dumps({"error": f"usage: {exc}", "exit_code": EXIT_USAGE}))
        return EXIT_USAGE
    text = sys.stderr if args.json else sys.stdout
    if args.plot is not None:
        if not runner.matplotlib_available():
            print(
                "--plot: matplotlib is not installed, so no PNG will be written "
                "(pip install 'matplotlib>=3.5')",
                file=text,
            )
        else:
            problem = _unwritable(args.plot)
            if problem:
                print(f"--plot: {problem}; the milestones run without writing curves", file=text)
    # Ctrl-C or an OS error mid-run reaches tito's main(), which prints one line (and, with
    # --json, a closing {"error": ...} object).
    records = runner.run_milestones(
        milestones,
        part=args.part,
        seed=args.seed,
        download=args.download,
        json_mode=args.json,
        plot_dir=args.plot,
        progress=not args.no_progress,
    )
    return _summary(records, args, text)


def _unwritable(directory: str) -> str | None:
    """Why curves cannot be written into ``directory`` (made if missing), or None when they can."""
    import os
    import tempfile

    from tinytorch.milestones.cli import describe_os_error

    try:
        os.makedirs(directory, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        return f"cannot write into {directory}: {describe_os_error(exc)}"
    return None


def _summary(records: list[dict], args, text) -> int:
    """Print the summary table (and, with --json, the summary object); return the exit code."""
    ran = [r for r in records if not r.get("skipped")]
    failed = [r for r in ran if not r["passed"]]
    skipped = [r for r in records if r.get("skipped")]
    print("", file=text)
    print("Summary", file=text)
    for r in records:
        status = "SKIP" if r.get("skipped") else ("PASS" if r["passed"] else "FAIL")
        seconds = f"{r['seconds']:6.1f} s" if "seconds" in r else " " * 8
        detail = r["title"]
        if r.get("skipped"):
            reason = r["reason"] if len(r["reason"]) <= 70 else r["reason"].split(":")[0][:67] + ": see above"
            detail += f"  ({reason})"
        print(f"  {r['milestone']}.{r['part']}  {status}  {seconds}  {detail}", file=text)
    total = sum(r.get("seconds", 0) for r in ran)
    print(f"{len(ran) - len(failed)} passed, {len(failed)} failed, {len(skipped)} skipped in {total:.1f} s",
          file=text)
    if failed:
        code = EXIT_FAILED
    elif not ran and args.id != "all":
        code = EXIT_NOTHING_RAN
    else:
        code = 0
    if args.json:
        summary = {"summary": True, "passed": len(ran) - len(failed), "failed": len(failed),
                   "skipped": len(skipped), "seconds": round(total, 3), "exit_code": code}
        print(json.dumps(summary), flush=True)
    return code
