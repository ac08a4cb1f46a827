"""Module 14: profiling, measure before you optimize.

Four numbers describe the cost of a model:

* **parameters**: how many learnable numbers it stores (x 4 bytes in float32);
* **FLOPs**: floating-point operations of one forward pass. We count a
  multiply-add as 2 FLOPs and count only the matrix products that dominate
  (``Linear``, convolutions, the two products inside attention); bias
  additions, activations, normalization and softmax are O(size of the
  activations), negligible next to them, and are not counted. So
  ``Linear(784, 256)`` on one row is ``2 * 784 * 256`` FLOPs;
* **memory**: parameter, gradient and activation bytes and the peak, measured
  with :mod:`tracemalloc` (NumPy reports its array allocations to it);
* **latency**: wall-clock time of a forward pass, as a distribution
  (median, p90, min), never a single run.

The per-layer profiles observe the model through *forward hooks*, the
observation points every ``Module.__call__`` offers
(``register_forward_pre_hook`` / ``register_forward_hook``, as in PyTorch): a
pre-hook starts a layer's clock, a forward hook stops it and counts the FLOPs
of the call from the shapes it saw. Nothing about the model is replaced or
patched, and the hooks are removed afterwards, even when the forward pass
raises. Hooks see a call's positional arguments only (as PyTorch's default),
so a keyword argument such as an attention ``mask`` is not recorded.
"""

from __future__ import annotations

import gc
import math
import time
import tracemalloc
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from tinytorch.core.autograd import is_grad_enabled, no_grad
from tinytorch.core.layers import Module
from tinytorch.core.tensor import Tensor


def _shape(x) -> tuple | None:
    data = getattr(x, "data", x)
    return tuple(data.shape) if isinstance(data, np.ndarray) else None


def _first_tensor_shape(args) -> tuple | None:
    for a in args:
        s = _shape(a)
        if s is not None:
            return s
    return None


def _is_attention(module) -> bool:
    """Multi-head attention by its interface: ``num_heads`` and ``embed_dim`` attributes."""
    return hasattr(module, "num_heads") and hasattr(module, "embed_dim")


def _is_linear(module) -> bool:
    """Linear-like by protocol: ``in_features``, ``out_features``, a float ``weight`` or int8 ``weight_q``."""
    has_matrix = isinstance(getattr(module, "weight", None), Tensor) or hasattr(module, "weight_q")
    return has_matrix and hasattr(module, "in_features") and hasattr(module, "out_features")


def module_flops(module, args, output) -> int:
    """FLOPs of one call of ``module`` itself (sub-modules excluded), 2 per multiply-add.

    Rules (shapes from the actual call):

    * ``Linear``-like (``in_features``/``out_features`` and a ``weight`` or int8 ``weight_q``
      matrix; includes ``QuantizedLinear``):
      ``2 * rows * in * out`` with ``rows`` the product of the input's leading dims.
    * convolution (4-D ``weight (O, C, kH, kW)``, 4-D output ``(N, O, OH, OW)``):
      ``2 * N * O * OH * OW * C * kH * kW``.
    * self-attention (``num_heads`` and ``embed_dim``): the score product ``Q K^T``
      and the weighted sum ``A V``, each ``2 * B * T * T * E`` for input ``(B, T, E)``;
      its projections are ``Linear`` sub-modules, counted there.
    * anything else: 0 (elementwise, lookups, normalization, pooling).
    """
    ### BEGIN SOLUTION
    in_shape = _first_tensor_shape(args)
    out_shape = _shape(output)
    if in_shape is None:
        return 0
    if _is_linear(module):
        rows = math.prod(in_shape[:-1])
        return 2 * rows * module.in_features * module.out_features
    weight = getattr(module, "weight", None)
    if isinstance(weight, Tensor) and weight.ndim == 4 and out_shape is not None and len(out_shape) == 4:
        n, o, oh, ow = out_shape
        _, c, kh, kw = weight.shape
        return 2 * n * o * oh * ow * c * kh * kw
    if _is_attention(module) and len(in_shape) == 3:
        b, t, e = in_shape
        return 2 * (2 * b * t * t * e)  # Q K^T and A V
    return 0
    ### END SOLUTION


@dataclass
class CallRecord:
    """One call of one module during a traced forward pass."""

    name: str
    module: Module
    depth: int
    args: tuple
    output: object = None
    start: float = 0.0
    inclusive_s: float = 0.0
    children_s: float = 0.0
    flops: int = 0
    children: list = field(default_factory=list)


