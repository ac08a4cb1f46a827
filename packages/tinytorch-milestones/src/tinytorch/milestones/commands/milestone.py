"""``tito milestone list | info ID | run ID|all``: the six landmark results, re-run on TinyTorch.

Exit codes of ``run``: 0 when every part that ran passed; 1 when a part failed;
3 when a single milestone was asked for and none of its parts could run
(its tier is not installed, its data is not cached). ``list`` and ``info``
return 0; a bad id is a usage error (2).
"""

from __future__ import annotations

import sys

from tinytorch.milestones import runner

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
    p_run.add_argument("--part", type=int, default=None, metavar="N", help="run only part N")
    p_run.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p_run.add_argument(
        "--download",
        action="store_true",
        help="download MNIST / CIFAR-10 for the parts that need them (else they skip unless cached)",
    )
    p_run.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per part on stdout (text and progress bars go to stderr)",
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
    return "needs " + ", ".join(f"pip install tinytorch-{t}" for t in missing)


def cmd_list(args) -> int:
    rows = [(m.id, str(m.year), m.title, "+".join(m.tiers), _status(m)) for m in runner.all_milestones()]
    header = ("id", "year", "title", "tiers", "status")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(4)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
    print(fmt.format(*header))
    print(fmt.format(*("-" * w for w in widths), "-" * 6))
    for row in rows:
        print(fmt.format(*row))
    return 0


def cmd_info(args) -> int:
    try:
        m = runner.get(args.id)
    except ValueError as exc:
        print(f"tito milestone info: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"Milestone {m.id} ({m.year}): {m.title}")
    print(f"Tiers needed: {', '.join('tinytorch-' + t for t in m.tiers)}  [{_status(m)}]")
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
        return EXIT_USAGE
    text = sys.stderr if args.json else sys.stdout
    if args.plot is not None and not runner.matplotlib_available():
        print(
            "--plot: matplotlib is not installed, so no PNG will be written "
            "(pip install 'tinytorch-milestones[plot]')",
            file=text,
        )
    records = runner.run_milestones(
        milestones,
        part=args.part,
        seed=args.seed,
        download=args.download,
        json_mode=args.json,
        plot_dir=args.plot,
        progress=not args.no_progress,
    )
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
    print(
        f"{len(ran) - len(failed)} passed, {len(failed)} failed, {len(skipped)} skipped "
        f"in {sum(r.get('seconds', 0) for r in ran):.1f} s",
        file=text,
    )
    if failed:
        return EXIT_FAILED
    if not ran and args.id != "all":
        return EXIT_NOTHING_RAN
    return 0
