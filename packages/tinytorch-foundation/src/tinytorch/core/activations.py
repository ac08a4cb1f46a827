"""Module 02 - Activations: the nonlinearities between layers.

Each activation is one fused :class:`~tinytorch.core.autograd.Function` (a single
NumPy expression forward, its closed-form derivative backward) instead of a
chain of primitive ops: fewer temporaries and one graph node per call.

Function forms (``relu``, ``sigmoid``, ``tanh``, ``gelu``, ``softmax``) take and
return Tensors; the Module forms (``ReLU``, ``Sigmoid``, ``Tanh``, ``GELU``,
``Softmax``) wrap them for use inside ``Sequential``.
"""

from __future__ import annotations

import math

import numpy as np
from tinytorch.core.autograd import Function
from tinytorch.core.layers import Module
from tinytorch.core.tensor import Tensor

__all__ = ["ReLU", "Sigmoid", "Tanh", "GELU", "Softmax", "relu", "sigmoid", "tanh", "gelu", "softmax"]

_GELU_C = math.sqrt(2.0 / math.pi)  # sqrt(2/pi) of the tanh approximation
_GELU_K = 0.044715


# --------------------------------------------------------------------------- fused Functions


class ReLUFunction(Function):
    """``max(x, 0)``. Backward: ``grad`` where the output is positive, else 0 (0 at x = 0, as PyTorch)."""

    @staticmethod
    def forward(ctx, x):
        ### BEGIN SOLUTION
        out = np.maximum(x, 0)
        ctx.save_for_backward(out)
        return out
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        (out,) = ctx.saved_tensors
        return grad * (out > 0)
        ### END SOLUTION


class SigmoidFunction(Function):
    """``1 / (1 + e^-x)`` computed as ``0.5 + 0.5 tanh(x/2)``, which never overflows.

    Backward: ``grad * s (1 - s)`` from the saved output ``s``.
    """

    @staticmethod
    def forward(ctx, x):
        ### BEGIN SOLUTION
        out = 0.5 + 0.5 * np.tanh(0.5 * x)
        ctx.save_for_backward(out)
        return out
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        (out,) = ctx.saved_tensors
        return grad * out * (1.0 - out)
        ### END SOLUTION


class TanhFunction(Function):
    """``tanh(x)``. Backward: ``grad * (1 - tanh(x)^2)``."""

    @staticmethod
    def forward(ctx, x):
        ### BEGIN SOLUTION
        out = np.tanh(x)
        ctx.save_for_backward(out)
        return out
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        (out,) = ctx.saved_tensors
        return grad * (1.0 - out * out)
        ### END SOLUTION


class GELUFunction(Function):
    """GELU, tanh approximation: ``0.5 x (1 + tanh(c (x + k x^3)))``, c = sqrt(2/pi), k = 0.044715.

    Backward: ``0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 k x^2)`` with ``t`` the saved tanh.
    """

    @staticmethod
    def forward(ctx, x):
        ### BEGIN SOLUTION
        if x.dtype.kind != "f":
            x = x.astype(np.float64)  # in-place float updates below need a float buffer
        # Two buffers, updated in place: on activations of ~1M elements each fresh
        # temporary (allocation + page faults) costs more than the arithmetic itself.
        t = np.multiply(x, x, out=np.empty_like(x))  # out=: stays an array even for 0-d x
        t *= _GELU_K
        t += 1.0
        t *= x
        t *= _GELU_C  # c (x + k x^3)
        np.tanh(t, out=t)
        ctx.save_for_backward(x, t)
        y = np.add(t, 1.0, out=np.empty_like(t))
        y *= x
        y *= 0.5
        return y
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        x, t = ctx.saved_tensors
        # d = c x (1 + 3 k x^2), then out = 0.5 (1 + t + (1 - t^2) d) * grad, in place.
        d = np.multiply(x, x, out=np.empty_like(x))
        d *= 3.0 * _GELU_K
        d += 1.0
        d *= x
        d *= _GELU_C
        out = np.multiply(t, t, out=np.empty_like(t))
        np.subtract(1.0, out, out=out)
        out *= d
        out += t
        out += 1.0
        out *= 0.5
        out *= grad
        return out
        ### END SOLUTION


class SoftmaxFunction(Function):
    """``exp(x_i - max) / sum_j exp(x_j - max)`` along ``dim`` (shifting by the max cannot overflow).

    Backward: ``s * (grad - sum(grad * s, dim))`` (the Jacobian-vector product, no Jacobian built).
    """

    @staticmethod
    def forward(ctx, x, dim=-1):
        ### BEGIN SOLUTION
        shifted = x - x.max(axis=dim, keepdims=True)
        e = np.exp(shifted)
        out = e / e.sum(axis=dim, keepdims=True)
        ctx.save_for_backward(out)
        ctx.dim = dim
        return out
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        (out,) = ctx.saved_tensors
        return out * (grad - (grad * out).sum(axis=ctx.dim, keepdims=True))
        ### END SOLUTION


# --------------------------------------------------------------------------- function forms


def _tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


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
    """GELU, tanh approximation (``torch.nn.GELU(approximate="tanh")``). Shape: unchanged."""
    return GELUFunction.apply(_tensor(x))


def softmax(x, dim: int = -1) -> Tensor:
    """Softmax along ``dim``: non-negative, sums to 1 along ``dim``. Shape: unchanged."""
    x = _tensor(x)
    if not -x.ndim <= dim < max(x.ndim, 1):
        raise ValueError(f"softmax: argument 'dim' {dim} out of range for shape {x.shape}")
    return SoftmaxFunction.apply(x, dim=dim)


# --------------------------------------------------------------------------- modules


class ReLU(Module):
    """``ReLU()(x) = max(x, 0)``. Shape: (*) -> (*)."""

    def forward(self, x) -> Tensor:
        ### BEGIN SOLUTION
        return relu(x)
        ### END SOLUTION


class Sigmoid(Module):
    """``Sigmoid()(x) = 1 / (1 + exp(-x))``. Shape: (*) -> (*)."""

    def forward(self, x) -> Tensor:
        ### BEGIN SOLUTION
        return sigmoid(x)
        ### END SOLUTION


class Tanh(Module):
    """``Tanh()(x) = tanh(x)``. Shape: (*) -> (*)."""

    def forward(self, x) -> Tensor:
        ### BEGIN SOLUTION
        return tanh(x)
        ### END SOLUTION


class GELU(Module):
    """GELU with the tanh approximation (as ``torch.nn.GELU(approximate="tanh")``). Shape: (*) -> (*)."""

    def forward(self, x) -> Tensor:
        ### BEGIN SOLUTION
        return gelu(x)
        ### END SOLUTION


class Softmax(Module):
    """Softmax along ``dim`` (default last). Shape: (*) -> (*)."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x) -> Tensor:
        ### BEGIN SOLUTION
        return softmax(x, self.dim)
        ### END SOLUTION

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
