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

The API is PyTorch's: ``dim`` / ``keepdim`` (NumPy's ``axis`` / ``keepdims``
are accepted as keyword aliases), ``x.size()`` and ``x.size(d)``, ``x.max(dim)``
returning ``(values, indices)``, indexing placed by PyTorch's rule, and the
factories ``zeros``, ``ones``, ``full``, ``arange``, ``eye``, ``rand``,
``randn``, ``*_like`` and ``manual_seed``.

Dtypes: float data becomes float32 unless ``dtype`` is given (float64 is used
for gradient checks); integer data keeps an integer dtype (indices, class
targets). Python numbers combined with a tensor never change its dtype (NumPy's
NEP 50 rule), and NumPy operands are cast to the tensor's float dtype, so a
float32 model stays float32.

NumPy interoperation: ``np.asarray(t)`` is ``t.data`` (shared, not copied).
A NumPy ufunc applied to a tensor (``np.abs(p.grad)``, ``np.exp(t)``) computes
on the data and returns what NumPy returns for an array, an ndarray: no graph,
like every other NumPy function given a tensor (``np.stack``, ``np.linalg.norm``).
The one exception is arithmetic: ``ndarray * tensor`` (and ``+ - / // % ** @``
and comparisons; NumPy routes those operators through the ufuncs ``np.multiply``
and friends) runs the Tensor operator, so it keeps the graph exactly as
``tensor * ndarray`` does.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np
from tinytorch.core.autograd import Function, is_grad_enabled, unbroadcast
from tinytorch.core.autograd import backward as _run_backward
from tinytorch.core.memory import keep_freed_memory

# Once per process: keep freed memory for the next training step (see tinytorch/core/memory.py).
keep_freed_memory()

__all__ = [
    "Tensor",
    "ValuesIndices",
    "concatenate",
    "cat",
    "stack",
    "where",
    "maximum",
    "minimum",
    "zeros",
    "ones",
    "full",
    "arange",
    "eye",
    "rand",
    "randn",
    "zeros_like",
    "ones_like",
    "full_like",
    "rand_like",
    "randn_like",
    "manual_seed",
]


