"""``tito benchmark``: time the installed tiers against the NumPy floor and PyTorch.

Runs the same suite as ``python benchmarks/run.py``: every workload is timed
three ways in one process (tinytorch, a hand-written NumPy model with a manual
backward, PyTorch on CPU when installed) and reported as ratios. A workload
whose tier is not installed is reported as skipped with the install hint.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options shared by ``tito benchmark`` and ``benchmarks/run.py``."""
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and tokens (about 30 s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per workload, as a list")
    parser.add_argument(
        "--workload",
        action="append",
        metavar="NAME",
        help="run only this workload (repeatable): mlp, lenet, cifar_cnn, gpt, generate_kv",
    )
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when it is installed")


def run(args: argparse.Namespace) -> int:
    # Imported here so `tito --help` stays fast and never imports the tiers.
    from tinytorch.milestones.bench.harness import main_from_args

    return main_from_args(args)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "benchmark",
        help="time tinytorch against hand-written NumPy and PyTorch",
        description=__doc__.strip().splitlines()[0],
    )
    add_arguments(parser)
    parser.set_defaults(func=run, parser=parser)
