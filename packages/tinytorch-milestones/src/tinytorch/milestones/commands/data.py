"""``tito data``: list the datasets, download one, show where they live."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="list, download and locate datasets")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1], parser=parser)
