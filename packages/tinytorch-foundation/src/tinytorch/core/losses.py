"""Module 04 - Losses: how wrong a prediction is, as one number to minimize.

Every loss here is composed from the operations of Modules 01-02, so its
gradient needs no new derivative: Module 05's backward passes through the
pieces. Stability comes from the pieces: classification losses go through
``log_softmax`` (``x - logsumexp(x)``) or its binary analogue, so logits of
+-1000 give finite losses and gradients.

* ``mse_loss``: ``mean((prediction - target)^2)``.
* ``cross_entropy``: ``-mean_n log_softmax(logits)[n, target_n]``.
* ``binary_cross_entropy``: ``-mean(t log p + (1 - t) log(1 - p))`` on probabilities.
* ``binary_cross_entropy_with_logits``: the same on raw scores, as
  ``max(x, 0) - x t + log(1 + exp(-|x|))``, which never exponentiates a large number.
"""

from __future__ import annotations

import numpy as np
from tinytorch.core.activations import log_softmax, relu
from tinytorch.core.module import Module
from tinytorch.core.tensor import Tensor

__all__ = [
    "MSELoss",
    "CrossEntropyLoss",
    "BinaryCrossEntropyLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "cross_entropy",
    "mse_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "log_softmax",
]


def _tensor(x, dtype=None) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x, dtype=dtype)


def _array(target) -> np.ndarray:
    return target.data if isinstance(target, Tensor) else np.asarray(target)


def _same_shape(op: str, prediction: Tensor, target, what: str = "prediction") -> None:
    have, want = tuple(prediction.shape), tuple(np.shape(target))
    if have != want:
        raise ValueError(f"{op}: {what} shape {have} does not match target shape {want}")


def mse_loss(prediction, target) -> Tensor:
    """Mean squared error ``mean((prediction - target)^2)``; shapes must be equal."""
    prediction = _tensor(prediction)
    target = _array(target)
    _same_shape("MSELoss", prediction, target)
    if target.dtype.kind not in "biuf":
        raise ValueError(f"MSELoss: argument 'target' must hold numbers, got dtype {target.dtype}")
    ### BEGIN SOLUTION
    diff = prediction - target
    return (diff * diff).mean()
    ### END SOLUTION


def cross_entropy(logits, target) -> Tensor:
    """Cross-entropy between ``logits`` (*, C) and integer class ``target`` (*), mean over samples.

    ``loss = -(1/N) sum_n log_softmax(logits)[n, target_n]``; the class axis is
    the last one (for 2-D inputs this is PyTorch's (N, C)).

    Raises:
        ValueError: target shape is not logits.shape[:-1] (one-hot targets are
            named as such), target is not integer, or a class index is outside [0, C).
    """
    logits = _tensor(logits)
    t = _array(target)
    if logits.ndim < 1 or t.shape != logits.shape[:-1]:
        hint = " (one-hot targets? pass class indices: target.argmax(-1))" if t.shape == logits.shape else ""
        raise ValueError(
            f"CrossEntropyLoss: target shape {t.shape} does not fit logits shape {logits.shape}: "
            f"expected target shape {logits.shape[:-1]}{hint}"
        )
    if t.dtype.kind not in "iu":
        raise ValueError(
            f"CrossEntropyLoss: argument 'target' must hold integer class indices, got {t.dtype}"
        )
    classes = logits.shape[-1]
    if t.size and (t.min() < 0 or t.max() >= classes):
        raise ValueError(f"CrossEntropyLoss: argument 'target' has class indices outside [0, {classes})")
    ### BEGIN SOLUTION
    log_probs = log_softmax(logits.reshape(-1, classes), dim=-1)  # (N, C)
    rows = np.arange(log_probs.shape[0])
    picked = log_probs[rows, t.reshape(-1)]  # (N,): log-probability of each true class
    return -picked.mean()
    ### END SOLUTION