class ValuesIndices(NamedTuple):
    """What ``max(dim)``, ``min(dim)``, ``sort`` and ``topk`` return (as ``torch.return_types``).

    ``values`` is differentiable (its gradient goes to the selected entries);
    ``indices`` is an int64 tensor without gradient. Unpacks as a pair:
    ``values, indices = x.max(dim=1)``.
    """

    values: Tensor
    indices: Tensor


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
        Tensor(58.)
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "__weakref__")

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

    # ---------------------------------------------------------------- shape and size
    @property
    def shape(self) -> tuple:
        """The dimensions, a tuple (PyTorch's ``torch.Size``)."""
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def size(self, dim=None):
        """``size()`` is the shape (a tuple); ``size(d)`` the length of dim ``d`` (negative counts back)."""
        if dim is None:
            return self.data.shape
        return self.data.shape[_one_dim("size", dim, self.data.ndim, allow_scalar=False)]

    def numel(self) -> int:
        """Number of elements (the product of the shape; 1 for a 0-d tensor)."""
        return self.data.size

    def dim(self) -> int:
        """Number of dimensions (as ``ndim``)."""
        return self.data.ndim

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

    # ---------------------------------------------------------------- NumPy interoperation
    def __array__(self, dtype=None, copy=None):
        """``np.asarray(t)``: the data itself (a copy only when a dtype change or ``copy=True`` asks)."""
        array = self.data if dtype is None else self.data.astype(dtype)
        return array.copy() if copy and array is self.data else array

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """NumPy ufuncs given a tensor: operators keep the graph, everything else returns an ndarray.

        ``ndarray * tensor`` reaches us as ``np.multiply(ndarray, tensor)``: it runs
        the Tensor operator (``tensor.__rmul__(ndarray)``), so the result is a Tensor
        in the graph, as for ``tensor * ndarray``. Any other ufunc (``np.abs``,
        ``np.exp``, ``np.maximum``, reductions such as ``np.add.reduce``) is
        computed on the data and returns NumPy's result: an ndarray, without graph.
        """
        names = _OPERATOR_UFUNCS.get(ufunc)
        if names is not None and method == "__call__" and not kwargs:
            forward, reflected = names
            if isinstance(inputs[0], Tensor):
                return getattr(inputs[0], forward)(*inputs[1:])
            return getattr(inputs[1], reflected)(inputs[0])
        arrays = [x.data if isinstance(x, Tensor) else x for x in inputs]
        if "out" in kwargs:
            for target in kwargs["out"]:
                if isinstance(target, Tensor) and target.requires_grad and is_grad_enabled():
                    raise RuntimeError(
                        f"np.{ufunc.__name__}: out= a tensor that requires grad (use no_grad())"
                    )
            kwargs["out"] = tuple(x.data if isinstance(x, Tensor) else x for x in kwargs["out"])
        return getattr(ufunc, method)(*arrays, **kwargs)

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

    def clone(self) -> Tensor:
        """A copy of the data that stays in the graph (its gradient flows back to ``self``)."""
        return Clone.apply(self)

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

    def __floordiv__(self, other):
        """``floor(self / other)`` (PyTorch's ``floor_divide``); piecewise constant, so gradient 0."""
        return FloorDivide.apply(*self._pair(other))

    def __rfloordiv__(self, other):
        a, b = self._pair(other)
        return FloorDivide.apply(b, a)

    def __mod__(self, other):
        """Remainder with the sign of the divisor (Python's ``%``, PyTorch's ``remainder``)."""
        return Remainder.apply(*self._pair(other))

    def __rmod__(self, other):
        a, b = self._pair(other)
        return Remainder.apply(b, a)

    def __neg__(self):
        return Neg.apply(self)

    def __pow__(self, exponent):
        return Pow.apply(*self._pair(exponent))

    def __rpow__(self, base):
        a, b = self._pair(base)
        return Pow.apply(b, a)

    def pow(self, exponent) -> Tensor:
        """``self ** exponent`` elementwise; ``exponent`` a number or a tensor (broadcast)."""
        return self**exponent

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

    def sin(self) -> Tensor:
        return Sin.apply(self)

    def cos(self) -> Tensor:
        return Cos.apply(self)

    def sign(self) -> Tensor:
        """-1, 0 or 1 elementwise (gradient 0)."""
        return Sign.apply(self)

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
    # Every reduction takes PyTorch's ``dim`` (an int, a tuple, or None for all) and
    # ``keepdim``; NumPy's ``axis`` / ``keepdims`` are accepted as keyword aliases.
    # A 0-d tensor reduces over dim 0 or -1 to itself (as PyTorch).

    def sum(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:
        """Sum over ``dim``. Shape: the reduced dims dropped, or kept as size 1 with ``keepdim``."""
        dims, keep = _dims("sum", self, dim, axis), _keep(keepdim, keepdims)
        return Sum.apply(self, axis=dims, keepdims=keep)

    def mean(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:
        """Arithmetic mean over ``dim``."""
        dims, keep = _dims("mean", self, dim, axis), _keep(keepdim, keepdims)
        return Mean.apply(self, axis=dims, keepdims=keep)

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None):
        """Variance over ``dim``: ``sum((x - mean(x))**2) / (n - correction)``.

        As PyTorch, the default is the unbiased ``correction=1``; ``unbiased=False``
        or ``correction=0`` (NumPy's ``ddof=0``) gives the biased variance that
        normalization layers use.
        """
        dims, keep = _dims("var", self, dim, axis), _keep(keepdim, keepdims)
        return Var.apply(self, axis=dims, keepdims=keep, ddof=_correction("var", unbiased, correction))

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None):
        """Standard deviation ``sqrt(var)`` over ``dim`` (unbiased by default, as ``var``)."""
        dims, keep = _dims("std", self, dim, axis), _keep(keepdim, keepdims)
        return Std.apply(self, axis=dims, keepdims=keep, ddof=_correction("std", unbiased, correction))

    def prod(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:
        """Product over one ``dim`` (or all elements when None)."""
        dim, keep = _alias("prod", "dim", dim, "axis", axis), _keep(keepdim, keepdims)
        if dim is None:
            everything = Prod.apply(self.reshape(-1), axis=0, keepdims=False)
            return everything.reshape((1,) * self.ndim) if keep else everything
        return _scalar_as_vector("prod", self, dim, lambda x, d: Prod.apply(x, axis=d, keepdims=keep))

    def logsumexp(self, dim, keepdim: bool = False, *, keepdims=None) -> Tensor:
        """``log(sum(exp(x)))`` over ``dim``, computed stably (never exponentiates a large number)."""
        return LogSumExp.apply(self, axis=_dims("logsumexp", self, dim), keepdims=_keep(keepdim, keepdims))

    def cumsum(self, dim=None, *, axis=None) -> Tensor:
        """Running sum along ``dim``: ``out[..., i] = x[..., 0] + ... + x[..., i]``. Shape unchanged."""
        dim = _alias("cumsum", "dim", dim, "axis", axis)
        return _scalar_as_vector("cumsum", self, dim, lambda x, d: Cumsum.apply(x, d))

    def max(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
        """Largest value: ``x.max()`` a tensor; ``x.max(dim)`` the pair ``(values, indices)``.

        With a dim the gradient goes to the returned index (the first maximum), as
        PyTorch; the full ``x.max()`` splits it equally among tied maxima. ``x.max(other)``
        with a tensor is the elementwise ``maximum``. For several dims use ``amax``.
        """
        if isinstance(dim, Tensor):
            return self.maximum(dim)
        dim = _alias("max", "dim", dim, "axis", axis)
        if dim is None:
            return Extremum.apply(self, axis=None, keepdims=False)
        return _select(self, "max", dim, _keep(keepdim, keepdims), np.argmax)

    def min(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
        """Smallest value: ``x.min()`` a tensor; ``x.min(dim)`` the pair ``(values, indices)`` (see max)."""
        if isinstance(dim, Tensor):
            return self.minimum(dim)
        dim = _alias("min", "dim", dim, "axis", axis)
        if dim is None:
            return Extremum.apply(self, axis=None, keepdims=False, use_min=True)
        return _select(self, "min", dim, _keep(keepdim, keepdims), np.argmin)

    def amax(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:
        """Maximum over ``dim`` (an int or a tuple); ties share the gradient equally."""
        dims, keep = _dims("amax", self, dim, axis), _keep(keepdim, keepdims)
        return Extremum.apply(self, axis=dims, keepdims=keep)

    def amin(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:
        """Minimum over ``dim`` (an int or a tuple); ties share the gradient equally."""
        dims, keep = _dims("amin", self, dim, axis), _keep(keepdim, keepdims)
        return Extremum.apply(self, axis=dims, keepdims=keep, use_min=True)

    def argmax(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:
        """Index of the (first) maximum along ``dim``, or in the flattened tensor (int64, no gradient)."""
        dim, keep = _alias("argmax", "dim", dim, "axis", axis), _keep(keepdim, keepdims)
        if dim is None:  # an index into the flattened tensor
            return Tensor._make(np.argmax(self.data).reshape((1,) * self.ndim if keep else ()), False)
        return _select(self, "argmax", dim, keep, np.argmax).indices

    def argmin(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:
        """Index of the (first) minimum along ``dim``, or in the flattened tensor (int64, no gradient)."""
        dim, keep = _alias("argmin", "dim", dim, "axis", axis), _keep(keepdim, keepdims)
        if dim is None:  # an index into the flattened tensor
            return Tensor._make(np.argmin(self.data).reshape((1,) * self.ndim if keep else ()), False)
        return _select(self, "argmin", dim, keep, np.argmin).indices

    def all(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:
        """True where every element along ``dim`` is nonzero (a bool tensor, no gradient)."""
        dims, keep = _dims("all", self, dim, axis), _keep(keepdim, keepdims)
        return Tensor._make(np.all(self.data, axis=dims, keepdims=keep), False)

    def any(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:
        """True where some element along ``dim`` is nonzero (a bool tensor, no gradient)."""
        dims, keep = _dims("any", self, dim, axis), _keep(keepdim, keepdims)
        return Tensor._make(np.any(self.data, axis=dims, keepdims=keep), False)

    # ---------------------------------------------------------------- sorting
    def sort(self, dim: int = -1, descending: bool = False, stable: bool = False) -> ValuesIndices:
        """Sorted values along ``dim`` and where they came from: ``(values, indices)``.

        Equal values keep their original order (always stable). The gradient of
        ``values`` goes back to the positions in ``indices``. Cost: O(n log n) per row.
        """
        return _scalar_as_vector("sort", self, dim, lambda x, d: _sorted(x, d, descending))

    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> ValuesIndices:  # noqa: A002
        """The ``k`` largest (or smallest) values along ``dim``, in order, and their indices.

        Shape: ``dim`` becomes ``k``. Cost: a sort of each row (O(n log n)).
        """
        n = self.shape[_one_dim("topk", dim, self.ndim)] if self.ndim else 1
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 0 <= k <= n:
            raise ValueError(f"topk: argument 'k' must be an int in [0, {n}], got {k!r}")
        return _scalar_as_vector("topk", self, dim, lambda x, d: _sorted(x, d, largest, keep=int(k)))

    # ---------------------------------------------------------------- movement
    def reshape(self, *shape) -> Tensor:
        """Same elements, new shape (``-1`` inferred). ``reshape(2, 3)`` or ``reshape((2, 3))``."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return Reshape.apply(self, shape)

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        """Merge dims ``start_dim..end_dim`` into one: (N, C, H, W).flatten(1) -> (N, C*H*W)."""
        if self.ndim == 0:
            return self.reshape(1)
        start = _one_dim("flatten", start_dim, self.ndim)
        end = _one_dim("flatten", end_dim, self.ndim)
        if start > end:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
        return self.reshape(self.shape[:start] + (-1,) + self.shape[end + 1 :])

    def transpose(self, dim0: int = -2, dim1: int = -1) -> Tensor:
        """Swap two dimensions (default: the last two)."""
        return Transpose.apply(self, dim0, dim1)

    def t(self) -> Tensor:
        """Matrix transpose of a tensor with at most 2 dims (0-d and 1-d come back unchanged)."""
        if self.ndim > 2:
            raise ValueError(
                f"t: expects a tensor with <= 2 dims, got shape {self.shape}; use transpose(d0, d1)"
            )
        return self if self.ndim < 2 else self.transpose(0, 1)

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
        """Remove size-1 dimensions: all of them, or those among ``dim`` (an int or a tuple).

        A listed dimension whose size is not 1 is left alone (as PyTorch).
        """
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        drop = set(_dims("squeeze", self, dim))
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if not (i in drop and n == 1)))

    def expand(self, *shape) -> Tensor:
        """Broadcast to ``shape`` without copying (``-1`` keeps a dim)."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        lead = len(shape) - self.data.ndim
        shape = tuple(self.shape[i - lead] if n == -1 and i >= lead else n for i, n in enumerate(shape))
        return Expand.apply(self, shape)

    def broadcast_to(self, shape) -> Tensor:
        return Expand.apply(self, tuple(shape))

    def flip(self, *dims) -> Tensor:
        """Reverse the order of elements along ``dims``: ``x.flip(0)``, ``x.flip((0, 2))``."""
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        return Flip.apply(self, _dims("flip", self, dims))

    def tril(self, diagonal: int = 0) -> Tensor:
        """Keep the lower triangle of the last two dims (entries ``j <= i + diagonal``), zero the rest."""
        return Triangle.apply(self, _diagonal("tril", self, diagonal), upper=False)

    def triu(self, diagonal: int = 0) -> Tensor:
        """Keep the upper triangle of the last two dims (entries ``j >= i + diagonal``), zero the rest."""
        return Triangle.apply(self, _diagonal("triu", self, diagonal), upper=True)

    def split(self, split_size_or_sections, dim: int = 0) -> tuple:
        """Cut along ``dim`` into pieces of ``split_size`` (the last may be smaller) or of the listed sizes.

        Each piece is a slice of ``self`` (differentiable). Example: a (5, 3) tensor
        ``.split(2)`` gives shapes (2, 3), (2, 3), (1, 3); ``.split([1, 4])`` (1, 3), (4, 3).
        """
        d = _one_dim("split", dim, self.ndim, allow_scalar=False)
        n = self.shape[d]
        if isinstance(split_size_or_sections, numbers.Integral) and not isinstance(
            split_size_or_sections, bool
        ):
            size = int(split_size_or_sections)
            if size < 1:
                raise ValueError(f"split: argument 'split_size' must be a positive int, got {size}")
            sizes = [size] * (n // size) + ([n % size] if n % size else [])
        else:
            sizes = [int(s) for s in split_size_or_sections]
            if sum(sizes) != n or any(s < 0 for s in sizes):
                raise ValueError(f"split: sections {sizes} do not add up to size {n} of dim {dim}")
        starts = np.cumsum([0] + sizes[:-1]).tolist()
        lead = (slice(None),) * d
        return tuple(self[lead + (slice(start, start + s),)] for start, s in zip(starts, sizes))

    def chunk(self, chunks: int, dim: int = 0) -> tuple:
        """Cut along ``dim`` into ``chunks`` pieces of ``ceil(n / chunks)`` (fewer if n is small)."""
        if isinstance(chunks, bool) or not isinstance(chunks, numbers.Integral) or chunks < 1:
            raise ValueError(f"chunk: argument 'chunks' must be a positive int, got {chunks!r}")
        n = self.shape[_one_dim("chunk", dim, self.ndim, allow_scalar=False)]
        if n == 0:
            return self.split([0] * int(chunks), dim)
        return self.split(math.ceil(n / chunks), dim)

    def gather(self, dim: int, index) -> Tensor:
        """``out[i][j][k] = self[index[i][j][k]][j][k]`` for ``dim=0`` (and likewise for other dims).

        ``index`` is an integer tensor with as many dims as ``self``, each at most
        as long as ``self``'s except along ``dim``; the output has ``index``'s shape.
        The gradient is added back to the gathered positions (repeats accumulate).
        """
        index = index.data if isinstance(index, Tensor) else np.asarray(index)
        if index.dtype.kind not in "iu":
            raise ValueError(f"gather: argument 'index' must hold integers, got dtype {index.dtype}")
        if index.ndim != self.ndim:
            raise ValueError(f"gather: index shape {index.shape} and input shape {self.shape} differ in rank")
        d = _one_dim("gather", dim, self.ndim)
        if self.ndim == 0:  # a 0-d tensor gathers like a 1-element vector
            return self.reshape(1).gather(0, index.reshape(1)).reshape(())
        if any(i > n for k, (i, n) in enumerate(zip(index.shape, self.shape)) if k != d):
            raise ValueError(f"gather: index shape {index.shape} is larger than input shape {self.shape}")
        if index.size and (index.min() < 0 or index.max() >= self.shape[d]):
            raise ValueError(
                f"gather: argument 'index' has entries outside [0, {self.shape[d]}) along dim {dim}"
            )
        return Gather.apply(self, d, index)

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
        """``x[index]``: ints, slices, None, ``...``, integer and boolean arrays, placed as PyTorch does."""
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


# Ufuncs NumPy calls for operators (``ndarray * tensor`` is ``np.multiply(ndarray, tensor)``):
# the Tensor method to run with a tensor first, and the reflected one with a tensor second.
_OPERATOR_UFUNCS = {
    np.add: ("__add__", "__radd__"),
    np.subtract: ("__sub__", "__rsub__"),
    np.multiply: ("__mul__", "__rmul__"),
    np.true_divide: ("__truediv__", "__rtruediv__"),
    np.floor_divide: ("__floordiv__", "__rfloordiv__"),
    np.remainder: ("__mod__", "__rmod__"),
    np.power: ("__pow__", "__rpow__"),
    np.matmul: ("__matmul__", "__rmatmul__"),
    np.negative: ("__neg__", None),
    np.less: ("__lt__", "__gt__"),
    np.less_equal: ("__le__", "__ge__"),
    np.greater: ("__gt__", "__lt__"),
    np.greater_equal: ("__ge__", "__le__"),
    np.equal: ("__eq__", "__eq__"),
    np.not_equal: ("__ne__", "__ne__"),
}


# --------------------------------------------------------------------------- functions


def _as_tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def concatenate(tensors, dim=None, *, axis=None) -> Tensor:
    """Join a sequence of tensors along an existing ``dim`` (default 0; ``torch.cat``)."""
    tensors = [_as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("concatenate: argument 'tensors' is empty")
    dim = _alias("concatenate", "dim", dim, "axis", axis)
    dim = 0 if dim is None else dim
    return Concatenate.apply(*tensors, axis=dim)


cat = concatenate


def stack(tensors, dim=None, *, axis=None) -> Tensor:
    """Join same-shape tensors along a new ``dim`` (default 0)."""
    tensors = [_as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: argument 'tensors' is empty")
    dim = _alias("stack", "dim", dim, "axis", axis)
    dim = 0 if dim is None else dim
    return Stack.apply(*tensors, axis=dim)


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


# --------------------------------------------------------------------------- factories
# New tensors as PyTorch makes them: ``zeros(2, 3)`` or ``zeros((2, 3))``, float32
# unless ``dtype`` says otherwise, ``requires_grad`` to make a leaf for Module 05.
# The random ones draw from NumPy's global generator, the one that ``Linear``
# initializes its weights from and ``Dropout`` draws masks from, so one
# ``manual_seed(s)`` makes a whole run repeatable.


def zeros(*size, dtype=None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros of shape ``size`` (float32 unless ``dtype`` is given)."""
    ### BEGIN SOLUTION
    return Tensor(np.zeros(_shape("zeros", size)), dtype=dtype, requires_grad=requires_grad)
    ### END SOLUTION


def ones(*size, dtype=None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones of shape ``size``."""
    ### BEGIN SOLUTION
    return Tensor(np.ones(_shape("ones", size)), dtype=dtype, requires_grad=requires_grad)
    ### END SOLUTION


def full(size, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
    """A tensor of shape ``size`` filled with ``fill_value``.

    The dtype follows the value as in PyTorch (bool, int64 or float32) unless ``dtype`` is given.
    """
    ### BEGIN SOLUTION
    return Tensor(np.full(_shape("full", (size,)), fill_value), dtype=dtype, requires_grad=requires_grad)
    ### END SOLUTION


def arange(start, end=None, step=1, dtype=None, requires_grad: bool = False) -> Tensor:
    """``start, start + step, ...`` up to (excluding) ``end``; ``arange(n)`` is ``0 .. n-1``.

    int64 when every argument is an int, else float32 (as PyTorch).
    """
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: argument 'step' must be nonzero")
    ### BEGIN SOLUTION
    return Tensor(np.arange(start, end, step), dtype=dtype, requires_grad=requires_grad)
    ### END SOLUTION


def eye(n: int, m=None, dtype=None, requires_grad: bool = False) -> Tensor:
    """The ``(n, m)`` identity matrix (``m = n`` by default): ones on the diagonal."""
    rows, cols = _shape("eye", (n, n if m is None else m))
    ### BEGIN SOLUTION
    return Tensor(np.eye(rows, cols), dtype=dtype, requires_grad=requires_grad)
    ### END SOLUTION


def rand(*size, dtype=None, requires_grad: bool = False) -> Tensor:
    """Uniform random numbers in [0, 1) of shape ``size`` (NumPy's global generator)."""
    ### BEGIN SOLUTION
    return Tensor(np.random.random_sample(_shape("rand", size)), dtype=dtype, requires_grad=requires_grad)
    ### END SOLUTION


def randn(*size, dtype=None, requires_grad: bool = False) -> Tensor:
    """Standard normal random numbers of shape ``size`` (NumPy's global generator)."""
    ### BEGIN SOLUTION
    return Tensor(np.random.standard_normal(_shape("randn", size)), dtype=dtype, requires_grad=requires_grad)
    ### END SOLUTION


def zeros_like(t, dtype=None, requires_grad: bool = False) -> Tensor:
    """Zeros with the shape (and, unless ``dtype`` is given, the dtype) of ``t``."""
    return zeros(np.shape(t), dtype=dtype or _dtype_of(t), requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad: bool = False) -> Tensor:
    """Ones with the shape and dtype of ``t``."""
    return ones(np.shape(t), dtype=dtype or _dtype_of(t), requires_grad=requires_grad)


def full_like(t, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
    """``fill_value`` everywhere, with the shape and dtype of ``t``."""
    return full(np.shape(t), fill_value, dtype=dtype or _dtype_of(t), requires_grad=requires_grad)


def rand_like(t, dtype=None, requires_grad: bool = False) -> Tensor:
    """Uniform [0, 1) numbers with the shape of ``t`` (its dtype if floating, else float32)."""
    kind = _dtype_of(t)
    return rand(np.shape(t), dtype=dtype or (kind if kind.kind == "f" else None), requires_grad=requires_grad)


def randn_like(t, dtype=None, requires_grad: bool = False) -> Tensor:
    """Standard normal numbers with the shape of ``t`` (its dtype if floating, else float32)."""
    kind = _dtype_of(t)
    return randn(
        np.shape(t), dtype=dtype or (kind if kind.kind == "f" else None), requires_grad=requires_grad
    )


def manual_seed(seed: int) -> None:
    """Seed NumPy's global generator: ``rand``, ``randn``, ``Linear``'s initial weights and
    ``Dropout``'s masks repeat exactly after the same seed (``torch.manual_seed``)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**32:
        raise ValueError(f"manual_seed: argument 'seed' must be an int in [0, 2**32), got {seed!r}")
    np.random.seed(int(seed))


def _shape(op: str, size: tuple) -> tuple:
    """``(2, 3)`` from ``f(2, 3)`` or ``f((2, 3))``; every entry a non-negative int."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    if any(isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0 for n in size):
        raise ValueError(f"{op}: argument 'size' must be non-negative ints, got {size!r}")
    return tuple(int(n) for n in size)


def _dtype_of(t) -> np.dtype:
    return t.data.dtype if isinstance(t, Tensor) else np.asarray(t).dtype


# --------------------------------------------------------------------------- helpers


def _alias(op: str, name: str, value, alias: str, alias_value):
    """PyTorch's argument ``name`` or its NumPy alias (``dim``/``axis``); both at once is an error."""
    if alias_value is None:
        return value
    if value is not None:
        raise ValueError(f"{op}: pass '{name}' or its alias '{alias}', not both")
    return alias_value


def _keep(keepdim, keepdims) -> bool:
    return bool(keepdim if keepdims is None else keepdims)


def _one_dim(op: str, dim, ndim: int, allow_scalar: bool = True) -> int:
    """One dimension as a non-negative int; for a 0-d tensor 0 and -1 name the tensor itself (as PyTorch)."""
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise ValueError(f"{op}: argument 'dim' must be an int, got {dim!r}")
    n = max(ndim, 1) if allow_scalar else ndim
    if not -n <= dim < n:
        raise ValueError(f"{op}: argument 'dim' {dim} is out of range for a {ndim}-d tensor")
    return int(dim) % n


def _dims(op: str, x: Tensor, dim, axis=None, *, reduce: bool = True):
    """``dim`` (int, tuple/list or None) as a tuple of distinct non-negative ints, or None for all dims.

    For reductions an empty tuple also means all dims (as PyTorch). On a 0-d tensor
    dims 0 and -1 become ``()``: NumPy's "reduce over nothing", which is the tensor itself.
    """
    dim = _alias(op, "dim", dim, "axis", axis)
    if dim is None:
        return None
    dims = (dim,) if isinstance(dim, numbers.Integral) else tuple(dim)
    if reduce and not dims:
        return None
    out = tuple(_one_dim(op, d, x.ndim) for d in dims)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: argument 'dim' {dim!r} repeats a dimension")
    return out if x.ndim else ()


def _correction(op: str, unbiased, correction) -> float:
    """The ``correction`` in the variance's divisor ``n - correction``: 1 (PyTorch's default) unless told."""
    if unbiased is not None and correction is not None:
        raise ValueError(f"{op}: pass 'unbiased' or 'correction', not both")
    if correction is None:
        return 0 if unbiased is False else 1
    if (
        isinstance(correction, bool)
        or not isinstance(correction, numbers.Real)
        or not 0 <= correction < math.inf
    ):
        raise ValueError(f"{op}: argument 'correction' must be a non-negative number, got {correction!r}")
    return correction


def _diagonal(op: str, x: Tensor, diagonal) -> int:
    if x.ndim < 2:
        raise ValueError(f"{op}: needs a tensor with at least 2 dims, got shape {x.shape}")
    if isinstance(diagonal, bool) or not isinstance(diagonal, numbers.Integral):
        raise ValueError(f"{op}: argument 'diagonal' must be an int, got {diagonal!r}")
    return int(diagonal)


def _scalar_as_vector(op: str, x: Tensor, dim, fn):
    """``fn(x, d)`` for an op along one dim; a 0-d tensor acts as a 1-element vector (as PyTorch)."""
    d = _one_dim(op, dim, x.ndim)
    if x.ndim:
        return fn(x, d)
    out = fn(x.reshape(1), 0)
    if isinstance(out, ValuesIndices):
        return ValuesIndices(out.values.reshape(()), out.indices.reshape(()))
    return out.reshape(())


def _select(x: Tensor, op: str, dim, keepdim: bool, pick) -> ValuesIndices:
    """``(values, indices)`` of the entry ``pick`` (``np.argmax`` or ``np.argmin``) chooses along ``dim``.

    The values are gathered at the indices, so their gradient goes to exactly those entries.
    """

    def along(v: Tensor, d: int) -> ValuesIndices:
        if v.shape[d] == 0:
            raise ValueError(f"{op}: cannot reduce over dim {dim} of size 0 (shape {x.shape})")
        index = np.expand_dims(pick(v.data, axis=d), d)  # (..., 1, ...): where the extreme sits
        values = v.gather(d, index)
        if not keepdim:
            values, index = values.squeeze(d), np.squeeze(index, d)
        return ValuesIndices(values, Tensor._make(index))

    return _scalar_as_vector(op, x, dim, along)


def _sorted(x: Tensor, d: int, descending: bool, keep=None) -> ValuesIndices:
    """Sorted ``(values, indices)`` along ``d`` (equal values in their original order), the first ``keep``."""
    if descending:
        # Sort the reversed row ascending, then reverse: largest first, equal values still in
        # their original order, NaN first (PyTorch counts NaN as the largest value).
        n = x.shape[d]
        order = n - 1 - np.flip(np.argsort(np.flip(x.data, d), axis=d, kind="stable"), d)
    else:
        order = np.argsort(x.data, axis=d, kind="stable")
    if keep is not None:
        order = order[(slice(None),) * d + (slice(0, keep),)]
    return ValuesIndices(x.gather(d, order), Tensor._make(order))


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


def _split_index(index) -> tuple:
    """An index as PyTorch applies it: ``(basic, advanced)``, so ``x[index] == x[basic][advanced]``.

    PyTorch applies integers first (each removes its dim, like ``x.select(d, i)``) and
    then the integer and boolean arrays, placed by NumPy's rule among the dims that
    remain. NumPy instead counts an integer next to an array as one more array index,
    which moves the indexed dims to the front when a slice, None or ``...`` stands
    between them: for x of shape (2, 3, 4), ``x[0, :, [0, 1]]`` is (2, 3) in NumPy and
    (3, 2) in PyTorch.

    ``basic`` keeps the ints, slices, None and ``...`` with ``:`` in place of every dim
    an array indexes (a view of the input); ``advanced`` keeps the arrays with ``:``
    for every dim ``basic`` left (None when there is no array).
    """
    parts = index if isinstance(index, tuple) else (index,)
    basic, advanced, has_array = [], [], False
    for part in parts:
        if isinstance(part, (list, np.ndarray, bool, np.bool_)):
            array = np.asarray(part)
            if array.dtype.kind in "iu" and array.ndim == 0:  # a 0-d integer array is an integer
                basic.append(int(array))
                continue
            has_array = True
            consumed = array.ndim if array.dtype == bool else 1  # a k-d mask indexes k dims
            basic.extend([slice(None)] * consumed)
            advanced.append(array)
        elif isinstance(part, numbers.Integral):
            basic.append(part)  # removes its dim here, so nothing is left for the second step
        elif part is None or isinstance(part, slice):
            basic.append(part)
            advanced.append(slice(None))  # the dim it made or kept is still there
        else:  # Ellipsis (anything else is left for NumPy to reject)
            basic.append(part)
            advanced.append(part)
    if Ellipsis not in basic:
        basic.append(Ellipsis)  # so that x[basic] is an array view even when every dim is an int
    return tuple(basic), (tuple(advanced) if has_array else None)


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
    """``a ** b`` elementwise with broadcasting; either may be a tensor or a number.

    Backward (as PyTorch, which defines the two cases a formula leaves open):
    ``d/da = grad * b * a**(b-1)``, taken as 0 where ``b == 0`` (``a**0`` is the
    constant 1, also at ``a = 0``); ``d/db = grad * a**b * log(a)``, taken as 0
    where ``a == 0`` and ``b >= 0`` (``0**b`` is constant there). A negative base
    has a real power only for whole exponents (``(-2) ** [0, 1, 2] = [1, -2, 4]``),
    and no real logarithm: its ``d/db`` is NaN, as in PyTorch.
    """

    @staticmethod
    def forward(ctx, a, b):
        ### BEGIN SOLUTION
        out = np.power(a, b)
        ### END SOLUTION
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        a, b, out = ctx.saved_tensors
        needs_a, needs_b = ctx.needs_input_grad
        grad_a = grad_b = None
        with np.errstate(divide="ignore", invalid="ignore"):  # the cases np.where sets aside
            if needs_a:
                grad_a = unbroadcast(np.where(b == 0, 0, grad * b * np.power(a, b - 1)), np.shape(a))
            if needs_b:
                log_a = np.log(np.asarray(a, dtype=grad.dtype))
                grad_b = unbroadcast(np.where((a == 0) & (b >= 0), 0, grad * out * log_a), np.shape(b))
        return grad_a, grad_b
        ### END SOLUTION


class Remainder(Function):
    """``a % b`` with the sign of ``b`` (``a - b * floor(a / b)``, Python's and PyTorch's rule).

    Backward: ``grad`` for ``a`` and ``-grad * floor(a / b)`` for ``b`` (``floor`` is locally constant).
    """

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        ### BEGIN SOLUTION
        return np.remainder(a, b)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        a, b = ctx.saved_tensors
        needs_a, needs_b = ctx.needs_input_grad
        grad_a = unbroadcast(grad, np.shape(a)) if needs_a else None
        grad_b = unbroadcast(-grad * np.floor_divide(a, b), np.shape(b)) if needs_b else None
        return grad_a, grad_b
        ### END SOLUTION


class FloorDivide(Function):
    """``floor(a / b)`` (``//``). Piecewise constant, so its gradient is 0 (PyTorch has none)."""

    name = "floor_divide"

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (np.shape(a), np.shape(b))
        ### BEGIN SOLUTION
        return np.floor_divide(a, b)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        shape_a, shape_b = ctx.shapes
        return np.zeros(shape_a, grad.dtype), np.zeros(shape_b, grad.dtype)
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


class Sin(Function):
    """``sin(x)``. Backward: ``grad * cos(x)``."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        ### BEGIN SOLUTION
        return np.sin(x)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        (x,) = ctx.saved_tensors
        return grad * np.cos(x)
        ### END SOLUTION


class Cos(Function):
    """``cos(x)``. Backward: ``-grad * sin(x)``."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        ### BEGIN SOLUTION
        return np.cos(x)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        (x,) = ctx.saved_tensors
        return -grad * np.sin(x)
        ### END SOLUTION


class Sign(Function):
    """-1, 0 or 1 by the sign of ``x``. Piecewise constant: the gradient is 0 (as PyTorch)."""

    @staticmethod
    def forward(ctx, x):
        ### BEGIN SOLUTION
        return np.sign(x)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        return np.zeros_like(grad)
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
        _, needs_a, needs_b = ctx.needs_input_grad  # masked_fill's fill value needs none: skip its array
        grad_a = unbroadcast(grad * cond, shape_a) if needs_a else None
        grad_b = unbroadcast(grad * ~cond, shape_b) if needs_b else None
        return None, grad_a, grad_b
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


class Clone(Function):
    """A copy of the data (``clone``). Backward: ``grad`` unchanged."""

    @staticmethod
    def forward(ctx, x):
        ### BEGIN SOLUTION
        return x.copy()
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        return grad
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


class Std(Function):
    """Standard deviation ``sqrt(var)`` over ``axis`` with ``ddof``.

    Backward: ``grad * (x - mean) / ((n - ddof) * std)``, taken as 0 where
    ``std == 0`` (all values equal: PyTorch's choice; the formula is 0/0 there).
    """

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False, ddof=1):
        ctx.axis, ctx.keepdims, ctx.ddof = axis, keepdims, ddof
        ### BEGIN SOLUTION
        out = np.std(x, axis=axis, keepdims=keepdims, ddof=ddof)
        ### END SOLUTION
        ctx.save_for_backward(x, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        x, std = ctx.saved_tensors
        n = _reduced_count(x.shape, ctx.axis)
        std = _expand_reduced(std, ctx.axis, ctx.keepdims)
        centered = x - np.mean(x, axis=ctx.axis, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):  # std == 0 is set to 0 below
            slope = np.where(std == 0, 0, centered / ((n - ctx.ddof) * std))
        return _expand_reduced(grad, ctx.axis, ctx.keepdims) * slope
        ### END SOLUTION


class Prod(Function):
    """Product over one ``axis``.

    Backward: the gradient of ``x_i`` is the product of the *other* entries of its
    row, built as (product of those before i) * (product of those after i) with two
    running products. Exact with zeros in the row, where ``out / x_i`` would divide by 0.
    Cost: O(n) for a row of n.
    """

    @staticmethod
    def forward(ctx, x, axis, keepdims=False):
        ctx.save_for_backward(x)
        ctx.axis, ctx.keepdims = axis, keepdims
        ### BEGIN SOLUTION
        return np.prod(x, axis=axis, keepdims=keepdims)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        (x,) = ctx.saved_tensors
        rows = np.moveaxis(x, ctx.axis, -1)  # (..., n)
        ones = np.ones(rows.shape[:-1] + (1,), dtype=rows.dtype)
        before = np.cumprod(np.concatenate([ones, rows[..., :-1]], axis=-1), axis=-1)
        after = np.flip(np.cumprod(np.concatenate([ones, np.flip(rows, -1)[..., :-1]], axis=-1), axis=-1), -1)
        others = np.moveaxis(before * after, -1, ctx.axis)  # back to x's layout
        return _expand_reduced(grad, (ctx.axis,), ctx.keepdims) * others
        ### END SOLUTION


class LogSumExp(Function):
    """``log(sum(exp(x)))`` over ``axis`` as ``m + log(sum(exp(x - m)))`` with ``m`` the maximum.

    No ``exp`` sees a positive number, so it cannot overflow. Where a whole row is
    ``-inf`` the shift is 0 instead (the result is ``-inf``, not NaN).
    Backward: ``grad * exp(x - out)``, i.e. ``grad`` times the softmax of the row.
    """

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.axis, ctx.keepdims = axis, keepdims
        ### BEGIN SOLUTION
        m = np.max(x, axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)
        out = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
        ### END SOLUTION
        ctx.save_for_backward(x, out)
        return out if keepdims else np.squeeze(out, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        x, out = ctx.saved_tensors
        return _expand_reduced(grad, ctx.axis, ctx.keepdims) * np.exp(x - out)
        ### END SOLUTION


class Cumsum(Function):
    """Running sum along ``axis``. Backward: the running sum of ``grad`` taken from the end.

    ``out_j = sum_{i <= j} x_i``, so ``x_i`` reaches every ``out_j`` with ``j >= i``.
    """

    @staticmethod
    def forward(ctx, x, axis):
        ctx.axis = axis
        ### BEGIN SOLUTION
        return np.cumsum(x, axis=axis)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        return np.flip(np.cumsum(np.flip(grad, ctx.axis), axis=ctx.axis), ctx.axis)
        ### END SOLUTION


class Extremum(Function):
    """Max (or min) over ``axis`` (``x.max()``, ``amax``).

    Backward: ``grad`` to the extreme entries, split equally among ties.
    """

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


class Flip(Function):
    """Reverse the order along ``dims``. Backward: reverse ``grad`` the same way."""

    @staticmethod
    def forward(ctx, x, dims):
        ctx.dims = dims
        ### BEGIN SOLUTION
        return np.flip(x, dims)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        return np.flip(grad, ctx.dims)
        ### END SOLUTION


class Triangle(Function):
    """Lower (``tril``) or upper (``triu``) triangle of the last two dims, the rest zeroed.

    Backward: the same triangle of ``grad`` (the zeroed entries did not reach the output).
    """

    name = "tril/triu"

    @staticmethod
    def forward(ctx, x, diagonal, upper=False):
        ctx.diagonal, ctx.upper = diagonal, upper
        ### BEGIN SOLUTION
        return np.triu(x, diagonal) if upper else np.tril(x, diagonal)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        keep = np.triu if ctx.upper else np.tril
        return keep(grad, ctx.diagonal), None
        ### END SOLUTION


class GetItem(Function):
    """``x[index]`` (ints, slices, None, Ellipsis, integer or boolean arrays), placed as PyTorch places it.

    The index is applied in PyTorch's two steps (see ``_split_index``): ints, slices,
    None and ``...`` first (a view), then the arrays.
    Backward: scatter ``grad`` into zeros of the input shape through the same two
    steps; repeated integer indices accumulate (``np.add.at``), so an embedding
    lookup gets every use.
    """

    name = "getitem"

    @staticmethod
    def forward(ctx, x, index):
        basic, advanced = _split_index(index)
        ctx.shape, ctx.basic, ctx.advanced = x.shape, basic, advanced
        ### BEGIN SOLUTION
        view = x[basic]
        return view if advanced is None else view[advanced]
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        full = np.zeros(ctx.shape, dtype=grad.dtype)
        view = full[ctx.basic]  # a view: writing into it writes into `full`
        if ctx.advanced is None:
            view[...] = grad  # basic indexing never repeats an element
        else:
            np.add.at(view, ctx.advanced, grad)  # an index may repeat: add every use
        return full
        ### END SOLUTION


class Gather(Function):
    """``out[i, j, k] = x[index[i, j, k], j, k]`` for ``dim = 0`` (likewise for other dims).

    Written as one NumPy index: ``index`` along ``dim`` and each output position's
    own coordinate along every other dim (``np.indices``, broadcast, not materialized).
    Backward: add ``grad`` back at those positions (repeats accumulate).
    """

    @staticmethod
    def forward(ctx, x, dim, index):
        grid = list(np.indices(index.shape, sparse=True))  # coordinate arrays, each (1, .., n, .., 1)
        grid[dim] = index
        ctx.shape, ctx.where = x.shape, tuple(grid)
        ### BEGIN SOLUTION
        return x[ctx.where]
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        full = np.zeros(ctx.shape, dtype=grad.dtype)
        np.add.at(full, ctx.where, grad)
        return full, None, None
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
