"""Module 05 - Autograd: the Function API, topological backward, accumulation, broadcast reduction,
grad mode, graph freeing, gradcheck's own failure reporting, and the derivative of every op of
Modules 01-04 (float64 finite differences, naive loops, closed forms, PyTorch when importable)."""

import gc
import weakref

import numpy as np
import pytest
from _oracles import gradcheck  # the tests' own finite differences: a submission cannot replace them
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tinytorch.core import autograd
from tinytorch.core.activations import (
    ReLU,
    gelu,
    leaky_relu,
    log_softmax,
    relu,
    sigmoid,
    silu,
    softmax,
    softplus,
    tanh,
)
from tinytorch.core.autograd import Function, enable_grad, is_grad_enabled, no_grad, unbroadcast
from tinytorch.core.layers import Dropout, Linear, LinearFunction, Sequential
from tinytorch.core.losses import (
    BCEWithLogitsLoss,
    BinaryCrossEntropyLoss,
    CrossEntropyLoss,
    MSELoss,
    cross_entropy,
    nll_loss,
)
from tinytorch.core.tensor import Tensor, concatenate, maximum, stack, where


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
    """Module 05's own gradcheck (the one students write) finds a wrong derivative and names it."""
    assert autograd.gradcheck(lambda v: Cube.apply(v), [x64((3,))])
    with pytest.raises(AssertionError, match=r"input 0 element \(\d+, \d+\).*analytic.*numeric"):
        autograd.gradcheck(lambda v: WrongSquare.apply(v), [x64((2, 2))])
    with pytest.raises(ValueError, match="float64"):
        autograd.gradcheck(lambda v: v * 2.0, [Tensor(np.ones(2), requires_grad=True)])


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

    @no_grad
    def infer_bare(v):
        return v * 2.0

    assert not infer(x).requires_grad and not infer_bare(x).requires_grad and is_grad_enabled()

    class Probe(Function):  # forward sees needs_input_grad all False under no_grad
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


def test_graph_keeps_only_what_backward_saved():
    # An intermediate that no backward needs (the input of exp: exp saves its output) dies
    # with the user's last reference to it, graph or no graph; gradients are unchanged.
    x = Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    h = x + 1.0
    array = weakref.ref(h.data)
    y = h.exp().sum()
    del h
    gc.collect()
    assert array() is None, "the graph kept an intermediate array alive"
    y.backward()
    np.testing.assert_allclose(x.grad.data, np.exp(x.data + 1.0), rtol=1e-12)


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
    gc.collect()  # a full collection also empties CPython's free lists, which tracemalloc counts as live
    start = tracemalloc.get_traced_memory()[0]
    for _ in range(300):
        step()
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - start
    tracemalloc.stop()
    assert grown < 100_000  # bytes; a leaked graph would keep >= 300 * 4 KiB activations


def test_backward_requires_grad():
    # match: a stub's NotImplementedError is a RuntimeError too, and must not pass this test
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0]).backward()


# =========================================================================== derivatives of Modules 01-04
# Every op met in Modules 01-04 has its backward written in this module. Each is checked against
# float64 central finite differences (gradcheck), a naive loop or a closed form, and PyTorch when present.

RNG = np.random.default_rng(5)


def t64(shape, low=None, seed=None, scale=1.0):
    """A float64 tensor requiring grad: standard normals times ``scale`` (or uniform in [low, low+1])."""
    rng = np.random.default_rng(seed) if seed is not None else RNG
    data = rng.standard_normal(shape) * scale if low is None else low + rng.random(shape)
    return Tensor(data, requires_grad=True, dtype=np.float64)


# --------------------------------------------------------------------------- Module 01: tensor ops


@pytest.mark.parametrize(
    "fn",
    [
        lambda a, b: a + b,
        lambda a, b: a - b,
        lambda a, b: a * b,
        lambda a, b: a / (b * b + 1.0),
        lambda a, b: 3.0 - a * 2.0 + 1.0 / (b * b + 1.0) - (-b),
        lambda a, b: a**2 + (b * b + 1.0) ** 0.5 + a**3,
    ],
    ids=["add", "sub", "mul", "div", "reflected", "pow"],
)
def test_elementwise_gradients(fn):
    assert gradcheck(fn, [t64((2, 3)), t64((3,))])


