"""Module 02 - Activations: the nonlinearities between layers.

Without a nonlinearity, a stack of linear layers is one linear layer. Each
activation here is one :class:`~tinytorch.core.autograd.Function`: a single
vectorized NumPy expression forward (this module's work) and its closed-form
derivative backward (Module 05's work, written alongside).

Function forms (``relu``, ``leaky_relu``, ``sigmoid``, ``tanh``, ``silu``,
``softplus``, ``gelu``, ``softmax``, ``log_softmax``; as ``torch.nn.functional``)
take and return Tensors; the Module forms (``ReLU``, ``LeakyReLU``, ``Sigmoid``,
``Tanh``, ``SiLU``, ``Softplus``, ``GELU``, ``Softmax``, ``LogSoftmax``) wrap them
for use inside ``Sequential``.

Numerics are stable by construction: ``sigmoid`` never exponentiates a large
positive number (accurate in both tails), ``softplus`` neither, ``softmax``
subtracts the row maximum before ``exp``, and ``log_softmax`` is
``x - logsumexp(x)``, never ``log(softmax(x))``.

GELU comes in PyTorch's two forms: exact, ``x * Phi(x)`` with the normal CDF
``Phi`` (the default, ``approximate="none"``), and the tanh approximation
(``approximate="tanh"``, GPT-2's). NumPy has no error function, so
:func:`erfc` computes one here, to about 1e-11 (relative).
"""

from __future__ import annotations

import math

import numpy as np
from tinytorch.core.autograd import Function
from tinytorch.core.module import Module
from tinytorch.core.tensor import Tensor

__all__ = [
    "ReLU",
    "LeakyReLU",
    "Sigmoid",
    "Tanh",
    "SiLU",
    "Softplus",
    "GELU",
    "Softmax",
    "LogSoftmax",
    "relu",
    "leaky_relu",
    "sigmoid",
    "tanh",
    "silu",
    "softplus",
    "gelu",
    "softmax",
    "log_softmax",
    "erfc",
]

GELU_C = math.sqrt(2.0 / math.pi)  # sqrt(2/pi) of GELU's tanh approximation
GELU_K = 0.044715
_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

# erfc(z) = t * exp(-z**2 + P(2t - 1)) with t = 1 / (1 + z/2) for z >= 0 (the form of Numerical
# Recipes' erfcc). P's coefficients, constant first, are a least-squares Chebyshev fit of our own
# (scripts/fit_erfc.py: degree 16, reference values from math.erfc); relative error of erfc 9.5e-12
# at most on [0, 26] (tests/foundation/test_02_activations.py measures it).
_ERFC_P = (
    -0.6717940840638892,
    0.672643223956485,
    0.04734330801950166,
    -0.04689560948546275,
    -0.009872721153831837,
    0.00882493328187052,
    0.0017592649207142832,
    -0.0023458258393050527,
    -0.00014798467117992494,
    0.0006739603515471078,
    -8.85831320060882e-05,
    -0.00017558775927420492,
    6.234277541478827e-05,
    3.469238320917839e-05,
    -2.0765489167974192e-05,
    -3.725149929927408e-06,
    3.1610586958020067e-06,
)


def erfc(x) -> np.ndarray:
    """The complementary error function ``1 - erf(x) = (2/sqrt(pi)) * integral_x^inf exp(-s^2) ds``.

    Elementwise on an array, relative error below 2e-11 (float64), so also in the
    far tail where erfc is tiny; ``1 - erfc(x)`` is erf(x) to 4e-12 (absolute).
    Computed in float64 and returned in ``x``'s float dtype (float64 for other
    input), so a float32 result is within one unit in the last place.
    For negative x, ``erfc(x) = 2 - erfc(-x)``.

    Cost: about 20 elementwise passes (Horner's rule over 17 coefficients, one exp).
    """
    x = np.asarray(x)
    z = np.abs(x.astype(np.float64))
    t = 1.0 / (1.0 + 0.5 * z)  # maps z in [0, inf) onto t in (0, 1]
    u = 2.0 * t - 1.0
    poly = np.zeros_like(z)
    for c in reversed(_ERFC_P):
        poly = poly * u + c
    tail = t * np.exp(-z * z + poly)  # erfc(|x|)
    out = np.where(x >= 0, tail, 2.0 - tail)
    return out.astype(x.dtype if x.dtype.kind == "f" else np.float64)


