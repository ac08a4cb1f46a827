"""``tito benchmark``: time the installed tiers against the NumPy floor and PyTorch.

Runs the same suite as ``python benchmarks/run.py``: every workload is timed
three ways in one process (tinytorch, a hand-written NumPy model with a manual
backward, PyTorch on CPU when installed) and reported as ratios. A workload
whose tier is not installed is reported as skipped with the install hint.
"""

from __future__ import annotations

import argparse

from tinytorch.milestones.bench.options import add_arguments


def run(args: argparse.Namespace) -> int:
    # Imported here so `tito --help` stays fast and never imports the tiers.
    from tinytorch.milestones.bench.harness import main_from_args

    return main_from_args(args)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "benchmark",
        help="time tinytorch against hand-written NumPy and PyTorch",
        description="Time the installed tiers against the hand-written NumPy floor and PyTorch (CPU); "
        "see benchmarks/README.md.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run, parser=parser)
