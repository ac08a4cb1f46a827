#!/usr/bin/env python
"""Scaling curves (batch, sequence length, width): tinytorch, the NumPy floor, PyTorch.

    python benchmarks/sweep.py                # about 10-15 minutes on 2 shared cores
    python benchmarks/sweep.py --plot-only    # redraw results/sweep.png from results/sweep.json

See ``ttbench/sweep.py`` and benchmarks/README.md.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ttbench.sweep import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