# --------------------------------------------------------------------------- Functions


class ReLUFunction(Function):
    """``max(x, 0)``. Backward: ``grad`` where ``x > 0``, else 0 (0 at x = 0, as PyTorch)."""

    name = "relu"

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        ### BEGIN SOLUTION
        return np.maximum(x, 0)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        (x,) = ctx.saved_tensors
        return grad * (x > 0)
        ### END SOLUTION


class LeakyReLUFunction(Function):
    """``x`` where ``x > 0``, else ``negative_slope * x``. Backward: ``grad`` or ``negative_slope * grad``."""

    name = "leaky_relu"

    @staticmethod
    def forward(ctx, x, negative_slope=0.01):
        ctx.save_for_backward(x)
        ctx.negative_slope = negative_slope
        ### BEGIN SOLUTION
        return np.where(x > 0, x, negative_slope * x)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        (x,) = ctx.saved_tensors
        return np.where(x > 0, grad, ctx.negative_slope * grad)
        ### END SOLUTION


class SigmoidFunction(Function):
    """``1 / (1 + e^-x)``, accurate in both tails.

    For ``x >= 0`` the textbook form is safe; for ``x < 0`` the equal form
    ``e^x / (1 + e^x)`` keeps full relative precision where the result is tiny.
    Both use ``e = exp(-|x|) <= 1``, which never overflows.

    Backward: ``grad * s (1 - s)`` from the saved output ``s``.
    """

    name = "sigmoid"

    @staticmethod
    def forward(ctx, x):
        ### BEGIN SOLUTION
        e = np.exp(-np.abs(x))
        out = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        ### END SOLUTION
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        (s,) = ctx.saved_tensors
        return grad * s * (1 - s)
        ### END SOLUTION


class TanhFunction(Function):
    """``tanh(x)``. Backward: ``grad * (1 - tanh(x)^2)`` from the saved output."""

    name = "tanh"

    @staticmethod
    def forward(ctx, x):
        ### BEGIN SOLUTION
        out = np.tanh(x)
        ### END SOLUTION
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        (t,) = ctx.saved_tensors
        return grad * (1 - t * t)
        ### END SOLUTION


class SiLUFunction(Function):
    """SiLU (swish): ``x * sigmoid(x)``, the sigmoid computed stably as in ``SigmoidFunction``.

    Backward, with ``s = sigmoid(x)``: ``grad * s * (1 + x (1 - s))``.
    """

    name = "silu"

    @staticmethod
    def forward(ctx, x):
        ### BEGIN SOLUTION
        e = np.exp(-np.abs(x))
        s = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        ### END SOLUTION
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        x, s = ctx.saved_tensors
        return grad * s * (1 + x * (1 - s))
        ### END SOLUTION


class SoftplusFunction(Function):
    """Softplus ``log(1 + exp(beta x)) / beta``, a smooth ReLU; ``x`` itself where ``beta x > threshold``.

    Computed as ``(max(beta x, 0) + log(1 + exp(-|beta x|))) / beta``: ``exp`` only
    sees numbers <= 0. Backward: ``grad * sigmoid(beta x)`` (``grad`` past the threshold).
    """

    name = "softplus"

    @staticmethod
    def forward(ctx, x, beta=1.0, threshold=20.0):
        ctx.save_for_backward(x)
        ctx.beta, ctx.threshold = beta, threshold
        ### BEGIN SOLUTION
        bx = beta * x
        smooth = (np.maximum(bx, 0) + np.log1p(np.exp(-np.abs(bx)))) / beta
        return np.where(bx > threshold, x, smooth)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        (x,) = ctx.saved_tensors
        bx = ctx.beta * x
        e = np.exp(-np.abs(bx))
        s = np.where(bx >= 0, 1 / (1 + e), e / (1 + e))  # sigmoid(beta x), stable
        return grad * np.where(bx > ctx.threshold, 1, s)
        ### END SOLUTION


