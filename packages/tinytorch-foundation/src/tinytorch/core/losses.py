"""Module 04 - Losses: how wrong a prediction is, as one number to minimize.

Losses are composed from the operations of Modules 01-02, plus one new
operation: ``nll_loss`` picks the log-probability of each true class (its
derivative, one nonzero entry per row, is Module 05's work like every other
op's). Stability comes from the pieces: classification losses go through
``log_softmax`` (``x - logsumexp(x)``) or its binary analogue, so logits of
+-1000 give finite losses and gradients.

* ``mse_loss``: ``(prediction - target)^2``.
* ``cross_entropy``: ``nll_loss(log_softmax(logits))``, i.e. ``-log p[n, target_n]``,
  the class dimension being dim 1 as in PyTorch (``(N, C)``, ``(N, C, d1, ...)`` or
  one ``(C,)`` sample); with ``ignore_index`` and ``label_smoothing``.
* ``binary_cross_entropy``: ``-(t log p + (1 - t) log(1 - p))`` on probabilities.
* ``binary_cross_entropy_with_logits``: the same on raw scores, as
  ``max(x, 0) - x t + log(1 + exp(-|x|))``, which never exponentiates a large number.

Each takes PyTorch's ``reduction``: ``"mean"`` (the default) over the elements,
``"sum"``, or ``"none"`` for the per-element losses.
"""

from __future__ import annotations

import numbers

import numpy as np
from tinytorch.core.activations import log_softmax, relu
from tinytorch.core.autograd import Function
from tinytorch.core.module import Module
from tinytorch.core.tensor import Tensor

__all__ = [
    "MSELoss",
    "CrossEntropyLoss",
    "BinaryCrossEntropyLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "cross_entropy",
    "nll_loss",
    "NLLLoss",
    "mse_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "log_softmax",
]

REDUCTIONS = ("mean", "sum", "none")


def _tensor(x, dtype=None) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x, dtype=dtype)


def _array(target) -> np.ndarray:
    return target.data if isinstance(target, Tensor) else np.asarray(target)


def _same_shape(op: str, prediction: Tensor, target, what: str = "prediction") -> None:
    have, want = tuple(prediction.shape), tuple(np.shape(target))
    if have != want:
        raise ValueError(f"{op}: {what} shape {have} does not match target shape {want}")


def _check_reduction(op: str, reduction) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: argument 'reduction' must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    """The per-element ``loss`` averaged (``"mean"``), summed (``"sum"``) or as is (``"none"``)."""
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def mse_loss(prediction, target, *, reduction: str = "mean") -> Tensor:
    """Squared error ``(prediction - target)^2``, reduced (default: the mean); shapes must be equal."""
    prediction = _tensor(prediction)
    target = _array(target)
    _same_shape("MSELoss", prediction, target)
    if target.dtype.kind not in "biuf":
        raise ValueError(f"MSELoss: argument 'target' must hold numbers, got dtype {target.dtype}")
    _check_reduction("MSELoss", reduction)
    ### BEGIN SOLUTION
    diff = prediction - target
    return _reduce(diff * diff, reduction)
    ### END SOLUTION


class NLLLossFunction(Function):
    """Negative log-likelihood of the true classes: ``-log_probs[m, target[m]]`` for each row ``m``.

    ``log_probs`` is (M, C), ``target`` (M,) class indices and ``weight`` (M,)
    1 for a target that counts, 0 for an ignored one (its row reads class 0 and
    is multiplied away). Reduced as ``reduction`` says: the per-row losses (M,),
    their sum, or their mean over the targets that count.

    Backward: each row's loss depends on one entry of its row only, so the
    gradient is zero everywhere except at ``[m, target[m]]``, where it is
    ``-weight[m]`` times the incoming gradient (divided by the count for the mean).
    Cost: O(M) for the picking, O(M C) to write the mostly-zero gradient.
    """

    name = "nll_loss"

    @staticmethod
    def forward(ctx, log_probs, target, weight, reduction):
        ctx.target, ctx.weight, ctx.reduction, ctx.shape = target, weight, reduction, log_probs.shape
        ### BEGIN SOLUTION
        losses = -log_probs[np.arange(len(target)), target] * weight  # (M,)
        if reduction == "none":
            return losses
        if reduction == "sum":
            return losses.sum()
        return losses.sum() / weight.sum()  # 0 / 0 = NaN when every target is ignored, as PyTorch
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        scale = grad * ctx.weight  # (M,): a per-row gradient for "none", a broadcast scalar otherwise
        if ctx.reduction == "mean":
            scale = scale / ctx.weight.sum()
        grad_log_probs = np.zeros(ctx.shape, dtype=scale.dtype)  # (M, C)
        grad_log_probs[np.arange(len(ctx.target)), ctx.target] = -scale
        return grad_log_probs, None, None
        ### END SOLUTION


