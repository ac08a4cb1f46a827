"""Module 18: every accelerated kernel equals its reference; the speed report is measured."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tinytorch.optimization.acceleration import (
    format_speed_table,
    fused_gelu,
    measure_matmul_speed,
    naive_gelu,
    naive_matmul,
    tiled_matmul,
    unfused_gelu,
    vectorized_matmul,
)


def loop_matmul_oracle(a, b):
    """Independent oracle: float64 triple loop written here."""
    out = np.zeros((a.shape[0], b.shape[1]))
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            out[i, j] = sum(float(a[i, p]) * float(b[p, j]) for p in range(a.shape[1]))
    return out


@settings(max_examples=25, deadline=None)
@given(
    m=st.integers(1, 20),
    k=st.integers(1, 20),
    n=st.integers(1, 20),
    tile=st.integers(1, 9),
    seed=st.integers(0, 99),
)
def test_matmuls_equal_loop_oracle(m, k, n, tile, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    ref = loop_matmul_oracle(a, b)
    for out in (
        naive_matmul(a, b),
        vectorized_matmul(a, b, block_rows=3),
        tiled_matmul(a, b, tile_size=tile),
    ):
        assert out.shape == (m, n)
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_matmuls_equal_np_matmul_on_larger_nonsquare():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((130, 70)).astype(np.float32)
    b = rng.standard_normal((70, 90)).astype(np.float32)
    ref = np.matmul(a, b)
    np.testing.assert_allclose(vectorized_matmul(a, b), ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(tiled_matmul(a, b), ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(tiled_matmul(a, b, tile_size=16), ref, rtol=1e-4, atol=1e-4)
    assert tiled_matmul(a, b).dtype == np.float32


@pytest.mark.parametrize("fn", [naive_matmul, vectorized_matmul, tiled_matmul])
def test_matmul_shape_errors(fn):
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 2\)"):
        fn(np.ones((3, 4)), np.ones((5, 2)))
    with pytest.raises(ValueError):
        fn(np.ones(3), np.ones((3, 2)))


def test_tile_size_validated():
    with pytest.raises(ValueError, match="tile_size"):
        tiled_matmul(np.ones((2, 2)), np.ones((2, 2)), tile_size=0)


def gelu_reference(x):
    return np.array(
        [0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3))) for v in x.ravel()]
    )


def test_gelu_variants_equal_reference(torch):
    x = np.linspace(-6, 6, 301).astype(np.float32).reshape(7, 43)
    ref = gelu_reference(x).reshape(x.shape)
    for fn in (naive_gelu, unfused_gelu, fused_gelu):
        out = fn(x)
        assert out.shape == x.shape and out.dtype == np.float32
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    expected = torch.nn.functional.gelu(torch.from_numpy(x), approximate="tanh").numpy()
    np.testing.assert_allclose(fused_gelu(x), expected, rtol=1e-5, atol=1e-6)


def test_fused_gelu_does_not_modify_input_and_accepts_tensor():
    from tinytorch.core.tensor import Tensor

    x = np.array([-1.0, 0.0, 2.0], dtype=np.float32)
    before = x.copy()
    fused_gelu(x)
    np.testing.assert_array_equal(x, before)
    out = fused_gelu(Tensor(x))
    assert isinstance(out, Tensor)
    np.testing.assert_allclose(out.data, gelu_reference(x), rtol=1e-6, atol=1e-7)


def test_speed_report_is_measured_and_blas_wins():
    rows = measure_matmul_speed(sizes=(32, 128), repeats=2, loop_max_size=32)
    assert [r["n"] for r in rows] == [32, 128]
    small, big = rows
    assert small["flops"] == 2 * 32**3
    assert small["loop_seconds"] > 0 and big["loop_gflops"] is None
    for method in ("loop", "vectorized", "tiled", "blas"):
        if small[f"{method}_seconds"] is not None:
            assert math.isclose(small[f"{method}_gflops"], small["flops"] / small[f"{method}_seconds"] / 1e9)
    # The ratio is reported, not asserted (no wall-clock result in a test): it is derived from the times.
    assert math.isclose(small["blas_speedup_over_loop"], small["loop_seconds"] / small["blas_seconds"])
    table = format_speed_table(rows)
    assert table.count("\n") == 3 and "BLAS" in table
