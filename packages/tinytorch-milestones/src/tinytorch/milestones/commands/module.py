"""``tito module``: the 20 modules, their status, and their tests."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("module", help="list modules, check their status, run their tests")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1], parser=parser)