@settings(max_examples=40, deadline=None)
@given(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3))
def test_broadcasting_gradient_against_scatter_oracle(shapes):
    sa, sb = shapes.input_shapes
    out_shape = shapes.result_shape
    rng = np.random.default_rng(7)
    a = Tensor(rng.standard_normal(sa), requires_grad=True, dtype=np.float64)
    b = Tensor(rng.standard_normal(sb), requires_grad=True, dtype=np.float64)
    (a * b).sum().backward()

    # Oracle: d(sum(a*b))/da[i] = sum of b's broadcast values over every output position that read a[i].
    def oracle(src_shape, other):
        g = np.zeros(src_shape)
        other_b = np.broadcast_to(other, out_shape)
        lead = len(out_shape) - len(src_shape)
        for pos in np.ndindex(*out_shape):
            src = tuple(0 if n == 1 else pos[lead + k] for k, n in enumerate(src_shape))
            g[src] += other_b[pos]
        return g

    np.testing.assert_allclose(a.grad.data, oracle(sa, b.data), atol=1e-12)
    np.testing.assert_allclose(b.grad.data, oracle(sb, a.data), atol=1e-12)
    assert a.grad.shape == sa and b.grad.shape == sb


def test_float32_graph_gives_float32_gradients():
    x = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    (x * np.float64(3.0) + np.ones(3)).sum().backward()
    assert x.grad.dtype == np.float32
    i = Tensor([1, 2, 3])
    (i * x + x / i).sum().backward()
    np.testing.assert_allclose(x.grad.data, [3 + 2, 3 + 2.5, 3 + 1 / 3 + 3], rtol=1e-6)


def test_pow_zero_has_zero_gradient_at_zero():
    x = Tensor([0.0, 2.0], requires_grad=True)
    (x**0).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0])


@pytest.mark.parametrize(
    ("sa", "sb"),
    [
        ((2, 3), (3, 4)),
        ((2, 2, 3), (3, 2)),
        ((2, 1, 2, 3), (3, 3, 2)),
        ((3,), (3, 2)),
        ((2, 3), (3,)),
        ((3,), (3,)),
    ],
)
def test_matmul_gradient(sa, sb):
    assert gradcheck(lambda x, y: x @ y, [t64(sa), t64(sb)])


def test_matmul_gradient_matches_torch(torch):
    a, b = t64((2, 4, 3)), t64((3, 5))
    (a @ b).sum().backward()
    ta = torch.tensor(a.data, requires_grad=True)
    tb = torch.tensor(b.data, requires_grad=True)
    (ta @ tb).sum().backward()
    np.testing.assert_allclose(a.grad.data, ta.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(b.grad.data, tb.grad.numpy(), rtol=1e-10)


@st.composite
def array_and_axis(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    ndim = len(shape)
    axis = draw(
        st.one_of(
            st.none(),
            st.integers(-ndim, ndim - 1),
            st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple),
        )
    )
    keepdims = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return np.random.default_rng(seed).standard_normal(shape), axis, keepdims


@settings(max_examples=30, deadline=None)
@given(array_and_axis())
def test_reduction_gradients_closed_form_over_any_axis(case):
    x, axis, keepdims = case
    n = x.size if axis is None else int(np.prod([x.shape[a] for a in np.atleast_1d(axis)]))
    t = Tensor(x, requires_grad=True, dtype=np.float64)
    t.sum(axis, keepdims).sum().backward()
    np.testing.assert_allclose(t.grad.data, np.ones_like(x))  # d(sum)/dx = 1
    t.grad = None
    t.mean(axis, keepdims).sum().backward()
    np.testing.assert_allclose(t.grad.data, np.full_like(x, 1.0 / n))  # d(mean)/dx = 1/n
    t.grad = None
    t.amax(axis, keepdims).sum().backward()
    # Oracle: 1 exactly at the maxima (continuous data has no ties).
    np.testing.assert_allclose(t.grad.data, (x == np.max(x, axis=axis, keepdims=True)).astype(float))


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: x.sum(axis=1),
        lambda x: x.mean(axis=(0, 2), keepdims=True),
        lambda x: x.amax(axis=-1),
        lambda x: x.amin(axis=0, keepdims=True),
        lambda x: x.var(axis=1, correction=0),
        lambda x: x.var(),
        lambda x: x.max(),
        lambda x: x.max(dim=1).values,
        lambda x: x.min(-1, keepdim=True)[0],
        lambda x: x.std(dim=(0, 2)),
        lambda x: x.std(unbiased=False),
    ],
    ids=[
        "sum",
        "mean",
        "amax",
        "amin",
        "var",
        "var_unbiased",
        "max_all",
        "max_dim",
        "min_dim",
        "std",
        "std_biased",
    ],
)
def test_reduction_gradcheck(fn):
    assert gradcheck(fn, [t64((2, 3, 2), seed=3)])