class GELUErfFunction(Function):
    """GELU, exact: ``x * Phi(x)`` with ``Phi(x) = erfc(-x / sqrt(2)) / 2`` the standard normal CDF.

    Backward: ``grad * (Phi(x) + x * phi(x))`` with the normal density
    ``phi(x) = exp(-x^2 / 2) / sqrt(2 pi)``.
    """

    name = "gelu"

    @staticmethod
    def forward(ctx, x):
        ### BEGIN SOLUTION
        cdf = 0.5 * erfc(-x * _SQRT_HALF)
        ### END SOLUTION
        ctx.save_for_backward(x, cdf)
        return x * cdf

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        x, cdf = ctx.saved_tensors
        pdf = np.exp(-0.5 * x * x) * _INV_SQRT_2PI
        return grad * (cdf + x * pdf)
        ### END SOLUTION


class GELUTanhFunction(Function):
    """GELU, tanh approximation: ``0.5 x (1 + tanh(c (x + k x^3)))``, c = sqrt(2/pi), k = 0.044715.

    Backward, with ``t = tanh(c (x + k x^3))``:
    ``0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 k x^2)``.
    """

    name = "gelu"

    @staticmethod
    def forward(ctx, x):
        ### BEGIN SOLUTION
        t = np.tanh(GELU_C * (x + GELU_K * x * x * x))  # x * x * x: np.power is several times slower
        out = 0.5 * x * (1 + t)
        ### END SOLUTION
        ctx.save_for_backward(x, t)  # t is the expensive part of the derivative too
        return out

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        x, t = ctx.saved_tensors
        slope = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_C * (1 + 3 * GELU_K * x * x)
        return grad * slope
        ### END SOLUTION


class SoftmaxFunction(Function):
    """``exp(x_i - max) / sum_j exp(x_j - max)`` along ``dim`` (shifting by the max cannot overflow).

    Backward: ``s * (grad - sum(grad * s, dim))``, the Jacobian-vector product
    (no ``n x n`` Jacobian is built).
    """

    name = "softmax"

    @staticmethod
    def forward(ctx, x, dim=-1):
        ctx.dim = dim
        ### BEGIN SOLUTION
        out = np.exp(x - x.max(axis=dim, keepdims=True))
        out /= out.sum(axis=dim, keepdims=True)  # in place: attention's (B, H, T, T) scores are large
        ### END SOLUTION
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        (s,) = ctx.saved_tensors
        grad_x = grad - (grad * s).sum(axis=ctx.dim, keepdims=True)
        grad_x *= s  # in place, as in forward: no third array of the input's size
        return grad_x
        ### END SOLUTION


class LogSoftmaxFunction(Function):
    """``x_i - log sum_j exp(x_j)`` along ``dim``, as ``(x - max) - log(sum(exp(x - max)))``.

    Finite for logits of any magnitude. Backward: ``grad - softmax(x) * sum(grad, dim)``.
    """

    name = "log_softmax"

    @staticmethod
    def forward(ctx, x, dim=-1):
        ctx.dim = dim
        ### BEGIN SOLUTION
        shifted = x - x.max(axis=dim, keepdims=True)
        out = shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))
        ### END SOLUTION
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        (log_s,) = ctx.saved_tensors
        return grad - np.exp(log_s) * grad.sum(axis=ctx.dim, keepdims=True)
        ### END SOLUTION


GELUFunction = GELUTanhFunction  # the name the transformer (Module 13) imports


# --------------------------------------------------------------------------- function forms


