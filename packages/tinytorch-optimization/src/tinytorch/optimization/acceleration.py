"""Module 18: acceleration, or why the same arithmetic can run 1000x faster.

A matrix product ``C = A @ B`` with ``A (M, K)`` and ``B (K, N)`` is
``2 * M * K * N`` floating-point operations (one multiply and one add per
term) whichever way we compute it. What changes is how fast the machine does
them:

* ``naive_matmul``: three Python loops. Every multiply-add goes through the
  interpreter (boxing floats, dispatching ``*`` and ``+``): ~10-50 MFLOP/s.
* ``vectorized_matmul``: one NumPy expression per row-block (broadcast
  multiply then sum). The loops run in C, but the products are materialized
  in memory first, so it is bound by memory bandwidth.
* ``tiled_matmul``: splits the product into ``tile_size`` blocks so each block
  of A, B and C fits in cache, and multiplies blocks with BLAS. This is the
  idea inside every fast GEMM (cache blocking).
* ``np.matmul``: the BLAS library (OpenBLAS/MKL): cache blocking, SIMD
  registers, several cores. Tens of GFLOP/s.

``fused_gelu`` shows the same effect for elementwise code: the tanh GELU
written as a chain of NumPy operations allocates one temporary array per
operation (memory traffic dominates); the fused version reuses one buffer.

:func:`measure_matmul_speed` times all of them and reports GFLOP/s.
"""

from __future__ import annotations

import math
import time

import numpy as np

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


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


def naive_gelu(x) -> np.ndarray:
    """Tanh-approximation GELU, one element at a time with :mod:`math` (the oracle).

    ``gelu(x) = 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))``
    """
    ### BEGIN SOLUTION
    arr = _as_array(x, "x")
    flat = [
        0.5 * v * (1.0 + math.tanh(_SQRT_2_OVER_PI * (v + 0.044715 * v * v * v)))
        for v in arr.ravel().tolist()
    ]
    return np.array(flat, dtype=np.result_type(arr, np.float32)).reshape(arr.shape)
    ### END SOLUTION


def unfused_gelu(x) -> np.ndarray:
    """Tanh GELU as a chain of NumPy operations: each line allocates a new temporary array."""
    ### BEGIN SOLUTION
    arr = _as_array(x, "x")
    cube = arr**3
    inner = arr + 0.044715 * cube
    scaled = _SQRT_2_OVER_PI * inner
    t = np.tanh(scaled)
    one_plus = 1.0 + t
    return 0.5 * arr * one_plus
    ### END SOLUTION


def fused_gelu(x) -> np.ndarray:
    """Tanh GELU computed in one reused buffer (no temporaries beyond the output).

    Same formula as :func:`naive_gelu`; every step writes into ``out`` with
    ``out=`` so the array is streamed through memory ~6 times instead of
    allocating 6 fresh arrays. A Tensor input gives a Tensor output (no grad).
    """
    ### BEGIN SOLUTION
    arr = _as_array(x, "x")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
    out = np.multiply(arr, arr)  # x^2 (the only allocation)
    np.multiply(out, 0.044715, out=out)  # 0.044715 x^2
    np.add(out, 1.0, out=out)  # 1 + 0.044715 x^2
    np.multiply(out, arr, out=out)  # x + 0.044715 x^3
    np.multiply(out, _SQRT_2_OVER_PI, out=out)
    np.tanh(out, out=out)
    np.add(out, 1.0, out=out)
    np.multiply(out, arr, out=out)
    np.multiply(out, 0.5, out=out)
    if not isinstance(x, np.ndarray) and hasattr(x, "data"):
        from tinytorch.core.tensor import Tensor  # lazy: this module works on plain arrays too

        return Tensor(out)
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