def binary_cross_entropy(prediction, target, eps: float = 1e-7) -> Tensor:
    """``-mean(t log p + (1 - t) log(1 - p))`` for probabilities ``p`` in [0, 1].

    ``p`` is clipped to ``[eps, 1 - eps]`` so the logs stay finite at exactly 0 or 1.
    Prefer ``binary_cross_entropy_with_logits`` on raw scores: it needs no clipping.

    Raises:
        ValueError: shapes differ, or a prediction or target lies outside [0, 1].
    """
    prediction = _tensor(prediction)
    t = _array(target)
    _same_shape("BinaryCrossEntropyLoss", prediction, t)
    p_data = prediction.data
    if not ((p_data >= 0) & (p_data <= 1)).all():
        raise ValueError(
            "BinaryCrossEntropyLoss: argument 'prediction' must hold probabilities in [0, 1] "
            "(raw scores? use BCEWithLogitsLoss)"
        )
    if not ((t >= 0) & (t <= 1)).all():
        raise ValueError("BinaryCrossEntropyLoss: argument 'target' must be in [0, 1]")
    t = t.astype(prediction.dtype)
    ### BEGIN SOLUTION
    p = prediction.clip(eps, 1.0 - eps)
    return -(t * p.log() + (1 - t) * (1 - p).log()).mean()
    ### END SOLUTION


def binary_cross_entropy_with_logits(logits, target) -> Tensor:
    """Binary cross-entropy on raw scores ``x``: ``mean(max(x, 0) - x t + log(1 + exp(-|x|)))``.

    Equal to ``binary_cross_entropy(sigmoid(x), t)`` but finite for any ``x``:
    ``exp`` only ever sees ``-|x| <= 0``.

    Raises:
        ValueError: shapes differ, or a target lies outside [0, 1].
    """
    x = _tensor(logits)
    t = _array(target)
    _same_shape("BCEWithLogitsLoss", x, t, what="logits")
    if not ((t >= 0) & (t <= 1)).all():
        raise ValueError("BCEWithLogitsLoss: argument 'target' must be in [0, 1]")
    t = t.astype(x.dtype)
    ### BEGIN SOLUTION
    return (relu(x) - x * t + (1 + (-x.abs()).exp()).log()).mean()
    ### END SOLUTION


class MSELoss(Module):
    """Mean squared error. Shape: prediction (*) and target (*) of equal shape -> scalar."""

    def forward(self, prediction, target) -> Tensor:
        return mse_loss(prediction, target)


class CrossEntropyLoss(Module):
    """Softmax cross-entropy from logits. Shape: logits (N, C), target (N,) int -> scalar (mean).

    Finite for logits of any magnitude (through the stable ``log_softmax``).
    """

    def forward(self, logits, target) -> Tensor:
        return cross_entropy(logits, target)


class BinaryCrossEntropyLoss(Module):
    """Binary cross-entropy on probabilities (see :func:`binary_cross_entropy`).

    Args:
        eps: clipping margin keeping the logs finite (in (0, 0.5), default 1e-7).

    Shape: prediction (*) in [0, 1] and target (*) of equal shape -> scalar.
    """

    def __init__(self, eps: float = 1e-7) -> None:
        super().__init__()
        if not 0.0 < eps < 0.5:  # also refuses nan
            raise ValueError(f"BinaryCrossEntropyLoss: argument 'eps' must be in (0, 0.5), got {eps}")
        self.eps = float(eps)

    def forward(self, prediction, target) -> Tensor:
        return binary_cross_entropy(prediction, target, self.eps)


BCELoss = BinaryCrossEntropyLoss


class BCEWithLogitsLoss(Module):
    """Binary cross-entropy on raw scores (sigmoid folded in, stable for any magnitude).

    Shape: logits (*) and target (*) in [0, 1] of equal shape -> scalar (mean).
    """

    def forward(self, logits, target) -> Tensor:
        return binary_cross_entropy_with_logits(logits, target)
