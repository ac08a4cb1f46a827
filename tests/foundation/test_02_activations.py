"""Module 02 - Activations: closed forms, stability at extreme inputs, both tails of sigmoid, the Module
forms, PyTorch as an oracle of the values. Values only: the derivatives are Module 05's tests."""

import math

import numpy as np
import pytest
from tinytorch.core.activations import (
    GELU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
    gelu,
    log_softmax,
    relu,
    sigmoid,
    softmax,
    tanh,
)
from tinytorch.core.tensor import Tensor

RNG = np.random.default_rng(2)


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
    ls = log_softmax(Tensor(m, dtype=np.float64), dim=1).data
    np.testing.assert_allclose(ls, np.log(np.exp(m) / np.exp(m).sum(1, keepdims=True)), rtol=1e-12)


def test_modules_match_functions():
    x = Tensor(RNG.standard_normal((2, 5)))
    for module, fn in [
        (ReLU(), relu),
        (Sigmoid(), sigmoid),
        (Tanh(), tanh),
        (GELU(), gelu),
        (Softmax(dim=-1), softmax),
        (LogSoftmax(dim=-1), log_softmax),
    ]:
        np.testing.assert_array_equal(module(x).data, fn(x).data)
        assert module(x).dtype == np.float32
    assert repr(Softmax(dim=1)) == "Softmax(dim=1)" and repr(ReLU()) == "ReLU()"
    assert ReLU().parameters() == []


def test_extreme_inputs_stay_finite():
    x = Tensor([[-1000.0, 0.0, 1000.0]])
    for fn in (sigmoid, tanh, gelu, relu, softmax, log_softmax):
        assert np.all(np.isfinite(fn(x).data)), fn
    np.testing.assert_allclose(sigmoid(x).data, [[0.0, 0.5, 1.0]])
    np.testing.assert_allclose(softmax(x).data, [[0.0, 0.0, 1.0]])
    np.testing.assert_allclose(log_softmax(x).data, [[-2000.0, -1000.0, 0.0]])


@pytest.mark.parametrize("x", [-15.0, -17.0, -20.0, -80.0, 15.0, 30.0])
def test_sigmoid_keeps_relative_precision_in_both_tails(x):
    """float32 sigmoid against the exact value computed in float64 (math.exp): relative error ~ 1 ulp."""
    exact = 1.0 / (1.0 + math.exp(-x))
    ours = float(sigmoid(Tensor([x])).data[0])
    assert ours > 0 and abs(ours - exact) <= 2e-7 * exact


def test_softmax_dim_and_scalar():
    with pytest.raises(ValueError, match="dim"):
        softmax(Tensor(np.ones((2, 3))), dim=2)
    with pytest.raises(ValueError, match="dim"):
        softmax(Tensor(np.ones((2, 3))), dim=1.0)
    for dim in (0, -1):  # a 0-d tensor is one element: softmax 1, log_softmax 0 (as PyTorch)
        assert softmax(Tensor(3.0), dim=dim).item() == 1.0
        assert log_softmax(Tensor(3.0), dim=dim).item() == 0.0


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "gelu", "softmax", "log_softmax"])
def test_values_against_torch(torch, name):
    x = RNG.standard_normal((4, 6)) * 3
    ours = {
        "relu": relu,
        "sigmoid": sigmoid,
        "tanh": tanh,
        "gelu": gelu,
        "softmax": softmax,
        "log_softmax": log_softmax,
    }[name]
    theirs = {
        "relu": torch.relu,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "gelu": torch.nn.GELU(approximate="tanh"),
        "softmax": lambda v: torch.softmax(v, dim=-1),
        "log_softmax": lambda v: torch.log_softmax(v, dim=-1),
    }[name]
    expected = theirs(torch.tensor(x)).numpy()
    np.testing.assert_allclose(ours(Tensor(x, dtype=np.float64)).data, expected, rtol=1e-10, atol=1e-12)
