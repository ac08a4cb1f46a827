"""Module 01 - Tensor: an n-dimensional array and the operations on it.

A :class:`Tensor` wraps a NumPy array (``.data``) and gives it the operators
a neural network needs: elementwise arithmetic with broadcasting, matrix
products, reductions, reshaping and indexing. Each operation is a small
:class:`~tinytorch.core.autograd.Function` whose ``forward`` is one vectorized
NumPy expression on the raw arrays; ``Function.apply`` (given code) wraps the
result in a new Tensor and turns a NumPy shape error into an error naming the
op and the input shapes.

This module is about *values*. Every Function here also has a ``backward``,
its derivative: that is Module 05's lesson, written next to the forward so the
two can be read side by side, and marked ``(Module 05)``. ``requires_grad``,
``.grad`` and ``backward()`` only come alive in Module 05.

Dtypes: float data becomes float32 unless ``dtype`` is given (float64 is used
for gradient checks); integer data keeps an integer dtype (indices, class
targets). Python numbers combined with a tensor never change its dtype (NumPy's
NEP 50 rule), and NumPy operands are cast to the tensor's float dtype, so a
float32 model stays float32.
"""

from __future__ import annotations

import numbers

import numpy as np
from tinytorch.core.autograd import Function, is_grad_enabled, unbroadcast
from tinytorch.core.autograd import backward as _run_backward
from tinytorch.core.memory import keep_freed_memory

# Once per process: keep freed memory for the next training step (see tinytorch/core/memory.py).
keep_freed_memory()

__all__ = ["Tensor", "concatenate", "cat", "stack", "where", "maximum", "minimum"]


# --------------------------------------------------------------------------- Tensor


