"""The default path of two checkouts of this repository, side by side: is any workload slower?

    python benchmarks/compare_checkouts.py OLD_CHECKOUT NEW_CHECKOUT [--rounds 8] [--workload mlp ...]

e.g. ``git worktree add /tmp/old 42d4cf3`` then ``python benchmarks/compare_checkouts.py /tmp/old .``.
``benchmarks/run.py`` compares implementations of one checkout; this compares two versions of
tinytorch through the API both share, so a change can be judged by the rule "no workload
more than 10% slower on the default path". Each measurement runs in a fresh process that
imports the tiers from ``CHECKOUT/packages/tinytorch-*/src`` (put first on ``sys.path``; the
child checks that they are the ones imported), with one BLAS thread pinned through the
environment before NumPy loads, and reads the CPU clock (every side runs one thread).
The checkouts alternate in rotated order over the rounds.

Workloads (the shapes of ``benchmarks/run.py``, weights from each checkout's own initializers):
  mlp        784-256-128-10, batch 64, SGD          steady step: median of the last half of 400 steps
  lenet      LeNet-5, batch 32, SGD                 120 steps
  cifar_cnn  conv 3-32-64 + 128, batch 32, SGD      30 steps
  gpt        d 128, 2 layers, 4 heads, seq 64, batch 16, Adam    40 steps
  generate   256 greedy tokens after 10, batch 1: tok/s with Module 17's KV cache and without
             (median of runs 2-3), and whether both give the same tokens

Prints, per workload, each checkout's median and min-max over the rounds and the ratio to
the first checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ttbench.harness import child_env  # noqa: E402

TRAINING_STEPS = {"mlp": 400, "lenet": 120, "cifar_cnn": 30, "gpt": 40}
WORKLOADS = (*TRAINING_STEPS, "generate")


def _classifier(name: str, rng):
    """(``Sequential`` model, input Tensor, class targets) of the mlp, lenet or cifar_cnn workload."""
    import numpy as np
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.tensor import Tensor

    if name == "mlp":
        model = Sequential(Linear(784, 256), ReLU(), Linear(256, 128), ReLU(), Linear(128, 10))
        return model, Tensor(rng.standard_normal((64, 784), dtype=np.float32)), rng.integers(0, 10, 64)
    from tinytorch.core.spatial import Conv2d, Flatten, MaxPool2d

    if name == "lenet":
        features = [Conv2d(1, 6, 5), ReLU(), MaxPool2d(2), Conv2d(6, 16, 5), ReLU(), MaxPool2d(2)]
        head = [Linear(256, 120), ReLU(), Linear(120, 84), ReLU(), Linear(84, 10)]
        shape = (32, 1, 28, 28)
    else:
        features = [Conv2d(3, 32, 3, padding=1), ReLU(), MaxPool2d(2)]
        features += [Conv2d(32, 64, 3, padding=1), ReLU(), MaxPool2d(2)]
        head = [Linear(4096, 128), ReLU(), Linear(128, 10)]
        shape = (32, 3, 32, 32)
    model = Sequential(*features, Flatten(), *head)
    return model, Tensor(rng.standard_normal(shape, dtype=np.float32)), rng.integers(0, 10, 32)


def _training_step(name: str):
    """A closure running one training step of ``name`` with the imported tinytorch."""
    import numpy as np
    from tinytorch.core.losses import cross_entropy
    from tinytorch.core.optimizers import SGD, Adam

    rng = np.random.default_rng(0)
    if name == "gpt":
        from tinytorch.models.transformer import GPT

        model = GPT(65, 128, 2, 4, 64)
        opt = Adam(model.parameters(), lr=1e-3)
        x, y = rng.integers(0, 65, (16, 64)), rng.integers(0, 65, 16 * 64)

        def logits():
            return model(x).reshape(-1, 65)  # (B, T, V) -> (B*T, V)

    else:
        model, x, y = _classifier(name, rng)
        opt = SGD(model.parameters(), lr=0.01)

        def logits():
            return model(x)  # (B, classes)

    def step():
        opt.zero_grad()
        loss = cross_entropy(logits(), y)
        loss.backward()
        opt.step()

    return step


def _generation() -> dict:
    """tok/s with and without the KV cache, and whether the tokens agree."""
    import time

    import numpy as np
    from tinytorch.models.transformer import GPT

    np.random.seed(0)
    model = GPT(65, 128, 2, 4, 266)
    try:  # Module 17's switch; older checkouts chose the cache per call only
        from tinytorch.generation.kv_cache import enable_kv_cache

        enable_kv_cache(model)
    except ImportError:
        pass
    prompt = np.random.default_rng(2).integers(0, 65, (1, 10))
    report = {}
    for mode in ("cached", "uncached"):
        rates = []
        for _ in range(3):
            start = time.process_time()
            tokens = model.generate(prompt, 256, temperature=0, use_cache=mode == "cached")
            rates.append(256 / (time.process_time() - start))
        report[mode] = statistics.median(rates[1:])  # the first run pays for imports and caches
        report[f"{mode}_tokens"] = tokens.tolist()
    return report


def child(checkout: str, name: str) -> dict:
    """One measurement in this (fresh) process, with the tiers of ``checkout``."""
    import time

    for tier in ("foundation", "architecture", "optimization"):
        sys.path.insert(0, os.path.join(checkout, "packages", f"tinytorch-{tier}", "src"))
    import tinytorch.core.tensor as tensor_module

    if not os.path.realpath(tensor_module.__file__).startswith(os.path.realpath(checkout)):
        raise SystemExit(f"imported {tensor_module.__file__}, not the checkout {checkout}")
    if name == "generate":
        return _generation()
    step = _training_step(name)
    times = []
    for _ in range(TRAINING_STEPS[name]):
        start = time.process_time()
        step()
        times.append(time.process_time() - start)
    return {"steady_ms": statistics.median(times[len(times) // 2 :]) * 1e3}


def measure(checkout: str, name: str) -> dict:
    command = [sys.executable, __file__, "--child", checkout, name]
    # one BLAS/OpenMP thread, pinned before the child loads NumPy
    proc = subprocess.run(command, capture_output=True, text=True, env=child_env(1))
    if proc.returncode:
        raise SystemExit(f"{name} on {checkout} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs="*", help="repository checkouts; the first is the base")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--workload", action="append", choices=WORKLOADS, help="repeatable; default all")
    parser.add_argument("--child", nargs=2, metavar=("CHECKOUT", "WORKLOAD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    if len(args.checkouts) < 2:
        parser.error("give two checkouts (the first is the base)")
    if args.rounds < 1:
        parser.error(f"argument --rounds must be >= 1, got {args.rounds}")
    roots = [os.path.abspath(c) for c in args.checkouts]
    names = args.workload or list(WORKLOADS)
    runs = {(n, r): [] for n in names for r in roots}
    for k in range(args.rounds):
        order = roots[k % len(roots) :] + roots[: k % len(roots)]  # rotate who goes first
        for name in names:
            for root in order:
                runs[(name, root)].append(measure(root, name))
        print(f"round {k + 1}/{args.rounds} done", file=sys.stderr)
    for name in names:
        keys = ("cached", "uncached") if name == "generate" else ("steady_ms",)
        for key in keys:
            unit = "tok/s" if name == "generate" else "ms"
            base = statistics.median(r[key] for r in runs[(name, roots[0])])
            for root in roots:
                values = [r[key] for r in runs[(name, root)]]
                mid = statistics.median(values)
                line = f"{name:10s} {key:10s} {root}: {mid:9.3f} {unit} ({min(values):.3f}-{max(values):.3f})"
                line += f"  x{mid / base:.3f} of the first"
                if name == "generate" and key == "cached":
                    last = runs[(name, root)][-1]
                    line += f"; cached tokens == uncached: {last['cached_tokens'] == last['uncached_tokens']}"
                print(line)


if __name__ == "__main__":
    main()