def _class_rows(op: str, scores: Tensor, target: np.ndarray, ignore_index, what: str) -> tuple:
    """Check a class-score tensor against its targets and lay both out as rows.

    ``scores`` is (N, C), (N, C, d1, ..., dk) or one (C,) sample, the class
    dimension being dim 1 (PyTorch's convention); ``target`` holds integer class
    indices of shape (N,), (N, d1, ..., dk) or () respectively. Errors name the
    scores as ``what`` (``"logits"``, ``"log_probs"``).

    Returns:
        rows: Tensor (M, C), one row of class scores per prediction.
        picked: (M,) int, the target class of each row (0 for an ignored one).
        weight: (M,) of the scores' dtype, 1 where the target counts, 0 where it is ignored.
    """
    if scores.ndim == 0:
        raise ValueError(f"{op}: {what} must have a class dimension, got a 0-d tensor")
    expected = scores.shape[:1] + scores.shape[2:] if scores.ndim > 1 else ()
    if target.shape != expected:
        hint = ""
        if target.shape == scores.shape:
            hint = " (one-hot targets? pass class indices: target.argmax(1))"
        elif scores.ndim > 2 and target.shape == scores.shape[:-1]:
            hint = (
                f" (the class dimension is dim 1, as PyTorch; for (B, T, C) logits pass "
                f"logits.reshape(-1, {scores.shape[-1]}) and target.reshape(-1))"
            )
        raise ValueError(
            f"{op}: target shape {target.shape} does not fit {what} shape {scores.shape}: "
            f"expected target shape {expected}{hint}"
        )
    if target.dtype.kind not in "iu":
        raise ValueError(f"{op}: argument 'target' must hold integer class indices, got {target.dtype}")
    classes = scores.shape[1] if scores.ndim > 1 else scores.shape[0]
    kept = (target != ignore_index).reshape(-1)  # (M,): the targets that count
    flat = target.reshape(-1)
    if flat.size and kept.any() and (flat[kept].min() < 0 or flat[kept].max() >= classes):
        raise ValueError(f"{op}: argument 'target' has class indices outside [0, {classes})")
    if scores.ndim > 2:  # (N, C, d1, ..., dk) -> (N, d1, ..., dk, C): classes last
        scores = scores.permute(0, *range(2, scores.ndim), 1)
    rows = scores if scores.ndim == 2 else scores.reshape(-1, classes)  # (M, C)
    picked = np.where(kept, flat, 0)  # ignored rows read class 0; their weight is 0
    return rows, picked, kept.astype(rows.dtype)