def test_max_ties_share_gradient():
    x = Tensor([[1.0, 3.0, 3.0], [0.0, -1.0, 2.0]], requires_grad=True)
    x.max().backward()
    np.testing.assert_allclose(x.grad.data, [[0, 0.5, 0.5], [0, 0, 0]])


@pytest.mark.filterwarnings("ignore:Degrees of freedom:RuntimeWarning")
def test_var_of_one_element_unbiased_gives_nan_not_an_error():
    x = Tensor([2.0], requires_grad=True, dtype=np.float64)
    with np.errstate(all="ignore"):
        v = x.var()
        assert np.isnan(v.item())
        v.backward()
    assert np.isnan(x.grad.data).all()


def test_var_unbiased_gradient_matches_torch(torch):
    x = t64((3, 4))
    x.var(dim=1).sum().backward()
    tx = torch.tensor(x.data, requires_grad=True)
    tx.var(dim=1).sum().backward()
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-10)


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: x.exp(),
        lambda x: x.log(),
        lambda x: x.sqrt(),
        lambda x: (x - 0.9).abs(),
        lambda x: x.clip(0.7, 1.2),
    ],
    ids=["exp", "log", "sqrt", "abs", "clip"],
)
def test_unary_gradients(fn):
    assert gradcheck(fn, [t64((2, 3), low=0.5, seed=11)])


def test_composite_expression_matches_torch(torch):
    a, b = t64((3, 4)), t64((4,), low=0.5)
    out = ((a * b).exp() / (b.sqrt() + 1.0) - (a**2).mean(axis=0) * b.log()).sum()
    out.backward()
    ta = torch.tensor(a.data, requires_grad=True)
    tb = torch.tensor(b.data, requires_grad=True)
    tout = ((ta * tb).exp() / (tb.sqrt() + 1.0) - (ta**2).mean(dim=0) * tb.log()).sum()
    tout.backward()
    np.testing.assert_allclose(out.item(), tout.item(), rtol=1e-12)
    np.testing.assert_allclose(a.grad.data, ta.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(b.grad.data, tb.grad.numpy(), rtol=1e-10)


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: x.reshape(4, 3) * 1.5,
        lambda x: x.transpose(0, 1) * 2.0,
        lambda x: x.permute(1, 0, 2).reshape(3, 4),
        lambda x: x.T,
        lambda x: x.unsqueeze(1).squeeze(1),
        lambda x: x[:, :1].expand(2, 4, 3) * 1.0,
        lambda x: x.broadcast_to((3, 2, 2, 3)),
        lambda x: x.double() * 2.0,
    ],
    ids=["reshape", "transpose", "permute", "T", "unsqueeze", "expand", "broadcast_to", "double"],
)
def test_movement_gradients(fn):
    assert gradcheck(fn, [t64((2, 2, 3))])


def test_indexing_gradients():
    assert gradcheck(lambda a: a[1:, ::2] * 3.0, [t64((3, 4))])
    assert gradcheck(lambda a: a[np.array([0, 2, 0])], [t64((3, 4))])
    assert gradcheck(lambda a: a[a.data > 0], [t64((3, 4))])


def test_repeated_integer_index_accumulates_every_use():
    w = Tensor(np.ones((4, 2)), requires_grad=True)
    w[np.array([1, 1, 3, 1])].sum().backward()
    # Naive oracle: count how often each row was read.
    counts = np.bincount([1, 1, 3, 1], minlength=4)[:, None] * np.ones((1, 2))
    np.testing.assert_array_equal(w.grad.data, counts)


def test_pad_concatenate_stack_gradients():
    assert gradcheck(lambda a: a.pad(((0, 1), (2, 0)), 5.0), [t64((2, 3))])
    assert gradcheck(lambda a, b: concatenate([a, b, a], axis=1), [t64((2, 3)), t64((2, 1))])
    assert gradcheck(lambda a, b: stack([a, b], axis=-1), [t64((2, 3)), t64((2, 3))])


