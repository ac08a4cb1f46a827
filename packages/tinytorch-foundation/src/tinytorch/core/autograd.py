"""Module 05 - Autograd: reverse-mode automatic differentiation.

Every differentiable operation is a :class:`Function` subclass with two static
methods:

* ``forward(ctx, *arrays, **options) -> ndarray`` computes the result on raw
  NumPy arrays and stores what backward needs with ``ctx.save_for_backward``;
* ``backward(ctx, grad) -> grad_input or tuple of them`` maps the gradient of
  the loss w.r.t. the output to gradients w.r.t. each input (``None`` for an
  input that needs none, see ``ctx.needs_input_grad``).

``Function.apply`` runs forward and, **only when an input requires grad and grad
mode is on**, records the call as a node of the graph: the node *is* the ``ctx``
object, it holds its parent tensors, and the output tensor points at it through
``tensor._ctx``. :func:`backward` walks the nodes once in topological order,
accumulates gradients that meet at shared tensors, stores leaf gradients in
``tensor.grad`` and frees every node it has used, so a training loop keeps no
graph alive between steps.

This module imports NumPy only. The Tensor class is looked up lazily (the
first time ``apply`` runs), so ``tinytorch.core.tensor`` can import the engine
at module level without a cycle and nothing is ever patched onto Tensor.
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
    """Process-wide switch read by ``Function.apply`` (a plain attribute: cheapest lookup)."""

    __slots__ = ("enabled",)

    def __init__(self) -> None:
        self.enabled = True


_MODE = _GradMode()


def is_grad_enabled() -> bool:
    """Return True when operations record graph nodes (the default)."""
    return _MODE.enabled


class set_grad_enabled:
    """Context manager (and decorator) that turns graph recording on or off.

    Args:
        mode: True to record graph nodes, False to compute values only.
    """

    def __init__(self, mode: bool = True) -> None:
        self.mode = bool(mode)
        self.previous = None

    def __enter__(self):
        self.previous = _MODE.enabled
        _MODE.enabled = self.mode
        return self

    def __exit__(self, *exc) -> bool:
        _MODE.enabled = self.previous
        return False

    def __call__(self, fn):
        mode = self.mode

        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)

        wrapper.__name__ = getattr(fn, "__name__", "wrapper")
        wrapper.__doc__ = getattr(fn, "__doc__", None)
        return wrapper


class no_grad(set_grad_enabled):
    """``with no_grad():`` -- evaluate without building a graph (inference, evaluation, updates).

    Inside the block every result has ``requires_grad=False`` and no node is
    stored, so no activation is kept alive for a backward pass.
    """

    def __init__(self) -> None:
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """``with enable_grad():`` -- turn graph recording back on inside a ``no_grad`` block."""

    def __init__(self) -> None:
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
    axes = tuple(range(extra)) + tuple(
        extra + i for i, n in enumerate(shape) if n == 1 and grad.shape[extra + i] != 1
    )
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    # Drop the prepended axes (now of size 1) to land exactly on `shape`.
    return grad.reshape(shape)
    ### END SOLUTION


# --------------------------------------------------------------------------- Function


_SEQUENCE = count()  # creation numbers of graph nodes (their topological order)
_TENSOR = []  # the Tensor class, looked up lazily once (no import cycle, no patching)


def _tensor_type():
    if not _TENSOR:
        from tinytorch.core.tensor import Tensor

        _TENSOR.append(Tensor)
    return _TENSOR[0]


class Function:
    """Base class of differentiable operations; an instance is the ``ctx`` and the graph node.

    Subclasses define::

        @staticmethod
        def forward(ctx, *arrays, **options) -> np.ndarray: ...
        @staticmethod
        def backward(ctx, grad) -> np.ndarray | None | tuple: ...

    and are called with ``MyFunction.apply(*inputs, **options)``, where inputs
    are Tensors or constants (Python numbers, arrays). ``forward`` receives the
    raw arrays (``tensor.data``); ``backward`` returns one gradient per positional
    input, each of that input's shape, or ``None`` where
    ``ctx.needs_input_grad[i]`` is False.

    Attributes:
        parents: the positional inputs (set only when the node is recorded).
        saved_tensors: what ``save_for_backward`` stored.
        needs_input_grad: tuple of bools, one per positional input.
        seq: creation number (set when recorded); orders the backward pass.
    """

    __slots__ = ("parents", "saved_tensors", "needs_input_grad", "seq", "__dict__")

    def save_for_backward(self, *arrays) -> None:
        """Keep ``arrays`` for backward (they are released once backward has used them)."""
        ### BEGIN SOLUTION
        self.saved_tensors = arrays
        ### END SOLUTION

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("Function subclasses implement forward(ctx, *arrays)")

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError("Function subclasses implement backward(ctx, grad)")

    @classmethod
    def apply(cls, *args, **kwargs):
        """Run ``forward`` on the inputs' arrays; record a graph node only if a gradient is needed.

        Returns:
            A Tensor wrapping the forward result; it requires grad (and points at
            this node through ``_ctx``) iff grad mode is on and an input requires grad.

        Cost: O(number of inputs) Python work on top of forward.
        """
        ### BEGIN SOLUTION
        tensor = _TENSOR[0] if _TENSOR else _tensor_type()
        ctx = cls()
        grad_on = _MODE.enabled
        if not grad_on:
            # Fast path for inference (no_grad: evaluation, generation). No node can be
            # recorded, so skip the bookkeeping: on the tiny arrays of one-token decoding
            # this Python work costs as much as the NumPy math itself.
            ctx.needs_input_grad = (False,) * len(args)
            out = tensor.__new__(tensor)  # Tensor._make inlined: this runs once per op
            data = cls.forward(ctx, *[a.data if isinstance(a, tensor) else a for a in args], **kwargs)
            out.data = data if type(data) is np.ndarray else np.asarray(data)
            out.grad, out.requires_grad, out._ctx = None, False, None
            return out
        raw = []
        needs = []
        any_needs = False
        for a in args:
            if isinstance(a, tensor):
                raw.append(a.data)
                need = grad_on and a.requires_grad
                any_needs = any_needs or need
                needs.append(need)
            else:
                raw.append(a)
                needs.append(False)
        ctx.needs_input_grad = tuple(needs)
        out = tensor._make(cls.forward(ctx, *raw, **kwargs), any_needs)
        if any_needs:
            ctx.parents = args
            ctx.seq = next(_SEQUENCE)
            out._ctx = ctx
        return out
        ### END SOLUTION


# --------------------------------------------------------------------------- engine


def _accumulate_leaf(leaf, grad: np.ndarray) -> None:
    """Add ``grad`` into ``leaf.grad`` without ever writing into an array another node may share."""
    tensor = _TENSOR[0]
    grad = np.asarray(grad)
    if grad.shape != leaf.data.shape:
        grad = unbroadcast(grad, leaf.data.shape)
    if grad.dtype != leaf.data.dtype:
        grad = grad.astype(leaf.data.dtype)
    if leaf.grad is None:
        # Read-only views (broadcast_to) would surprise a user doing in-place edits on .grad.
        leaf.grad = tensor._make(grad if grad.flags.writeable else grad.copy(), False)
    else:
        leaf.grad.data = leaf.grad.data + grad


def backward(tensor, gradient=None, retain_graph: bool = False) -> None:
    """Back-propagate from ``tensor``: fill ``.grad`` of every leaf that requires grad.

    Args:
        tensor: the output to differentiate (usually a scalar loss).
        gradient: d(loss)/d(tensor), same shape as ``tensor``; may be omitted
            only when ``tensor`` has a single element (then it is 1).
        retain_graph: keep the nodes for a second backward (default frees them).

    Algorithm: a max-heap of pending nodes keyed by creation number (a node is
    created after every node it depends on, so the newest pending node has all
    its gradient contributions); gradients meeting at a shared tensor are
    summed before being passed on. Cost: one ``backward`` call and O(log n)
    heap work per node; no recursion, so graphs of any depth work.

    Raises:
        ValueError: ``gradient`` missing for a non-scalar output, or of the wrong shape.
        RuntimeError: ``tensor`` does not require grad, or the graph was already freed.
    """
    ### BEGIN SOLUTION
    tensor_type = _tensor_type()
    if not tensor.requires_grad:
        raise RuntimeError("backward: tensor does not require grad and has no graph")
    if gradient is None:
        if tensor.data.size != 1:
            raise ValueError(
                f"backward: argument 'gradient' is required for a non-scalar output of shape {tensor.shape}"
            )
        grad = np.ones(tensor.data.shape, dtype=tensor.data.dtype)
    else:
        grad = gradient.data if isinstance(gradient, tensor_type) else np.asarray(gradient)
        if grad.shape != tensor.data.shape:
            raise ValueError(
                f"backward: argument 'gradient' has shape {grad.shape}, output has shape {tensor.shape}"
            )
        grad = grad.astype(tensor.data.dtype, copy=False)

    root = tensor._ctx
    if root is None:  # a leaf: its gradient is the incoming one
        _accumulate_leaf(tensor, grad)
        return

    # Nodes carry a creation number, and a node is always created after the nodes
    # that produced its inputs. Processing the pending node with the highest number
    # first is therefore a topological order: by the time a node is popped, every
    # consumer on a path from the root has run and its gradient is complete.
    grads = {root: grad}
    heap = [(-root.seq, root)]
    while heap:
        node = heappop(heap)[1]
        grad_out = grads.pop(node)
        if node.parents is None:
            raise RuntimeError("backward: the graph was already freed; pass retain_graph=True the first time")
        grad_in = type(node).backward(node, grad_out)
        if type(grad_in) is not tuple:
            grad_in = (grad_in,)
        for parent, need, g in zip(node.parents, node.needs_input_grad, grad_in):
            if not need or g is None:
                continue
            child = parent._ctx
            if child is None:  # a leaf: store into .grad
                if (
                    parent.grad is None
                    and type(g) is np.ndarray
                    and g.shape == parent.data.shape
                    and g.dtype == parent.data.dtype
                    and g.flags.writeable
                ):
                    parent.grad = tensor_type._make(g, False)  # fast path: first gradient, right shape
                else:
                    _accumulate_leaf(parent, g)
                continue
            previous = grads.get(child)
            if previous is None:
                grads[child] = g
                heappush(heap, (-child.seq, child))
            else:
                # Never add in place: `g` may be shared with another branch.
                grads[child] = previous + g
        if not retain_graph:
            # Free what the node held so activations die with this step.
            node.parents = None
            node.saved_tensors = None
            node.__dict__.clear()
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
    tensor_type = _tensor_type()
    inputs = list(inputs)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, tensor_type) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: argument 'inputs' has no tensor with requires_grad=True")
    for i in checked:
        if inputs[i].data.dtype != np.float64:
            raise ValueError(f"gradcheck: input {i} must be float64, got {inputs[i].data.dtype}")

    saved = [inputs[i].grad for i in checked]
    for i in checked:
        inputs[i].grad = None
    out = fn(*inputs)
    weights = np.random.default_rng(1234).standard_normal(out.shape)
    (out * tensor_type(weights, dtype=np.float64)).sum().backward()
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
        if not inputs[i].data.flags.c_contiguous:
            inputs[i].data = np.ascontiguousarray(inputs[i].data)
        x = inputs[i].data
        numeric = np.zeros_like(x)
        flat = x.reshape(-1)  # a view: perturbing it perturbs the input
        num_flat = numeric.reshape(-1)
        for j in range(flat.size):
            original = flat[j]
            flat[j] = original + eps
            plus = objective()
            flat[j] = original - eps
            minus = objective()
            flat[j] = original
            num_flat[j] = (plus - minus) / (2 * eps)
        error = np.abs(analytic[k] - numeric) - (atol + rtol * np.abs(numeric))
        if error.size and error.max() > 0:
            worst = np.unravel_index(int(np.argmax(error)), x.shape)
            raise AssertionError(
                f"gradcheck: input {i} element {tuple(int(w) for w in worst)}: "
                f"analytic {analytic[k][worst]:.6g} vs numeric {numeric[worst]:.6g}"
            )
    return True
    ### END SOLUTION