def named_modules(model) -> list:
    """``(dotted name, module)`` for ``model`` (named by its class) and every descendant, each once.

    ``Module.named_modules`` with shared sub-modules listed once, under their first name.
    """
    out, seen = [], set()
    for name, module in model.named_modules():
        if id(module) not in seen:
            seen.add(id(module))
            out.append((name or type(model).__name__, module))
    return out


@contextmanager
def trace_calls(model):
    """Record every module call of ``model`` inside the ``with`` block, through forward hooks.

    Yields a list filled with :class:`CallRecord` in call order (a parent before
    its children). Every module gets a pre-hook (start the clock, open a
    record) and a forward hook (stop the clock, count FLOPs); both are removed
    on exit, even when the block raises. A call that raises never reaches its
    forward hook: its record keeps ``inclusive_s == 0``.
    """
    records, stack, handles = [], [], []

    def before(module, args, name):
        rec = CallRecord(name, module, len(stack), args)
        records.append(rec)
        if stack:
            stack[-1].children.append(rec)
        stack.append(rec)
        rec.start = time.perf_counter()

    def after(module, args, output):
        end = time.perf_counter()
        rec = stack.pop()
        rec.inclusive_s = end - rec.start
        rec.output = output
        rec.flops = module_flops(module, args, output)
        if stack:
            stack[-1].children_s += rec.inclusive_s

    try:
        for name, module in named_modules(model):
            handles.append(module.register_forward_pre_hook(lambda m, a, _name=name: before(m, a, _name)))
            handles.append(module.register_forward_hook(after))
        yield records
    finally:
        for handle in handles:
            handle.remove()


def _looks_like_token_model(model) -> bool:
    """A model that looks up token ids: some module of it has a ``vocab_size`` (an embedding table)."""
    return any(hasattr(m, "vocab_size") for _, m in named_modules(model))


def make_input(model, input_shape, dtype=None) -> Tensor:
    """Zeros of ``input_shape``: int64 token ids for models with an embedding, else float32."""
    if isinstance(input_shape, int):
        input_shape = (input_shape,)
    shape = tuple(input_shape)
    if not shape or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d <= 0 for d in shape):
        raise ValueError(f"input_shape must be a tuple of positive ints, got {input_shape!r}")
    if dtype is None:
        dtype = np.int64 if _looks_like_token_model(model) else np.float32
    return Tensor(np.zeros(shape, dtype=dtype))


def _as_input(model, input_or_shape) -> Tensor:
    if isinstance(input_or_shape, (tuple, list, int)) and not isinstance(input_or_shape, bool):
        return make_input(model, input_or_shape)
    return input_or_shape if isinstance(input_or_shape, Tensor) else Tensor(input_or_shape)


def _check_model(model) -> None:
    if not isinstance(model, Module):
        raise ValueError(f"model must be a Module, got {type(model).__name__}")


