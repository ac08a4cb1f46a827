#!/usr/bin/env python
"""tinytorch vs the hand-written NumPy floor vs PyTorch (CPU), every measurement in a fresh process.

    python benchmarks/run.py                          # 1 and 2 threads, 5 interleaved rounds, wall clock
    python benchmarks/run.py --threads 1 --clock cpu  # steadier on a machine others are using
    python benchmarks/run.py --quick                  # smoke run (2 rounds, short)
    python benchmarks/run.py --workload gpt --json results/run.json

The suite lives beside this file in ``ttbench/`` (see benchmarks/README.md).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ttbench.harness import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