class Tensor:
    """An n-dimensional array with optional gradient tracking.

    Args:
        data: array-like (nested lists, numbers, ndarray or Tensor). Shared, not
            copied, when it already is an ndarray of the target dtype (as
            ``torch.from_numpy``).
        requires_grad: record operations on this tensor so ``backward`` can fill
            ``.grad`` (Module 05).
        dtype: NumPy dtype; default float32 for float data, unchanged for ints/bools.

    Attributes:
        data (np.ndarray): the values.
        grad (Tensor | None): accumulated gradient after ``backward``.
        requires_grad (bool): whether gradients flow to/through this tensor.

    Example:
        >>> x = Tensor([[1.0, 2.0], [3.0, 4.0]])
        >>> (x @ x + 1).sum()
        Tensor(61.)
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "__weakref__")
    # NumPy defers binary operators to us (ndarray * Tensor -> Tensor.__rmul__).
    __array_ufunc__ = None

    def __init__(self, data, requires_grad: bool = False, dtype=None) -> None:
        ### BEGIN SOLUTION
        if isinstance(data, Tensor):
            data = data.data
        if dtype is not None:
            array = np.asarray(data, dtype=dtype)
        else:
            array = np.asarray(data)
            if array.dtype.kind == "f" and array.dtype != np.float32:
                array = array.astype(np.float32)  # float64 lists/arrays -> float32 default
            elif array.dtype.kind not in "biuf":
                raise TypeError(f"Tensor: unsupported data of dtype {array.dtype}")
        if requires_grad and array.dtype.kind != "f":
            raise ValueError(
                f"Tensor: argument 'requires_grad' needs floating-point data, got dtype {array.dtype}"
            )
        self.data = array
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._ctx = None
        ### END SOLUTION

    @classmethod
    def _make(cls, data, requires_grad: bool = False) -> Tensor:
        """Internal constructor for results: wrap an ndarray as is (no dtype rules, no copy)."""
        t = object.__new__(Tensor)  # always a plain Tensor, even when called on a Parameter
        t.data = data if isinstance(data, np.ndarray) else np.asarray(data)
        t.grad = None
        t.requires_grad = requires_grad
        t._ctx = None
        return t

    # ---------------------------------------------------------------- properties
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def is_leaf(self) -> bool:
        """True for tensors created by the user (no recorded producing operation)."""
        return self._ctx is None

    @property
    def T(self) -> Tensor:
        """All dimensions reversed (the matrix transpose for 2-D)."""
        return self.permute(*reversed(range(self.ndim)))

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="Tensor(", threshold=100, precision=4)
        extras = ""
        if self.data.dtype not in (np.float32, np.int64):
            extras += f", dtype={self.data.dtype}"
        if self.requires_grad:
            extras += ", requires_grad=True"
        return f"Tensor({body}{extras})"

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    # ---------------------------------------------------------------- conversion
    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied)."""
        return self.data

    def item(self):
        """The single value as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item: tensor of shape {self.shape} has {self.data.size} elements, not 1")
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def detach(self) -> Tensor:
        """A tensor sharing the data, cut from the graph (requires_grad=False)."""
        return Tensor._make(self.data, False)

    def astype(self, dtype) -> Tensor:
        """Copy with another dtype (not differentiable; for indices, masks, precision changes)."""
        return Tensor._make(self.data.astype(dtype), False)

    def float(self) -> Tensor:
        """float32 version, differentiable (as ``torch.Tensor.float``)."""
        return self if self.data.dtype == np.float32 else Cast.apply(self, np.float32)

    def double(self) -> Tensor:
        """float64 version, differentiable."""
        return self if self.data.dtype == np.float64 else Cast.apply(self, np.float64)

    # ---------------------------------------------------------------- autograd (Module 05)
    def backward(self, gradient=None, retain_graph: bool = False) -> None:
        """Compute d(self)/d(leaf) for every leaf that requires grad, into ``leaf.grad``.

        Args:
            gradient: d(loss)/d(self); required unless ``self`` has one element.
            retain_graph: keep the graph for another backward.
        """
        _run_backward(self, gradient, retain_graph)

    def zero_grad(self) -> None:
        """Forget the accumulated gradient (``grad = None``, as PyTorch's set_to_none)."""
        self.grad = None

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and self.data.dtype.kind != "f":
            raise ValueError("requires_grad_: only floating-point tensors can require grad")
        self.requires_grad = bool(requires_grad)
        return self

    # ---------------------------------------------------------------- operands
    def _operand(self, other):
        """``other`` as a Tensor or a constant that keeps our dtype (no float64 creep)."""
        if isinstance(other, Tensor):
            return other
        if type(other) in (int, float, bool):
            return other  # Python scalars are "weak": float32 stays float32 (NEP 50)
        array = np.asarray(other)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"unsupported operand of type {type(other).__name__}")
        if self.data.dtype.kind == "f" and array.dtype != self.data.dtype:
            array = array.astype(self.data.dtype)  # float64 / int arrays adopt our float dtype
        return array

    def _pair(self, other):
        """(self, other) ready for a binary op: mixed int/float operands meet in the float dtype."""
        other = self._operand(other)
        a = self
        if isinstance(other, Tensor) and other.data.dtype != self.data.dtype:
            ka, kb = self.data.dtype.kind, other.data.dtype.kind
            if ka == "f" and kb in "biu":
                other = other.data.astype(self.data.dtype)  # int tensors never need a gradient
            elif kb == "f" and ka in "biu":
                a = Tensor._make(self.data.astype(other.data.dtype))
        elif type(other) is float and self.data.dtype.kind in "biu":
            a = Tensor._make(self.data.astype(np.float32))  # int tensor * 2.5 -> float32 (as PyTorch)
        return a, other

    def _float_pair(self, other):
        """Like ``_pair``, but integer / integer becomes float32 (true division, as PyTorch)."""
        a, b = self._pair(other)
        a_data = a.data if isinstance(a, Tensor) else a
        b_data = b.data if isinstance(b, Tensor) else b
        if np.result_type(a_data, b_data).kind != "f":
            a = Tensor._make(np.asarray(a_data, dtype=np.float32))  # integer tensors carry no gradient
            if not isinstance(b, (int, bool)):
                b = np.asarray(b_data, dtype=np.float32)
        return a, b

    # ---------------------------------------------------------------- arithmetic
    def __add__(self, other):
        return Add.apply(*self._pair(other))

    def __radd__(self, other):
        a, b = self._pair(other)
        return Add.apply(b, a)

    def __sub__(self, other):
        return Sub.apply(*self._pair(other))

    def __rsub__(self, other):
        a, b = self._pair(other)
        return Sub.apply(b, a)

    def __mul__(self, other):
        return Mul.apply(*self._pair(other))

    def __rmul__(self, other):
        a, b = self._pair(other)
        return Mul.apply(b, a)

    def __truediv__(self, other):
        return Div.apply(*self._float_pair(other))

    def __rtruediv__(self, other):
        a, b = self._float_pair(other)
        if (
            not isinstance(b, Tensor)
            and np.result_type(b, a.data if isinstance(a, Tensor) else a).kind != "f"
        ):
            b = np.asarray(b, dtype=np.float32)
        return Div.apply(b, a)

    def __neg__(self):
        return Neg.apply(self)

    def __pow__(self, exponent):
        if not isinstance(exponent, numbers.Real) or isinstance(exponent, np.ndarray):
            raise ValueError(f"pow: argument 'exponent' must be a real number, got {type(exponent).__name__}")
        return Pow.apply(self, exponent if isinstance(exponent, (int, float)) else float(exponent))

    def __rpow__(self, base):
        # base ** x = exp(x * ln(base)), differentiable in x.
        return (self * float(np.log(base))).exp()

    def __matmul__(self, other):
        return MatMul.apply(*self._pair(other))

    def __rmatmul__(self, other):
        a, b = self._pair(other)
        return MatMul.apply(b, a)

    def matmul(self, other) -> Tensor:
        """Matrix product (``@``): batched, broadcasting batch dims, 1-D promoted as NumPy."""
        return self @ other

    # ---------------------------------------------------------------- comparisons (no grad)
    def _compare(self, other, op) -> Tensor:
        other = other.data if isinstance(other, Tensor) else other
        return Tensor._make(op(self.data, other), False)

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    def __eq__(self, other):  # elementwise, as PyTorch
        if other is None:
            return False
        return self._compare(other, np.equal)

    def __ne__(self, other):
        if other is None:
            return True
        return self._compare(other, np.not_equal)

    __hash__ = object.__hash__  # identity hash: tensors can be dict keys / set members

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ValueError(f"truth value of a tensor of shape {self.shape} is ambiguous")
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    # ---------------------------------------------------------------- elementwise math
    def exp(self) -> Tensor:
        return Exp.apply(self)

    def log(self) -> Tensor:
        return Log.apply(self)

    def sqrt(self) -> Tensor:
        return Sqrt.apply(self)

    def abs(self) -> Tensor:
        return Abs.apply(self)

    def clip(self, min=None, max=None) -> Tensor:  # noqa: A002 - PyTorch's names
        """Clamp values to ``[min, max]`` (either may be None). Gradient 0 outside."""
        return Clip.apply(self, min, max)

    clamp = clip

    def maximum(self, other) -> Tensor:
        return Maximum.apply(self, self._operand(other))

    def minimum(self, other) -> Tensor:
        return -Maximum.apply(-self, -self._operand(other))

    def masked_fill(self, mask, value) -> Tensor:
        """``value`` where ``mask`` is True, else ``self`` (``mask`` broadcasts)."""
        mask = mask.data if isinstance(mask, Tensor) else mask
        return Where.apply(np.asarray(mask, dtype=bool), self._operand(value), self)

    # ---------------------------------------------------------------- reductions
    def sum(self, axis=None, keepdims: bool = False) -> Tensor:
        """Sum over ``axis`` (int, tuple or None for all). Shape: reduced dims dropped unless keepdims."""
        return Sum.apply(self, axis=_norm_axis(axis, self.data.ndim), keepdims=keepdims)

    def mean(self, axis=None, keepdims: bool = False) -> Tensor:
        """Arithmetic mean over ``axis``."""
        return Mean.apply(self, axis=_norm_axis(axis, self.data.ndim), keepdims=keepdims)

    def var(self, axis=None, keepdims: bool = False, ddof: int = 0) -> Tensor:
        """Variance over ``axis``: ``sum((x - mean(x))**2) / (n - ddof)``.

        Note: ``ddof=0`` (biased, NumPy's default and what layer norm needs);
        PyTorch's ``var`` defaults to the unbiased ``correction=1``.
        """
        return Var.apply(self, axis=_norm_axis(axis, self.data.ndim), keepdims=keepdims, ddof=ddof)

    def max(self, axis=None, keepdims: bool = False) -> Tensor:
        """Maximum over ``axis`` (values only; see ``argmax`` for indices)."""
        return Extremum.apply(self, axis=_norm_axis(axis, self.data.ndim), keepdims=keepdims)

    def min(self, axis=None, keepdims: bool = False) -> Tensor:
        """Minimum over ``axis``."""
        return Extremum.apply(self, axis=_norm_axis(axis, self.data.ndim), keepdims=keepdims, use_min=True)

    def argmax(self, axis=None, keepdims: bool = False) -> Tensor:
        """Indices of the maxima (int64, no gradient)."""
        return Tensor._make(np.argmax(self.data, axis=axis, keepdims=keepdims), False)

    def argmin(self, axis=None, keepdims: bool = False) -> Tensor:
        return Tensor._make(np.argmin(self.data, axis=axis, keepdims=keepdims), False)

    # ---------------------------------------------------------------- movement
    def reshape(self, *shape) -> Tensor:
        """Same elements, new shape (``-1`` inferred). ``reshape(2, 3)`` or ``reshape((2, 3))``."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return Reshape.apply(self, shape)

    view = reshape

    def flatten(self, start_dim: int = 0) -> Tensor:
        """Merge dims from ``start_dim`` on: (N, C, H, W).flatten(1) -> (N, C*H*W)."""
        return self.reshape(self.shape[:start_dim] + (-1,))

    def transpose(self, dim0: int = -2, dim1: int = -1) -> Tensor:
        """Swap two dimensions (default: the last two)."""
        return Transpose.apply(self, dim0, dim1)

    def permute(self, *dims) -> Tensor:
        """Reorder all dimensions: ``x.permute(0, 2, 1)``."""
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        if len(dims) != self.data.ndim:
            raise ValueError(
                f"permute: argument 'dims' has {len(dims)} entries for a {self.data.ndim}-d tensor"
            )
        return Permute.apply(self, tuple(dims))

    def unsqueeze(self, dim: int) -> Tensor:
        """Insert a size-1 dimension at ``dim``."""
        ndim = self.data.ndim + 1
        if not -ndim <= dim < ndim:
            raise ValueError(f"unsqueeze: argument 'dim' {dim} out of range for {self.data.ndim}-d tensor")
        dim %= ndim
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim=None) -> Tensor:
        """Remove size-1 dimensions (all, or only ``dim`` if it has size 1)."""
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        dim = _norm_axis(dim, self.data.ndim)[0]
        if self.shape[dim] != 1:
            return self
        return self.reshape(self.shape[:dim] + self.shape[dim + 1 :])

    def expand(self, *shape) -> Tensor:
        """Broadcast to ``shape`` without copying (``-1`` keeps a dim)."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        lead = len(shape) - self.data.ndim
        shape = tuple(self.shape[i - lead] if n == -1 and i >= lead else n for i, n in enumerate(shape))
        return Expand.apply(self, shape)

    def broadcast_to(self, shape) -> Tensor:
        return Expand.apply(self, tuple(shape))

    def pad(self, pad_width, value: float = 0.0) -> Tensor:
        """Constant padding with ``np.pad``'s ``pad_width``: int, (before, after) or one pair per dim.

        Example: (N, C, H, W) image padded by 1 pixel: ``x.pad(((0, 0), (0, 0), (1, 1), (1, 1)))``.
        """
        try:
            widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (self.data.ndim, 2))
        except ValueError:
            raise ValueError(
                f"pad: argument 'pad_width' {pad_width!r} does not fit a tensor of shape {self.shape}"
            ) from None
        if (widths < 0).any():
            raise ValueError(f"pad: argument 'pad_width' must be non-negative, got {pad_width!r}")
        return Pad.apply(self, tuple(map(tuple, widths.tolist())), value)

    def __getitem__(self, index) -> Tensor:
        if isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        elif isinstance(index, Tensor):
            index = index.data
        return GetItem.apply(self, index)

    def __setitem__(self, index, value) -> None:
        """In-place write into ``data``; refused on a tensor that is recording gradients."""
        if self.requires_grad and is_grad_enabled():
            raise RuntimeError("in-place assignment to a tensor that requires grad; use no_grad() or where()")
        if isinstance(index, Tensor):
            index = index.data
        self.data[index] = value.data if isinstance(value, Tensor) else value