class Profiler:
    """Measure a model's parameters, FLOPs, memory and latency, in total and per layer.

    Example::

        p = Profiler()
        p.count_flops(Linear(784, 256), (1, 784))       # 401408
        print(p.format_table(p.profile_forward_pass(model, x)))
    """

    def count_parameters(self, model) -> int:
        """Number of learnable scalars (``sum(p.size for p in model.parameters())``)."""
        ### BEGIN SOLUTION
        _check_model(model)
        return int(sum(p.data.size for p in model.parameters()))
        ### END SOLUTION

    def count_flops(self, model, input_shape, dtype=None) -> int:
        """Forward FLOPs for an input of ``input_shape`` (see :func:`module_flops` for the rules).

        The model is run once on zeros of that shape (token ids for models with
        an embedding) and the FLOPs of every module call are summed.
        """
        ### BEGIN SOLUTION
        _check_model(model)
        x = make_input(model, input_shape, dtype)
        with no_grad(), trace_calls(model) as records:
            model(x)
        return int(sum(r.flops for r in records))
        ### END SOLUTION

    def measure_memory(self, model, input_or_shape) -> dict:
        """Bytes used by a training forward + backward pass, measured with tracemalloc.

        Args:
            model: a Module.
            input_or_shape: an input (Tensor/array) or a shape for :func:`make_input`.

        Returns:
            dict (bytes): ``parameter_bytes`` (arrays of the parameters),
            ``activation_bytes`` (memory still held after the forward: output and
            everything the graph saved for backward), ``gradient_bytes`` (memory
            still held after backward once the graph is released: the ``.grad``
            arrays), ``peak_bytes`` (highest traced memory above the start during
            forward + backward), ``inference_peak_bytes`` (peak of a no-grad forward),
            and ``parameter_count``. The model's existing ``.grad`` are restored.
        """
        ### BEGIN SOLUTION
        _check_model(model)
        x = _as_input(model, input_or_shape)
        params = model.parameters()
        saved_grads = [p.grad for p in params]
        started_here = not tracemalloc.is_tracing()
        if started_here:
            tracemalloc.start()
        try:
            for p in params:
                p.grad = None
            gc.collect()
            # Inference: no graph, only transient activations.
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            with no_grad():
                out = model(x)
            inference_peak = tracemalloc.get_traced_memory()[1] - base
            del out
            gc.collect()
            # Training: forward keeps what backward needs; backward creates the gradients.
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            out = model(x)
            activation = tracemalloc.get_traced_memory()[0] - base
            if isinstance(out, Tensor) and out.requires_grad and is_grad_enabled():
                out.backward(np.ones_like(out.data))
            peak = tracemalloc.get_traced_memory()[1] - base
            del out
            gc.collect()
            gradient = tracemalloc.get_traced_memory()[0] - base
        finally:
            if started_here:
                tracemalloc.stop()
            for p, g in zip(params, saved_grads):
                p.grad = g
        return {
            "parameter_count": int(sum(p.data.size for p in params)),
            "parameter_bytes": int(sum(p.data.nbytes for p in params)),
            "gradient_bytes": int(max(gradient, 0)),
            "activation_bytes": int(max(activation, 0)),
            "peak_bytes": int(max(peak, 0)),
            "inference_peak_bytes": int(max(inference_peak, 0)),
        }
        ### END SOLUTION

    def measure_latency(self, model, input, warmup: int = 10, iterations: int = 100) -> dict:
        """Wall-clock forward latency in no-grad mode.

        Args:
            model: a callable model.  input: its input (Tensor, array, or a shape tuple).
            warmup: untimed calls first (allocations, caches).  iterations: timed calls.

        Returns:
            dict with ``median_ms``, ``p90_ms``, ``min_ms``, ``mean_ms``, ``std_ms``, ``iterations``.
        """
        ### BEGIN SOLUTION
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            raise ValueError(f"warmup must be an int >= 0, got {warmup!r}")
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"iterations must be an int >= 1, got {iterations!r}")
        x = _as_input(model, input)
        times = np.empty(iterations)
        with no_grad():
            for _ in range(warmup):
                model(x)
            for i in range(iterations):
                start = time.perf_counter()
                model(x)
                times[i] = time.perf_counter() - start
        ms = times * 1e3
        return {
            "median_ms": float(np.median(ms)),
            "p90_ms": float(np.percentile(ms, 90)),
            "min_ms": float(ms.min()),
            "mean_ms": float(ms.mean()),
            "std_ms": float(ms.std()),
            "iterations": iterations,
        }
        ### END SOLUTION

    def profile_forward_pass(self, model, input) -> list:
        """Per-layer forward profile, most expensive first.

        Returns:
            list of dicts, one per module (calls of the same module summed):
            ``name``, ``type``, ``time_ms`` (self time: the module's own work,
            sub-modules excluded, so the rows add up to the whole forward),
            ``flops``, ``gflops_per_s``, ``params`` (own parameters),
            ``output_shape`` and ``calls``; sorted by ``time_ms`` descending.
        """
        ### BEGIN SOLUTION
        _check_model(model)
        x = _as_input(model, input)
        with no_grad():
            model(x)  # warm-up: first calls pay for allocations and lazy setup
            with trace_calls(model) as records:
                model(x)
        rows = {}
        for r in records:
            row = rows.setdefault(r.name, {
                "name": r.name, "type": type(r.module).__name__, "time_ms": 0.0, "flops": 0,
                "params": int(sum(v.data.size for v in vars(r.module).values()
                                  if isinstance(v, Tensor) and v.requires_grad)),
                "output_shape": _shape(r.output), "calls": 0,
            })  # fmt: skip
            row["time_ms"] += max(r.inclusive_s - r.children_s, 0.0) * 1e3
            row["flops"] += r.flops
            row["calls"] += 1
        for row in rows.values():
            row["gflops_per_s"] = row["flops"] / (row["time_ms"] * 1e6) if row["time_ms"] > 0 else 0.0
        return sorted(rows.values(), key=lambda row: row["time_ms"], reverse=True)
        ### END SOLUTION

    def profile_backward_pass(self, model, input) -> list:
        """Per-layer backward profile, most expensive first.

        Every module is replayed on the very positional inputs it saw during a
        forward pass (detached, float inputs marked ``requires_grad``; keyword
        arguments are not seen by hooks, so e.g. an attention mask is left out,
        which does not change the cost), and the backward
        of its output (with an all-ones upstream gradient) is timed. A module's
        ``backward_ms`` is its self time (its sub-modules' backward subtracted);
        for a container this is mostly the autograd engine's own work (walking a
        bigger graph), which per-layer replays do not see.
        ``backward_flops`` is the closed form: every product of the forward
        needs two products of the same size in backward (input gradient and
        weight gradient), so ``2 * flops``.

        Returns:
            list of dicts ``name``, ``type``, ``forward_ms``, ``backward_ms``,
            ``backward_to_forward`` (ratio), ``flops``, ``backward_flops``;
            sorted by ``backward_ms`` descending.
        """
        ### BEGIN SOLUTION
        _check_model(model)
        x = _as_input(model, input)
        with no_grad():
            model(x)  # warm-up
            with trace_calls(model) as records:
                model(x)
        params = model.parameters()
        saved_grads = [p.grad for p in params]
        first = {}
        for r in records:
            first.setdefault(r.name, r)  # one replay per module
        inclusive_bwd = {}
        for name, r in first.items():
            args = tuple(
                Tensor(a.data.copy(), requires_grad=a.data.dtype.kind == "f") if isinstance(a, Tensor) else a
                for a in r.args
            )
            best = 0.0
            for attempt in range(2):  # the first backward warms up; keep the faster
                out = r.module(*args)
                if not (isinstance(out, Tensor) and out.requires_grad):
                    break
                start = time.perf_counter()
                out.backward(np.ones_like(out.data))
                elapsed = time.perf_counter() - start
                best = elapsed if attempt == 0 else min(best, elapsed)
            inclusive_bwd[name] = best
        for p, g in zip(params, saved_grads):
            p.grad = g  # the replays accumulated into .grad: restore the caller's
        rows = []
        for name, r in first.items():
            children = {c.name for c in r.children}
            own = inclusive_bwd[name] - sum(inclusive_bwd.get(c, 0.0) for c in children)
            fwd = max(r.inclusive_s - r.children_s, 0.0)
            rows.append({
                "name": name, "type": type(r.module).__name__,
                "forward_ms": fwd * 1e3, "backward_ms": max(own, 0.0) * 1e3,
                "backward_to_forward": max(own, 0.0) / fwd if fwd > 0 else 0.0,
                "flops": r.flops, "backward_flops": 2 * r.flops,
            })  # fmt: skip
        return sorted(rows, key=lambda row: row["backward_ms"], reverse=True)
        ### END SOLUTION

    @staticmethod
    def format_table(rows, limit: int | None = None) -> str:
        """A fixed-width text table of profile rows (every column the rows have)."""
        rows = list(rows)[:limit]
        if not rows:
            return "(no layers)"
        cols = list(rows[0])

        def cell(v):
            if isinstance(v, float):
                return f"{v:.4f}"
            if isinstance(v, int):
                return f"{v:,}"
            return str(v)

        widths = {c: max(len(c), *(len(cell(r.get(c))) for r in rows)) for c in cols}
        lines = ["  ".join(c.ljust(widths[c]) for c in cols)]
        lines += ["  ".join(cell(r.get(c)).ljust(widths[c]) for c in cols) for r in rows]
        return "\n".join(lines)


_default = Profiler()
count_parameters = _default.count_parameters
count_flops = _default.count_flops
measure_memory = _default.measure_memory
measure_latency = _default.measure_latency
profile_forward_pass = _default.profile_forward_pass
profile_backward_pass = _default.profile_backward_pass

__all__ = [
    "CallRecord", "Profiler", "count_flops", "count_parameters", "make_input", "measure_latency",
    "measure_memory", "module_flops", "named_modules", "profile_backward_pass", "profile_forward_pass",
    "trace_calls",
]  # fmt: skip