def nll_loss(log_probs, target, *, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood ``-log_probs[n, target_n]`` of log-probabilities, as PyTorch's.

    Shapes as :func:`cross_entropy` (class dimension 1): ``(N, C)`` with target
    ``(N,)``, ``(N, C, d1, ..., dk)`` with ``(N, d1, ..., dk)``, or ``(C,)`` with
    a 0-d target. ``cross_entropy(x, t)`` is ``nll_loss(log_softmax(x, dim=1), t)``.

    Args:
        log_probs: Tensor of log-probabilities (e.g. from ``log_softmax``).
        target: integer class indices in ``[0, C)`` (or ``ignore_index``).
        ignore_index: target value to skip (default -100).
        reduction: ``"mean"`` (over the targets not ignored), ``"sum"`` or ``"none"``.

    Cost: O(N d1 ... dk) to pick, O(N C d1 ... dk) in backward.
    """
    log_probs, t = _tensor(log_probs), _array(target)
    _check_cross_entropy_options(ignore_index, reduction, 0.0, op="NLLLoss")
    rows, picked, weight = _class_rows("NLLLoss", log_probs, t, ignore_index, "log_probs")
    loss = NLLLossFunction.apply(rows, picked, weight, reduction)
    return loss.reshape(t.shape) if reduction == "none" else loss


def cross_entropy(
    logits, target, *, ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0
) -> Tensor:
    """Softmax cross-entropy between ``logits`` and integer class ``target``, as PyTorch's.

    Shapes (the class dimension is dim 1, PyTorch's convention):
    logits ``(N, C)`` with target ``(N,)``; ``(N, C, d1, ..., dk)`` with
    ``(N, d1, ..., dk)`` (a class score per position, e.g. per pixel); or one
    sample ``(C,)`` with a 0-d target. Logits of a sequence model laid out
    ``(B, T, C)`` go in as ``logits.reshape(-1, C)`` with ``target.reshape(-1)``.

    Per prediction: ``loss = -(1 - s) log p[target] - s * mean_c log p[c]`` with
    ``p = softmax`` over the classes and ``s = label_smoothing`` (the target
    distribution puts ``1 - s`` on the true class and spreads ``s`` evenly).
    That is PyTorch's composition: ``nll_loss(log_softmax(logits))``, plus the
    smoothing term. Targets equal to ``ignore_index`` contribute nothing;
    ``"mean"`` divides by the number of the others (NaN when every target is
    ignored, as PyTorch).

    Args:
        logits: Tensor of raw scores.
        target: integer class indices in ``[0, C)`` (or ``ignore_index``).
        ignore_index: target value to skip (default -100).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (losses of the target's shape).
        label_smoothing: ``s`` in [0, 1].

    Raises:
        ValueError: a target shape that does not fit (one-hot targets and (B, T, C)
            logits are named as such), non-integer targets, class indices outside
            ``[0, C)``, or a bad argument value.

    Cost: one log_softmax over the logits, O(N C d1 ... dk).
    """
    op = "CrossEntropyLoss"
    logits, t = _tensor(logits), _array(target)
    _check_cross_entropy_options(ignore_index, reduction, label_smoothing)
    rows, picked, weight = _class_rows(op, logits, t, ignore_index, "logits")
    ### BEGIN SOLUTION
    log_probs = log_softmax(rows, dim=1)  # (M, C)
    loss = NLLLossFunction.apply(log_probs, picked, weight, reduction)
    if label_smoothing > 0:
        smooth = -log_probs.mean(dim=1) * weight  # (M,): minus the mean log-probability of each row
        if reduction == "sum":
            smooth = smooth.sum()
        elif reduction == "mean":
            smooth = smooth.sum() / weight.sum()
        loss = (1 - label_smoothing) * loss + label_smoothing * smooth
    return loss.reshape(t.shape) if reduction == "none" else loss
    ### END SOLUTION


def _check_cross_entropy_options(ignore_index, reduction, label_smoothing, op="CrossEntropyLoss") -> None:
    _check_reduction(op, reduction)
    if isinstance(label_smoothing, bool) or not (
        isinstance(label_smoothing, numbers.Real) and 0.0 <= label_smoothing <= 1.0
    ):
        raise ValueError(f"{op}: argument 'label_smoothing' must be in [0, 1], got {label_smoothing!r}")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise ValueError(f"{op}: argument 'ignore_index' must be an int, got {ignore_index!r}")


def binary_cross_entropy(prediction, target, eps: float = 1e-7, *, reduction: str = "mean") -> Tensor:
    """``-(t log p + (1 - t) log(1 - p))`` for probabilities ``p`` in [0, 1], reduced (default: mean).

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
    _check_reduction("BinaryCrossEntropyLoss", reduction)
    t = t.astype(prediction.dtype)
    ### BEGIN SOLUTION
    p = prediction.clip(eps, 1.0 - eps)
    return _reduce(-(t * p.log() + (1 - t) * (1 - p).log()), reduction)
    ### END SOLUTION


def binary_cross_entropy_with_logits(logits, target, *, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy on raw scores ``x``: ``max(x, 0) - x t + log(1 + exp(-|x|))``, reduced.

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
    _check_reduction("BCEWithLogitsLoss", reduction)
    t = t.astype(x.dtype)
    ### BEGIN SOLUTION
    return _reduce(relu(x) - x * t + (1 + (-x.abs()).exp()).log(), reduction)
    ### END SOLUTION


class MSELoss(Module):
    """Squared error. Shape: prediction (*) and target (*) of equal shape -> scalar (or (*) for "none").

    Args:
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    """

    def __init__(self, *, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _check_reduction("MSELoss", reduction)

    def forward(self, prediction, target) -> Tensor:
        return mse_loss(prediction, target, reduction=self.reduction)


class CrossEntropyLoss(Module):
    """Softmax cross-entropy from logits (see :func:`cross_entropy`).

    Shape: logits (N, C) with target (N,) int, or (N, C, d1, ...) with (N, d1, ...),
    -> scalar (or the target's shape for ``reduction="none"``). Finite for logits of
    any magnitude (through the stable ``log_softmax``).

    Args:
        ignore_index: target value that contributes nothing (default -100).
        reduction: ``"mean"`` (default, over the targets not ignored), ``"sum"`` or ``"none"``.
        label_smoothing: in [0, 1] (default 0).
    """

    def __init__(self, *, ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__()
        _check_cross_entropy_options(ignore_index, reduction, label_smoothing)
        self.ignore_index, self.reduction, self.label_smoothing = ignore_index, reduction, label_smoothing

    def forward(self, logits, target) -> Tensor:
        return cross_entropy(
            logits,
            target,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )


class NLLLoss(Module):
    """Negative log-likelihood of log-probabilities (see :func:`nll_loss`); shapes as CrossEntropyLoss.

    Args:
        ignore_index: target value that contributes nothing (default -100).
        reduction: ``"mean"`` (default, over the targets not ignored), ``"sum"`` or ``"none"``.
    """

    def __init__(self, *, ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__()
        _check_cross_entropy_options(ignore_index, reduction, 0.0, op="NLLLoss")
        self.ignore_index, self.reduction = ignore_index, reduction

    def forward(self, log_probs, target) -> Tensor:
        return nll_loss(log_probs, target, ignore_index=self.ignore_index, reduction=self.reduction)


class BinaryCrossEntropyLoss(Module):
    """Binary cross-entropy on probabilities (see :func:`binary_cross_entropy`).

    Args:
        eps: clipping margin keeping the logs finite (in (0, 0.5), default 1e-7).
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.

    Shape: prediction (*) in [0, 1] and target (*) of equal shape -> scalar (or (*)).
    """

    def __init__(self, eps: float = 1e-7, *, reduction: str = "mean") -> None:
        super().__init__()
        if not 0.0 < eps < 0.5:  # also refuses nan
            raise ValueError(f"BinaryCrossEntropyLoss: argument 'eps' must be in (0, 0.5), got {eps}")
        self.eps = float(eps)
        self.reduction = _check_reduction("BinaryCrossEntropyLoss", reduction)

    def forward(self, prediction, target) -> Tensor:
        return binary_cross_entropy(prediction, target, self.eps, reduction=self.reduction)


BCELoss = BinaryCrossEntropyLoss


class BCEWithLogitsLoss(Module):
    """Binary cross-entropy on raw scores (sigmoid folded in, stable for any magnitude).

    Shape: logits (*) and target (*) in [0, 1] of equal shape -> scalar (or (*) for "none").

    Args:
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    """

    def __init__(self, *, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _check_reduction("BCEWithLogitsLoss", reduction)

    def forward(self, logits, target) -> Tensor:
        return binary_cross_entropy_with_logits(logits, target, reduction=self.reduction)