# --------------------------------------------------------------------------- functions


def _as_tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def concatenate(tensors, axis: int = 0) -> Tensor:
    """Join a sequence of tensors along an existing ``axis`` (``torch.cat``)."""
    tensors = [_as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("concatenate: argument 'tensors' is empty")
    return Concatenate.apply(*tensors, axis=axis)


cat = concatenate


def stack(tensors, axis: int = 0) -> Tensor:
    """Join same-shape tensors along a new ``axis``."""
    tensors = [_as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: argument 'tensors' is empty")
    return Stack.apply(*tensors, axis=axis)


def where(condition, x, y) -> Tensor:
    """``x`` where ``condition`` is True else ``y``; differentiable in ``x`` and ``y``."""
    cond = condition.data if isinstance(condition, Tensor) else condition
    ref = x if isinstance(x, Tensor) else y if isinstance(y, Tensor) else Tensor(x)
    return Where.apply(np.asarray(cond, dtype=bool), ref._operand(x), ref._operand(y))


def maximum(a, b) -> Tensor:
    """Elementwise maximum with broadcasting; ties share the gradient."""
    ref = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else Tensor(a)
    return Maximum.apply(ref._operand(a), ref._operand(b))


def minimum(a, b) -> Tensor:
    """Elementwise minimum with broadcasting."""
    return -maximum(-_as_tensor(a), -_as_tensor(b))


# --------------------------------------------------------------------------- helpers


def _norm_axis(axis, ndim: int):
    """Axis argument as a tuple of non-negative ints (None stays None)."""
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(a % ndim if ndim else 0)
    return tuple(out)


def _reduced_count(shape: tuple, axis) -> int:
    """Number of elements folded into each output element by a reduction over ``axis``."""
    if axis is None:
        return int(np.prod(shape, dtype=np.int64))
    return int(np.prod([shape[a] for a in axis], dtype=np.int64))


def _expand_reduced(grad: np.ndarray, axis, keepdims: bool) -> np.ndarray:
    """Re-insert reduced axes (size 1) so ``grad`` broadcasts against the reduction's input."""
    if keepdims or axis is None:
        return grad
    return np.expand_dims(grad, axis)


def _is_advanced(index) -> bool:
    """True when ``index`` uses integer/boolean arrays (NumPy advanced indexing)."""
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, (list, np.ndarray)) for p in parts)


