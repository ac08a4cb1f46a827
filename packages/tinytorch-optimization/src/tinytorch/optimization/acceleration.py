"""Module 18: acceleration, the same arithmetic made faster, opt-in and measured against the plain path.

Modules 01-13 hold one readable path per lesson. This module is where speed is
the subject: each technique computes *the same numbers* as a layer of the plain
path (to float32 rounding), a user opts into it, and ``benchmarks/`` and
``benchmarks/_opt_timing.py`` measure it against the plain path.

1. **Same FLOPs, different speed.** ``naive_matmul`` (three Python loops),
   ``vectorized_matmul`` (broadcast, then reduce), ``tiled_matmul`` (cache
   blocking) and ``np.matmul`` (BLAS) all do ``2 M K N`` floating-point
   operations; :func:`measure_matmul_speed` shows GFLOP/s spanning 1000x.
2. **In-place kernels.** An elementwise formula written as a chain of NumPy
   operations allocates one temporary per operation; on activations of a
   million elements each fresh array (allocation, page faults, a pass through
   memory) costs more than its arithmetic. :class:`FusedGELUFunction` computes
   GELU forward and backward in two buffers updated in place, and
   :class:`LinearReLUFunction` adds the bias and applies the ReLU in the
   matrix product's own output (one operation and one array instead of two;
   :class:`ChannelsLastConv2dFunction` does the same with ``relu=True``);
   :class:`SoftmaxCrossEntropyFunction` fuses the loss, whose gradient is
   ``softmax - onehot``; :class:`EmbeddingFunction` scatter-adds an embedding's
   gradient through flat 1-D positions, which NumPy's ``add.at`` runs faster.
3. **Memory layout.** :class:`ChannelsLastConv2dFunction` builds the im2col
   matrix with one *row* per output pixel and channels innermost, so the one
   GEMM ``cols @ W`` yields ``(N*OH*OW, O)``: the output already in
   channels-last memory (returned as an ``(N, O, OH, OW)`` view, no transposing
   copy), and every patch row the copy moves is a run of ``kW*C`` neighbouring
   floats. :class:`ChannelsLastMaxPool2dFunction` pools that memory as it is
   (the plain pooling would transpose it back first), and ReLU keeps the layout,
   so a CNN stays channels-last from one convolution to the next.
4. **Buffer reuse.** A :class:`Workspace` per convolution hands the im2col
   matrix of one step to the next, so the largest array of the layer is
   allocated (and page-faulted) once instead of every step.
5. **Fused decoding.** :class:`FusedGPTDecoder` runs cached GPT generation on
   the raw weight arrays: one token at a time the arithmetic is tiny, and the
   framework's per-operation overhead (Tensor wrappers, graph bookkeeping,
   validation) is most of the cost. It reuses the architecture tier's
   LayerNorm, softmax and sampling code on arrays: one implementation of each idea.
6. **Blockwise attention.** :class:`BlockwiseAttentionFunction` computes causal
   attention one block of keys at a time with an online softmax (a running
   maximum and sum per row), so no ``(T, T)`` array is kept for backward: at
   T = 1,024 the attention arrays are most of a GPT step's memory.

The entry points: :func:`accelerate` returns a model with accelerated layers
swapped in (same Parameter objects, same ``state_dict`` keys, the plain model
untouched), and :func:`fast_generate` decodes a GPT with :class:`FusedGPTDecoder`.
"""

from __future__ import annotations

import copy
import math
import numbers
import time

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from tinytorch.core.activations import (
    GELU,
    GELU_C,
    GELU_K,
    GELUFunction,
    LogSoftmaxFunction,
    ReLU,
    SoftmaxFunction,
)
from tinytorch.core.attention import MultiHeadAttention
from tinytorch.core.autograd import Function
from tinytorch.core.layers import Dropout, Linear, LinearFunction, Module, Sequential
from tinytorch.core.spatial import Conv2d, MaxPool2d
from tinytorch.core.tensor import Tensor
from tinytorch.generation.kv_cache import KVCache
from tinytorch.models.transformer import MLP, LayerNormFunction, sample_next_token
from tinytorch.optimization.quantization import linear_arrays
from tinytorch.text.embeddings import Embedding, checked_token_ids

__all__ = [
    "AppliedReLU",
    "BlockwiseAttentionFunction",
    "BlockwiseMultiHeadAttention",
    "ChannelsLastConv2d",
    "ChannelsLastConv2dFunction",
    "ChannelsLastMaxPool2d",
    "ChannelsLastMaxPool2dFunction",
    "EmbeddingFunction",
    "FlatIndexEmbedding",
    "FusedGELU",
    "FusedGELUFunction",
    "FusedGPTDecoder",
    "FusedLinearReLU",
    "FusedMLP",
    "Workspace",
    "accelerate",
    "blockwise_attention",
    "col2im_channels_last",
    "fast_generate",
    "format_speed_table",
    "fused_cross_entropy",
    "fused_gelu",
    "gelu_backward_inplace",
    "gelu_forward_inplace",
    "im2col_channels_last",
    "LinearReLUFunction",
    "SoftmaxCrossEntropyFunction",
    "measure_matmul_speed",
    "naive_gelu",
    "naive_matmul",
    "tiled_matmul",
    "unfused_gelu",
    "vectorized_matmul",
]


# =============================================================================================
# 1. Same FLOPs, different speed: four matrix products
# =============================================================================================


def _as_array(x, name: str) -> np.ndarray:
    """The ndarray behind ``x`` (a Tensor or anything array-like)."""
    return np.asarray(getattr(x, "data", x))


def _check_matmul(a: np.ndarray, b: np.ndarray, op: str) -> None:
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"{op}: expects 2-D matrices, got shapes {a.shape} and {b.shape}")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"{op}: inner dimensions differ: {a.shape} @ {b.shape}")


def naive_matmul(a, b) -> np.ndarray:
    """``a @ b`` with three Python loops (the slow baseline and a test oracle).

    Args:
        a: ``(M, K)`` matrix.  b: ``(K, N)`` matrix.

    Returns:
        ``(M, N)`` float64 array. Cost: ``M*K*N`` interpreted multiply-adds.
    """
    ### BEGIN SOLUTION
    a, b = _as_array(a, "a"), _as_array(b, "b")
    _check_matmul(a, b, "naive_matmul")
    m, k = a.shape
    n = b.shape[1]
    al, bl = a.tolist(), b.tolist()  # Python floats: indexing ndarrays element-wise is even slower
    out = [[0.0] * n for _ in range(m)]
    for i in range(m):
        row, out_row = al[i], out[i]
        for j in range(n):
            acc = 0.0
            for p in range(k):
                acc += row[p] * bl[p][j]
            out_row[j] = acc
    return np.array(out, dtype=np.result_type(a, b, np.float32))
    ### END SOLUTION


def vectorized_matmul(a, b, block_rows: int = 16) -> np.ndarray:
    """``a @ b`` with broadcasting and a reduction, no BLAS and no loop over elements.

    For a block of rows ``a[i:i+r]`` (``(r, K)``), ``a[i:i+r, :, None] * b[None]``
    is the ``(r, K, N)`` array of every product; summing over ``K`` gives the
    rows of ``C``. Rows are processed in blocks so the temporary stays at
    ``block_rows * K * N`` elements instead of ``M * K * N``.

    Args:
        a: ``(M, K)``.  b: ``(K, N)``.  block_rows: rows per block (memory/speed trade-off).

    Returns:
        ``(M, N)`` array.
    """
    ### BEGIN SOLUTION
    a, b = _as_array(a, "a"), _as_array(b, "b")
    _check_matmul(a, b, "vectorized_matmul")
    if isinstance(block_rows, bool) or not isinstance(block_rows, int) or block_rows <= 0:
        raise ValueError(f"block_rows must be a positive int, got {block_rows!r}")
    m, n = a.shape[0], b.shape[1]
    out = np.empty((m, n), dtype=np.result_type(a, b))
    for i in range(0, m, block_rows):
        # (r, K, 1) * (1, K, N) -> (r, K, N), summed over K -> (r, N)
        out[i : i + block_rows] = (a[i : i + block_rows, :, None] * b[None, :, :]).sum(axis=1)
    return out
    ### END SOLUTION


