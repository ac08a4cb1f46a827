"""What one fresh benchmark process runs: one workload, one implementation, reported as JSON.

The parent (:mod:`ttbench.harness`) starts ``python -m ttbench.child SPEC`` with
the thread count already pinned in the environment (``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``), so every library reads it before
it loads. This process imports only the library it measures (the floor imports
NumPy alone; tinytorch never sees torch), builds the model from the shared
seeded weights, and then:

* training workloads: runs ``steps`` training steps on one fixed batch, timing
  every step with both the wall clock and the process's CPU clock; the report
  holds every step's times (the first ten are the *first-10-steps* figure, the
  median of the last half the *steady state*), the first loss, and the norm of
  every parameter's gradient after the first step (the parent checks that
  every implementation computed the same numbers);
* generation: greedy decoding of ``tokens`` tokens after a ``prompt``-token
  prompt, batch 1, ``reps`` times; the first run and the median of the others
  are reported with the generated tokens;
* ``peak``: the best float32 GFLOP/s of a square matmul (the machine's scale).

Peak memory is the process's maximum resident set size (``getrusage``), also
given net of what the process held right after its imports (``workload_mb``:
what the model, its activations and its temporaries needed at the peak).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

TRAINING = ("mlp", "lenet", "cifar_cnn", "gpt")
GENERATION = ("generate",)
TRAIN_IMPLS = ("tinytorch", "numpy", "torch", "accelerated")
GEN_IMPLS = (
    "tinytorch_cached",
    "tinytorch_uncached",
    "fused",
    "numpy_cached",
    "numpy_uncached",
    "torch_cached",
    "torch_uncached",
)
# Each training implementation's cached generation: the generation column that stands for it.
CACHED_GEN_IMPL = {
    "tinytorch": "tinytorch_cached",
    "numpy": "numpy_cached",
    "torch": "torch_cached",
    "accelerated": "fused",
}

# Default shape of each workload; a sweep overrides some of these keys.
DEFAULTS = {
    "mlp": {"batch": 64, "width": 256},  # 784-width-width/2-10
    "lenet": {"batch": 32},
    "cifar_cnn": {"batch": 32, "width": 32},  # conv 3->width->2*width
    "gpt": {"batch": 16, "seq": 64, "width": 128},  # vocab 65, 4 heads, 2 layers
    "generate": {"batch": 1, "tokens": 256, "prompt": 10, "width": 128},
}
LR = {"mlp": 0.01, "lenet": 0.01, "cifar_cnn": 0.01, "gpt": 1e-3}


# ----------------------------------------------------------------------------- shapes and cost


def mlp_sizes(cfg: dict) -> tuple:
    return (784, cfg["width"], max(cfg["width"] // 2, 1), 10)


def convnet_spec(name: str, cfg: dict):
    from ttbench import params as P

    if name == "lenet":
        return P.LENET
    w = cfg["width"]
    return P.ConvNetSpec(in_shape=(3, 32, 32), convs=((w, 3, 1), (2 * w, 3, 1)), hidden=(128,))


def gpt_spec(cfg: dict, max_seq_len: int):
    from ttbench import params as P

    d = cfg["width"]
    return P.GPTSpec(vocab_size=65, embed_dim=d, num_layers=2, num_heads=4, max_seq_len=max_seq_len)


def matmul_flops(name: str, cfg: dict) -> float:
    """Floating-point operations of the matrix products in one unit of work (2 per multiply-add).

    Training: forward products times three (the backward pass computes two
    products per forward one). Generation: the forward of every generated
    token against its growing context. Elementwise work is not counted.
    """
    if name == "mlp":
        s = mlp_sizes(cfg)
        return 3 * 2 * cfg["batch"] * sum(a * b for a, b in zip(s[:-1], s[1:]))
    if name in ("lenet", "cifar_cnn"):
        spec = convnet_spec(name, cfg)
        c, h, w = spec.in_shape
        fwd = 0
        for out, k, pad in spec.convs:
            oh, ow = h + 2 * pad - k + 1, w + 2 * pad - k + 1
            fwd += 2 * oh * ow * out * c * k * k
            c, h, w = out, oh // 2, ow // 2
        sizes = (spec.flat, *spec.hidden, spec.classes)
        fwd += sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:]))
        return 3 * cfg["batch"] * fwd
    d, L, V = cfg["width"], 2, 65
    if name == "gpt":
        t = cfg["seq"]
        per_token = 2 * (12 * d * d * L + d * V) + 4 * t * d * L  # attention: full T x T scores
        return 3 * cfg["batch"] * t * per_token
    # generation with a KV cache: token n attends to n keys
    total = 0
    for n in range(cfg["prompt"], cfg["prompt"] + cfg["tokens"]):
        total += 2 * (12 * d * d * L + d * V) + 4 * n * d * L
    return cfg["batch"] * total


# ----------------------------------------------------------------------------- the allocator


def keep_freed_memory_like_tinytorch() -> bool:
    """Give the floor process the glibc thresholds tinytorch sets when it is imported.

    The floor is the bar a NumPy framework is held to, so it runs with the same
    allocator settings as tinytorch (``tinytorch.core.memory``); written out here
    because the floor imports nothing of tinytorch. ``TINYTORCH_MALLOC=default``
    leaves glibc's defaults, as it does for tinytorch.
    """
    import ctypes
    import ctypes.util
    import platform

    if os.environ.get("TINYTORCH_MALLOC", "").strip().lower() == "default":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(libc.mallopt(-3, 256 << 20)) and bool(libc.mallopt(-1, 512 << 20))  # mmap, trim thresholds


# ----------------------------------------------------------------------------- inputs


def inputs(name: str, cfg: dict):
    import numpy as np

    rng = np.random.default_rng(1)
    b = cfg["batch"]
    if name == "mlp":
        return rng.standard_normal((b, 784), dtype=np.float32), rng.integers(0, 10, b)
    if name in ("lenet", "cifar_cnn"):
        spec = convnet_spec(name, cfg)
        return rng.standard_normal((b, *spec.in_shape), dtype=np.float32), rng.integers(0, 10, b)
    seq = rng.integers(0, 65, (b, cfg["seq"] + 1))  # targets: the inputs shifted by one
    return seq[:, :-1].copy(), seq[:, 1:].copy()


def weights(name: str, cfg: dict) -> dict:
    from ttbench import params as P

    if name == "mlp":
        return P.mlp_params(mlp_sizes(cfg))
    if name in ("lenet", "cifar_cnn"):
        return P.convnet_params(convnet_spec(name, cfg))
    if name == "gpt":
        return P.gpt_params(gpt_spec(cfg, cfg["seq"]))
    return P.gpt_params(gpt_spec(cfg, cfg["prompt"] + cfg["tokens"]))


# ----------------------------------------------------------------------------- trainers


class _FloorTrainer:
    """The floor's step, keeping the first step's gradients for the cross-check."""

    def __init__(self, floor):
        self.floor, self.last = floor, None

    def step(self, x, y) -> float:
        loss, grads = self.floor.loss_and_grads(x, y)
        self.last = grads
        if hasattr(self.floor, "opt"):
            self.floor.opt.step(grads)
        else:
            from ttbench.floors import sgd_step

            sgd_step(self.floor.p, grads, self.floor.lr)
        return loss

    def grads(self) -> dict:
        return self.last


def build_trainer(name: str, impl: str, cfg: dict):
    """(trainer with ``step(x, y) -> loss`` and ``grads()``, x, y) for one implementation."""
    p = weights(name, cfg)
    x, y = inputs(name, cfg)
    lr = LR[name]
    if impl == "numpy":
        from ttbench import floors

        if name == "mlp":
            floor = floors.MLPFloor(p, lr=lr)
        elif name in ("lenet", "cifar_cnn"):
            floor = floors.ConvNetFloor(p, convnet_spec(name, cfg).paddings, lr=lr)
        else:
            floor = floors.GPTFloor(p, 2, 4, lr=lr)
        return _FloorTrainer(floor), x, y
    if impl == "torch":
        import torch

        from ttbench import torch_models as TM

        if name == "mlp":
            model, named = TM.mlp(p)
        elif name in ("lenet", "cifar_cnn"):
            model, named = TM.convnet(p, convnet_spec(name, cfg).paddings)
        else:
            model = TM.GPT(p, 2, 4)
            named = model.named
        opt = (torch.optim.Adam if name == "gpt" else torch.optim.SGD)(model.parameters(), lr=lr)
        return TM.Trainer(model, named, opt), torch.from_numpy(x), torch.from_numpy(y.astype("int64"))
    from ttbench import tt_models as TT

    accelerated = impl == "accelerated"
    if name == "mlp":
        return TT.mlp(p, lr, accelerated), x, y
    if name in ("lenet", "cifar_cnn"):
        return TT.convnet(p, convnet_spec(name, cfg), lr, accelerated), x, y
    return TT.gpt(p, gpt_spec(cfg, cfg["seq"]), lr, accelerated), x, y


def _grad_norms(grads: dict) -> dict:
    import numpy as np

    return {k: (None if g is None else float(np.linalg.norm(np.asarray(g, dtype=np.float64)))) for k, g in
            sorted(grads.items())}  # fmt: skip


# ----------------------------------------------------------------------------- measurements


def _rss_now_mb() -> float:
    """Current resident set size (Linux /proc; falls back to the peak so far elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return _peak_rss_mb()


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _threads_in_use(impl: str) -> dict:
    out = {}
    try:
        from threadpoolctl import threadpool_info

        out["blas"] = sorted({p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"})
    except ImportError:
        pass
    if impl.startswith("torch"):
        import torch

        out["torch"] = torch.get_num_threads()
    return out


def _more_steps(done: int, elapsed: float, steps: int, min_seconds: float, max_steps: int,
                max_seconds: float) -> bool:  # fmt: skip
    """At least ``steps`` steps and ``min_seconds``; at most ``max_steps``, and past ``max_seconds``
    stop as soon as there are 12 (the first 10 and a steady half of 6)."""
    if done >= max_steps or (elapsed > max_seconds and done >= 12):
        return False
    return done < steps or elapsed < min_seconds


def run_training(name: str, impl: str, cfg: dict, steps: int, min_seconds: float, max_steps: int,
                 max_seconds: float = 30.0) -> dict:  # fmt: skip
    rss_before = _rss_now_mb()
    trainer, x, y = build_trainer(name, impl, cfg)
    wall, cpu, losses = [], [], []
    grads = None
    start = time.perf_counter()
    while _more_steps(len(wall), time.perf_counter() - start, steps, min_seconds, max_steps, max_seconds):
        w0, c0 = time.perf_counter(), time.process_time()
        loss = trainer.step(x, y)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
        losses.append(float(loss))
        if grads is None:
            grads = _grad_norms(trainer.grads())
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "grad_norms": grads,
        "rss_after_import_mb": rss_before,
    }


def run_generation(impl: str, cfg: dict, reps: int) -> dict:
    import numpy as np

    p = weights("generate", cfg)
    spec = gpt_spec(cfg, cfg["prompt"] + cfg["tokens"])
    prompt = np.random.default_rng(2).integers(0, 65, (cfg["batch"], cfg["prompt"]))
    rss_before = _rss_now_mb()
    lib, _, mode = impl.partition("_")
    if impl == "fused":
        lib, mode = "tinytorch", "fused"
    if lib == "numpy":
        from ttbench import floors

        floor = floors.GPTFloor(p, 2, 4)

        def run():
            return floor.generate(prompt, cfg["tokens"], use_cache=mode == "cached")
    elif lib == "torch":
        import torch

        from ttbench import torch_models as TM

        model = TM.GPT(p, 2, 4)
        tprompt = torch.from_numpy(prompt)

        def run():
            return model.generate(tprompt, cfg["tokens"], use_cache=mode == "cached").numpy()
    else:
        from ttbench import tt_models as TT

        gen = TT.Generator(p, spec, mode)

        def run():
            return gen.generate(prompt, cfg["tokens"])

    wall, cpu, out = [], [], None
    for _ in range(reps):
        w0, c0 = time.perf_counter(), time.process_time()
        out = run()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    tokens = np.asarray(out)[0].tolist()
    return {"wall_s": wall, "cpu_s": cpu, "tokens": tokens, "rss_after_import_mb": rss_before}


def run_peak(n: int = 1024, repeats: int = 5) -> dict:
    import numpy as np

    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    out = np.empty_like(a)
    np.matmul(a, a, out=out)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.matmul(a, a, out=out)
        best = min(best, time.perf_counter() - t0)
    return {"gflops": 2.0 * n**3 / best / 1e9}


def main(argv=None) -> int:
    spec = json.loads((argv or sys.argv[1:])[0])
    name, impl = spec["workload"], spec["impl"]
    known = TRAIN_IMPLS if name in TRAINING else GEN_IMPLS if name in GENERATION else ("numpy",)
    if name not in (*TRAINING, *GENERATION, "peak") or impl not in known:
        raise ValueError(f"unknown workload/implementation {name}/{impl}: workloads {TRAINING + GENERATION}, "
                         f"implementations {known}")  # fmt: skip
    cfg = {**DEFAULTS.get(name, {}), **spec.get("config", {})}
    threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if impl.startswith("numpy"):
        keep_freed_memory_like_tinytorch()
    if impl.startswith("torch"):
        import torch

        torch.set_num_threads(threads or torch.get_num_threads())
    import numpy  # noqa: F401  (the floor's and tinytorch's only dependency; loaded before timing)

    if impl.startswith(("tinytorch", "accelerated", "fused")):
        import tinytorch.core.tensor  # noqa: F401  (sets the allocator thresholds, as any user import does)
    if name == "peak":
        result = run_peak()
    elif name in TRAINING:
        result = run_training(name, impl, cfg, spec.get("steps", 30), spec.get("min_seconds", 1.0),
                              spec.get("max_steps", 400), spec.get("max_seconds", 30.0))  # fmt: skip
    else:
        result = run_generation(impl, cfg, spec.get("reps", 3))
    result.update(
        workload=name,
        impl=impl,
        config=cfg,
        peak_rss_mb=_peak_rss_mb(),
        threads=_threads_in_use(impl),
        load=os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    )
    if "rss_after_import_mb" in result:
        result["workload_mb"] = max(result["peak_rss_mb"] - result["rss_after_import_mb"], 0.0)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
