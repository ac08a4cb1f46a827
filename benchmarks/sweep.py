#!/usr/bin/env python
"""Scaling curves (batch, sequence length, width): tinytorch, the NumPy floor, PyTorch, Module 18.

    python benchmarks/sweep.py                # about 20 minutes on 2 shared cores (3 repeats)
    python benchmarks/sweep.py --repeats 1    # one process per point and implementation
    python benchmarks/sweep.py --plot-only    # redraw results/sweep.png from results/sweep.json

See ``ttbench/sweep.py`` and benchmarks/README.md.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ttbench.sweep import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