def tiled_matmul(a, b, tile_size: int = 64) -> np.ndarray:
    """``a @ b`` computed tile by tile (cache blocking).

    ``C[I, J] = sum_P A[I, P] @ B[P, J]`` over ``tile_size`` blocks ``I, J, P``:
    each step touches three ``tile_size x tile_size`` blocks, small enough to
    stay in the CPU cache while they are reused ``tile_size`` times.

    Args:
        a: ``(M, K)``.  b: ``(K, N)``.  tile_size: block edge (positive int).

    Returns:
        ``(M, N)`` array equal to ``a @ b`` up to float rounding.
    """
    ### BEGIN SOLUTION
    a, b = _as_array(a, "a"), _as_array(b, "b")
    _check_matmul(a, b, "tiled_matmul")
    if isinstance(tile_size, bool) or not isinstance(tile_size, int) or tile_size <= 0:
        raise ValueError(f"tile_size must be a positive int, got {tile_size!r}")
    m, k = a.shape
    n = b.shape[1]
    out = np.zeros((m, n), dtype=np.result_type(a, b))
    t = tile_size
    for i in range(0, m, t):
        for j in range(0, n, t):
            acc = out[i : i + t, j : j + t]  # a view: accumulate in place
            for p in range(0, k, t):
                acc += a[i : i + t, p : p + t] @ b[p : p + t, j : j + t]
    return out
    ### END SOLUTION


def _best_time(fn, repeats: int) -> float:
    """Fastest of ``repeats`` wall-clock runs of ``fn()`` in seconds (least disturbed by other load)."""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure_matmul_speed(sizes=(32, 64, 128, 256), repeats: int = 3, loop_max_size: int = 64, seed: int = 0):
    """Time naive loops, vectorized NumPy, tiled and BLAS matmul on square float32 matrices.

    Args:
        sizes: matrix edges ``n`` to time (``n x n @ n x n``, ``2 n^3`` FLOPs).
        repeats: runs per measurement; the fastest is kept.
        loop_max_size: the Python loop is only timed up to this size (it is ~1000x slower).
        seed: seed of the random inputs.

    Returns:
        list of dicts, one per size: ``n``, ``flops`` and for each method
        (``loop``, ``vectorized``, ``tiled``, ``blas``) its ``<method>_seconds``
        and ``<method>_gflops`` (``None`` when skipped), plus
        ``blas_speedup_over_loop`` (``None`` when the loop was skipped).
    """
    ### BEGIN SOLUTION
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        a = rng.standard_normal((n, n)).astype(np.float32)
        b = rng.standard_normal((n, n)).astype(np.float32)
        flops = 2 * n**3
        methods = {
            "loop": naive_matmul if n <= loop_max_size else None,
            "vectorized": vectorized_matmul,
            "tiled": tiled_matmul,
            "blas": np.matmul,
        }
        row = {"n": n, "flops": flops}
        for name, fn in methods.items():
            if fn is None:
                row[f"{name}_seconds"] = row[f"{name}_gflops"] = None
                continue
            seconds = _best_time(lambda fn=fn, a=a, b=b: fn(a, b), 1 if name == "loop" else repeats)
            row[f"{name}_seconds"] = seconds
            row[f"{name}_gflops"] = flops / seconds / 1e9
        loop = row["loop_seconds"]
        row["blas_speedup_over_loop"] = loop / row["blas_seconds"] if loop else None
        rows.append(row)
    return rows
    ### END SOLUTION