# --------------------------------------------------------------------------- elementwise


class Add(Function):
    """``a + b`` with broadcasting. Backward: each input gets ``grad`` summed to its shape."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (np.shape(a), np.shape(b))
        ### BEGIN SOLUTION
        return a + b
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        shape_a, shape_b = ctx.shapes
        return unbroadcast(grad, shape_a), unbroadcast(grad, shape_b)
        ### END SOLUTION


class Sub(Function):
    """``a - b`` with broadcasting. Backward: ``grad`` and ``-grad``, summed to each shape."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (np.shape(a), np.shape(b))
        ### BEGIN SOLUTION
        return a - b
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        shape_a, shape_b = ctx.shapes
        return unbroadcast(grad, shape_a), unbroadcast(-grad, shape_b)
        ### END SOLUTION


class Mul(Function):
    """``a * b`` with broadcasting. Backward: ``d/da = grad * b``, ``d/db = grad * a``."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        ### BEGIN SOLUTION
        return a * b
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        a, b = ctx.saved_tensors
        needs_a, needs_b = ctx.needs_input_grad
        grad_a = unbroadcast(grad * b, np.shape(a)) if needs_a else None
        grad_b = unbroadcast(grad * a, np.shape(b)) if needs_b else None
        return grad_a, grad_b
        ### END SOLUTION


class Div(Function):
    """``a / b`` with broadcasting. Backward: ``grad / b`` and ``-grad * a / b**2``."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        ### BEGIN SOLUTION
        return a / b
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        a, b = ctx.saved_tensors
        needs_a, needs_b = ctx.needs_input_grad
        grad_a = unbroadcast(grad / b, np.shape(a)) if needs_a else None
        grad_b = unbroadcast(-grad * a / (b * b), np.shape(b)) if needs_b else None
        return grad_a, grad_b
        ### END SOLUTION