def test_where_maximum_minimum_masked_fill_gradients():
    cond = RNG.standard_normal((2, 3)) > 0
    assert gradcheck(lambda x, y: where(cond, x, y), [t64((2, 3)), t64((3,))])
    assert gradcheck(lambda x, y: maximum(x, y), [t64((2, 3)), t64((3,))])
    assert gradcheck(lambda x, y: x.minimum(y), [t64((2, 3)), t64((3,))])
    assert gradcheck(lambda x: x.masked_fill(cond, 0.0), [t64((2, 3))])


def test_backward_on_non_scalar_needs_gradient():
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(ValueError, match="gradient"):
        (x * 2.0).backward()
    (x * 2.0).backward(gradient=np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(x.grad.data, [2, 4, 6])
    with pytest.raises(ValueError, match="gradient"):
        (x * 2.0).backward(gradient=np.ones(4))


def test_detach_and_zero_grad():
    x = Tensor([1.0, -2.0, 3.0], requires_grad=True)
    d = x.detach()
    (x * d).sum().backward()
    np.testing.assert_allclose(x.grad.data, [1, -2, 3])  # d is a constant
    x.zero_grad()
    assert x.grad is None
    h = x.double()
    h.sum().backward()
    assert x.grad.dtype == np.float32


def test_results_record_a_node_only_when_needed():
    x = Tensor(np.ones(3), requires_grad=True)
    c = Tensor(np.ones(3))
    y = x * c
    assert y.requires_grad and y._ctx is not None and not y.is_leaf
    assert (c * c)._ctx is None


# --------------------------------------------------------------------------- Module 01: PyTorch's newer ops

GATHER_INDEX = np.array([[[0, 3], [3, 3], [1, 0]], [[2, 2], [0, 1], [3, 3]]])  # (2, 3, 2), repeats


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: x.prod(1),
        lambda x: x.prod(),
        lambda x: x.prod(-1, keepdim=True),
        lambda x: x.logsumexp(1),
        lambda x: x.logsumexp((0, 2), keepdim=True),
        lambda x: x.cumsum(1),
        lambda x: x.cumsum(-1) * x,
        lambda x: x.flip(0, 2),
        lambda x: x.tril() + x.triu(2),
        lambda x: x.sin() * x.cos(),
        lambda x: x.clone() * 2.0,
        lambda x: x.gather(2, GATHER_INDEX),
        lambda x: x.sort(1).values * Tensor(np.arange(3.0)[:, None]),
        lambda x: x.sort(-1, descending=True).values,
        lambda x: x.topk(2, dim=1).values,
        lambda x: x.max(dim=2, keepdim=True).values + x.min(0, keepdim=True)[0],
        lambda x: concatenate([p * float(i + 1) for i, p in enumerate(x.split([1, 2], dim=1))], dim=1),
        lambda x: concatenate([p * float(i + 1) for i, p in enumerate(x.chunk(3, dim=2))], dim=2),
        lambda x: x[0, :, [0, 1]],
        lambda x: x[1, None, [2, 0, 2]],
        lambda x: x[:, 1, x.data[0, 1] > 0],
        lambda x: x % 0.7,
        lambda x: x.std(1),
        lambda x: x.std(dim=(0, 2), unbiased=False, keepdim=True),
        lambda x: x.abs() ** (x * 0.5),
        lambda x: 2.5**x + (-1.5) ** Tensor(np.array([0.0, 1.0, 2.0, 3.0])) * x,
        lambda x: x.pow(3) - x.pow(Tensor(np.full(4, 2.0))),
        lambda x: x.t() if x.ndim < 3 else x.flatten(0, 1).t(),
    ],
    ids=[
        "prod",
        "prod_all",
        "prod_keepdim",
        "logsumexp",
        "logsumexp_dims",
        "cumsum",
        "cumsum_reused",
        "flip",
        "tril_triu",
        "sin_cos",
        "clone",
        "gather",
        "sort",
        "sort_descending",
        "topk",
        "max_min_dim",
        "split",
        "chunk",
        "index_int_slice_array",
        "index_int_none_array",
        "index_int_slice_mask",
        "remainder",
        "std",
        "std_dims",
        "pow_tensor",
        "scalar_base",
        "pow_method",
        "t",
    ],
)
def test_newer_op_gradients(fn):
    assert gradcheck(fn, [t64((2, 3, 4), seed=8)])


