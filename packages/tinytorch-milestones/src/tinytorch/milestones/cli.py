"""The ``tito`` command: one entry point, one subcommand module per topic.

Each module in ``tinytorch.milestones.commands`` exposes ``register(subparsers)``,
which adds its parser and sets ``func(args) -> int`` (the exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ("milestone", "data", "system", "module", "course", "benchmark")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tito",
        description="TinyTorch course tool: run milestones, manage data, check modules, build releases.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"tinytorch.milestones.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        # `tito` or `tito milestone` alone: show the help of the level the user reached.
        (getattr(args, "parser", None) or parser).print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
