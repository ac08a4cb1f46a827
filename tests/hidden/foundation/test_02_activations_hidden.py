"""Hidden tests of module 02 (activations): closed forms, including the extreme tails."""

from __future__ import annotations

import numpy as np
from _oracles import assert_close
from tinytorch.core.activations import relu, sigmoid, softmax
from tinytorch.core.tensor import Tensor


def test_relu_sigmoid_softmax_closed_forms():
    x = np.array([[-800.0, -3.0, 0.0, 2.5, 800.0]])
    assert_close(relu(Tensor(x, dtype=np.float64)), np.maximum(x, 0), rtol=0, what="relu")
    expected = np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))
    assert_close(sigmoid(Tensor(x, dtype=np.float64)), expected, rtol=1e-12, what="sigmoid")
    z = x - x.max(axis=-1, keepdims=True)
    assert_close(softmax(Tensor(x, dtype=np.float64)), np.exp(z) / np.exp(z).sum(-1, keepdims=True),
                 rtol=1e-12, what="softmax")  # fmt: skip