def test_remainder_and_pow_tensor_gradients_in_both_inputs():
    assert gradcheck(lambda a, b: a % b, [t64((2, 3), seed=1), t64((3,), low=0.5, seed=2)])
    assert gradcheck(lambda a, b: a**b, [t64((2, 3), low=0.5, seed=3), t64((3,), seed=4)])
    assert gradcheck(lambda a, b: b.pow(a), [t64((2, 3), seed=5), t64((2, 3), low=0.5, seed=6)])


def test_prod_gradient_with_zeros_closed_form():
    x = Tensor([[2.0, 0.0, 3.0], [0.0, 0.0, 4.0], [1.0, 2.0, 3.0]], requires_grad=True, dtype=np.float64)
    x.prod(1).sum().backward()
    # d/dx_i = product of the other entries of the row: exact with one zero, all 0 with two.
    np.testing.assert_array_equal(x.grad.data, [[0, 6, 0], [0, 0, 0], [6, 3, 2]])


def test_pow_gradients_at_the_special_points_match_torch(torch):
    x = np.array([0.0, 0.0, 1.5, -2.0, 0.0])
    e = np.array([0.0, 2.0, 0.0, 3.0, -1.0])
    with np.errstate(all="ignore"):
        for base in (0.0, -2.0, 2.5):  # scalar ** tensor
            ours = Tensor(e, requires_grad=True, dtype=np.float64)
            (base**ours).sum().backward()
            theirs = torch.tensor(e, requires_grad=True)
            (base**theirs).sum().backward()
            np.testing.assert_array_equal(ours.grad.data, theirs.grad.numpy())
        a = Tensor(x, requires_grad=True, dtype=np.float64)
        b = Tensor(e, requires_grad=True, dtype=np.float64)
        out = a**b
        out.sum().backward()
        ta, tb = torch.tensor(x, requires_grad=True), torch.tensor(e, requires_grad=True)
        tout = ta**tb
        tout.sum().backward()
        np.testing.assert_array_equal(out.data, tout.detach().numpy())
        np.testing.assert_array_equal(a.grad.data, ta.grad.numpy())
        np.testing.assert_array_equal(b.grad.data, tb.grad.numpy())


def test_max_with_dim_sends_the_gradient_to_the_returned_index():
    x = Tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], requires_grad=True)
    x.max(dim=1).values.sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[0, 1, 0], [1, 0, 0]])  # the first maximum only (PyTorch)
    x.grad = None
    x.amax(dim=1).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[0, 0.5, 0.5], [0.5, 0.5, 0]])  # ties share (PyTorch)


def test_sort_and_gather_gradients_against_naive_scatter():
    x = t64((3, 5), seed=9)
    w = RNG.standard_normal((3, 5))
    values, indices = x.sort(dim=1, descending=True)
    (values * Tensor(w, dtype=np.float64)).sum().backward()
    expected = np.zeros((3, 5))
    for i in range(3):
        for j in range(5):
            expected[i, indices.data[i, j]] += w[i, j]
    np.testing.assert_allclose(x.grad.data, expected)
    x.grad = None
    index = np.array([[4, 4, 0], [1, 1, 1], [2, 0, 2]])
    x.gather(1, index).sum().backward()
    counts = np.zeros((3, 5))
    for i in range(3):
        for j in range(3):
            counts[i, index[i, j]] += 1
    np.testing.assert_array_equal(x.grad.data, counts)


