"""Module 05 - Autograd: reverse-mode automatic differentiation.

Modules 01-04 compute *values*: every operation (``a + b``, ``relu``,
``Linear``, ``cross_entropy``) is a small :class:`Function` whose ``forward``
maps NumPy arrays to a NumPy array. This module adds *derivatives*:

* each Function also has a ``backward(ctx, grad)`` that maps the gradient of
  the loss w.r.t. its output to gradients w.r.t. its inputs (those methods sit
  next to their forward, in the module where the op is met, and are marked as
  this module's work);
* :meth:`Function.apply` records the call as a node of a graph when an input
  requires grad and grad mode is on (``no_grad`` turns recording off);
* :func:`backward` walks that graph once, newest node first, and leaves
  ``.grad`` on every leaf tensor that requires grad;
* :func:`unbroadcast` sums a gradient back to the shape of an input that
  NumPy broadcast in the forward pass;
* :func:`gradcheck` compares a backward pass with finite differences.

The Function machinery is also what Module 01 runs on (it is given code there:
``apply`` computes the forward value whether or not anything is recorded).

This module imports NumPy only; ``tinytorch.core.tensor`` imports it. It knows
tensors by what they carry (``.data``, ``.requires_grad``, ``.grad``,
``._ctx``) and builds results with the inputs' own ``_make`` constructor, so
there is no import back into ``tensor.py`` and nothing is patched onto Tensor.
"""

from __future__ import annotations

from heapq import heappop, heappush
from itertools import count

import numpy as np

__all__ = [
    "Function",
    "backward",
    "unbroadcast",
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "is_grad_enabled",
    "gradcheck",
]


# --------------------------------------------------------------------------- grad mode


class _GradMode:
    """The process-wide switch that ``Function.apply`` reads."""

    enabled = True


def is_grad_enabled() -> bool:
    """True when operations record graph nodes (the default)."""
    return _GradMode.enabled


class set_grad_enabled:
    """Turn graph recording on or off, as a context manager or a decorator.

    Args:
        mode: True to record graph nodes, False to compute values only.

    Example:
        >>> with set_grad_enabled(False):
        ...     y = model(x)          # no graph: nothing kept for a backward pass
    """

    def __init__(self, mode: bool = True) -> None:
        self.mode = bool(mode)
        self.previous = []

    def __enter__(self):
        self.previous.append(_GradMode.enabled)  # a stack: the same object may be entered twice
        _GradMode.enabled = self.mode
        return self

    def __exit__(self, *exc) -> bool:
        _GradMode.enabled = self.previous.pop()
        return False

    def __call__(self, fn):
        """Use as a decorator: ``fn`` runs with this grad mode."""
        mode = self.mode

        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)

        wrapper.__name__ = getattr(fn, "__name__", "wrapper")
        wrapper.__qualname__ = getattr(fn, "__qualname__", wrapper.__name__)
        wrapper.__doc__ = getattr(fn, "__doc__", None)
        wrapper.__wrapped__ = fn
        return wrapper


class no_grad(set_grad_enabled):
    """Evaluate without building a graph: ``with no_grad():``, ``@no_grad()`` or ``@no_grad``.

    Inside, every result has ``requires_grad=False`` and no node is stored, so no
    activation is kept alive for a backward pass (evaluation, generation, updates).
    """

    def __new__(cls, fn=None):
        if fn is not None:  # used bare as ``@no_grad``: decorate fn directly
            if not callable(fn):
                raise TypeError(f"no_grad: expected a function to decorate, got {type(fn).__name__}")
            return set_grad_enabled(False)(fn)
        return super().__new__(cls)

    def __init__(self, fn=None) -> None:
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """Turn graph recording back on inside a ``no_grad`` block (context manager or decorator)."""

    def __new__(cls, fn=None):
        if fn is not None:
            if not callable(fn):
                raise TypeError(f"enable_grad: expected a function to decorate, got {type(fn).__name__}")
            return set_grad_enabled(True)(fn)
        return super().__new__(cls)

    def __init__(self, fn=None) -> None:
        super().__init__(True)