class Neg(Function):
    """``-x``. Backward: ``-grad``."""

    @staticmethod
    def forward(ctx, x):
        ### BEGIN SOLUTION
        return -x
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        return -grad
        ### END SOLUTION


class Pow(Function):
    """``x ** p`` for a constant number ``p``. Backward: ``grad * p * x**(p-1)`` (0 when p = 0)."""

    @staticmethod
    def forward(ctx, x, p):
        ctx.save_for_backward(x)
        ctx.p = p
        ### BEGIN SOLUTION
        return x**p
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        (x,) = ctx.saved_tensors
        if ctx.p == 0:
            return np.zeros_like(grad)  # x**0 is constant (avoids 0 * 0**-1 = nan at x = 0)
        return grad * ctx.p * x ** (ctx.p - 1)
        ### END SOLUTION


class Exp(Function):
    """``e**x``. Backward: ``grad * e**x``."""

    @staticmethod
    def forward(ctx, x):
        ### BEGIN SOLUTION
        out = np.exp(x)
        ### END SOLUTION
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        (out,) = ctx.saved_tensors
        return grad * out
        ### END SOLUTION


class Log(Function):
    """Natural log. Backward: ``grad / x``."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        ### BEGIN SOLUTION
        return np.log(x)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        (x,) = ctx.saved_tensors
        return grad / x
        ### END SOLUTION


class Sqrt(Function):
    """Square root. Backward: ``grad / (2 sqrt(x))``."""

    @staticmethod
    def forward(ctx, x):
        ### BEGIN SOLUTION
        out = np.sqrt(x)
        ### END SOLUTION
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        (out,) = ctx.saved_tensors
        return grad / (2 * out)
        ### END SOLUTION


class Abs(Function):
    """``|x|``. Backward: ``grad * sign(x)`` (0 at 0, as PyTorch)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        ### BEGIN SOLUTION
        return np.abs(x)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        (x,) = ctx.saved_tensors
        return grad * np.sign(x)
        ### END SOLUTION


