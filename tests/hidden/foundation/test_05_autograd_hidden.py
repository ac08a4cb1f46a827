"""Hidden tests of module 05 (autograd): gradients of composite expressions by finite differences."""

from __future__ import annotations

import numpy as np
from _oracles import gradcheck
from tinytorch.core.activations import sigmoid
from tinytorch.core.losses import cross_entropy
from tinytorch.core.tensor import Tensor


def test_gradient_of_a_shared_broadcast_expression():
    rng = np.random.default_rng(51)
    a = Tensor(rng.standard_normal((3, 4)), requires_grad=True, dtype=np.float64)
    b = Tensor(rng.standard_normal(4), requires_grad=True, dtype=np.float64)
    assert gradcheck(
        lambda a, b: sigmoid(a * b + a) @ Tensor(np.ones((4, 2)), dtype=np.float64) - b.sum(), [a, b]
    )


def test_gradient_of_cross_entropy_of_a_matmul():
    rng = np.random.default_rng(52)
    x = Tensor(rng.standard_normal((5, 3)), requires_grad=True, dtype=np.float64)
    w = Tensor(rng.standard_normal((3, 4)), requires_grad=True, dtype=np.float64)
    labels = np.array([0, 1, 3, 2, 1])
    assert gradcheck(lambda x, w: cross_entropy(x @ w, labels), [x, w])