# --------------------------------------------------------------------------- broadcasting


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``grad`` down to ``shape``: the adjoint of NumPy broadcasting.

    If ``x`` of ``shape`` was broadcast to ``grad.shape`` in the forward pass,
    every copy of an element received part of the gradient, so the gradient of
    the original element is the sum over the broadcast axes: the leading axes
    that broadcasting added, and the axes where ``shape`` has size 1.

    Args:
        grad: gradient with the broadcast (output) shape.
        shape: the input's shape before broadcasting.

    Returns:
        An array of exactly ``shape`` (``grad`` itself when nothing was broadcast).

    Cost: one reduction over ``grad`` when shapes differ, free otherwise.
    """
    ### BEGIN SOLUTION
    shape = tuple(shape)
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    # Axes that broadcasting prepended, plus axes stretched from size 1.
    stretched = tuple(extra + i for i, n in enumerate(shape) if n == 1 and grad.shape[extra + i] != 1)
    summed = grad.sum(axis=tuple(range(extra)) + stretched, keepdims=True)
    # The prepended axes now have size 1: drop them to land exactly on `shape`.
    return summed.reshape(shape)
    ### END SOLUTION


# --------------------------------------------------------------------------- Function


def _is_tensor(value) -> bool:
    """Tensors are recognised by what they carry: a slot for the graph node that produced them."""
    return hasattr(value, "_ctx")


def _op_error(cls, arrays, error: Exception) -> Exception:
    """The one place where a NumPy error inside a forward becomes the op's error.

    Forward bodies are the math; when NumPy rejects the shapes (broadcasting,
    matmul alignment, reshape sizes, axes), the user sees which op failed and
    the shapes it was given, then NumPy's own explanation.
    """
    name = getattr(cls, "name", None) or cls.__name__.removesuffix("Function").lower()
    shapes = ", ".join(str(np.shape(a)) for a in arrays if isinstance(a, np.ndarray) or _is_tensor(a))
    kind = ValueError if isinstance(error, ValueError) else IndexError
    return kind(f"{name}: cannot apply to input shapes {shapes}: {error}")


_SEQUENCE = count()  # creation numbers of graph nodes: a node is always newer than its inputs' nodes


class Function:
    """Base class of every operation; an instance is the ``ctx`` of one call and its graph node.

    Subclasses define two static methods::

        @staticmethod
        def forward(ctx, *arrays, **options) -> np.ndarray: ...   # the value (Modules 01-04)
        @staticmethod
        def backward(ctx, grad) -> np.ndarray | None | tuple: ... # the derivative (Module 05)

    and are called as ``MyFunction.apply(*inputs, **options)`` with Tensors or
    constants (numbers, arrays) as inputs. ``forward`` receives raw arrays and
    stores what ``backward`` needs with ``ctx.save_for_backward`` (or as ``ctx``
    attributes); ``backward`` returns one gradient per positional input, each of
    that input's shape, or ``None`` where ``ctx.needs_input_grad[i]`` is False.

    Attributes:
        needs_input_grad: one bool per positional input.
        saved_tensors: what ``save_for_backward`` stored.
        parents: where each positional input's gradient goes (only on a recorded
            node): the node that computed the input, the input itself when it is a
            leaf, or None when it needs no gradient. Never an intermediate tensor,
            so an activation's array lives only as long as the user's code or a
            ``save_for_backward`` holds it (PyTorch's ``grad_fn.next_functions``).
        seq: creation number of a recorded node (orders the backward pass).
        name: optional class attribute, the op's name in error messages
            (default: the class name without "Function", lowercased).
    """

    def save_for_backward(self, *arrays) -> None:
        """Keep ``arrays`` for ``backward`` (released once backward has used them)."""
        self.saved_tensors = arrays

    @staticmethod
    def forward(ctx, *arrays, **options):
        raise NotImplementedError("Function subclasses implement forward(ctx, *arrays)")

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError("Function subclasses implement backward(ctx, grad)")

    @classmethod
    def apply(cls, *inputs, **options):
        """Compute ``forward`` on the inputs' arrays; record a graph node only if a gradient is needed.

        Returns:
            A Tensor holding the forward result. It requires grad, and points at
            this call's node through ``_ctx``, iff grad mode is on and some input
            requires grad.

        Raises:
            ValueError / IndexError: NumPy rejected the inputs; the message names
                the op and the input shapes.

        Cost: O(number of inputs) Python work on top of ``forward``.
        """
        ctx = cls()
        grad_on = _GradMode.enabled
        arrays, needs, like = [], [], None
        for x in inputs:
            if _is_tensor(x):
                like = x if like is None else like
                arrays.append(x.data)
                needs.append(grad_on and x.requires_grad)
            else:  # a constant: a number, an array, an axis
                arrays.append(x)
                needs.append(False)
        if like is None:
            raise TypeError(f"{cls.__name__}.apply: needs at least one Tensor input")
        ctx.needs_input_grad = tuple(needs)
        try:
            data = cls.forward(ctx, *arrays, **options)
        except (ValueError, IndexError) as error:
            raise _op_error(cls, arrays, error) from None
        record = any(needs)
        # autograd.py imports nothing from tensor.py: the inputs' own class builds the result.
        out = like._make(data, record)
        if record:  # the graph: the result remembers this call, the call remembers where gradients go
            # The producer's node, not the input tensor: a node holding its inputs would keep every
            # intermediate array of the forward pass alive until backward (the memory of a step would
            # be every activation, not just what backward needs: save_for_backward).
            ctx.parents = tuple(
                None if not need else x if x._ctx is None else x._ctx for x, need in zip(inputs, needs)
            )
            ctx.seq = next(_SEQUENCE)  # newer than every node that produced an input
            out._ctx = ctx
        return out


# --------------------------------------------------------------------------- engine


def _accumulate(leaf, grad: np.ndarray) -> None:
    """Add ``grad`` into ``leaf.grad`` (a new array: ``grad`` may be shared with another branch)."""
    grad = unbroadcast(np.asarray(grad), leaf.data.shape).astype(leaf.data.dtype, copy=False)
    if leaf.grad is None:
        # A copy when read-only (a broadcast view): a user may edit .grad in place.
        leaf.grad = leaf._make(grad if grad.flags.writeable else grad.copy(), False)
    else:
        leaf.grad.data = leaf.grad.data + grad


def backward(tensor, gradient=None, retain_graph: bool = False) -> None:
    """Back-propagate from ``tensor``: fill ``.grad`` of every leaf that requires grad.

    Args:
        tensor: the output to differentiate (usually a scalar loss).
        gradient: d(loss)/d(tensor), same shape as ``tensor``; may be omitted
            only when ``tensor`` has a single element (then it is 1).
        retain_graph: keep the nodes for a second backward (default frees them).

    Algorithm: pending nodes wait in a heap keyed by creation number. A node is
    created after every node that produced its inputs, so the newest pending
    node has already received the gradient of every consumer; gradients that
    meet at a shared tensor are summed before being passed on. Cost: one
    ``backward`` call and O(log n) heap work per node; no recursion, so graphs
    of any depth work.

    Raises:
        ValueError: ``gradient`` missing for a non-scalar output, or of the wrong shape.
        RuntimeError: ``tensor`` does not require grad, or the graph was already freed.
    """
    ### BEGIN SOLUTION
    if not tensor.requires_grad:
        raise RuntimeError("backward: tensor does not require grad and has no graph")
    if gradient is None:
        if tensor.data.size != 1:
            raise ValueError(
                f"backward: argument 'gradient' is required for a non-scalar output of shape {tensor.shape}"
            )
        grad = np.ones(tensor.data.shape, dtype=tensor.data.dtype)
    else:
        grad = np.asarray(gradient.data if _is_tensor(gradient) else gradient)
        if grad.shape != tensor.data.shape:
            raise ValueError(
                f"backward: argument 'gradient' has shape {grad.shape}, output has shape {tensor.shape}"
            )
        grad = grad.astype(tensor.data.dtype, copy=False)

    root = tensor._ctx
    if root is None:  # a leaf: its gradient is the incoming one
        _accumulate(tensor, grad)
        return
    grads = {root: grad}
    pending = [(-root.seq, root)]
    while pending:
        node = heappop(pending)[1]
        grad_out = grads.pop(node)
        if node.parents is None:
            raise RuntimeError("backward: the graph was already freed; pass retain_graph=True the first time")
        grad_in = type(node).backward(node, grad_out)
        if not isinstance(grad_in, tuple):
            grad_in = (grad_in,)
        for producer, needs, g in zip(node.parents, node.needs_input_grad, grad_in):
            if not needs or g is None:
                continue
            if not isinstance(producer, Function):  # a leaf tensor: store into .grad
                _accumulate(producer, g)
            elif producer in grads:
                grads[producer] = grads[producer] + g  # never in place: g may be shared
            else:
                grads[producer] = g
                heappush(pending, (-producer.seq, producer))
        # Drop this node's gradients now, not when the next iteration rebinds the names: the
        # next node's backward would otherwise run with them still allocated.
        del grad_out, grad_in
        if not retain_graph:
            # Free what the node held, so this step's activations die with it.
            node.parents = None
            node.saved_tensors = None
    ### END SOLUTION


# --------------------------------------------------------------------------- gradcheck


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3) -> bool:
    """Compare autograd gradients of ``fn`` with central finite differences in float64.

    The output is reduced to a scalar with fixed random weights ``r``
    (``L = sum(fn(*inputs) * r)``), so every output element is checked. For each
    element ``x_i`` of each input that requires grad::

        numeric_i = (L(x_i + eps) - L(x_i - eps)) / (2 eps)
        |analytic_i - numeric_i| <= atol + rtol * |numeric_i|

    Args:
        fn: callable taking ``*inputs`` (Tensors) and returning a Tensor.
        inputs: sequence of Tensors; those with ``requires_grad`` are checked and
            must be float64 (finite differences in float32 are meaningless).
        eps, atol, rtol: step and tolerances.

    Returns:
        True when every element agrees.

    Raises:
        AssertionError: naming the input, the worst element and both values.
        ValueError: an input to check is not float64, or none requires grad.

    Cost: 2 evaluations of ``fn`` per checked element plus one backward.
    """
    ### BEGIN SOLUTION
    inputs = list(inputs)
    checked = [i for i, t in enumerate(inputs) if _is_tensor(t) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: argument 'inputs' has no tensor with requires_grad=True")
    for i in checked:
        if inputs[i].data.dtype != np.float64:
            raise ValueError(f"gradcheck: input {i} must be float64, got {inputs[i].data.dtype}")
        inputs[i].data = np.ascontiguousarray(inputs[i].data)  # perturbed in place below

    saved = [inputs[i].grad for i in checked]
    for i in checked:
        inputs[i].grad = None
    out = fn(*inputs)
    weights = np.random.default_rng(1234).standard_normal(out.shape)
    (out * weights).sum().backward()
    analytic = [
        np.zeros_like(inputs[i].data) if inputs[i].grad is None else inputs[i].grad.data.copy()
        for i in checked
    ]
    for i, g in zip(checked, saved):
        inputs[i].grad = g

    def objective() -> float:
        with no_grad():
            return float(np.sum(fn(*inputs).data * weights))

    for k, i in enumerate(checked):
        flat = inputs[i].data.reshape(-1)  # a view: perturbing it perturbs the input
        numeric = np.zeros(flat.size)
        for j in range(flat.size):
            original = flat[j]
            flat[j] = original + eps
            plus = objective()
            flat[j] = original - eps
            minus = objective()
            flat[j] = original
            numeric[j] = (plus - minus) / (2 * eps)
        numeric = numeric.reshape(inputs[i].data.shape)
        error = np.abs(analytic[k] - numeric) - (atol + rtol * np.abs(numeric))
        if error.size and error.max() > 0:
            worst = np.unravel_index(int(np.argmax(error)), numeric.shape)
            raise AssertionError(
                f"gradcheck: input {i} element {tuple(int(w) for w in worst)}: "
                f"analytic {analytic[k][worst]:.6g} vs numeric {numeric[worst]:.6g}"
            )
    return True
    ### END SOLUTION
