"""Module 04 - Losses: how wrong a prediction is, as one differentiable number.

All classification losses go through a stable ``log_softmax``
(``x - max - log(sum(exp(x - max)))``) or its binary analogue, so logits of
+-1000 give finite losses and gradients. ``CrossEntropyLoss`` and
``BCEWithLogitsLoss`` are fused Functions: their backward is the closed form
``softmax(x) - onehot`` (resp. ``sigmoid(x) - t``), one array expression
instead of a chain of graph nodes.
"""

from __future__ import annotations

import numpy as np
from tinytorch.core.autograd import Function
from tinytorch.core.layers import Module
from tinytorch.core.tensor import Tensor

__all__ = [
    "log_softmax",
    "MSELoss",
    "CrossEntropyLoss",
    "BinaryCrossEntropyLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "cross_entropy",
    "mse_loss",
]


def _stable_log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """``x - logsumexp(x)`` along ``axis``, shifting by the max first so exp never overflows."""
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


class LogSoftmaxFunction(Function):
    """``log_softmax(x)_i = x_i - log sum_j exp(x_j)``. Backward: ``grad - softmax(x) * sum(grad)``."""

    @staticmethod
    def forward(ctx, x, dim=-1):
        ### BEGIN SOLUTION
        out = _stable_log_softmax(x, dim)
        ctx.save_for_backward(out)
        ctx.dim = dim
        return out
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        (out,) = ctx.saved_tensors
        return grad - np.exp(out) * grad.sum(axis=ctx.dim, keepdims=True)
        ### END SOLUTION