def _tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _finite(op: str, name: str, value) -> float:
    """``value`` as a finite float, or a ValueError naming the argument (NaN and inf refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{op}: argument '{name}' must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{op}: argument '{name}' must be finite, got {value!r}")
    return float(value)


def _along(fn, op: str, x, dim) -> Tensor:
    """Apply the Function ``fn`` along ``dim`` after checking it (a 0-d tensor acts as one element)."""
    x = _tensor(x)
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise ValueError(f"{op}: argument 'dim' must be an int, got {dim!r}")
    if not -max(x.ndim, 1) <= dim < max(x.ndim, 1):
        raise ValueError(f"{op}: argument 'dim' {dim} out of range for shape {x.shape}")
    if x.ndim == 0:  # as PyTorch: dim 0 or -1 of a scalar is the scalar itself
        return fn.apply(x.reshape(1), dim=0).reshape(())
    return fn.apply(x, dim=int(dim))


def relu(x) -> Tensor:
    """Rectified linear unit ``max(x, 0)``. Shape: any, unchanged."""
    return ReLUFunction.apply(_tensor(x))


def leaky_relu(x, negative_slope: float = 0.01) -> Tensor:
    """``x`` for ``x > 0``, ``negative_slope * x`` otherwise. Shape: unchanged."""
    slope = _finite("leaky_relu", "negative_slope", negative_slope)
    return LeakyReLUFunction.apply(_tensor(x), negative_slope=slope)


def sigmoid(x) -> Tensor:
    """Logistic function ``1 / (1 + exp(-x))``, in (0, 1). Shape: unchanged."""
    return SigmoidFunction.apply(_tensor(x))


def tanh(x) -> Tensor:
    """Hyperbolic tangent, in (-1, 1). Shape: unchanged."""
    return TanhFunction.apply(_tensor(x))


def silu(x) -> Tensor:
    """SiLU (swish) ``x * sigmoid(x)``. Shape: unchanged."""
    return SiLUFunction.apply(_tensor(x))


def softplus(x, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """``log(1 + exp(beta x)) / beta``, reverting to ``x`` where ``beta x > threshold``. Shape: unchanged."""
    beta, threshold = _softplus_args(beta, threshold)
    return SoftplusFunction.apply(_tensor(x), beta=beta, threshold=threshold)


def _softplus_args(beta, threshold) -> tuple:
    beta, threshold = _finite("softplus", "beta", beta), _finite("softplus", "threshold", threshold)
    if beta == 0:
        raise ValueError("softplus: argument 'beta' must be nonzero")
    return beta, threshold


def gelu(x, approximate: str = "none") -> Tensor:
    """GELU ``x * Phi(x)``: exact (``approximate="none"``, PyTorch's default) or its tanh approximation.

    Shape: unchanged. The two differ by at most about 5e-4 (near |x| = 2).
    """
    if approximate == "none":
        return GELUErfFunction.apply(_tensor(x))
    if approximate == "tanh":
        return GELUTanhFunction.apply(_tensor(x))
    raise ValueError(f"gelu: argument 'approximate' must be 'none' or 'tanh', got {approximate!r}")


def softmax(x, dim: int = -1) -> Tensor:
    """Softmax along ``dim``: non-negative, sums to 1 along ``dim``. Shape: unchanged."""
    return _along(SoftmaxFunction, "softmax", x, dim)


def log_softmax(x, dim: int = -1) -> Tensor:
    """Log of the softmax along ``dim``, computed stably. Shape: unchanged."""
    return _along(LogSoftmaxFunction, "log_softmax", x, dim)


# --------------------------------------------------------------------------- modules


class ReLU(Module):
    """``ReLU()(x) = max(x, 0)``. Shape: (*) -> (*)."""

    def forward(self, x) -> Tensor:
        return relu(x)


class LeakyReLU(Module):
    """``LeakyReLU(negative_slope)(x)``: ``x`` where ``x > 0``, else ``negative_slope * x``. Shape: (*)."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = _finite("LeakyReLU", "negative_slope", negative_slope)

    def forward(self, x) -> Tensor:
        return leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Sigmoid(Module):
    """``Sigmoid()(x) = 1 / (1 + exp(-x))``. Shape: (*) -> (*)."""

    def forward(self, x) -> Tensor:
        return sigmoid(x)


class Tanh(Module):
    """``Tanh()(x) = tanh(x)``. Shape: (*) -> (*)."""

    def forward(self, x) -> Tensor:
        return tanh(x)


class SiLU(Module):
    """``SiLU()(x) = x * sigmoid(x)``. Shape: (*) -> (*)."""

    def forward(self, x) -> Tensor:
        return silu(x)


class Softplus(Module):
    """``Softplus(beta, threshold)(x) = log(1 + exp(beta x)) / beta`` (``x`` past the threshold)."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta, self.threshold = _softplus_args(beta, threshold)

    def forward(self, x) -> Tensor:
        return softplus(x, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class GELU(Module):
    """``GELU(approximate="none")``: exact ``x * Phi(x)``; ``approximate="tanh"`` for the tanh form.

    As ``torch.nn.GELU``. Shape: (*) -> (*).
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: argument 'approximate' must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x) -> Tensor:
        return gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Softmax(Module):
    """Softmax along ``dim`` (default last). Shape: (*) -> (*)."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x) -> Tensor:
        return softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """Log-softmax along ``dim`` (default last). Shape: (*) -> (*)."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x) -> Tensor:
        return log_softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
