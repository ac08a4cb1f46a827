"""Module 02 - Activations: the nonlinearities between layers.

Without a nonlinearity, a stack of linear layers is one linear layer. Each
activation here is one :class:`~tinytorch.core.autograd.Function`: a single
vectorized NumPy expression forward (this module's work) and its closed-form
derivative backward (Module 05's work, written alongside).

Function forms (``relu``, ``sigmoid``, ``tanh``, ``gelu``, ``softmax``,
``log_softmax``; as ``torch.nn.functional``) take and return Tensors; the Module
forms (``ReLU``, ``Sigmoid``, ``Tanh``, ``GELU``, ``Softmax``, ``LogSoftmax``)
wrap them for use inside ``Sequential``.

Numerics are stable by construction: ``sigmoid`` never exponentiates a large
positive number (accurate in both tails), ``softmax`` subtracts the row
maximum before ``exp``, and ``log_softmax`` is ``x - logsumexp(x)``, never
``log(softmax(x))``.
"""

from __future__ import annotations

import math

import numpy as np
from tinytorch.core.autograd import Function
from tinytorch.core.module import Module
from tinytorch.core.tensor import Tensor

__all__ = [
    "ReLU",
    "Sigmoid",
    "Tanh",
    "GELU",
    "Softmax",
    "LogSoftmax",
    "relu",
    "sigmoid",
    "tanh",
    "gelu",
    "softmax",
    "log_softmax",
]

GELU_C = math.sqrt(2.0 / math.pi)  # sqrt(2/pi) of GELU's tanh approximation
GELU_K = 0.044715


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


class GELUFunction(Function):
    """GELU, tanh approximation: ``0.5 x (1 + tanh(c (x + k x^3)))``, c = sqrt(2/pi), k = 0.044715.

    Backward, with ``t = tanh(c (x + k x^3))``:
    ``0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 k x^2)``.
    """

    name = "gelu"

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        ### BEGIN SOLUTION
        return 0.5 * x * (1 + np.tanh(GELU_C * (x + GELU_K * x**3)))
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        (x,) = ctx.saved_tensors
        t = np.tanh(GELU_C * (x + GELU_K * x**3))
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
        e = np.exp(x - x.max(axis=dim, keepdims=True))
        out = e / e.sum(axis=dim, keepdims=True)
        ### END SOLUTION
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        (s,) = ctx.saved_tensors
        return s * (grad - (grad * s).sum(axis=ctx.dim, keepdims=True))
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


# --------------------------------------------------------------------------- function forms


def _tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


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


def sigmoid(x) -> Tensor:
    """Logistic function ``1 / (1 + exp(-x))``, in (0, 1). Shape: unchanged."""
    return SigmoidFunction.apply(_tensor(x))


def tanh(x) -> Tensor:
    """Hyperbolic tangent, in (-1, 1). Shape: unchanged."""
    return TanhFunction.apply(_tensor(x))


def gelu(x) -> Tensor:
    """GELU, tanh approximation (``torch.nn.functional.gelu(x, approximate="tanh")``). Shape: unchanged."""
    return GELUFunction.apply(_tensor(x))


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


class Sigmoid(Module):
    """``Sigmoid()(x) = 1 / (1 + exp(-x))``. Shape: (*) -> (*)."""

    def forward(self, x) -> Tensor:
        return sigmoid(x)


class Tanh(Module):
    """``Tanh()(x) = tanh(x)``. Shape: (*) -> (*)."""

    def forward(self, x) -> Tensor:
        return tanh(x)


class GELU(Module):
    """GELU with the tanh approximation (as ``torch.nn.GELU(approximate="tanh")``). Shape: (*) -> (*)."""

    def forward(self, x) -> Tensor:
        return gelu(x)


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