def format_speed_table(rows) -> str:
    """A Markdown table of :func:`measure_matmul_speed` results (GFLOP/s per method)."""
    lines = [
        "| n | loop GFLOP/s | vectorized GFLOP/s | tiled GFLOP/s | BLAS GFLOP/s |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [
            f"{r[m + '_gflops']:.3f}" if r[m + "_gflops"] is not None else "-"
            for m in ("loop", "vectorized", "tiled", "blas")
        ]
        lines.append(f"| {r['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# =============================================================================================
# 2. In-place kernels: GELU forward and backward on two buffers
# =============================================================================================


def naive_gelu(x) -> np.ndarray:
    """Tanh-approximation GELU, one element at a time with :mod:`math` (the oracle).

    ``gelu(x) = 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))``
    """
    ### BEGIN SOLUTION
    arr = _as_array(x, "x")
    flat = [0.5 * v * (1.0 + math.tanh(GELU_C * (v + GELU_K * v * v * v))) for v in arr.ravel().tolist()]
    return np.array(flat, dtype=np.result_type(arr, np.float32)).reshape(arr.shape)
    ### END SOLUTION


def unfused_gelu(x) -> np.ndarray:
    """Tanh GELU as the plain path computes it (Module 02's ``GELUFunction.forward``).

    One NumPy expression, but every operator in it (``x**3``, ``*``, ``+``,
    ``tanh``, ...) allocates a fresh temporary array: the baseline the in-place
    kernel is measured against.
    """
    arr = _as_array(x, "x")
    return GELUFunction.forward(GELUFunction(), arr)


def gelu_forward_inplace(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(gelu(x), t)`` with ``t = tanh(c (x + k x^3))``, computed in two buffers updated in place.

    Args:
        x: float array (not modified).

    Returns:
        ``(y, t)``, both of ``x``'s shape and dtype: the output, and the tanh
        that the backward pass needs (saving it avoids a second ``tanh``).

    Cost: two allocations and 9 in-place passes over memory, where the plain
    expression allocates a fresh array for each of its 8 operations.
    """
    if x.dtype.kind != "f":
        x = x.astype(np.float32)  # the in-place updates below need a float buffer
    ### BEGIN SOLUTION
    t = np.multiply(x, x, out=np.empty_like(x))  # out=: stays an array even for 0-d x
    t *= GELU_K
    t += 1.0
    t *= x
    t *= GELU_C  # c (x + k x^3)
    np.tanh(t, out=t)
    y = np.add(t, 1.0, out=np.empty_like(t))
    y *= x
    y *= 0.5
    return y, t
    ### END SOLUTION


def gelu_backward_inplace(x: np.ndarray, t: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """``grad * gelu'(x)`` from the saved tanh ``t``, in two buffers updated in place.

    ``gelu'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 k x^2)``, computed as
    ``0.5 (1 + t + (1 - t^2) d)`` with ``d = c x (1 + 3 k x^2)``.
    ``x``, ``t`` and ``grad`` are not modified.
    """
    ### BEGIN SOLUTION
    d = np.multiply(x, x, out=np.empty_like(x))
    d *= 3.0 * GELU_K
    d += 1.0
    d *= x
    d *= GELU_C  # c x (1 + 3 k x^2)
    out = np.multiply(t, t, out=np.empty_like(t))
    np.subtract(1.0, out, out=out)  # 1 - t^2
    out *= d
    out += t
    out += 1.0
    out *= 0.5
    out *= grad
    return out
    ### END SOLUTION


def fused_gelu(x):
    """Tanh GELU through :func:`gelu_forward_inplace` (same numbers as :func:`naive_gelu`).

    Arrays in, an array out; a Tensor in, a Tensor out (no gradient: use
    :class:`FusedGELUFunction` or :class:`FusedGELU` inside a model).
    """
    arr = _as_array(x, "x")
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float32)
    out, _ = gelu_forward_inplace(arr)
    return Tensor(out, dtype=out.dtype) if isinstance(x, Tensor) else out


class FusedGELUFunction(Function):
    """GELU (tanh approximation) with in-place forward and backward kernels.

    The same values and derivative as ``tinytorch.core.activations.GELUFunction``
    (to float rounding); forward saves ``x`` and the tanh ``t`` so backward
    needs no second ``tanh``.
    """

    name = "gelu"

    @staticmethod
    def forward(ctx, x):
        ### BEGIN SOLUTION
        y, t = gelu_forward_inplace(x)
        ctx.save_for_backward(x, t)
        return y
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        x, t = ctx.saved_tensors
        return gelu_backward_inplace(x, t, grad)
        ### END SOLUTION


class FusedGELU(Module):
    """Drop-in for ``GELU()``: the tanh GELU through :class:`FusedGELUFunction`. Shape: (*) -> (*)."""

    def forward(self, x) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        return FusedGELUFunction.apply(x)


class FusedMLP(Module):
    """Drop-in for the transformer's ``MLP``: ``fc2(act(fc1(x)))`` with the fused activation.

    A GELU MLP runs :class:`FusedGELUFunction` on ``fc1``'s output; a ReLU MLP
    runs ``fc1`` and its ReLU as one :class:`LinearReLUFunction` (defined below).
    Built from an ``MLP``: it holds the very same ``fc1``, ``fc2`` and ``dropout``
    modules, so parameters and ``state_dict`` keys are unchanged.
    """

    def __init__(self, mlp):
        super().__init__()
        self.fc1, self.fc2 = mlp.fc1, mlp.fc2
        self.activation = getattr(mlp, "activation", "gelu")
        self.dropout = getattr(mlp, "dropout", None) or Dropout(0.0)
        self.training = mlp.training

    def forward(self, x) -> Tensor:
        if self.activation == "relu":
            x = x if isinstance(x, Tensor) else Tensor(x)
            h = LinearReLUFunction.apply(x, self.fc1.weight, self.fc1.bias)  # (*, hidden)
        else:
            h = FusedGELUFunction.apply(self.fc1(x))  # (*, hidden)
        return self.dropout(self.fc2(h))


class LinearReLUFunction(Function):
    """``relu(x W^T + b)`` as one operation: bias and ReLU applied in place on the product.

    The plain path runs two operations, ``Linear`` then ``ReLU``: two graph nodes,
    a fresh array for ``x W^T + b`` and another for the ReLU's output, and a
    backward that multiplies by a mask computed from the saved pre-activation.
    Fused, the matrix product's output is the only new array: the bias is added
    into it and the negatives are zeroed in it. Backward takes the mask from
    the output itself (``out > 0`` exactly where ``x W^T + b > 0``) and then is
    the plain ``LinearFunction.backward`` (one implementation of that math).

    Shape: x (*, in), weight (out, in), bias (out,) or None -> (*, out).
    Cost: the Linear's matmuls; one elementwise pass less each way.
    """

    name = "linear_relu"

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)  # what LinearFunction.backward reads
        ### BEGIN SOLUTION
        out = x.reshape(-1, x.shape[-1]) @ weight.T  # (M, in) @ (in, out) -> (M, out), a fresh array
        if bias is not None:
            out += bias
        np.maximum(out, 0, out=out)  # ReLU in place
        ctx.out = out
        return out.reshape(*x.shape[:-1], weight.shape[0])  # (M, out) -> (*, out)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        through_relu = grad * (ctx.out > 0).reshape(grad.shape)  # the ReLU's gradient: 0 where it clipped
        return LinearFunction.backward(ctx, through_relu)
        ### END SOLUTION


class FusedLinearReLU(Module):
    """Drop-in for ``Linear`` followed by ``ReLU``: :class:`LinearReLUFunction`.

    Holds the Linear's own ``weight`` and ``bias`` Parameters under the same
    names, so inside a ``Sequential`` the keys of ``state_dict`` do not change.
    Shape: (*, in_features) -> (*, out_features).
    """

    def __init__(self, linear: Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight, self.bias = linear.weight, linear.bias

    def forward(self, x) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"FusedLinearReLU: input shape {x.shape} does not match weight shape {self.weight.shape}"
            )
        return LinearReLUFunction.apply(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        has_bias = self.bias is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={has_bias}"


class SoftmaxCrossEntropyFunction(Function):
    """Mean cross-entropy of ``logits`` (N, C) against class indices ``target`` (N,), fused.

    The plain path is PyTorch's composition ``nll_loss(log_softmax(x))``: two
    operations whose backward passes chain ``-1`` at each target through the
    log-softmax Jacobian. Composed by hand, the gradient collapses to
    ``(softmax(x) - onehot(target)) / N``: forward keeps the probabilities, and
    backward is one subtraction at the target entries and one scaling.

    Cost: one stable log-sum-exp pass over (N, C); backward O(N C) in place.
    """

    name = "cross_entropy"

    @staticmethod
    def forward(ctx, logits, target):
        ### BEGIN SOLUTION
        # Module 02's stable log-softmax on arrays (one implementation of it), (N, C).
        log_probs = LogSoftmaxFunction.forward(LogSoftmaxFunction(), logits, dim=1)
        ctx.target, ctx.log_probs = target, log_probs
        return -log_probs[np.arange(len(target)), target].mean()
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        dlogits = np.exp(ctx.log_probs)  # softmax, (N, C)
        dlogits[np.arange(len(ctx.target)), ctx.target] -= 1.0  # minus the one-hot target
        dlogits *= grad / len(ctx.target)  # the mean's 1/N and the incoming gradient
        return dlogits, None
        ### END SOLUTION


def fused_cross_entropy(logits, target) -> Tensor:
    """``cross_entropy(logits, target)`` (the mean, no options) as :class:`SoftmaxCrossEntropyFunction`.

    Shape: logits (N, C), target (N,) integer class indices in [0, C) -> scalar.
    The same value and gradient as the plain ``cross_entropy`` to float rounding.
    """
    logits = logits if isinstance(logits, Tensor) else Tensor(logits)
    t = np.asarray(getattr(target, "data", target))
    if logits.ndim != 2 or t.shape != logits.shape[:1]:
        raise ValueError(
            "fused_cross_entropy: expects logits (N, C) and target (N,), "
            f"got shapes {logits.shape} and {t.shape}"
        )
    classes = logits.shape[1]
    if t.dtype.kind not in "iu" or (t.size and (t.min() < 0 or t.max() >= classes)):
        raise ValueError(f"fused_cross_entropy: argument 'target' must hold class indices in [0, {classes})")
    return SoftmaxCrossEntropyFunction.apply(logits, t)


class EmbeddingFunction(Function):
    """``weight[ids]``: rows of a ``(V, D)`` table picked by integer ``ids`` -> ``(*ids.shape, D)``.

    The values of Module 11's ``Embedding`` (plain indexing, whose backward is
    ``np.add.at(dweight, ids, grad)``) and the same gradient, to the bit: row ``v``
    of ``dweight`` sums the gradient of every position holding ``v``, added in the
    same order. Only the scatter-add's index changes: one flat position
    ``id * D + j`` per element instead of one row index per ``D``-vector, because
    NumPy's ``add.at`` runs a 1-D index about 6x faster (the GPT benchmark's
    (16 x 64) x 128 lookup: 3.0 ms -> 0.5 ms, one thread).

    Cost: forward a copy of ``ids.size * D`` floats; backward one scatter-add of as many.
    """

    name = "embedding"

    @staticmethod
    def forward(ctx, weight, ids):
        ctx.table_shape, ctx.ids = weight.shape, ids
        ### BEGIN SOLUTION
        return weight[ids]  # (*ids.shape, D)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        V, D = ctx.table_shape
        positions = ctx.ids.reshape(-1, 1) * D + np.arange(D)  # (n, D): where each element of grad lands
        dweight = np.zeros(V * D, dtype=grad.dtype)
        np.add.at(dweight, positions.reshape(-1), grad.reshape(-1))  # repeated ids add up
        return dweight.reshape(V, D), None
        ### END SOLUTION


class FlatIndexEmbedding(Module):
    """Drop-in for ``Embedding`` computing through :class:`EmbeddingFunction` (the same ``weight``)."""

    def __init__(self, embedding: Embedding) -> None:
        super().__init__()
        self.vocab_size, self.embed_dim = embedding.vocab_size, embedding.embed_dim
        self.weight = embedding.weight  # the very same Parameter

    def forward(self, tokens) -> Tensor:
        ids = checked_token_ids(tokens, self.vocab_size, "Embedding")
        return EmbeddingFunction.apply(self.weight, ids)

    def extra_repr(self) -> str:
        return f"{self.vocab_size}, {self.embed_dim}"


class AppliedReLU(Module):
    """Stands where a ``ReLU`` was fused into the layer before it: passes its input on unchanged."""

    def forward(self, x):
        return x


# =============================================================================================
# 3. Memory layout: channels-last convolution; 4. buffer reuse
# =============================================================================================


def _pair(value, name: str) -> tuple[int, int]:
    """``3 -> (3, 3)``, ``(2, 3) -> (2, 3)``; non-negative ints only."""
    pair = (value, value) if np.ndim(value) == 0 else tuple(value)
    if len(pair) != 2 or any(
        isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0 for v in pair
    ):
        raise ValueError(f"argument '{name}' must be a non-negative int or a pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


class Workspace:
    """Arrays a layer reuses from one call to the next, instead of allocating them every time.

    A fresh large array costs more than its size suggests: the allocator maps
    new pages and the first write to each page faults. A layer that needs an
    array of the same shape every step (the im2col matrix of a convolution)
    *takes* one from its workspace and *gives* it back when it is done.

    Every take records who holds the array; :meth:`check` lets a holder verify,
    before it reads the array again, that nobody has taken it since (e.g. a
    second backward through an old graph after a newer forward), so reuse can
    never silently corrupt a gradient.
    """

    def __init__(self, max_free: int = 2) -> None:
        self.max_free = int(max_free)
        self._free: dict = {}  # (shape, dtype) -> arrays ready for reuse
        self._holder: dict = {}  # id(array) -> id(holder) of its latest taker

    def take(self, shape: tuple, dtype, holder=None, fill=None) -> np.ndarray:
        """An array of ``shape``/``dtype``: a free one as it was given back, else a new one.

        A new array is filled with ``fill`` (uninitialized when None); a reused one
        keeps the values it had, e.g. the zero border of a padded image, whose
        interior is all the next call rewrites.
        """
        ### BEGIN SOLUTION
        free = self._free.get((tuple(shape), np.dtype(dtype)))
        if free:
            array = free.pop()
        else:
            array = np.empty(shape, dtype=dtype) if fill is None else np.full(shape, fill, dtype=dtype)
            if len(self._holder) > 64:  # forget arrays that were taken and never given back
                kept = {id(a) for arrays in self._free.values() for a in arrays}
                self._holder = {k: v for k, v in self._holder.items() if k in kept}
        self._holder[id(array)] = id(holder)
        return array
        ### END SOLUTION

    def give(self, array: np.ndarray) -> None:
        """Return ``array`` for reuse (kept only while fewer than ``max_free`` of its kind are free)."""
        ### BEGIN SOLUTION
        free = self._free.setdefault((array.shape, array.dtype), [])
        if len(free) < self.max_free and not any(a is array for a in free):
            free.append(array)
        ### END SOLUTION

    def check(self, array: np.ndarray, holder) -> None:
        """Raise RuntimeError if ``array`` was taken by someone else since ``holder`` took it."""
        if self._holder.get(id(array), id(holder)) != id(holder):
            raise RuntimeError(
                "the im2col buffer of this convolution was reused by a newer forward pass; a second "
                "backward through an older graph needs accelerate(model, reuse_buffers=False)"
            )

    def clear(self) -> None:
        """Drop every free array (their memory goes back to the allocator)."""
        self._free.clear()
        self._holder.clear()


def _conv_geometry(x_shape, kernel, stride, padding) -> dict:
    N, C, H, W = x_shape
    (kH, kW), (sH, sW), (pH, pW) = kernel, stride, padding
    Hp, Wp = H + 2 * pH, W + 2 * pW
    OH, OW = (Hp - kH) // sH + 1, (Wp - kW) // sW + 1
    return dict(N=N, C=C, H=H, W=W, Hp=Hp, Wp=Wp, OH=OH, OW=OW, kernel=kernel, stride=stride, padding=padding)


def im2col_channels_last(x: np.ndarray, kernel, stride, padding, workspace: Workspace | None = None,
                         holder=None):  # fmt: skip
    """Unfold every ``kH x kW`` patch of ``x`` into one *row* of a matrix, channels innermost.

    Args:
        x: input ``(N, C, H, W)``, any memory layout (channels-last memory, which
            :class:`ChannelsLastConv2dFunction` outputs, makes the copy fastest).
        kernel, stride, padding: pairs ``(h, w)``.
        workspace: optional :class:`Workspace` to lease the padded input and the
            result from (``holder`` is recorded as the result's lessee).

    Returns:
        ``(cols, geometry)``: ``cols`` of shape ``(N*OH*OW, kH*kW*C)``, one row per
        output pixel (ordered ``n, oh, ow``), columns ordered ``i, j, c`` (kernel
        row, kernel column, channel), and the dict of sizes ``col2im`` needs.

    Why channels-last: with channels innermost every patch row is a run of
    ``kW*C`` neighbouring floats, so the one copy moves contiguous blocks, and
    ``cols @ W`` is ``(N*OH*OW, O)``: the output in channels-last memory.

    Cost: one copy of ``N OH OW kH kW C`` elements (plus one of the input when
    padding); no Python loop.
    """
    geo = _conv_geometry(x.shape, kernel, stride, padding)
    N, C, H, W, Hp, Wp, OH, OW = (geo[k] for k in ("N", "C", "H", "W", "Hp", "Wp", "OH", "OW"))
    (kH, kW), (sH, sW), (pH, pW) = kernel, stride, padding
    ### BEGIN SOLUTION
    xl = x.transpose(0, 2, 3, 1)  # (N, H, W, C): a view
    padded = None
    if pH or pW:
        if workspace is None:
            padded = np.zeros((N, Hp, Wp, C), dtype=x.dtype)
        else:  # a reused buffer keeps its zero border: only the interior is rewritten
            padded = workspace.take((N, Hp, Wp, C), x.dtype, fill=0)
        padded[:, pH : pH + H, pW : pW + W] = xl
        xl = padded
    win = sliding_window_view(xl, (kH, kW), axis=(1, 2))  # (N, Hp-kH+1, Wp-kW+1, C, kH, kW), a view
    win = win[:, ::sH, ::sW][:, :OH, :OW]  # (N, OH, OW, C, kH, kW)
    shape = (N, OH, OW, kH, kW, C)
    cols = np.empty(shape, x.dtype) if workspace is None else workspace.take(shape, x.dtype, holder)
    np.copyto(cols, win.transpose(0, 1, 2, 4, 5, 3))  # the one copy, patch rows channels-innermost
    if workspace is not None and padded is not None:
        workspace.give(padded)
    return cols.reshape(N * OH * OW, kH * kW * C), geo
    ### END SOLUTION


def col2im_channels_last(dcols: np.ndarray, geo: dict) -> np.ndarray:
    """Adjoint of :func:`im2col_channels_last`: add every patch's gradient back onto its pixels.

    Args:
        dcols: ``(kH*kW, N*OH*OW, C)``, the gradient w.r.t. ``cols`` with one slab per
            kernel offset: ``dcols[i*kW + j, r, c]`` belongs to ``cols[r, (i*kW + j)*C + c]``.
        geo: the geometry returned by ``im2col_channels_last``.

    Returns:
        ``dx`` of shape ``(N, C, H, W)`` (padding cropped away), a view with
        channels-last memory.

    Why one slab per offset: offset ``(i, j)`` of every patch lands on a shifted
    copy of the image, so its slab is added in one vectorized operation, and as a
    contiguous ``(N, OH, OW, C)`` array each of its rows is one run of ``OW*C``
    floats (taken from ``(N*OH*OW, kH*kW*C)`` columns, every run would be ``C``
    floats long, and NumPy's per-run overhead would cost more than the adds).

    Cost: ``kH*kW`` vectorized adds of ``N OH OW C`` elements (a loop over kernel offsets only).
    """
    N, C, H, W, Hp, Wp = (geo[k] for k in ("N", "C", "H", "W", "Hp", "Wp"))
    OH, OW = geo["OH"], geo["OW"]
    (kH, kW), (sH, sW), (pH, pW) = geo["kernel"], geo["stride"], geo["padding"]
    ### BEGIN SOLUTION
    d = dcols.reshape(kH, kW, N, OH, OW, C)
    dxp = np.zeros((N, Hp, Wp, C), dtype=dcols.dtype)
    for i in range(kH):
        for j in range(kW):
            # kernel offset (i, j) of output pixel (oh, ow) read input pixel (oh*sH + i, ow*sW + j)
            dxp[:, i : i + sH * (OH - 1) + 1 : sH, j : j + sW * (OW - 1) + 1 : sW] += d[i, j]
    # crop the padding; (N, H, W, C) -> (N, C, H, W) as a view (no copy)
    return dxp[:, pH : pH + H, pW : pW + W].transpose(0, 3, 1, 2)
    ### END SOLUTION


def _weight_matrix(weight: np.ndarray) -> np.ndarray:
    """``(O, C, kH, kW)`` filters -> ``(kH*kW*C, O)``, rows in :func:`im2col_channels_last`'s column order."""
    return weight.transpose(2, 3, 1, 0).reshape(-1, weight.shape[0])


def _weight_by_offset(weight: np.ndarray) -> np.ndarray:
    """``(O, C, kH, kW)`` filters -> ``(kH*kW, O, C)``: one ``O x C`` matrix per kernel offset."""
    O, C, kH, kW = weight.shape
    return weight.transpose(2, 3, 0, 1).reshape(kH * kW, O, C)


class ChannelsLastConv2dFunction(Function):
    """2-D cross-correlation ``y[n,o] = b[o] + sum_c W[o,c] (*) x[n,c]`` through channels-last im2col.

    Inputs ``x (N, C, H, W)``, ``weight (O, C, kH, kW)``, ``bias (O,)`` or None;
    keywords ``stride``, ``padding`` (pairs), an optional ``workspace``
    (:class:`Workspace`) to reuse the im2col matrix from, and ``relu``: apply a
    ReLU in place on the GEMM's output (a convolution followed by a ReLU, as
    :class:`LinearReLUFunction` does for ``Linear``). Output ``(N, O, OH, OW)``,
    a view of ``(N, OH, OW, O)`` memory: the same values as the plain
    ``Conv2d`` (then ``ReLU``), to float rounding, in the layout the GEMM produces.

    Backward (``g`` the output gradient as ``(N*OH*OW, O)``, a view when it kept
    the output's layout; with ``relu``, ``g`` is first zeroed where the output is):
    ``dW = cols^T g``, ``db = sum of g's rows``, ``dx = col2im(g W^T)`` (with ``g W^T``
    computed one kernel offset at a time, the layout :func:`col2im_channels_last` adds fastest).

    Cost: forward one GEMM of ``2 N OH OW O C kH kW`` flops; backward two.
    """

    name = "conv2d"

    @staticmethod
    def forward(ctx, x, weight, bias, stride=(1, 1), padding=(0, 0), workspace=None, relu=False):
        ### BEGIN SOLUTION
        O = weight.shape[0]
        cols, geo = im2col_channels_last(x, weight.shape[2:], stride, padding, workspace, holder=ctx)
        out = cols @ _weight_matrix(weight)  # (N*OH*OW, O): the one GEMM
        if bias is not None:
            out += bias
        if relu:
            np.maximum(out, 0, out=out)  # the ReLU in place: no second activation array
        ctx.save_for_backward(cols, weight)
        ctx.geo, ctx.workspace = geo, workspace
        ctx.out = out if relu else None  # backward's ReLU mask: out > 0 exactly where the ReLU passed
        if workspace is not None and not any(ctx.needs_input_grad):
            workspace.give(cols.base if cols.base is not None else cols)  # no backward will read it
        # (N, OH, OW, O) memory seen as (N, O, OH, OW): a view, channels-last underneath.
        return out.reshape(geo["N"], geo["OH"], geo["OW"], O).transpose(0, 3, 1, 2)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        cols, weight = ctx.saved_tensors
        buffer = cols.base if cols.base is not None else cols  # the leased (N, OH, OW, kH, kW, C) array
        if ctx.workspace is not None:
            ctx.workspace.check(buffer, ctx)
        O = weight.shape[0]
        needs_x, needs_w, needs_b = ctx.needs_input_grad[:3]
        g = grad.transpose(0, 2, 3, 1).reshape(-1, O)  # (N*OH*OW, O)
        if ctx.out is not None:
            g = g * (ctx.out > 0)  # through the fused ReLU: no gradient where it clipped
        dx = None
        if needs_x:  # g W^T as one (N*OH*OW, C) slab per kernel offset: (kH*kW, N*OH*OW, C)
            dx = col2im_channels_last(g @ _weight_by_offset(weight), ctx.geo)
        dw = None
        if needs_w:
            kH, kW = ctx.geo["kernel"]
            dw = (cols.T @ g).reshape(kH, kW, -1, O).transpose(3, 2, 0, 1)  # (kH*kW*C, O) -> (O, C, kH, kW)
            dw = np.ascontiguousarray(dw)
        db = g.sum(axis=0) if needs_b else None
        if ctx.workspace is not None:
            ctx.workspace.give(buffer)  # the next forward may fill it
        return dx, dw, db
        ### END SOLUTION


class ChannelsLastConv2d(Module):
    """Drop-in for ``Conv2d`` computing through :class:`ChannelsLastConv2dFunction`.

    Built from a ``Conv2d`` (or anything with ``weight (O, C, kH, kW)``,
    ``bias``, ``stride``, ``padding``): it holds the very same ``weight`` and
    ``bias`` Parameters, so training either trains both and ``state_dict``
    keys are unchanged.

    Args:
        conv: the convolution to accelerate.
        reuse_buffers: lease the im2col matrix from a per-layer :class:`Workspace`.
        relu: apply the ReLU that followed the convolution, fused into it
            (:func:`accelerate` sets it for a ``Conv2d`` directly followed by a ``ReLU``).

    Shape: ``(N, C, H, W) -> (N, O, OH, OW)`` (memory channels-last).

    When it pays: with tens of channels or more (a CIFAR-style CNN's 32 and 64)
    every contiguous run is long and the whole CNN stays channels-last; with a
    handful (LeNet's 6 and 16) the runs are too short for the layout to matter,
    and the im2col workspace is what is left of the gain.
    """

    def __init__(self, conv, reuse_buffers: bool = True, relu: bool = False):
        super().__init__()
        weight = getattr(conv, "weight", None)
        if not isinstance(weight, Tensor) or weight.ndim != 4:
            raise ValueError(
                f"ChannelsLastConv2d: expects a convolution with a 4-D weight, got {type(conv).__name__}"
            )
        if not _plain_conv(conv):
            raise ValueError(
                "ChannelsLastConv2d: dilation and groups other than 1 are not supported "
                f"(got dilation={conv.dilation}, groups={conv.groups}); accelerate keeps such a Conv2d"
            )
        self.weight = weight
        self.bias = getattr(conv, "bias", None)
        self.out_channels, self.in_channels = int(weight.shape[0]), int(weight.shape[1])
        self.kernel_size = tuple(int(k) for k in weight.shape[2:])
        self.stride = _pair(getattr(conv, "stride", 1), "stride")
        self.padding = _pair(getattr(conv, "padding", 0), "padding")
        if min(self.stride) < 1:
            raise ValueError(f"ChannelsLastConv2d: argument 'stride' must be >= 1, got {self.stride}")
        self.workspace = Workspace() if reuse_buffers else None
        self.relu = bool(relu)
        self.training = conv.training

    def forward(self, x) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        (kH, kW), (pH, pW) = self.kernel_size, self.padding
        if (
            x.ndim != 4
            or x.shape[1] != self.in_channels
            or x.shape[2] + 2 * pH < kH
            or x.shape[3] + 2 * pW < kW
        ):
            raise ValueError(
                f"ChannelsLastConv2d: input of shape {x.shape} does not fit weight of shape "
                f"{self.weight.shape} "
                f"with padding {self.padding} (expected (N, {self.in_channels}, H, W), H and W >= the kernel)"
            )
        return ChannelsLastConv2dFunction.apply(
            x, self.weight, self.bias, stride=self.stride, padding=self.padding, workspace=self.workspace,
            relu=self.relu,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, bias={self.bias is not None}, "
            f"reuse_buffers={self.workspace is not None}" + (", relu=True" if self.relu else "")
        )


class ChannelsLastMaxPool2dFunction(Function):
    """Max over each ``kH x kW`` window of channels-last memory (``-inf`` padding); gradient to the arg-max.

    The plain ``MaxPool2d`` sees ``N*C`` one-channel images, which needs
    channel-major memory: fed a channels-last convolution output, it would
    first transpose the whole activation. Here the windows are slices of the
    ``(N, H, W, C)`` view: the maximum is taken over the ``kH*kW`` kernel
    offsets, each a vectorized pass over contiguous runs of ``C`` floats, and
    the offset of each window's first maximum (row-major order, as PyTorch) is
    kept for backward in one byte per output element. (Compare-and-select in
    one pass would do the same with masked writes, which NumPy runs far slower
    than a plain ``np.maximum``.)

    Output ``(N, C, OH, OW)``, a view of ``(N, OH, OW, C)`` memory; backward
    returns ``dx`` in the same layout.

    Cost: ``kH*kW`` elementwise passes over the output's size, forward and backward.
    """

    name = "max_pool2d"

    @staticmethod
    def forward(ctx, x, kernel=(2, 2), stride=(2, 2), padding=(0, 0)):
        geo = _conv_geometry(x.shape, kernel, stride, padding)
        ctx.geo = geo
        ### BEGIN SOLUTION
        N, C, H, W, Hp, Wp, OH, OW = (geo[k] for k in ("N", "C", "H", "W", "Hp", "Wp", "OH", "OW"))
        (kH, kW), (sH, sW), (pH, pW) = kernel, stride, padding
        xl = x.transpose(0, 2, 3, 1)  # (N, H, W, C): a view of channels-last memory
        if pH or pW:
            padded = np.full((N, Hp, Wp, C), -np.inf, dtype=x.dtype)  # a padded pixel never wins
            padded[:, pH : pH + H, pW : pW + W] = xl
            xl = padded
        # Window element k = (i, j) of every output pixel, each an (N, OH, OW, C) strided view.
        windows = [
            xl[:, i : i + sH * (OH - 1) + 1 : sH, j : j + sW * (OW - 1) + 1 : sW]
            for i in range(kH)
            for j in range(kW)
        ]
        out = windows[0].copy()
        for window in windows[1:]:
            np.maximum(out, window, out=out)
        # The first maximum in row-major window order takes the gradient. ``found`` marks the
        # windows whose maximum an earlier offset already held; offset k is the arg-max exactly
        # where it equals the maximum and nothing was found before it. Plain comparisons and an
        # add per offset: NumPy's masked writes (``copyto(where=...)``) run about 8x slower.
        arg = np.zeros(out.shape, dtype=np.uint8 if len(windows) <= 256 else np.int32)
        found = windows[0] == out
        for k in range(1, len(windows)):
            first = windows[k] == out
            first &= ~found  # a maximum here, and none at an earlier offset
            arg += first.astype(arg.dtype) * arg.dtype.type(k)
            found |= first
        ctx.save_for_backward(arg)
        return out.transpose(0, 3, 1, 2)  # (N, C, OH, OW) view of (N, OH, OW, C)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        (arg,) = ctx.saved_tensors
        geo = ctx.geo
        ### BEGIN SOLUTION
        N, C, H, W, Hp, Wp, OH, OW = (geo[k] for k in ("N", "C", "H", "W", "Hp", "Wp", "OH", "OW"))
        (kH, kW), (sH, sW), (pH, pW) = geo["kernel"], geo["stride"], geo["padding"]
        g = grad.transpose(0, 2, 3, 1)  # (N, OH, OW, C), a view when grad kept the output's layout
        # Windows that do not overlap (stride >= kernel, the usual 2x2/2) own each input pixel
        # alone: every offset's slab is *written* once, no read-add. If they also tile the whole
        # padded image, nothing is left to zero.
        disjoint = sH >= kH and sW >= kW
        tiled = (sH, sW) == (kH, kW) and (Hp, Wp) == (OH * kH, OW * kW)
        dxp = (np.empty if tiled else np.zeros)((N, Hp, Wp, C), dtype=grad.dtype)
        for k in range(kH * kW):
            i, j = divmod(k, kW)
            # Output pixel (y, x) read input pixel (y*sH + i, x*sW + j) at kernel offset k.
            slab = dxp[:, i : i + sH * (OH - 1) + 1 : sH, j : j + sW * (OW - 1) + 1 : sW]
            if disjoint:
                np.multiply(g, arg == k, out=slab)
            else:
                slab += np.where(arg == k, g, 0)
        return dxp[:, pH : pH + H, pW : pW + W].transpose(0, 3, 1, 2)  # (N, C, H, W) view
        ### END SOLUTION


class ChannelsLastMaxPool2d(Module):
    """Drop-in for ``MaxPool2d`` on channels-last memory (see :class:`ChannelsLastMaxPool2dFunction`).

    Built from a ``MaxPool2d`` (its ``kernel_size``, ``stride``, ``padding``).
    Shape: ``(N, C, H, W) -> (N, C, OH, OW)``.
    """

    def __init__(self, pool):
        super().__init__()
        self.kernel_size = _pair(pool.kernel_size, "kernel_size")
        self.stride = _pair(getattr(pool, "stride", None) or pool.kernel_size, "stride")
        self.padding = _pair(getattr(pool, "padding", 0), "padding")
        if min(self.kernel_size) < 1 or min(self.stride) < 1:
            raise ValueError(f"ChannelsLastMaxPool2d: kernel_size and stride must be >= 1, got {pool!r}")

    def forward(self, x) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        (kH, kW), (pH, pW) = self.kernel_size, self.padding
        if x.ndim != 4 or x.shape[2] + 2 * pH < kH or x.shape[3] + 2 * pW < kW:
            raise ValueError(
                f"ChannelsLastMaxPool2d: input of shape {x.shape} (padded by {self.padding}) is not 4-D "
                f"(N, C, H, W) or is smaller than the kernel {self.kernel_size}"
            )
        return ChannelsLastMaxPool2dFunction.apply(
            x, kernel=self.kernel_size, stride=self.stride, padding=self.padding
        )

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


# =============================================================================================
# 5. Fused decoding: a GPT with a KV cache on raw arrays
# =============================================================================================


class FusedGPTDecoder:
    """Cached decoding of a ``GPT`` on the raw weight arrays.

    ``GPT.generate`` with a KV cache does O(1) new work per token, but each
    step still runs some fifty framework operations (Tensor wrappers, graph
    bookkeeping, validation) on vectors of ``embed_dim`` numbers, where that
    overhead, not the arithmetic, sets the speed. This decoder takes a trained
    ``GPT`` once, keeps references to its weight arrays (``Linear`` layers, or
    quantized ones dequantized once), and runs each step as plain NumPy on a
    :class:`~tinytorch.generation.kv_cache.KVCache`, reusing the architecture
    tier's own LayerNorm, softmax and token sampling code on arrays: the same
    floating-point operations as the model's layers, so greedy decoding returns
    the same tokens as ``GPT.generate``.

    The decoder is a snapshot: rebuild it after further training or quantization.

    Args:
        model: a ``tinytorch.models.transformer.GPT``.

    Example::

        decoder = FusedGPTDecoder(gpt)
        tokens = decoder.generate(prompt, 256, temperature=0)   # == gpt.generate(prompt, 256, temperature=0)
    """

    def __init__(self, model):
        try:
            emb = model.embedding
            self.tok = emb.token_embedding.weight.data
            pos = getattr(emb, "position_embedding", None)
            pos = pos.weight if pos is not None else emb.position_table
            self.pos = np.asarray(getattr(pos, "data", pos))
            self.blocks = []
            for blk in model.blocks:
                self.blocks.append({
                    "ln1": (blk.ln1.weight.data, blk.ln1.bias.data, blk.ln1.eps),
                    "qkv": linear_arrays(blk.attn.in_proj), "o": linear_arrays(blk.attn.out_proj),
                    "ln2": (blk.ln2.weight.data, blk.ln2.bias.data, blk.ln2.eps),
                    "fc1": linear_arrays(blk.mlp.fc1), "fc2": linear_arrays(blk.mlp.fc2),
                    "activation": getattr(blk.mlp, "activation", "gelu"),
                })  # fmt: skip
            self.ln_f = (model.ln_f.weight.data, model.ln_f.bias.data, model.ln_f.eps)
            self.head = linear_arrays(model.head)
            self.num_heads, self.head_dim = model.num_heads, model.embed_dim // model.num_heads
            self.max_seq_len, self.vocab_size = model.max_seq_len, model.vocab_size
        except (AttributeError, ValueError) as exc:
            raise ValueError(f"FusedGPTDecoder: expects a GPT-shaped model ({exc})") from None
        self.model = model

    def step(self, ids: np.ndarray, cache: KVCache) -> np.ndarray:
        """Logits ``(B, T, V)`` of the new tokens ``ids (B, T)`` at positions ``cache.seq_len ..``.

        Their keys and values are written into ``cache``, which is then advanced by ``T``.
        """
        ### BEGIN SOLUTION
        B, T = ids.shape
        H, D = self.num_heads, self.head_dim
        offset = cache.seq_len
        x = self.tok[ids] + self.pos[offset : offset + T]  # (B, T, E)
        # Query t (absolute position offset + t) sees keys 0..offset + t; one new token sees all of them.
        bias = None
        if T > 1:
            bias = np.where(np.tri(T, offset + T, k=offset, dtype=bool), 0.0, -np.inf).astype(x.dtype)
        scale = x.dtype.type(1.0 / math.sqrt(D))
        for i, p in enumerate(self.blocks):
            qkv = _linear(_layer_norm(x, *p["ln1"]), *p["qkv"])  # (B, T, 3E): q | k | v
            q, k, v = qkv.reshape(B, T, 3, H, D).transpose(2, 0, 3, 1, 4)  # 3 x (B, H, T, D)
            cache.update(i, k, v)
            k_all, v_all = cache.get(i)  # (B, H, offset + T, D)
            scores = (q * scale) @ k_all.transpose(0, 1, 3, 2)  # (B, H, T, offset + T), as the model
            if bias is not None:
                scores += bias
            weights = SoftmaxFunction.forward(SoftmaxFunction(), scores, dim=-1)
            y = (weights @ v_all).transpose(0, 2, 1, 3).reshape(B, T, H * D)  # (B, H, T, D) -> (B, T, E)
            x = x + _linear(y, *p["o"])
            h = _linear(_layer_norm(x, *p["ln2"]), *p["fc1"])  # (B, T, hidden)
            if p["activation"] == "relu":
                np.maximum(h, 0, out=h)  # ReLU in place
            else:
                h, _ = gelu_forward_inplace(h)
            x = x + _linear(h, *p["fc2"])
        cache.advance(T)
        return _linear(_layer_norm(x, *self.ln_f), *self.head)
        ### END SOLUTION

    def generate(self, prompt_tokens, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 seed: int | None = None) -> np.ndarray:  # fmt: skip
        """Prompt ``(B, T)`` (or ``(T,)``) followed by ``max_new_tokens`` tokens, int64; as ``GPT.generate``.

        ``temperature == 0`` is greedy (the same tokens as ``GPT.generate``);
        otherwise tokens are drawn by the architecture tier's sampling function
        with the same ``seed`` handling. When prompt plus new tokens exceed
        ``max_seq_len`` (the window would slide), this defers to ``model.generate``.
        """
        ids = np.asarray(getattr(prompt_tokens, "data", prompt_tokens))
        squeeze = ids.ndim == 1
        ids = ids[None] if squeeze else ids
        if ids.ndim != 2 or ids.shape[1] < 1 or ids.dtype.kind not in "iu":
            raise ValueError(
                f"FusedGPTDecoder.generate: argument 'prompt_tokens' must be integer ids of shape (B, T), "
                f"got shape {np.shape(prompt_tokens)}"
            )
        if ids.min() < 0 or ids.max() >= self.vocab_size:
            raise ValueError(
                f"FusedGPTDecoder.generate: argument 'prompt_tokens' must be in [0, {self.vocab_size})"
            )
        if (
            isinstance(max_new_tokens, bool)
            or not isinstance(max_new_tokens, (int, np.integer))
            or max_new_tokens < 0
        ):
            raise ValueError(
                "FusedGPTDecoder.generate: argument 'max_new_tokens' must be an int >= 0, "
                f"got {max_new_tokens!r}"
            )
        if not temperature >= 0:  # also refuses NaN
            raise ValueError(
                f"FusedGPTDecoder.generate: argument 'temperature' must be >= 0, got {temperature}"
            )
        if top_k is not None and top_k < 1:
            raise ValueError(f"FusedGPTDecoder.generate: argument 'top_k' must be >= 1, got {top_k}")
        B, T0 = ids.shape
        if T0 + max_new_tokens > self.max_seq_len:
            out = self.model.generate(ids, max_new_tokens, temperature=temperature, top_k=top_k, seed=seed)
            return out[0] if squeeze else out
        ### BEGIN SOLUTION
        out = np.empty((B, T0 + max_new_tokens), dtype=np.int64)
        out[:, :T0] = ids
        rng = np.random.default_rng(seed)
        cache = KVCache(B, self.max_seq_len, len(self.blocks), self.num_heads, self.head_dim)
        new = out[:, :T0]  # the prompt first, then one token per step
        for n in range(T0, T0 + max_new_tokens):
            logits = self.step(new, cache)[:, -1]  # (B, V)
            out[:, n] = sample_next_token(logits, temperature, top_k, rng)  # the model's own sampler
            new = out[:, n : n + 1]
        ### END SOLUTION
        return out[0] if squeeze else out


def _linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """``x @ W^T + b`` on arrays: the plain ``Linear``'s arithmetic without the Tensor around it.

    ``x`` is seen as a 2-D ``(rows, in)`` matrix: a 2-D product with the transposed
    weight *view* goes straight to BLAS (a transposed-operand GEMM), where a 3-D
    ``(B, T, in) @ W.T`` would first copy ``W.T`` into contiguous memory, every call.
    """
    out = x.reshape(-1, x.shape[-1]) @ weight.T  # (rows, in) @ (in, out)
    if bias is not None:
        out += bias
    return out.reshape(*x.shape[:-1], weight.shape[0])


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """The architecture tier's LayerNorm forward, called on arrays (one implementation of the math)."""
    return LayerNormFunction.forward(LayerNormFunction(), x, weight, bias, eps=eps)


def fast_generate(model, prompt_tokens, max_new_tokens: int, temperature: float = 1.0,
                  top_k: int | None = None, seed: int | None = None) -> np.ndarray:  # fmt: skip
    """``model.generate(...)`` through a fresh :class:`FusedGPTDecoder` (same arguments, same tokens)."""
    return FusedGPTDecoder(model).generate(prompt_tokens, max_new_tokens, temperature, top_k, seed)


# =============================================================================================
# 6. Blockwise attention: causal attention without a (T, T) array
# =============================================================================================


class BlockwiseAttentionFunction(Function):
    """Causal ``softmax(q k^T / sqrt(D)) v``, computed one block of keys at a time.

    The plain attention (Module 12) holds the scores, the masked scores and the
    weights, three ``(B, H, T, T)`` arrays per layer, until backward: at
    T = 1,024 they outgrow everything else in the step. Here the softmax is
    *online*: for each block of ``block`` keys, the new scores update a running
    row maximum ``m``, a running sum ``l`` of ``exp(s - m)`` and a running output,
    both rescaled by ``exp(m_old - m_new)`` when the maximum grows; after the
    last block the output is divided by ``l``. Backward recomputes each block's
    weights from the saved log-sum-exp ``m + log l`` (no ``(T, T)`` array is ever
    kept) and accumulates ``dq``, ``dk``, ``dv`` block by block, with
    ``ds = p * (dp - rowsum(do * o))`` as the softmax's Jacobian-vector product.
    Causality: key block ``[j0, j1)`` is only visible to queries ``j0..T-1``, so
    each block works on those rows alone (about half the plain path's products).

    Shapes: q, k, v ``(B, H, T, D)`` -> ``(B, H, T, D)``.
    Memory: ``O(B H T block)`` scratch instead of ``O(B H T^2)``; cost: the plain
    path's flops, about half skipped above the diagonal, plus the recomputation in backward.
    """

    name = "blockwise_attention"

    @staticmethod
    def forward(ctx, q, k, v, block=128):
        ### BEGIN SOLUTION
        T, D = q.shape[-2], q.shape[-1]
        qs = q * q.dtype.type(1.0 / math.sqrt(D))  # scaled queries, (B, H, T, D)
        m = np.full(q.shape[:-1] + (1,), -np.inf, dtype=q.dtype)  # running row max, (B, H, T, 1)
        l = np.zeros_like(m)  # running sum of exp(s - m)
        acc = np.zeros_like(q)  # running (unnormalized) output, (B, H, T, D)
        for j0 in range(0, T, block):
            j1 = min(j0 + block, T)
            rows = slice(j0, T)  # only queries j0.. can see keys j0..j1-1
            # The block's scores, then its weights, in one array updated in place (section 2's lesson:
            # at T = 1,024 each extra (B, H, T - j0, block) temporary costs more than its arithmetic).
            s = qs[..., rows, :] @ k[..., j0:j1, :].swapaxes(-1, -2)  # (B, H, T - j0, j1 - j0)
            s[..., ~_causal(j0, j1, T)] = -np.inf  # query i sees key j only if j <= i
            m_new = np.maximum(m[..., rows, :], s.max(axis=-1, keepdims=True))
            s -= m_new
            p = np.exp(s, out=s)  # exp(s - m_new): 0 where masked
            correction = np.exp(m[..., rows, :] - m_new)  # rescales what earlier blocks summed
            l[..., rows, :] *= correction
            l[..., rows, :] += p.sum(axis=-1, keepdims=True)
            acc[..., rows, :] *= correction
            acc[..., rows, :] += p @ v[..., j0:j1, :]
            m[..., rows, :] = m_new
        out = acc
        out /= l
        ctx.block, ctx.lse = block, m + np.log(l)  # (B, H, T, 1): enough to rebuild any block's weights
        ctx.save_for_backward(qs, k, v, out)
        return out
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        qs, k, v, out = ctx.saved_tensors
        T, D = qs.shape[-2], qs.shape[-1]
        scale = qs.dtype.type(1.0 / math.sqrt(D))
        delta = (grad * out).sum(axis=-1, keepdims=True)  # (B, H, T, 1): rowsum(do * o)
        # dk and dv: each key block's rows are written exactly once below, so no zero fill.
        dq, dk, dv = np.zeros_like(qs), np.empty_like(k), np.empty_like(v)
        for j0 in range(0, T, ctx.block):
            j1 = min(j0 + ctx.block, T)
            rows = slice(j0, T)
            p = qs[..., rows, :] @ k[..., j0:j1, :].swapaxes(-1, -2)  # scores, (B, H, T - j0, j1 - j0)
            p -= ctx.lse[..., rows, :]
            np.exp(p, out=p)  # the weights again, in place
            p[..., ~_causal(j0, j1, T)] = 0.0
            dv[..., j0:j1, :] = p.swapaxes(-1, -2) @ grad[..., rows, :]
            ds = grad[..., rows, :] @ v[..., j0:j1, :].swapaxes(-1, -2)  # dp, then ds in place:
            ds -= delta[..., rows, :]
            ds *= p  # ds = p * (dp - rowsum(do * o)): the softmax backward, row by row
            dq[..., rows, :] += ds @ k[..., j0:j1, :]
            dk[..., j0:j1, :] = ds.swapaxes(-1, -2) @ qs[..., rows, :]
        dq *= scale  # s = (q * scale) k^T: the scale reaches dq; dk already saw qs
        return dq, dk, dv
        ### END SOLUTION


def _causal(j0: int, j1: int, T: int) -> np.ndarray:
    """(T - j0, j1 - j0) bool: query ``j0 + r`` may see key ``j0 + c`` iff ``c <= r``."""
    return np.arange(j1 - j0)[None, :] <= np.arange(T - j0)[:, None]


def blockwise_attention(q, k, v, block: int = 128) -> Tensor:
    """Causal attention of q, k, v ``(B, H, T, D)`` through :class:`BlockwiseAttentionFunction`."""
    q, k, v = (t if isinstance(t, Tensor) else Tensor(t) for t in (q, k, v))
    if not (q.shape == k.shape == v.shape) or q.ndim != 4:
        raise ValueError(
            "blockwise_attention: q, k, v must share one (B, H, T, D) shape, "
            f"got {q.shape}, {k.shape}, {v.shape}"
        )
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
        raise ValueError(f"blockwise_attention: argument 'block' must be an int >= 1, got {block!r}")
    return BlockwiseAttentionFunction.apply(q, k, v, block=int(block))


class BlockwiseMultiHeadAttention(Module):
    """Drop-in for ``MultiHeadAttention`` in a causal model: :func:`blockwise_attention` inside.

    Holds the very same ``in_proj``, ``out_proj`` and ``dropout`` (parameters and
    ``state_dict`` keys unchanged). It computes the blockwise path only where it
    is the same function: a causal mask over the whole sequence (what ``GPT``
    passes) and no attention dropout in training; a KV cache, another mask or
    active dropout go through the plain ``MultiHeadAttention.forward``.
    """

    def __init__(self, attention: MultiHeadAttention, block: int = 128) -> None:
        super().__init__()
        self.embed_dim, self.num_heads = attention.embed_dim, attention.num_heads
        self.head_dim = attention.head_dim
        self.in_proj, self.out_proj, self.dropout = attention.in_proj, attention.out_proj, attention.dropout
        self.block = int(block)
        self.training = attention.training

    def forward(self, x, mask=None, *extra, cache=None, layer_idx: int = 0) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        if cache is not None or extra or x.ndim != 3 or not self._causal(mask, x.shape[1]) or (
            self.training and self.dropout.p > 0
        ):
            return MultiHeadAttention.forward(self, x, mask, *extra, cache=cache, layer_idx=layer_idx)
        B, T, E = x.shape
        H, D = self.num_heads, self.head_dim
        qkv = self.in_proj(x).reshape(B, T, 3, H, D).permute(2, 0, 3, 1, 4)  # (3, B, H, T, D)
        out = blockwise_attention(qkv[0], qkv[1], qkv[2], self.block)  # (B, H, T, D)
        return self.out_proj(out.transpose(1, 2).reshape(B, T, E))  # (B, T, H, D) -> (B, T, E)

    @staticmethod
    def _causal(mask, T: int) -> bool:
        """True for the full causal mask of T positions (or no mask for one position)."""
        if mask is None:
            return T == 1
        m = np.asarray(getattr(mask, "data", mask))
        return m.dtype == bool and m.shape == (T, T) and np.array_equal(m, np.tri(T, dtype=bool))

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, block={self.block}"


# =============================================================================================
# The opt-in entry point
# =============================================================================================


def _overrides_forward(module, cls) -> bool:
    return type(module).forward is not cls.forward


def _plain_conv(conv) -> bool:
    """No dilation and one group: the layouts :class:`ChannelsLastConv2d` implements."""
    return tuple(getattr(conv, "dilation", (1, 1))) == (1, 1) and getattr(conv, "groups", 1) == 1


def _accelerated(module, reuse_buffers: bool, attention_block: int | None = None):
    """The accelerated replacement of ``module`` (sharing its parameters), or None to keep it."""
    # Exact classes' semantics are what the replacements reproduce: a subclass with its
    # own forward computes something else and is kept.
    if isinstance(module, Conv2d) and not _overrides_forward(module, Conv2d) and _plain_conv(module):
        return ChannelsLastConv2d(module, reuse_buffers=reuse_buffers)
    if isinstance(module, MaxPool2d) and not _overrides_forward(module, MaxPool2d):
        return ChannelsLastMaxPool2d(module)
    if isinstance(module, GELU) and module.approximate == "tanh" and not _overrides_forward(module, GELU):
        return FusedGELU()
    if isinstance(module, MLP) and not _overrides_forward(module, MLP):
        return FusedMLP(module)
    if type(module) is Embedding:
        return FlatIndexEmbedding(module)
    if attention_block is not None and type(module) is MultiHeadAttention:
        return BlockwiseMultiHeadAttention(module, attention_block)
    return None


def _fusable(module, cls) -> bool:
    """``module`` is a ``cls`` with ``cls``'s own forward and no forward hooks (fusing would skip them)."""
    hooked = any(vars(module).get(name) for name in ("_forward_pre_hooks", "_forward_hooks"))
    return isinstance(module, cls) and not _overrides_forward(module, cls) and not hooked


def _fuse_relu(sequence) -> None:
    """In a (copied) ``Sequential``: each ``Linear`` or accelerated convolution directly followed by a
    ``ReLU`` becomes one layer with the ReLU fused (:class:`FusedLinearReLU`, :class:`ChannelsLastConv2d`
    with ``relu=True``) + :class:`AppliedReLU`, so positions and ``state_dict`` keys stay."""
    names = [name for name, value in vars(sequence).items() if isinstance(value, Module)]
    for first, second in zip(names, names[1:]):
        layer, relu = getattr(sequence, first), getattr(sequence, second)
        if not _fusable(relu, ReLU):
            continue
        if _fusable(layer, Linear):
            setattr(sequence, first, FusedLinearReLU(layer))
        elif _fusable(layer, ChannelsLastConv2d) and not layer.relu:
            # A new layer on the same parameters: the convolution may be shared elsewhere unfused.
            setattr(sequence, first, ChannelsLastConv2d(layer, layer.workspace is not None, relu=True))
        else:
            continue
        setattr(sequence, second, AppliedReLU())


def accelerate(model, reuse_buffers: bool = True, attention_block: int | None = None):
    """A copy of ``model`` with accelerated layers swapped in; ``model`` itself is left as it is.

    Swaps (each computes the same values and gradients, to float32 rounding):

    * ``Conv2d`` -> :class:`ChannelsLastConv2d` (channels-last im2col, one GEMM
      straight into channels-last memory; im2col matrix reused across steps
      when ``reuse_buffers``); a dilated or grouped ``Conv2d`` is kept;
    * ``GELU`` -> :class:`FusedGELU` and the transformer's ``MLP`` -> :class:`FusedMLP`
      (in-place GELU forward and backward, or ``fc1`` and ReLU as one operation);
    * in a ``Sequential``, a ``Linear`` or ``Conv2d`` directly followed by a ``ReLU`` ->
      :class:`FusedLinearReLU` (or :class:`ChannelsLastConv2d` with ``relu=True``) and
      :class:`AppliedReLU` (bias and ReLU in place on the product); layers with forward
      hooks are not fused;
    * ``Embedding`` -> :class:`FlatIndexEmbedding` (the same lookup; its backward
      scatter-adds through flat 1-D positions, which NumPy runs faster);
    * with ``attention_block`` set, ``MultiHeadAttention`` ->
      :class:`BlockwiseMultiHeadAttention` (causal attention by blocks of that many
      keys: no (T, T) array; for long sequences, where those arrays dominate memory).

    Every other module is copied shallowly with its sub-modules rebuilt the
    same way, so the copy holds the **same Parameter objects** (and buffers) as
    ``model``: ``state_dict`` keys and values are identical, an optimizer built on
    either model's parameters trains both, and ``model`` keeps running the
    plain path (accelerating is an opt-in, never a global switch). Forward
    hooks registered on ``model`` before the call are carried over.

    Args:
        model: a Module.
        reuse_buffers: let each accelerated convolution reuse its im2col matrix.
        attention_block: None (default: attention stays plain) or the key block size
            of :class:`BlockwiseMultiHeadAttention`.

    Returns:
        the accelerated copy.
    """
    if not isinstance(model, Module):
        raise ValueError(f"accelerate: argument 'model' must be a Module, got {type(model).__name__}")
    block = attention_block
    if block is not None and (type(block) is bool or not isinstance(block, numbers.Integral) or block < 1):
        raise ValueError(f"accelerate: argument 'attention_block' must be None or an int >= 1, got {block!r}")
    memo = {}

    def rebuild(module):
        if id(module) in memo:  # a shared sub-module stays shared
            return memo[id(module)]
        new = _accelerated(module, reuse_buffers, attention_block)
        memo[id(module)] = new
        if new is None:
            new = memo[id(module)] = copy.copy(module)  # same attributes: parameters, buffers, settings
            for name in ("_forward_pre_hooks", "_forward_hooks", "_buffer_names"):
                if name in vars(module):
                    setattr(new, name, copy.copy(vars(module)[name]))  # own hook tables
            for name, value in vars(module).items():
                if isinstance(value, Module):
                    setattr(new, name, rebuild(value))
                elif isinstance(value, (list, tuple)) and any(isinstance(v, Module) for v in value):
                    setattr(new, name, type(value)(rebuild(v) if isinstance(v, Module) else v for v in value))
            if isinstance(module, Sequential) and not _overrides_forward(module, Sequential):
                _fuse_relu(new)
        return new

    return rebuild(model)