class Clip(Function):
    """``min(max(x, low), high)``. Backward: ``grad`` where ``low <= x <= high``, else 0."""

    @staticmethod
    def forward(ctx, x, low, high):
        ctx.save_for_backward(x)
        ctx.bounds = (low, high)
        ### BEGIN SOLUTION
        return np.clip(x, low, high)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        (x,) = ctx.saved_tensors
        low, high = ctx.bounds
        inside = np.ones(x.shape, dtype=bool)
        if low is not None:
            inside &= x >= low
        if high is not None:
            inside &= x <= high
        return grad * inside, None, None
        ### END SOLUTION


class Maximum(Function):
    """Elementwise ``max(a, b)`` with broadcasting. Ties split the gradient equally (as PyTorch)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        ### BEGIN SOLUTION
        return np.maximum(a, b)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        a, b = ctx.saved_tensors
        needs_a, needs_b = ctx.needs_input_grad
        # Share of the gradient going to `a`: 1 where a wins, 1/2 on ties, 0 where b wins.
        share = ((a > b) + 0.5 * (a == b)).astype(grad.dtype)
        grad_a = unbroadcast(grad * share, np.shape(a)) if needs_a else None
        grad_b = unbroadcast(grad * (1 - share), np.shape(b)) if needs_b else None
        return grad_a, grad_b
        ### END SOLUTION


class Where(Function):
    """``cond ? a : b`` elementwise (``cond`` a constant boolean array). Backward: masked ``grad``."""

    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.save_for_backward(cond)
        ctx.shapes = (np.shape(a), np.shape(b))
        ### BEGIN SOLUTION
        return np.where(cond, a, b)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        (cond,) = ctx.saved_tensors
        shape_a, shape_b = ctx.shapes
        return None, unbroadcast(grad * cond, shape_a), unbroadcast(grad * ~cond, shape_b)
        ### END SOLUTION


class Cast(Function):
    """dtype conversion (``float()``, ``double()``). Backward: the gradient cast back."""

    @staticmethod
    def forward(ctx, x, dtype):
        ctx.dtype = x.dtype
        ### BEGIN SOLUTION
        return x.astype(dtype)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        return grad.astype(ctx.dtype), None
        ### END SOLUTION


# --------------------------------------------------------------------------- matmul


class MatMul(Function):
    """``a @ b`` (NumPy semantics: 1-D promotion, batched, broadcasting batch dims).

    Backward: ``dA = grad @ B^T`` and ``dB = A^T @ grad``, each summed over the
    batch dimensions that were broadcast. Cost: two matmuls of the forward's size.
    """

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        ### BEGIN SOLUTION
        return np.matmul(a, b)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        a, b = ctx.saved_tensors
        needs_a, needs_b = ctx.needs_input_grad
        # Promote 1-D operands to matrices so one formula covers every case.
        a2 = a[None, :] if a.ndim == 1 else a  # (1, K) or (..., M, K)
        b2 = b[:, None] if b.ndim == 1 else b  # (K, 1) or (..., K, N)
        g = grad
        if a.ndim == 1 and b.ndim == 1:
            g = np.reshape(grad, (1, 1))
        elif a.ndim == 1:
            g = np.expand_dims(grad, -2)  # (..., 1, N)
        elif b.ndim == 1:
            g = np.expand_dims(grad, -1)  # (..., M, 1)
        grad_a = grad_b = None
        if needs_a:
            grad_a = unbroadcast(g @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
        if needs_b:
            grad_b = unbroadcast(np.swapaxes(a2, -1, -2) @ g, b2.shape).reshape(b.shape)
        return grad_a, grad_b
        ### END SOLUTION


# --------------------------------------------------------------------------- reductions


class Sum(Function):
    """Sum over ``axis`` (all when None). Backward: ``grad`` broadcast back over the reduced axes."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.shape, ctx.axis, ctx.keepdims = x.shape, axis, keepdims
        ### BEGIN SOLUTION
        return np.sum(x, axis=axis, keepdims=keepdims)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        return np.broadcast_to(_expand_reduced(grad, ctx.axis, ctx.keepdims), ctx.shape)
        ### END SOLUTION


