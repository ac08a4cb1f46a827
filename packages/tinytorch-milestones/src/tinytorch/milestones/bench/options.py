"""Command-line options shared by ``benchmarks/run.py`` and ``tito benchmark`` (no heavy imports)."""

from __future__ import annotations

import argparse

WORKLOAD_NAMES = ("mlp", "lenet", "cifar_cnn", "gpt", "generate_kv")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick", action="store_true", help="smaller time budget and 64-token generation (< 40 s)"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per workload")
    parser.add_argument(
        "--workload",
        action="append",
        choices=WORKLOAD_NAMES,
        metavar="NAME",
        help=f"run only this workload (repeatable): {', '.join(WORKLOAD_NAMES)}",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="BLAS threads for NumPy and PyTorch (default: NumPy's setting)",
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall time (default) or this process's CPU time, steadier when other jobs share the CPUs "
        "(use with --threads 1: with more threads CPU time adds up every thread)",
    )
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when it is installed")
