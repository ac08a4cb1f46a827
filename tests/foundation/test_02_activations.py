"""Module 02 - Activations: closed forms, stability at extreme inputs, both tails of sigmoid, the Module
forms, PyTorch as an oracle of the values. Values only: the derivatives are Module 05's tests."""

import math

import numpy as np
import pytest
from tinytorch.core.activations import (
    GELU,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
    erfc,
    gelu,
    leaky_relu,
    log_softmax,
    relu,
    sigmoid,
    silu,
    softmax,
    softplus,
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
    np.testing.assert_allclose(
        gelu(t, approximate="tanh").data, 0.5 * x * (1 + np.tanh(c * (x + 0.044715 * x**3))), rtol=1e-12
    )
    exact = [v * 0.5 * math.erfc(-v / math.sqrt(2)) for v in x]  # x * Phi(x), Phi from math.erfc
    np.testing.assert_allclose(gelu(t).data, exact, rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(leaky_relu(t, 0.1).data, np.where(x > 0, x, 0.1 * x))
    np.testing.assert_allclose(silu(t).data, x / (1 + np.exp(-x)), rtol=1e-12)
    np.testing.assert_allclose(softplus(t).data, np.log1p(np.exp(x)), rtol=1e-12)
    np.testing.assert_allclose(
        softplus(t, beta=2.0, threshold=3.0).data, np.where(2 * x > 3, x, np.log1p(np.exp(2 * x)) / 2)
    )
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
        (GELU(approximate="tanh"), lambda v: gelu(v, approximate="tanh")),
        (LeakyReLU(0.2), lambda v: leaky_relu(v, 0.2)),
        (SiLU(), silu),
        (Softplus(beta=0.5, threshold=4.0), lambda v: softplus(v, 0.5, 4.0)),
        (Softmax(dim=-1), softmax),
        (LogSoftmax(dim=-1), log_softmax),
    ]:
        np.testing.assert_array_equal(module(x).data, fn(x).data)
        assert module(x).dtype == np.float32
    assert repr(Softmax(dim=1)) == "Softmax(dim=1)" and repr(ReLU()) == "ReLU()"
    assert (
        repr(GELU()) == "GELU(approximate='none')" and repr(LeakyReLU()) == "LeakyReLU(negative_slope=0.01)"
    )


def test_extreme_inputs_stay_finite():
    x = Tensor([[-1000.0, 0.0, 1000.0]])
    for fn in (sigmoid, tanh, gelu, relu, softmax, log_softmax, silu, softplus, leaky_relu):
        assert np.all(np.isfinite(fn(x).data)), fn
    np.testing.assert_allclose(sigmoid(x).data, [[0.0, 0.5, 1.0]])
    np.testing.assert_allclose(gelu(x).data, [[0.0, 0.0, 1000.0]])
    np.testing.assert_allclose(softplus(x).data, [[0.0, np.log(2.0), 1000.0]])
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


NAMES = [
    "relu",
    "sigmoid",
    "tanh",
    "gelu",
    "gelu_tanh",
    "leaky_relu",
    "silu",
    "softplus",
    "softmax",
    "log_softmax",
]


def pair(torch, name):
    """(ours, PyTorch's) for one activation name."""
    F = torch.nn.functional
    return {
        "relu": (relu, torch.relu),
        "sigmoid": (sigmoid, torch.sigmoid),
        "tanh": (tanh, torch.tanh),
        "gelu": (gelu, torch.nn.GELU()),
        "gelu_tanh": (lambda v: gelu(v, approximate="tanh"), torch.nn.GELU(approximate="tanh")),
        "leaky_relu": (lambda v: leaky_relu(v, 0.05), lambda v: F.leaky_relu(v, 0.05)),
        "silu": (silu, F.silu),
        "softplus": (lambda v: softplus(v, 1.5, 4.0), lambda v: F.softplus(v, 1.5, 4.0)),
        "softmax": (softmax, lambda v: torch.softmax(v, dim=-1)),
        "log_softmax": (log_softmax, lambda v: torch.log_softmax(v, dim=-1)),
    }[name]


@pytest.mark.parametrize("name", NAMES)
def test_values_against_torch(torch, name):
    x = RNG.standard_normal((4, 6)) * 3
    ours, theirs = pair(torch, name)
    expected = theirs(torch.tensor(x)).numpy()
    np.testing.assert_allclose(ours(Tensor(x, dtype=np.float64)).data, expected, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- erfc (exact GELU)


def test_erfc_max_error_against_math():
    """The fitted erfc against math.erfc / math.erf on a dense grid (the accuracy its docstring states)."""
    x = np.concatenate([np.linspace(-6, 6, 24001), np.linspace(6, 26, 4001)])
    ours = erfc(x)
    exact = np.array([math.erfc(v) for v in x])
    relative = np.abs(ours - exact) / exact
    assert relative.max() < 2e-11, relative.max()  # measured: 9.5e-12 (scripts/fit_erfc.py)
    erf_error = np.abs((1 - ours) - np.array([math.erf(v) for v in x]))
    assert erf_error.max() < 5e-12, erf_error.max()  # erf = 1 - erfc; measured: 3.4e-12
    assert erfc(np.array([np.inf, -np.inf])).tolist() == [0.0, 2.0]
    assert np.isnan(erfc(np.array([np.nan]))).all()


def test_erfc_float32_is_correctly_rounded():
    x = np.linspace(-9, 9, 20001).astype(np.float32)
    ours = erfc(x)
    assert ours.dtype == np.float32
    exact = np.array([math.erfc(float(v)) for v in x]).astype(np.float32)  # rounded once from float64
    ulps = np.abs(ours.view(np.int32).astype(np.int64) - exact.view(np.int32).astype(np.int64))
    assert ulps.max() <= 1


def test_gelu_forms_differ_by_the_tanh_approximation_error():
    x = Tensor(np.linspace(-6, 6, 1201), dtype=np.float64)
    gap = np.abs(gelu(x).data - gelu(x, approximate="tanh").data)
    assert 1e-4 < gap.max() < 5e-4  # the two forms are close, and really different


def test_activation_argument_errors():
    with pytest.raises(ValueError, match="approximate"):
        gelu(Tensor([1.0]), approximate="erf")
    with pytest.raises(ValueError, match="approximate"):
        GELU("exact")
    for bad in (float("nan"), float("inf"), "0.1"):
        with pytest.raises(ValueError, match="negative_slope"):
            LeakyReLU(bad)
    with pytest.raises(ValueError, match="beta"):
        Softplus(beta=0.0)
    with pytest.raises(ValueError, match="threshold"):
        softplus(Tensor([1.0]), threshold=float("nan"))
