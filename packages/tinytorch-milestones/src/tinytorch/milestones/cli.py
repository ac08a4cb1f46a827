"""The ``tito`` command: one entry point, one subcommand module per topic.

Each module in ``tinytorch.milestones.commands`` exposes ``register(subparsers)``,
which adds its parser and sets ``func(args) -> int`` (the exit code).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMANDS = ("milestone", "data", "system", "module", "course")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tito",
        description="TinyTorch course tool: run milestones, manage data, check modules, build releases.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"tinytorch.milestones.commands.{name}").register(subparsers)
    return parser


BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def limit_blas_threads_for_milestones() -> None:
    """Start BLAS with ``$TINYTORCH_BLAS_THREADS`` threads (default 1) for ``tito milestone``.

    Milestone models are small: a second BLAS thread gains little on their
    matmuls, and on a busy machine waiting BLAS threads spin and can make
    training several times slower. BLAS reads these variables once, when NumPy
    is first imported, so this must run before that; a variable the user set
    wins. ``TINYTORCH_BLAS_THREADS=0`` keeps the library's default.
    """
    threads = os.environ.get("TINYTORCH_BLAS_THREADS", "1")
    if threads.strip() in ("", "0") or "numpy" in sys.modules:
        return
    for name in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(name, threads)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["milestone"]:
        limit_blas_threads_for_milestones()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        # `tito` or `tito milestone` alone: show the help of the level the user reached.
        (getattr(args, "parser", None) or parser).print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
