"""Plain path vs Module 18's accelerated path: training steps and generation, timed side by side.

A measurement tool, not a test (no assertion on time anywhere). Each measurement
runs in a fresh process (no warmed-up allocator carried over), BLAS pinned to one
thread through the environment before NumPy loads; variants are interleaved
round by round (the machine is shared: a burst of load slows every variant of a
round alike) and the table reports the median over rounds.

    python benchmarks/_opt_timing.py                    # every workload, 5 rounds
    python benchmarks/_opt_timing.py --rounds 3 --workloads lenet gpt
    python benchmarks/_opt_timing.py --baseline-python /path/to/other/venv/bin/python   # + that checkout

With ``--baseline-python`` every workload also runs its plain variants (``base_plain``, and
``base_no_cache``, ``base_kv_cache``, ``base_fused`` for generation) under another interpreter, i.e.
whatever tinytorch that environment imports (e.g. the main branch before the restructure), interleaved
with the others.

Workloads (the shapes of ``benchmarks/``):

* ``lenet``: Conv(1->6, 5) ReLU MaxPool2 Conv(6->16, 5) ReLU MaxPool2 256-120-84-10, batch 32 of 1x28x28, SGD;
* ``cifar_cnn``: Conv(3->32, 3, pad 1) ReLU MaxPool2 Conv(32->64, 3, pad 1) ReLU MaxPool2 4096-128-10,
  batch 32 of 3x32x32, SGD;
* ``gpt``: GPT (vocab 65, d 128, 4 heads, 2 layers), batch 16 x 64 tokens, Adam;
  for each: ``plain`` (the model as built) and ``accelerated`` (``accelerate(model)``; the convolution
  networks also ``accelerated_no_reuse``, without the im2col workspace), one training step
  (forward, cross-entropy, backward, update), median over ``--steps`` steps after 3 warm-up steps;
* ``generate``: the same GPT with room for 10 + 256 tokens, greedy decoding of 256 tokens after a 10-token
  prompt: ``no_cache`` (``use_cache=False``), ``kv_cache`` (``enable_kv_cache``) and ``fused``
  (``fast_generate``); tokens/s of one timed run after a 16-token warm-up, and whether the tokens are
  identical to ``no_cache``'s;
* ``generate_d256``: the same with d 256, milestone 06's KV-cache model (its criterion: >= 10x, same tokens).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import time

VARIANTS = {
    "lenet": ("plain", "accelerated", "accelerated_no_reuse"),
    "cifar_cnn": ("plain", "accelerated", "accelerated_no_reuse"),
    "gpt": ("plain", "accelerated"),
    "generate": ("no_cache", "kv_cache", "fused"),
    "generate_d256": ("no_cache", "kv_cache", "fused"),
}
NEW_TOKENS, PROMPT = 256, 10


# ----------------------------------------------------------------------------------------- child side


def _convnet(in_channels, convs, hidden, flat):
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.spatial import Conv2d, Flatten, MaxPool2d

    layers, c = [], in_channels
    for out, k, pad in convs:
        layers += [Conv2d(c, out, k, padding=pad), ReLU(), MaxPool2d(2)]
        c = out
    layers.append(Flatten())
    sizes = (flat, *hidden, 10)
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(ReLU())
    return Sequential(*layers)


def _train_case(workload):
    """(model, x, y, optimizer class and lr) of a training workload."""
    import numpy as np
    from tinytorch.core.optimizers import SGD, Adam

    np.random.seed(0)
    rng = np.random.default_rng(1)
    if workload == "lenet":
        model = _convnet(1, ((6, 5, 0), (16, 5, 0)), (120, 84), 256)
        x, y = rng.standard_normal((32, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 32)
        return model, x, y, SGD, 0.01
    if workload == "cifar_cnn":
        model = _convnet(3, ((32, 3, 1), (64, 3, 1)), (128,), 4096)
        x, y = rng.standard_normal((32, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, 32)
        return model, x, y, SGD, 0.01
    from tinytorch.models.transformer import GPT

    model = GPT(65, 128, num_layers=2, num_heads=4, max_seq_len=64)
    tokens = rng.integers(0, 65, (16, 65))
    return model, tokens[:, :-1], tokens[:, 1:], Adam, 1e-3


def child_train(workload, variant, steps):
    from tinytorch.core.losses import cross_entropy
    from tinytorch.core.tensor import Tensor

    model, x, y, opt_cls, lr = _train_case(workload)
    if variant.startswith("accelerated"):
        from tinytorch.optimization.acceleration import accelerate

        model = accelerate(model, reuse_buffers=variant != "accelerated_no_reuse")
    opt = opt_cls(model.parameters(), lr=lr)
    x = Tensor(x)
    times, losses = [], []
    for i in range(3 + steps):
        start = time.perf_counter()
        logits = model(x)
        loss = cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        elapsed = time.perf_counter() - start
        losses.append(float(loss.data))
        if i >= 3:
            times.append(elapsed)
    return {"ms": 1e3 * statistics.median(times), "first_loss": losses[0], "last_loss": losses[-1]}


def child_generate(variant, width=128):
    import numpy as np
    from tinytorch.generation.kv_cache import disable_kv_cache, enable_kv_cache
    from tinytorch.models.transformer import GPT

    np.random.seed(0)
    model = GPT(65, width, num_layers=2, num_heads=4, max_seq_len=PROMPT + NEW_TOKENS)
    prompt = np.random.default_rng(2).integers(0, 65, (1, PROMPT))
    if variant == "kv_cache":
        enable_kv_cache(model)
    else:
        disable_kv_cache(model)
    if variant == "fused":
        try:
            from tinytorch.optimization.acceleration import fast_generate
        except ImportError:  # a baseline checkout from before Module 18 had the fused decoder
            from tinytorch.generation.fused_decoder import FusedGPTDecoder

            def fast_generate(model, prompt, n, temperature):
                return FusedGPTDecoder(model).generate(prompt, n, temperature=temperature)

        def run(n):
            return fast_generate(model, prompt, n, temperature=0)
    else:

        def run(n):
            return model.generate(prompt, n, temperature=0)

    run(16)  # warm-up
    start = time.perf_counter()
    out = np.asarray(run(NEW_TOKENS))
    elapsed = time.perf_counter() - start
    return {
        "tokens_per_s": NEW_TOKENS / elapsed,
        "ms": 1e3 * elapsed,
        "tokens": hashlib.sha1(out.tobytes()).hexdigest()[:12],
    }


# ----------------------------------------------------------------------------------------- parent side


def run_child(workload, variant, steps, python=None) -> dict:
    env = dict(os.environ)
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = "1"  # before NumPy loads in the child
    if variant.startswith("base_"):
        python, variant = python, variant.removeprefix("base_")
    else:
        python = sys.executable
    cmd = [python, __file__, "--child", workload, variant, "--steps", str(steps)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{workload}/{variant} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=15, help="timed training steps per process")
    parser.add_argument("--workloads", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--child", nargs=2, metavar=("WORKLOAD", "VARIANT"), help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--baseline-python", help="also run the plain variants with this interpreter")
    args = parser.parse_args(argv)
    if args.child:
        workload, variant = args.child
        if workload.startswith("generate"):
            result = child_generate(variant, 256 if workload == "generate_d256" else 128)
        else:
            result = child_train(workload, variant, args.steps)
        print(json.dumps(result))
        return 0

    print(f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    variants_of = {w: list(VARIANTS[w]) for w in args.workloads}
    if args.baseline_python:
        for names in variants_of.values():
            names += ["base_" + v for v in names if not v.startswith("accelerated")]
    results = {(w, v): [] for w in args.workloads for v in variants_of[w]}
    order = random.Random(0)
    for r in range(args.rounds):
        for workload in args.workloads:
            variants = list(variants_of[workload])
            order.shuffle(variants)  # interleaved, in a different order every round
            for variant in variants:
                results[workload, variant].append(
                    run_child(workload, variant, args.steps, args.baseline_python)
                )
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    print(f"load average after:  {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")

    print("\n| workload | variant | median ms | range ms | vs first variant | note |")
    print("|---|---|---:|---:|---:|---|")
    for workload in args.workloads:
        base = None
        for variant in variants_of[workload]:
            runs = results[workload, variant]
            ms = [run["ms"] for run in runs]
            med = statistics.median(ms)
            base = base or med
            if workload.startswith("generate"):
                tps = statistics.median(run["tokens_per_s"] for run in runs)
                reference = results[
                    workload, variant.replace("kv_cache", "no_cache").replace("fused", "no_cache")
                ][0]["tokens"]
                same = all(run["tokens"] == reference for run in runs)
                note = f"{tps:.0f} tokens/s, tokens {'identical' if same else 'DIFFERENT'}"
            else:
                note = f"loss {runs[0]['first_loss']:.4f} -> {runs[0]['last_loss']:.4f}"
            spread = f"{min(ms):.2f}-{max(ms):.2f}"
            print(f"| {workload} | {variant} | {med:.2f} | {spread} | {base / med:.2f}x | {note} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({f"{w}/{v}": runs for (w, v), runs in results.items()}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
