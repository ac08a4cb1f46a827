"""``tito course``: student releases of a tier, course configurations, grading."""

from __future__ import annotations


def _not_ready(args) -> int:
    print("tito course: not implemented yet")
    return 1


def register(subparsers) -> None:
    parser = subparsers.add_parser("course", help="student releases, configurations, grading")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1], parser=parser)
