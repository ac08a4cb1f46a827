"""Hidden tests of module 01 (tensor): values of broadcast arithmetic, reductions and matmul."""

from __future__ import annotations

import numpy as np
from _oracles import assert_close
from tinytorch.core.tensor import Tensor


def test_broadcast_arithmetic_values():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([1.0, -2.0, 0.5], dtype=np.float32)
    assert_close((Tensor(a) + Tensor(b)) * Tensor(b) - Tensor(a) / 2, (a + b) * b - a / 2, what="expression")


def test_matmul_and_reductions_values():
    rng = np.random.default_rng(11)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    assert_close(Tensor(a, dtype=np.float64) @ Tensor(b, dtype=np.float64), a @ b, rtol=1e-12, what="matmul")
    assert_close(Tensor(a).sum(), a.sum(), rtol=1e-5, what="sum")
    assert_close(Tensor(a, dtype=np.float64).mean(axis=0), a.mean(axis=0), rtol=1e-12, what="mean(axis=0)")