class Mean(Function):
    """Mean over ``axis``. Backward: ``grad / n`` broadcast back, n = elements per mean."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.shape, ctx.axis, ctx.keepdims = x.shape, axis, keepdims
        ### BEGIN SOLUTION
        return np.mean(x, axis=axis, keepdims=keepdims)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        n = _reduced_count(ctx.shape, ctx.axis)
        return np.broadcast_to(_expand_reduced(grad, ctx.axis, ctx.keepdims) / n, ctx.shape)
        ### END SOLUTION


class Var(Function):
    """Variance over ``axis`` with ``ddof`` (0: biased, as layer norm uses; 1: unbiased).

    Backward: ``grad * 2 (x - mean) / (n - ddof)`` (nan when n = ddof, like the forward).
    """

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False, ddof=0):
        ctx.save_for_backward(x)
        ctx.axis, ctx.keepdims, ctx.ddof = axis, keepdims, ddof
        ### BEGIN SOLUTION
        return np.var(x, axis=axis, keepdims=keepdims, ddof=ddof)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        (x,) = ctx.saved_tensors
        n = _reduced_count(x.shape, ctx.axis)
        centered = x - np.mean(x, axis=ctx.axis, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):  # n == ddof: nan, as the forward
            scale = np.asarray(2.0, dtype=x.dtype) / (n - ctx.ddof)
            return _expand_reduced(grad, ctx.axis, ctx.keepdims) * centered * scale
        ### END SOLUTION


class Extremum(Function):
    """Max (or min) over ``axis``. Backward: ``grad`` to the arg-extreme entries, split among ties."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False, use_min=False):
        ctx.save_for_backward(x)
        ctx.axis, ctx.keepdims, ctx.use_min = axis, keepdims, use_min
        ### BEGIN SOLUTION
        reduce = np.min if use_min else np.max
        return reduce(x, axis=axis, keepdims=keepdims)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        (x,) = ctx.saved_tensors
        reduce = np.min if ctx.use_min else np.max
        hit = x == reduce(x, axis=ctx.axis, keepdims=True)  # where the extreme value sits
        ties = hit.sum(axis=ctx.axis, keepdims=True).astype(grad.dtype)
        return hit * (_expand_reduced(grad, ctx.axis, ctx.keepdims) / ties)
        ### END SOLUTION


