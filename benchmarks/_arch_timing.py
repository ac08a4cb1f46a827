"""Cost of the architecture tier's plain lessons against the old speed tricks (a tool, not a test).

Times, in a fresh process per measurement, one BLAS thread, the same workloads on
several source trees ("variants") of the foundation + architecture tiers:

* ``lenet``: one SGD training step (forward, backward, update), batch 32 of 1x28x28:
  conv 6 5x5 pad 2, ReLU, maxpool 2, conv 16 5x5, ReLU, maxpool 2, fc 120, 84, 10.
* ``cifar``: one SGD step, batch 32 of 3x32x32: conv 32 3x3 pad 1, ReLU, pool,
  conv 64 3x3 pad 1, ReLU, pool, fc 128, 10.
* ``gpt``: one SGD step of a GPT (vocab 65, d 128, 4 heads, 2 layers, seq 64), batch 16.
* ``gen_cached`` / ``gen_uncached``: greedy generation of 256 tokens after a 10-token
  prompt, batch 1 (context 266), with a KV cache written here (the protocol of
  ``tinytorch.core.attention``, preallocated buffers as Module 17's) and without.

Variants (default: all three):

* ``main``: the ``main`` branch's foundation and architecture (old foundation too:
  Linear ``(in, out)``, no-grad fast path in ``Function.apply``).
* ``old-arch``: the ``restructure`` branch's old architecture code (the speed tricks:
  two im2col layouts, fused embedding, stacked-q|k|v and raw-array decoding, MLP
  fast path) on *this* worktree's foundation, patched only where the weight layout
  changed (``(out, in)``), so the difference to ``new`` is the architecture tier alone.
* ``new``: this worktree's foundation and architecture.

Protocol: ``--rounds`` rounds; in each round every workload runs once per variant,
each in its own process (variant order rotated per round); a process does warm-up
steps, then times several and reports the median step. The table shows the median
over rounds and the min-max spread, CPU time (``time.process_time``) and wall time.

    python benchmarks/_arch_timing.py --rounds 5
    python benchmarks/_arch_timing.py --rounds 3 --workload gen_cached --variant new --variant old-arch
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIERS = ("foundation", "architecture")
WORKLOADS = ("lenet", "cifar", "gpt", "gen_cached", "gen_uncached")
# (warm-up steps, timed steps) per process
REPS = {"lenet": (3, 15), "cifar": (2, 6), "gpt": (2, 6), "gen_cached": (1, 3), "gen_uncached": (1, 1)}
ONE_THREAD = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}

# restructure's old architecture code stored Linear weights (in, out); the foundation now
# stores (out, in). These are the only edits needed to run it on the new foundation.
OLD_ARCH_PATCHES = {
    "models/transformer.py": [
        ("h = h @ fc1.weight.data  # (*, hidden)", "h = h @ fc1.weight.data.T  # (*, hidden)"),
        ("h = h @ fc2.weight.data  # (*, E)", "h = h @ fc2.weight.data.T  # (*, E)"),
    ],
    "core/attention.py": [
        (
            "W = np.concatenate(arrays[:3], axis=1)  # (E, 3E)",
            "W = np.concatenate(arrays[:3], axis=0).T  # (E, 3E)",
        ),
    ],
}


# --------------------------------------------------------------------------- source trees


def export(rev: str, dest: Path) -> list[str]:
    """``git archive`` the foundation and architecture sources of ``rev`` into ``dest``; their src dirs."""
    dest.mkdir(parents=True)
    paths = [f"packages/tinytorch-{t}/src" for t in TIERS]
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, *paths], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return [str(dest / p) for p in paths]


def prepare_variants(names, work: Path) -> dict[str, list[str]]:
    """Source directories (sys.path entries) of each named variant."""
    here = [str(ROOT / f"packages/tinytorch-{t}/src") for t in TIERS]
    out = {}
    for name in names:
        if name == "new":
            out[name] = here
        elif name == "main":
            out[name] = export("main", work / "main")
        elif name == "old-arch":
            _, arch = export("restructure", work / "old-arch")
            for rel, edits in OLD_ARCH_PATCHES.items():
                path = Path(arch) / "tinytorch" / rel
                text = path.read_text()
                for old, new in edits:
                    if old not in text:
                        raise SystemExit(f"old-arch patch does not apply to {rel}: {old!r}")
                    text = text.replace(old, new)
                path.write_text(text)
            out[name] = [here[0], arch]
        else:
            raise SystemExit(f"unknown variant {name!r}")
    return out


# --------------------------------------------------------------------------- child: one measurement


class ProtocolKVCache:
    """KV cache with preallocated buffers, speaking the protocol of ``tinytorch.core.attention``."""

    def __init__(self, batch_size, max_seq_len, num_layers, num_heads, head_dim):
        import numpy as np

        shape = (num_layers, batch_size, num_heads, max_seq_len, head_dim)
        self.k, self.v = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        self.seq_len, self.new = 0, 0

    def update(self, layer_idx, key, value):
        t = key.shape[2]
        self.k[layer_idx, :, :, self.seq_len : self.seq_len + t] = key
        self.v[layer_idx, :, :, self.seq_len : self.seq_len + t] = value
        self.new = t

    def get(self, layer_idx):
        end = self.seq_len + self.new
        return self.k[layer_idx, :, :, :end], self.v[layer_idx, :, :, :end]

    def advance(self, n):
        self.seq_len += n
        self.new = 0


def build(workload: str):
    """A zero-argument callable doing one unit of work (imports whichever tinytorch is on sys.path)."""
    import numpy as np
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Module
    from tinytorch.core.losses import cross_entropy
    from tinytorch.core.optimizers import SGD
    from tinytorch.core.tensor import Tensor

    np.random.seed(0)
    rng = np.random.default_rng(0)

    class Chain(Module):
        def __init__(self, *layers):
            super().__init__()
            self.layers = list(layers)

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    def train_step(model, x, y):
        opt = SGD(model.parameters(), lr=0.01)

        def step():
            opt.zero_grad()
            loss = cross_entropy(model(x), y)
            loss.backward()
            opt.step()

        return step

    if workload in ("lenet", "cifar"):
        from tinytorch.core.spatial import Conv2d, Flatten, MaxPool2d

        if workload == "lenet":
            model = Chain(
                Conv2d(1, 6, 5, padding=2), ReLU(), MaxPool2d(2), Conv2d(6, 16, 5), ReLU(), MaxPool2d(2),
                Flatten(), Linear(400, 120), ReLU(), Linear(120, 84), ReLU(), Linear(84, 10),
            )  # fmt: skip
            x = Tensor(rng.standard_normal((32, 1, 28, 28)).astype(np.float32))
        else:
            model = Chain(
                Conv2d(3, 32, 3, padding=1), ReLU(), MaxPool2d(2), Conv2d(32, 64, 3, padding=1), ReLU(),
                MaxPool2d(2), Flatten(), Linear(4096, 128), ReLU(), Linear(128, 10),
            )  # fmt: skip
            x = Tensor(rng.standard_normal((32, 3, 32, 32)).astype(np.float32))
        return train_step(model, x, Tensor(rng.integers(0, 10, 32)))

    from tinytorch.models.transformer import GPT

    if workload == "gpt":
        model = GPT(65, 128, num_layers=2, num_heads=4, max_seq_len=64)
        seq = rng.integers(0, 65, (16, 65))
        return train_step(model, Tensor(seq[:, :-1]), Tensor(seq[:, 1:]))

    model = GPT(65, 128, num_layers=2, num_heads=4, max_seq_len=266)
    prompt = rng.integers(0, 65, (1, 10))

    def factory(batch_size):
        return ProtocolKVCache(batch_size, 266, 2, 4, 32)

    if hasattr(model, "kv_cache_factory"):  # the contract's API
        model.kv_cache_factory = factory
    else:  # the old API: GPT._kv_cache(batch_size) imported the optimization tier's cache
        model._kv_cache = factory
    use_cache = workload == "gen_cached"
    return lambda: model.generate(prompt, 256, temperature=0, use_cache=use_cache)


def child(workload: str, sources: list[str]) -> None:
    # Only the variant's sources: drop every tinytorch source tree an editable install put on sys.path.
    sys.path[:] = sources + [p for p in sys.path if not re.search(r"packages/tinytorch-[a-z]+/src", p)]
    step = build(workload)
    warm, timed = REPS[workload]
    for _ in range(warm):
        step()
    cpu, wall = [], []
    for _ in range(timed):
        c, w = time.process_time(), time.perf_counter()
        step()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    import tinytorch.core.tensor as tensor_module

    print(
        json.dumps(
            {"cpu": statistics.median(cpu), "wall": statistics.median(wall), "from": tensor_module.__file__}
        )
    )


# --------------------------------------------------------------------------- driver


def load() -> str:
    """The 1, 5 and 15 minute load averages (the machine is shared)."""
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workload", action="append", choices=WORKLOADS)
    parser.add_argument("--variant", action="append", choices=("main", "old-arch", "new"))
    parser.add_argument("--json", type=Path, help="also write the raw measurements here")
    parser.add_argument("--child", nargs=2, metavar=("WORKLOAD", "SOURCES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1].split(os.pathsep))
        return
    workloads = args.workload or list(WORKLOADS)
    names = args.variant or ["main", "old-arch", "new"]
    results = {(w, v): [] for w in workloads for v in names}
    env = {**os.environ, **ONE_THREAD}
    with tempfile.TemporaryDirectory() as tmp:
        sources = prepare_variants(names, Path(tmp))
        print(f"load average at start: {load()}", flush=True)
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for w in workloads:
                for v in order:
                    run = subprocess.run(
                        [sys.executable, __file__, "--child", w, os.pathsep.join(sources[v])],
                        capture_output=True, text=True, env=env,
                    )  # fmt: skip
                    if run.returncode:
                        raise SystemExit(f"{v} {w} failed:\n{run.stderr}")
                    m = json.loads(run.stdout.strip().splitlines()[-1])
                    results[(w, v)].append(m)
            print(f"round {r + 1}/{args.rounds} done, load average {load()}", flush=True)
    print(f"load average at end: {load()}\n")
    others = [v for v in names if v != "new"] if "new" in names else []
    header = [f"{v} CPU ms (min-max)" for v in names] + [f"new / {v}" for v in others]
    header += [f"{v} wall ms" for v in names]
    print("| workload | " + " | ".join(header) + " |")
    print("|---" * (1 + len(header)) + "|")

    def median(w, v, clock="cpu"):
        return statistics.median(1e3 * m[clock] for m in results[(w, v)])

    for w in workloads:
        cells = []
        for v in names:
            cpu = [1e3 * m["cpu"] for m in results[(w, v)]]
            cells.append(f"{median(w, v):.1f} ({min(cpu):.1f}-{max(cpu):.1f})")
        cells += [f"{median(w, 'new') / median(w, v):.2f}x" for v in others]
        cells += [f"{median(w, v, 'wall'):.1f}" for v in names]
        print(f"| {w} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps({f"{w}/{v}": ms for (w, v), ms in results.items()}, indent=1))


if __name__ == "__main__":
    main()
