#!/usr/bin/env python
"""Side-by-side benchmarks: tinytorch vs the hand-written NumPy floor vs PyTorch (CPU).

    python benchmarks/run.py [--quick] [--json] [--workload NAME] [--threads N] [--no-torch]

The suite lives in ``tinytorch.milestones.bench`` (so ``tito benchmark`` runs
the same code on the installed tiers); see benchmarks/README.md.
"""

import sys

from tinytorch.milestones.bench.harness import main

if __name__ == "__main__":
    sys.exit(main())