def test_piecewise_constant_ops_have_zero_gradient():
    x = Tensor([1.5, -2.5, 3.0], requires_grad=True)
    ((x // 2.0) + x.sign()).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0, 0.0])


def test_std_gradient_is_zero_for_constant_rows_as_torch(torch):
    x = Tensor(np.ones((2, 3)), requires_grad=True, dtype=np.float64)
    x.std(dim=1).sum().backward()
    np.testing.assert_array_equal(x.grad.data, 0.0)
    y = t64((3, 4), seed=2)
    y.std(dim=0).sum().backward()
    ty = torch.tensor(y.data, requires_grad=True)
    ty.std(dim=0).sum().backward()
    np.testing.assert_allclose(y.grad.data, ty.grad.numpy(), rtol=1e-12)


def test_indexing_gradient_matches_torch(torch):
    x = t64((2, 3, 4, 5), seed=10)
    index = (1, slice(None), [0, 2, 0], slice(1, 4))
    w = RNG.standard_normal((3, 3, 3))
    (x[index] * Tensor(w, dtype=np.float64)).sum().backward()
    tx = torch.tensor(x.data, requires_grad=True)
    (tx[1, :, torch.tensor([0, 2, 0]), 1:4] * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy())


def test_reductions_of_a_0d_tensor_pass_the_gradient_through():
    for fn in (
        lambda s: s.sum(0),
        lambda s: s.mean(-1, keepdim=True),
        lambda s: s.amax(0),
        lambda s: s.max(0).values,
        lambda s: s.prod(0),
        lambda s: s.logsumexp(-1),
        lambda s: s.cumsum(0),
        lambda s: s.sort(0).values,
        lambda s: s.flip(0),
    ):
        s = Tensor(2.0, requires_grad=True, dtype=np.float64)
        fn(s).backward()
        assert s.grad.shape == () and s.grad.item() == 1.0
    s = Tensor(2.0, requires_grad=True, dtype=np.float64)
    (softmax(s, 0) + log_softmax(s, -1)).backward()
    assert s.grad.item() == 0.0  # softmax of one element is the constant 1


def test_ndarray_operator_tensor_keeps_the_graph():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    x = Tensor(np.ones((2, 2)), requires_grad=True, dtype=np.float64)
    (a * x + a / (x + 1.0) - a @ x).sum().backward()
    expected = a - a / 4.0 - a.sum(axis=0)[:, None]  # d/dx of a*x, a/(x+1) at x=1, and a@x
    np.testing.assert_allclose(x.grad.data, expected)


def test_factories_make_leaves():
    from tinytorch.core.tensor import full, ones, zeros

    w = zeros(2, 2, dtype=np.float64, requires_grad=True)
    b = ones(2, requires_grad=True)
    c = full((2,), 3.0)
    ((w + 1.0) * b * c).sum().backward()
    np.testing.assert_array_equal(w.grad.data, 3.0)
    np.testing.assert_array_equal(b.grad.data, [6.0, 6.0])


# --------------------------------------------------------------------------- Module 02: activations


ACTIVATIONS = {
    "relu": relu,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "gelu": gelu,
    "gelu_tanh": lambda v: gelu(v, approximate="tanh"),
    "leaky_relu": lambda v: leaky_relu(v, 0.05),
    "silu": silu,
    "softplus": lambda v: softplus(v, 1.5, 4.0),
    "softmax0": lambda v: softmax(v, 0),
    "softmax_weighted": lambda v: softmax(v, -1) * Tensor(np.arange(4.0)),
    "log_softmax0": lambda v: log_softmax(v, 0),
    "log_softmax": lambda v: log_softmax(v, -1),
}


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_gradients(name):
    x = t64((3, 4), scale=2.0)
    x.data[np.abs(x.data) < 1e-3] = 0.5  # keep relu's kink away from the finite-difference step
    x.data[np.abs(x.data * 1.5 - 4.0) < 1e-3] = 0.5  # and softplus's threshold
    assert gradcheck(ACTIVATIONS[name], [x])


def test_activation_gradients_finite_at_extreme_inputs():
    x = Tensor([[-1000.0, 0.0, 1000.0]], requires_grad=True)
    for name, fn in ACTIVATIONS.items():
        if name == "softmax_weighted":
            continue  # its weights are 4 wide
        fn(x).sum().backward()
        assert np.all(np.isfinite(x.grad.data)), fn
        x.grad = None
    gelu(x).sum().backward()
    np.testing.assert_allclose(x.grad.data, [[0.0, 0.5, 1.0]])  # Phi(x) + x phi(x): 0, 1/2, 1
    x.grad = None
    softplus(x).sum().backward()
    np.testing.assert_allclose(x.grad.data, [[0.0, 0.5, 1.0]])  # sigmoid(x)


@pytest.mark.parametrize(
    "name",
    [
        "relu",
        "sigmoid",
        "tanh",
        "gelu",
        "gelu_tanh",
        "leaky_relu",
        "silu",
        "softplus",
        "softmax",
        "log_softmax",
    ],
)
def test_activation_gradients_match_torch(torch, name):
    F = torch.nn.functional
    x = t64((4, 6), scale=2.0)
    ours = {"softmax": softmax, "log_softmax": log_softmax}.get(name) or ACTIVATIONS[name]
    theirs = {
        "relu": torch.relu,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "gelu": torch.nn.GELU(),
        "gelu_tanh": torch.nn.GELU(approximate="tanh"),
        "leaky_relu": lambda v: F.leaky_relu(v, 0.05),
        "silu": F.silu,
        "softplus": lambda v: F.softplus(v, 1.5, 4.0),
        "softmax": lambda v: torch.softmax(v, dim=-1),
        "log_softmax": lambda v: torch.log_softmax(v, dim=-1),
    }[name]
    w = RNG.standard_normal((4, 6))
    (ours(x) * Tensor(w, dtype=np.float64)).sum().backward()
    tx = torch.tensor(x.data, requires_grad=True)
    (theirs(tx) * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-8, atol=1e-12)


# --------------------------------------------------------------------------- Module 03: layers


@pytest.mark.parametrize("x_shape", [(4, 3), (2, 2, 3), (3,)])
def test_linear_function_gradcheck(x_shape):
    x, w, b = t64(x_shape), t64((2, 3)), t64((2,))
    assert gradcheck(lambda x, w, b: LinearFunction.apply(x, w, b), [x, w, b])
    assert gradcheck(lambda x, w: LinearFunction.apply(x, w, None), [x, w])


def test_linear_gradients_match_torch(torch):
    layer = Linear(6, 4)
    x = Tensor(RNG.standard_normal((5, 6)), requires_grad=True)
    (layer(x) ** 2).sum().backward()
    tl = torch.nn.Linear(6, 4)
    tl.load_state_dict({k: torch.tensor(v) for k, v in layer.state_dict().items()})  # same (out, in) layout
    tx = torch.tensor(x.data, requires_grad=True)
    (tl(tx) ** 2).sum().backward()
    np.testing.assert_allclose(layer.weight.grad.data, tl.weight.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.bias.grad.data, tl.bias.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_every_parameter_of_a_model_gets_a_gradient():
    model = Sequential(Linear(3, 4), ReLU(), Linear(4, 2))
    model(Tensor(np.ones((2, 3)))).sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_dropout_gradient_uses_the_same_mask():
    np.random.seed(1)
    x = Tensor(np.ones((50, 50)), requires_grad=True)
    y = Dropout(0.25)(x)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, y.data)


def test_no_grad_forward_builds_no_graph():
    layer = Linear(3, 2)
    with no_grad():
        y = layer(Tensor(np.ones((1, 3))))
    assert not y.requires_grad and y._ctx is None


# --------------------------------------------------------------------------- Module 04: losses


def test_cross_entropy_gradient():
    target = RNG.integers(0, 5, 4)
    assert gradcheck(lambda v: CrossEntropyLoss()(v, target), [t64((4, 5))])
    assert gradcheck(lambda v: CrossEntropyLoss()(v, target) * 3.0, [t64((4, 5), scale=10.0)])
    t3 = RNG.integers(0, 3, (2, 2))
    assert gradcheck(lambda v: CrossEntropyLoss()(v, t3), [t64((2, 3, 2))])  # (N, C, d) with (N, d) targets
    t_ignored = np.array([1, -100, 4, 0])
    for reduction in ("mean", "sum", "none"):
        loss = CrossEntropyLoss(reduction=reduction, label_smoothing=0.25, ignore_index=-100)
        assert gradcheck(lambda v, loss=loss: loss(v, t_ignored), [t64((4, 5))])
    assert gradcheck(lambda v: MSELoss(reduction="none")(v, np.ones((2, 3))), [t64((2, 3))])
    assert gradcheck(lambda v: BCEWithLogitsLoss(reduction="sum")(v, np.ones((2, 3))), [t64((2, 3))])


def test_nll_loss_gradient():
    target = np.array([2, -100, 0, 2])
    for reduction in ("mean", "sum", "none"):
        assert gradcheck(lambda v, r=reduction: nll_loss(v, target, reduction=r), [t64((4, 3))])
    x = Tensor(np.zeros((3, 4)), requires_grad=True)
    nll_loss(x, np.array([1, 3, -100])).backward()
    # Closed form: -1 / (number of counted targets) at each counted target, 0 elsewhere.
    expected = np.zeros((3, 4))
    expected[0, 1] = expected[1, 3] = -0.5
    np.testing.assert_array_equal(x.grad.data, expected)


def test_nll_loss_gradient_matches_torch(torch):
    log_probs, target = t64((2, 5, 3)), np.array([[4, -100, 0], [2, 2, 1]])
    nll_loss(log_probs, target, reduction="sum").backward()
    tl = torch.tensor(log_probs.data, requires_grad=True)
    torch.nn.functional.nll_loss(tl, torch.tensor(target), reduction="sum").backward()
    np.testing.assert_allclose(log_probs.grad.data, tl.grad.numpy(), rtol=1e-12)


def test_cross_entropy_options_gradients_match_torch(torch):
    F = torch.nn.functional
    logits = t64((2, 5, 3), scale=2.0)  # (N, C, d)
    target = np.array([[4, -1, 0], [2, 2, -1]])
    cross_entropy(logits, target, ignore_index=-1, label_smoothing=0.1).backward()
    tl = torch.tensor(logits.data, requires_grad=True)
    F.cross_entropy(tl, torch.tensor(target), ignore_index=-1, label_smoothing=0.1).backward()
    np.testing.assert_allclose(logits.grad.data, tl.grad.numpy(), rtol=1e-10, atol=1e-14)
    ignored_row = logits.grad.data[0, :, 1]
    np.testing.assert_array_equal(ignored_row, 0.0)  # an ignored target sends no gradient


def test_cross_entropy_gradient_closed_form_at_extreme_logits():
    logits = Tensor([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 1000.0]], requires_grad=True)
    CrossEntropyLoss()(logits, np.array([1, 2])).backward()
    # (softmax - onehot) / N
    np.testing.assert_allclose(logits.grad.data, [[0.5, -0.5, 0.0], [0.0, 0.25, -0.25]], atol=1e-7)


def test_cross_entropy_gradient_matches_torch(torch):
    logits, target = t64((8, 10), scale=3.0), RNG.integers(0, 10, 8)
    CrossEntropyLoss()(logits, target).backward()
    tl = torch.tensor(logits.data, requires_grad=True)
    torch.nn.functional.cross_entropy(tl, torch.tensor(target)).backward()
    np.testing.assert_allclose(logits.grad.data, tl.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_mse_gradient_closed_form():
    p, t = RNG.standard_normal((3, 2)), RNG.standard_normal((3, 2))
    x = Tensor(p, requires_grad=True, dtype=np.float64)
    MSELoss()(x, t).backward()
    np.testing.assert_allclose(x.grad.data, 2 * (p - t) / p.size)
    assert gradcheck(lambda v: MSELoss()(v, Tensor(t, dtype=np.float64)), [t64((3, 2))])


def test_binary_cross_entropy_gradients():
    p = Tensor(RNG.random((4, 3)) * 0.9 + 0.05, requires_grad=True, dtype=np.float64)
    t = (RNG.random((4, 3)) > 0.5).astype(float)
    assert gradcheck(lambda v: BinaryCrossEntropyLoss()(v, t), [p])
    t2 = (RNG.random((5, 2)) > 0.5).astype(float)
    assert gradcheck(lambda v: BCEWithLogitsLoss()(v, t2), [t64((5, 2), scale=3.0)])
    big = Tensor([1000.0, -1000.0, 1000.0], requires_grad=True)
    BCEWithLogitsLoss()(big, np.array([1.0, 0.0, 0.0])).backward()
    np.testing.assert_allclose(big.grad.data, [0.0, 0.0, 1 / 3], atol=1e-7)  # (sigmoid(x) - t) / N


def test_binary_loss_gradients_match_torch(torch):
    x = t64((6,), scale=2.0)
    t = (RNG.random(6) > 0.5).astype(float)
    BCEWithLogitsLoss()(x, t).backward()
    tx = torch.tensor(x.data, requires_grad=True)
    torch.nn.functional.binary_cross_entropy_with_logits(tx, torch.tensor(t)).backward()
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-10)
    p = Tensor(RNG.random(6) * 0.8 + 0.1, requires_grad=True, dtype=np.float64)
    BinaryCrossEntropyLoss()(p, t).backward()
    tp = torch.tensor(p.data, requires_grad=True)
    torch.nn.functional.binary_cross_entropy(tp, torch.tensor(t)).backward()
    np.testing.assert_allclose(p.grad.data, tp.grad.numpy(), rtol=1e-10)