def log_softmax(x, dim: int = -1) -> Tensor:
    """Log of the softmax along ``dim``, computed stably. Shape: unchanged."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    if not -x.ndim <= dim < max(x.ndim, 1):
        raise ValueError(f"log_softmax: argument 'dim' {dim} out of range for shape {x.shape}")
    return LogSoftmaxFunction.apply(x, dim=dim)


def _targets(target) -> np.ndarray:
    return target.data if isinstance(target, Tensor) else np.asarray(target)


class CrossEntropyFunction(Function):
    """Mean negative log-likelihood of integer ``targets`` under ``softmax(logits)``.

    ``loss = -(1/N) sum_n log_softmax(logits)[n, t_n]``.
    Backward: ``(softmax(logits) - onehot(t)) / N`` (times the incoming scalar gradient).
    """

    @staticmethod
    def forward(ctx, logits, targets):
        ### BEGIN SOLUTION
        logp = _stable_log_softmax(logits, -1)  # (N, C)
        n = logits.shape[0]
        ctx.save_for_backward(logp, targets)
        # sum / n rather than .mean(): same value, less Python overhead in NumPy's mean
        return np.asarray(-logp[np.arange(n), targets].sum() / n, dtype=logp.dtype)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        logp, targets = ctx.saved_tensors
        n = logp.shape[0]
        g = np.exp(logp)  # softmax, a fresh array we may edit in place
        g[np.arange(n), targets] -= 1.0
        g *= grad * (1.0 / n)  # grad is a 0-d array of logp's dtype
        return g, None
        ### END SOLUTION


def cross_entropy(logits, target) -> Tensor:
    """Cross-entropy between ``logits`` (*, C) and integer class ``target`` (*), mean over samples.

    The class axis is the last one (for 2-D inputs this is PyTorch's (N, C)).

    Raises:
        ValueError: target shape is not logits.shape[:-1], target is not integer,
            or a class index is outside [0, C).
    """
    ### BEGIN SOLUTION
    logits = logits if isinstance(logits, Tensor) else Tensor(logits)
    t = _targets(target)
    if logits.ndim < 1 or t.shape != logits.shape[:-1]:
        raise ValueError(
            f"CrossEntropyLoss: target shape {t.shape} does not match logits shape {logits.shape} "
            f"(expected target shape {logits.shape[:-1]})"
        )
    if t.dtype.kind not in "iu":
        raise ValueError(
            f"CrossEntropyLoss: argument 'target' must hold integer class indices, got {t.dtype}"
        )
    classes = logits.shape[-1]
    if t.size and (t.min() < 0 or t.max() >= classes):
        raise ValueError(f"CrossEntropyLoss: argument 'target' has class indices outside [0, {classes})")
    if logits.ndim != 2:  # (*, C) -> (N, C)
        logits = logits.reshape(-1, classes)
        t = t.reshape(-1)
    return CrossEntropyFunction.apply(logits, t)
    ### END SOLUTION


def mse_loss(prediction, target) -> Tensor:
    """Mean squared error ``mean((prediction - target)^2)``; shapes must be equal."""
    ### BEGIN SOLUTION
    prediction = prediction if isinstance(prediction, Tensor) else Tensor(prediction)
    target = target if isinstance(target, Tensor) else Tensor(target, dtype=prediction.dtype)
    if prediction.shape != target.shape:
        raise ValueError(
            f"MSELoss: prediction shape {prediction.shape} does not match target shape {target.shape}"
        )
    diff = prediction - target
    return (diff * diff).mean()
    ### END SOLUTION


class BCEWithLogitsFunction(Function):
    """Binary cross-entropy on logits, mean: ``max(x, 0) - x t + log(1 + exp(-|x|))``.

    That form equals ``-(t log s + (1 - t) log(1 - s))`` with ``s = sigmoid(x)``
    but never exponentiates a large positive number. Backward: ``(sigmoid(x) - t) / N``.
    """

    @staticmethod
    def forward(ctx, x, t):
        ### BEGIN SOLUTION
        ctx.save_for_backward(x, t)
        losses = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
        return losses.mean()
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        x, t = ctx.saved_tensors
        s = 0.5 + 0.5 * np.tanh(0.5 * x)  # stable sigmoid
        return (s - t) * (grad / x.size), None
        ### END SOLUTION


class MSELoss(Module):
    """Mean squared error. Shape: prediction (*) and target (*) of equal shape -> scalar."""

    def forward(self, prediction, target) -> Tensor:
        ### BEGIN SOLUTION
        return mse_loss(prediction, target)
        ### END SOLUTION


class CrossEntropyLoss(Module):
    """Softmax cross-entropy from logits. Shape: logits (N, C), target (N,) int -> scalar (mean).

    Finite for logits of any magnitude (fused stable log-softmax).
    """

    def forward(self, logits, target) -> Tensor:
        ### BEGIN SOLUTION
        return cross_entropy(logits, target)
        ### END SOLUTION


class BinaryCrossEntropyLoss(Module):
    """``-mean(t log p + (1 - t) log(1 - p))`` for probabilities ``p`` (clipped to [eps, 1 - eps]).

    Args:
        eps: clipping margin keeping the logs finite (default 1e-7).

    Shape: prediction (*) in [0, 1] and target (*) of equal shape -> scalar.
    """

    def __init__(self, eps: float = 1e-7) -> None:
        super().__init__()
        if not 0.0 < eps < 0.5:
            raise ValueError(f"BinaryCrossEntropyLoss: argument 'eps' must be in (0, 0.5), got {eps}")
        self.eps = eps

    def forward(self, prediction, target) -> Tensor:
        ### BEGIN SOLUTION
        prediction = prediction if isinstance(prediction, Tensor) else Tensor(prediction)
        t = Tensor(_targets(target), dtype=prediction.dtype)
        if prediction.shape != t.shape:
            raise ValueError(
                f"BinaryCrossEntropyLoss: prediction shape {prediction.shape} "
                f"does not match target shape {t.shape}"
            )
        p = prediction.clip(self.eps, 1.0 - self.eps)
        return -(t * p.log() + (1.0 - t) * (1.0 - p).log()).mean()
        ### END SOLUTION


BCELoss = BinaryCrossEntropyLoss


class BCEWithLogitsLoss(Module):
    """Binary cross-entropy on raw scores (sigmoid fused in, stable for any magnitude).

    Shape: logits (*) and target (*) in [0, 1] of equal shape -> scalar (mean).
    """

    def forward(self, logits, target) -> Tensor:
        ### BEGIN SOLUTION
        logits = logits if isinstance(logits, Tensor) else Tensor(logits)
        t = np.asarray(_targets(target), dtype=logits.dtype)
        if logits.shape != t.shape:
            raise ValueError(
                f"BCEWithLogitsLoss: logits shape {logits.shape} does not match target shape {t.shape}"
            )
        return BCEWithLogitsFunction.apply(logits, t)
        ### END SOLUTION
