"""Hidden tests of module 18 (acceleration): every matmul variant and the fused GELU against NumPy."""

from __future__ import annotations

import math

import numpy as np
from tinytorch.optimization.acceleration import fused_gelu, naive_matmul, tiled_matmul, vectorized_matmul


def test_matmul_variants_on_awkward_shapes():
    rng = np.random.default_rng(181)
    a, b = rng.standard_normal((13, 9)), rng.standard_normal((9, 7))
    expected = a @ b
    np.testing.assert_allclose(naive_matmul(a, b), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(vectorized_matmul(a, b, block_rows=4), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(tiled_matmul(a, b, tile_size=5), expected, rtol=1e-10, atol=1e-12)


def test_fused_gelu_matches_the_formula():
    x = np.linspace(-6, 6, 49).astype(np.float32)
    expected = [0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3))) for v in x.tolist()]
    np.testing.assert_allclose(fused_gelu(x), np.array(expected), rtol=1e-5, atol=1e-6)
