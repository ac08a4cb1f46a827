"""Hidden tests of module 03 (layers): a Linear layer is affine (whatever its weight layout)."""

from __future__ import annotations

import numpy as np
from _oracles import assert_close
from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.tensor import Tensor


def test_linear_is_affine_and_sequential_composes():
    np.random.seed(31)
    layer = Linear(4, 3)
    rng = np.random.default_rng(32)
    a, b = rng.standard_normal((5, 4)).astype(np.float32), rng.standard_normal((5, 4)).astype(np.float32)
    zero = layer(Tensor(np.zeros((5, 4), dtype=np.float32))).data
    assert layer(Tensor(a)).shape == (5, 3)
    assert_close(layer(Tensor(a + b)).data, layer(Tensor(a)).data + layer(Tensor(b)).data - zero,
                 rtol=1e-5, atol=1e-5, what="affinity")  # fmt: skip
    second = Linear(3, 2)
    assert_close(Sequential(layer, second)(Tensor(a)), second(layer(Tensor(a))), rtol=0, what="Sequential")
    assert len(list(Sequential(layer, second).parameters())) == 4
