"""Module 05 - Autograd: the Function API, topological backward, accumulation, broadcast reduction,
grad mode, graph freeing, and gradcheck's own failure reporting."""

import gc
import weakref

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.extra import numpy as hnp
from tinytorch.core.autograd import Function, enable_grad, gradcheck, is_grad_enabled, no_grad, unbroadcast
from tinytorch.core.tensor import Tensor


class Cube(Function):
    """x**3 written against the public API (as a later tier would write a fused op)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 3 * x * x


class WrongSquare(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * x  # missing factor 2


class Scaled(Function):
    """a * b with a constant keyword; reports which inputs needed a gradient."""

    seen = []

    @staticmethod
    def forward(ctx, a, b, factor=1.0):
        Scaled.seen.append(ctx.needs_input_grad)
        ctx.save_for_backward(a, b)
        ctx.factor = factor
        return a * b * factor

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        return (grad * b * ctx.factor if na else None, grad * a * ctx.factor if nb else None)


def x64(shape, seed=0):
    return Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True, dtype=np.float64)


def test_custom_function_and_needs_input_grad():
    x = x64((3,))
    assert gradcheck(lambda v: Cube.apply(v), [x])
    const = Tensor(np.ones(3))
    Scaled.seen.clear()
    y = Scaled.apply(x, const, factor=2.0)
    assert Scaled.seen[-1] == (True, False) and y.requires_grad
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, 2.0)
    assert const.grad is None
    z = Scaled.apply(const, const)
    assert not z.requires_grad and z._ctx is None  # no input needs grad: no node


def test_gradcheck_reports_worst_element():
    with pytest.raises(AssertionError, match=r"input 0 element \(\d+, \d+\).*analytic.*numeric"):
        gradcheck(lambda v: WrongSquare.apply(v), [x64((2, 2))])
    with pytest.raises(ValueError, match="float64"):
        gradcheck(lambda v: v * 2.0, [Tensor(np.ones(2), requires_grad=True)])


def test_gradient_accumulates_across_backward_calls():
    x = Tensor([1.0, 2.0], requires_grad=True)
    (x * 3.0).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, [3 + 2, 3 + 4])


def test_diamond_graph_sums_both_paths():
    # y = a*b + a*c with a shared intermediate: dy/dx must collect every path exactly once.
    x = Tensor([2.0], requires_grad=True)
    a = x * x  # 4, da/dx = 2x = 4
    y = a * a + a * 3.0 + a.exp()  # dy/da = 2a + 3 + e^a
    y.backward()
    np.testing.assert_allclose(x.grad.data, (2 * 4 + 3 + np.exp(4)) * 4, rtol=1e-5)


def test_same_tensor_used_twice_in_one_op():
    x = Tensor([3.0], requires_grad=True)
    (x * x).backward()
    np.testing.assert_allclose(x.grad.data, [6.0])
    y = Tensor([3.0], requires_grad=True)
    (y + y + y).backward()
    np.testing.assert_allclose(y.grad.data, [3.0])


def test_deep_chain_has_no_recursion_limit():
    x = Tensor([1.0], requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.backward()
    np.testing.assert_allclose(x.grad.data, [1.0001**5000], rtol=1e-3)


def test_no_grad_and_grad_mode_nesting():
    x = Tensor([1.0], requires_grad=True)
    assert is_grad_enabled()
    with no_grad():
        assert not is_grad_enabled()
        y = x * 2.0
        with enable_grad():
            z = x * 2.0
        assert not is_grad_enabled()
    assert is_grad_enabled()
    assert not y.requires_grad and y._ctx is None
    assert z.requires_grad

    @no_grad()
    def infer(v):
        return v * 2.0

    assert not infer(x).requires_grad and is_grad_enabled()

    class Probe(Function):  # forward sees the same ctx contract on the no_grad fast path
        @staticmethod
        def forward(ctx, a, b, scale=1.0):
            seen.append(ctx.needs_input_grad)
            return (a + b) * scale

    seen = []
    with no_grad():
        out = Probe.apply(x, 3.0, scale=2.0)
    assert seen == [(False, False)] and out._ctx is None and not out.requires_grad
    np.testing.assert_array_equal(out.data, [8.0])
    assert Probe.apply(x, 3.0)._ctx is not None and seen[-1] == (True, False)
    with pytest.raises(KeyError):
        with no_grad():
            raise KeyError("mode restored even on error")
    assert is_grad_enabled()


@settings(max_examples=40, deadline=None)
@given(hnp.mutually_broadcastable_shapes(num_shapes=1, min_dims=0, max_dims=4, max_side=3))
def test_unbroadcast_is_the_adjoint_of_broadcasting(shapes):
    (small,) = shapes.input_shapes
    big = shapes.result_shape
    rng = np.random.default_rng(0)
    u, g = rng.standard_normal(small), rng.standard_normal(big)
    # Adjoint identity: <broadcast(u), g> == <u, unbroadcast(g)>.
    reduced = unbroadcast(g, small)
    assert reduced.shape == small
    np.testing.assert_allclose(np.sum(np.broadcast_to(u, big) * g), np.sum(u * reduced), atol=1e-10)


def test_backward_frees_the_graph():
    x = Tensor(np.ones(3), requires_grad=True)
    h = x * 2.0
    node = weakref.ref(h._ctx)
    loss = (h * h).sum()
    loss.backward()
    assert loss._ctx.parents is None and loss._ctx.saved_tensors is None
    with pytest.raises(RuntimeError, match="freed"):
        loss.backward()
    del h, loss
    gc.collect()
    assert node() is None


def test_retain_graph_allows_second_backward():
    x = Tensor([2.0], requires_grad=True)
    y = x * x
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.data, [8.0])


def test_training_steps_do_not_grow_memory():
    import tracemalloc

    w = Tensor(np.random.default_rng(0).standard_normal((32, 32)), requires_grad=True)
    x = Tensor(np.ones((8, 32)))

    def step():
        loss = ((x @ w).exp().mean() + (w * w).sum()) * 0.5
        loss.backward()
        w.grad = None

    for _ in range(20):
        step()
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    for _ in range(300):
        step()
    grown = tracemalloc.get_traced_memory()[0] - start
    tracemalloc.stop()
    assert grown < 100_000  # bytes; a leaked graph would keep >= 300 * 4 KiB activations


def test_backward_requires_grad():
    with pytest.raises(RuntimeError):
        Tensor([1.0]).backward()
