"""Module 02 - Activations: closed forms, stability at extreme inputs, float64 gradchecks, PyTorch oracle."""

import math

import numpy as np
import pytest
from tinytorch.core.activations import GELU, ReLU, Sigmoid, Softmax, Tanh, gelu, relu, sigmoid, softmax, tanh
from tinytorch.core.autograd import gradcheck
from tinytorch.core.tensor import Tensor

RNG = np.random.default_rng(2)


def t64(shape):
    return Tensor(RNG.standard_normal(shape) * 2.0, requires_grad=True, dtype=np.float64)


def test_closed_forms():
    x = np.linspace(-4, 4, 17)
    t = Tensor(x, dtype=np.float64)
    np.testing.assert_allclose(relu(t).data, np.where(x > 0, x, 0.0))
    np.testing.assert_allclose(sigmoid(t).data, 1.0 / (1.0 + np.exp(-x)), rtol=1e-12)
    np.testing.assert_allclose(tanh(t).data, np.tanh(x))
    c = math.sqrt(2.0 / math.pi)
    np.testing.assert_allclose(gelu(t).data, 0.5 * x * (1 + np.tanh(c * (x + 0.044715 * x**3))), rtol=1e-12)
    m = RNG.standard_normal((3, 4))
    s = softmax(Tensor(m, dtype=np.float64), dim=0).data
    np.testing.assert_allclose(s, np.exp(m) / np.exp(m).sum(axis=0, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(s.sum(axis=0), 1.0)


def test_modules_match_functions_and_tensor_methods():
    x = Tensor(RNG.standard_normal((2, 5)))
    for module, fn, method in [
        (ReLU(), relu, x.relu),
        (Sigmoid(), sigmoid, x.sigmoid),
        (Tanh(), tanh, x.tanh),
        (Softmax(dim=-1), softmax, x.softmax),
    ]:
        np.testing.assert_array_equal(module(x).data, fn(x).data)
        np.testing.assert_array_equal(method().data, fn(x).data)
        assert module(x).dtype == np.float32
    np.testing.assert_array_equal(GELU()(x).data, gelu(x).data)
    assert repr(Softmax(dim=1)) == "Softmax(dim=1)" and repr(ReLU()) == "ReLU()"


def test_extreme_inputs_stay_finite():
    x = Tensor([[-1000.0, 0.0, 1000.0]], requires_grad=True)
    for fn in (sigmoid, tanh, gelu, relu, lambda v: softmax(v, -1)):
        y = fn(x)
        assert np.all(np.isfinite(y.data))
        y.sum().backward()
        assert np.all(np.isfinite(x.grad.data))
        x.grad = None
    np.testing.assert_allclose(sigmoid(x).data, [[0.0, 0.5, 1.0]])
    np.testing.assert_allclose(softmax(x).data, [[0.0, 0.0, 1.0]])


@pytest.mark.parametrize(
    "fn",
    [relu, sigmoid, tanh, gelu, lambda v: softmax(v, 0), lambda v: softmax(v, -1) * Tensor(np.arange(4.0))],
    ids=["relu", "sigmoid", "tanh", "gelu", "softmax0", "softmax_weighted"],
)
def test_gradients(fn):
    x = t64((3, 4))
    x.data[np.abs(x.data) < 1e-3] = 0.5  # keep relu's kink away from the finite-difference step
    assert gradcheck(fn, [x])


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "gelu", "softmax"])
def test_against_torch(torch, name):
    x = t64((4, 6))
    ours = {"relu": relu, "sigmoid": sigmoid, "tanh": tanh, "gelu": gelu, "softmax": softmax}[name]
    theirs = {
        "relu": torch.relu,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "gelu": torch.nn.GELU(approximate="tanh"),
        "softmax": lambda v: torch.softmax(v, dim=-1),
    }[name]
    w = RNG.standard_normal((4, 6))
    (ours(x) * Tensor(w, dtype=np.float64)).sum().backward()
    tx = torch.tensor(x.data, requires_grad=True)
    out = theirs(tx)
    (out * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(ours(x).data, out.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-8, atol=1e-12)


def test_softmax_dim_error():
    with pytest.raises(ValueError, match="dim"):
        softmax(Tensor(np.ones((2, 3))), dim=2)