# --------------------------------------------------------------------------- movement


class Reshape(Function):
    """Same elements, new shape (same element order). Backward: reshape ``grad`` back."""

    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        ### BEGIN SOLUTION
        return np.reshape(x, shape)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        return np.reshape(grad, ctx.shape)
        ### END SOLUTION


class Permute(Function):
    """Reorder dimensions (``dims`` a permutation). Backward: the inverse permutation."""

    @staticmethod
    def forward(ctx, x, dims):
        ctx.dims = dims
        ### BEGIN SOLUTION
        return np.transpose(x, dims)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        return np.transpose(grad, np.argsort([d % grad.ndim for d in ctx.dims]))
        ### END SOLUTION


class Transpose(Function):
    """Swap two dimensions. Backward: swap them back."""

    @staticmethod
    def forward(ctx, x, dim0, dim1):
        ctx.dims = (dim0, dim1)
        ### BEGIN SOLUTION
        return np.swapaxes(x, dim0, dim1)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        return np.swapaxes(grad, *ctx.dims)
        ### END SOLUTION


class Expand(Function):
    """Broadcast to a larger ``shape`` without copying. Backward: ``unbroadcast``."""

    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        ### BEGIN SOLUTION
        return np.broadcast_to(x, shape)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        return unbroadcast(grad, ctx.shape)
        ### END SOLUTION


class GetItem(Function):
    """``x[index]`` (ints, slices, None, Ellipsis, integer or boolean arrays).

    Backward: scatter ``grad`` into zeros of the input shape; repeated integer
    indices accumulate (``np.add.at``), so an embedding lookup gets every use.
    """

    name = "getitem"

    @staticmethod
    def forward(ctx, x, index):
        ctx.shape, ctx.index = x.shape, index
        ### BEGIN SOLUTION
        return x[index]
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        full = np.zeros(ctx.shape, dtype=grad.dtype)
        if _is_advanced(ctx.index):
            np.add.at(full, ctx.index, grad)  # an index may repeat: add every use
        else:
            full[ctx.index] = grad  # basic indexing never repeats an element
        return full
        ### END SOLUTION


class Pad(Function):
    """Constant padding, ``pad_width`` one (before, after) pair per dim. Backward: the inner slice."""

    @staticmethod
    def forward(ctx, x, pad_width, value=0.0):
        ctx.window = tuple(slice(before, before + n) for (before, _), n in zip(pad_width, x.shape))
        ### BEGIN SOLUTION
        return np.pad(x, pad_width, mode="constant", constant_values=value)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        return grad[ctx.window], None, None
        ### END SOLUTION


class Concatenate(Function):
    """Join tensors along an existing ``axis``. Backward: split ``grad`` at the same offsets."""

    @staticmethod
    def forward(ctx, *xs, axis=0):
        ctx.axis = axis
        ctx.offsets = np.cumsum([np.shape(x)[axis] for x in xs])[:-1]
        ### BEGIN SOLUTION
        return np.concatenate(xs, axis=axis)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        return tuple(np.split(grad, ctx.offsets, axis=ctx.axis))
        ### END SOLUTION


class Stack(Function):
    """Join same-shape tensors along a new ``axis``. Backward: slice ``grad`` along it."""

    @staticmethod
    def forward(ctx, *xs, axis=0):
        ctx.axis = axis
        ### BEGIN SOLUTION
        return np.stack(xs, axis=axis)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        return tuple(np.moveaxis(grad, ctx.axis, 0))  # one slice per input
        ### END SOLUTION
