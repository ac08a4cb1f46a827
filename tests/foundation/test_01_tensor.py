"""Module 01 - Tensor: construction, dtype rules, every op forward (NumPy / closed form) and backward
(float64 finite differences via gradcheck, naive scatter oracles, PyTorch when importable)."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tinytorch.core.autograd import gradcheck
from tinytorch.core.tensor import Tensor, concatenate, maximum, minimum, stack, where

RNG = np.random.default_rng(0)


def t64(shape, low=None, requires_grad=True, seed=None):
    """A float64 tensor of standard normals (or uniform in [low, low+1]) for gradient checks."""
    rng = np.random.default_rng(seed) if seed is not None else RNG
    data = rng.standard_normal(shape) if low is None else low + rng.random(shape)
    return Tensor(data, requires_grad=requires_grad, dtype=np.float64)


# --------------------------------------------------------------------------- construction


def test_float_data_defaults_to_float32_ints_stay_ints():
    assert Tensor([1.0, 2.0]).dtype == np.float32
    assert Tensor(np.zeros(3, dtype=np.float64)).dtype == np.float32
    assert Tensor(2.5).dtype == np.float32
    assert Tensor([1, 2, 3]).dtype.kind == "i"
    assert Tensor(np.array([1, 2], dtype=np.int32)).dtype == np.int32
    assert Tensor([1.0], dtype=np.float64).dtype == np.float64
    assert Tensor([True, False]).dtype == np.bool_


def test_attributes_and_conversions():
    x = Tensor(np.arange(6.0).reshape(2, 3))
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and len(x) == 2
    assert x.grad is None and x.requires_grad is False
    assert isinstance(x.numpy(), np.ndarray)
    assert Tensor([[3.5]]).item() == 3.5
    assert float(Tensor(2.0)) == 2.0
    assert x.tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(ValueError, match="item"):
        x.item()


def test_requires_grad_needs_float_data():
    with pytest.raises(ValueError, match="requires_grad"):
        Tensor([1, 2], requires_grad=True)


def test_repr_is_readable():
    text = repr(Tensor([[1.0, 2.0]], requires_grad=True))
    assert text.startswith("Tensor(") and "1." in text and "requires_grad=True" in text
    assert "dtype=float64" in repr(Tensor([1.0], dtype=np.float64))


def test_tensor_module_imports_alone_and_differentiates():
    code = (
        "import sys\n"
        "from tinytorch.core.tensor import Tensor\n"
        "x = Tensor([1.0, 2.0], requires_grad=True)\n"
        "(x * x).sum().backward()\n"
        "assert x.grad.data.tolist() == [2.0, 4.0]\n"
        "assert not any(m in sys.modules for m in ('tinytorch.core.layers', 'tinytorch.core.losses'))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)


def test_nothing_is_patched_onto_tensor():
    import tinytorch.core.activations  # noqa: F401 - import everything that could patch
    import tinytorch.core.autograd  # noqa: F401
    import tinytorch.core.losses  # noqa: F401
    import tinytorch.core.optimizers  # noqa: F401
    import tinytorch.core.training  # noqa: F401

    for name, value in vars(Tensor).items():
        fn = getattr(value, "fget", value)
        if callable(fn) and hasattr(fn, "__module__"):
            assert fn.__module__ == "tinytorch.core.tensor", name


# --------------------------------------------------------------------------- dtype discipline


def test_float32_stays_float32_with_scalars_and_arrays():
    x = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    for y in (
        x * 2.0,
        2.0 * x,
        x + 1,
        x / 3.0,
        1.0 - x,
        x**2,
        x * np.float64(2.0),
        x + np.ones(3),
        np.ones(3) * x,
    ):
        assert isinstance(y, Tensor) and y.dtype == np.float32
    y = (x * np.float64(3.0) + np.ones(3)).sum()
    y.backward()
    assert x.grad.dtype == np.float32


# --------------------------------------------------------------------------- arithmetic


def test_arithmetic_forward_matches_numpy():
    a, b = RNG.standard_normal((2, 3)), RNG.random((3,)) + 0.5
    A, B = Tensor(a), Tensor(b)
    np.testing.assert_allclose((A + B).data, a + b, rtol=1e-6)
    np.testing.assert_allclose((A - B).data, a - b, rtol=1e-6)
    np.testing.assert_allclose((A * B).data, a * b, rtol=1e-6)
    np.testing.assert_allclose((A / B).data, a / b, rtol=1e-6)
    np.testing.assert_allclose((-A).data, -a, rtol=1e-6)
    np.testing.assert_allclose((B**3).data, b**3, rtol=1e-5)
    np.testing.assert_allclose((2 - A).data, 2 - a, rtol=1e-6)
    np.testing.assert_allclose((2 / B).data, 2 / b, rtol=1e-6)
    np.testing.assert_allclose((2.0**B).data, 2.0**b, rtol=1e-5)
    np.testing.assert_allclose((a + B).data, a + b, rtol=1e-6)


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
def test_broadcasting_forward_and_gradient_against_scatter_oracle(shapes):
    sa, sb = shapes.input_shapes
    out_shape = shapes.result_shape
    rng = np.random.default_rng(7)
    a = Tensor(rng.standard_normal(sa), requires_grad=True, dtype=np.float64)
    b = Tensor(rng.standard_normal(sb), requires_grad=True, dtype=np.float64)
    y = a * b
    assert y.shape == out_shape
    np.testing.assert_allclose(y.data, a.data * b.data)
    y.sum().backward()

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


def test_broadcast_error_names_op_and_both_shapes():
    with pytest.raises(ValueError, match=r"add.*\(2, 3\).*\(4,\)"):
        Tensor(np.ones((2, 3))) + Tensor(np.ones(4))
    with pytest.raises(ValueError, match=r"mul.*\(2, 3\).*\(2,\)"):
        Tensor(np.ones((2, 3))) * np.ones(2)


def test_pow_needs_number_exponent():
    with pytest.raises(ValueError, match="exponent"):
        Tensor([1.0]) ** Tensor([2.0])


# --------------------------------------------------------------------------- matmul


@pytest.mark.parametrize(
    "sa,sb",
    [
        ((2, 3), (3, 4)),
        ((2, 2, 3), (3, 2)),
        ((2, 1, 2, 3), (3, 3, 2)),
        ((3,), (3, 2)),
        ((2, 3), (3,)),
        ((3,), (3,)),
    ],
)
def test_matmul_forward_and_gradient(sa, sb):
    a, b = t64(sa), t64(sb)
    np.testing.assert_allclose((a @ b).data, a.data @ b.data)
    np.testing.assert_allclose(a.matmul(b).data, np.matmul(a.data, b.data))
    assert gradcheck(lambda x, y: x @ y, [a, b])


def test_matmul_matches_torch(torch):
    a, b = t64((2, 4, 3)), t64((3, 5))
    (a @ b).sum().backward()
    ta = torch.tensor(a.data, requires_grad=True)
    tb = torch.tensor(b.data, requires_grad=True)
    (ta @ tb).sum().backward()
    np.testing.assert_allclose(a.grad.data, ta.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(b.grad.data, tb.grad.numpy(), rtol=1e-10)


def test_matmul_shape_error_names_both_shapes():
    with pytest.raises(ValueError, match=r"matmul.*\(2, 3\).*\(4, 5\)"):
        Tensor(np.ones((2, 3))) @ Tensor(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"matmul"):
        Tensor(np.ones((2, 2, 3))) @ Tensor(np.ones((3, 3, 2)))


# --------------------------------------------------------------------------- reductions


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


@settings(max_examples=40, deadline=None)
@given(array_and_axis())
def test_reductions_forward_over_any_axis(case):
    x, axis, keepdims = case
    t = Tensor(x, dtype=np.float64)
    np.testing.assert_allclose(t.sum(axis, keepdims).data, np.sum(x, axis=axis, keepdims=keepdims))
    np.testing.assert_allclose(t.mean(axis, keepdims).data, np.mean(x, axis=axis, keepdims=keepdims))
    np.testing.assert_allclose(t.max(axis, keepdims).data, np.max(x, axis=axis, keepdims=keepdims))
    np.testing.assert_allclose(t.min(axis, keepdims).data, np.min(x, axis=axis, keepdims=keepdims))
    np.testing.assert_allclose(
        t.var(axis, keepdims).data, np.var(x, axis=axis, keepdims=keepdims), atol=1e-12
    )


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
    t.max(axis, keepdims).sum().backward()
    # Oracle: 1 exactly at the maxima (continuous data has no ties).
    np.testing.assert_allclose(t.grad.data, (x == np.max(x, axis=axis, keepdims=True)).astype(float))


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: x.sum(axis=1),
        lambda x: x.mean(axis=(0, 2), keepdims=True),
        lambda x: x.max(axis=-1),
        lambda x: x.min(axis=0, keepdims=True),
        lambda x: x.var(axis=1),
        lambda x: x.var(axis=None, ddof=1),
        lambda x: x.max(),
    ],
    ids=["sum", "mean", "max", "min", "var", "var_unbiased", "max_all"],
)
def test_reduction_gradcheck(fn):
    assert gradcheck(fn, [t64((2, 3, 2), seed=3)])


def test_max_ties_share_gradient_and_argmax():
    x = Tensor([[1.0, 3.0, 3.0], [0.0, -1.0, 2.0]], requires_grad=True)
    x.max().backward()
    np.testing.assert_allclose(x.grad.data, [[0, 0.5, 0.5], [0, 0, 0]])
    np.testing.assert_array_equal(x.argmax(axis=1).data, [1, 2])
    assert x.argmax().item() == 1 and x.argmax(axis=1).requires_grad is False


def test_var_unbiased_matches_torch(torch):
    x = t64((3, 4))
    x.var(axis=1, ddof=1).sum().backward()
    tx = torch.tensor(x.data, requires_grad=True)
    tx.var(dim=1).sum().backward()
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-10)


# --------------------------------------------------------------------------- elementwise math


def test_exp_log_sqrt_abs_clip_forward():
    x = RNG.random(5) + 0.1
    t = Tensor(x, dtype=np.float64)
    np.testing.assert_allclose(t.exp().data, np.exp(x))
    np.testing.assert_allclose(t.log().data, np.log(x))
    np.testing.assert_allclose(t.sqrt().data, np.sqrt(x))
    np.testing.assert_allclose((-t).abs().data, x)
    np.testing.assert_allclose(t.clip(0.3, 0.6).data, np.clip(x, 0.3, 0.6))


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


# --------------------------------------------------------------------------- movement


def test_movement_forward():
    x = np.arange(24.0).reshape(2, 3, 4)
    t = Tensor(x)
    assert t.reshape(6, 4).shape == (6, 4) and t.reshape((4, -1)).shape == (4, 6)
    np.testing.assert_array_equal(t.transpose().data, np.swapaxes(x, -2, -1))
    np.testing.assert_array_equal(t.transpose(0, 2).data, np.swapaxes(x, 0, 2))
    np.testing.assert_array_equal(t.permute(2, 0, 1).data, np.transpose(x, (2, 0, 1)))
    np.testing.assert_array_equal(Tensor(x[0]).T.data, x[0].T)
    assert t.unsqueeze(1).shape == (2, 1, 3, 4) and t.unsqueeze(-1).shape == (2, 3, 4, 1)
    assert t.unsqueeze(0).squeeze(0).shape == (2, 3, 4) and Tensor(np.ones((1, 3, 1))).squeeze().shape == (3,)
    assert Tensor(np.ones((3, 1))).expand(2, 3, 4).shape == (2, 3, 4)
    assert Tensor(np.ones((3, 1))).expand(-1, 5).shape == (3, 5)
    assert t.flatten(1).shape == (2, 12)


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: x.reshape(4, 3) * 1.5,
        lambda x: x.transpose(0, 1) * 2.0,
        lambda x: x.permute(1, 0, 2).reshape(3, 4),
        lambda x: x.T,
        lambda x: x.unsqueeze(1).squeeze(1),
        lambda x: x[:, :1].expand(2, 4, 3) * 1.0,
    ],
    ids=["reshape", "transpose", "permute", "T", "unsqueeze", "expand"],
)
def test_movement_gradients(fn):
    assert gradcheck(fn, [t64((2, 2, 3))])


def test_movement_errors():
    with pytest.raises(ValueError, match=r"reshape.*\(2, 3\)"):
        Tensor(np.ones((2, 3))).reshape(4, 2)
    with pytest.raises(ValueError, match="permute"):
        Tensor(np.ones((2, 3))).permute(0)
    for dims in ((0, 0), (0, 2), (1, 1, 0)):
        with pytest.raises(ValueError, match="permute"):
            Tensor(np.ones((2, 3))).permute(*dims)
    with pytest.raises(ValueError, match="transpose"):
        Tensor(np.ones((2, 3))).transpose(0, 2)
    with pytest.raises(ValueError, match="expand"):
        Tensor(np.ones((2, 3))).expand(4, 3)


def test_indexing_forward_and_gradients():
    x = np.arange(12.0).reshape(3, 4)
    t = Tensor(x)
    np.testing.assert_array_equal(t[1].data, x[1])
    np.testing.assert_array_equal(t[:, 1:3].data, x[:, 1:3])
    np.testing.assert_array_equal(t[np.array([2, 0])].data, x[[2, 0]])
    np.testing.assert_array_equal(t[Tensor([0, 0, 2]), 1].data, x[[0, 0, 2], 1])
    np.testing.assert_array_equal(t[x > 5].data, x[x > 5])
    assert gradcheck(lambda a: a[1:, ::2] * 3.0, [t64((3, 4))])
    assert gradcheck(lambda a: a[np.array([0, 2, 0])], [t64((3, 4))])


def test_repeated_integer_index_accumulates_every_use():
    w = Tensor(np.ones((4, 2)), requires_grad=True)
    w[np.array([1, 1, 3, 1])].sum().backward()
    # Naive oracle: count how often each row was read.
    counts = np.bincount([1, 1, 3, 1], minlength=4)[:, None] * np.ones((1, 2))
    np.testing.assert_array_equal(w.grad.data, counts)


def test_pad_concatenate_stack():
    x = RNG.standard_normal((2, 3))
    t = Tensor(x, dtype=np.float64)
    np.testing.assert_array_equal(
        t.pad(((1, 0), (2, 1)), value=-1.0).data, np.pad(x, ((1, 0), (2, 1)), constant_values=-1)
    )
    np.testing.assert_array_equal(t.pad(1).data, np.pad(x, 1))
    np.testing.assert_array_equal(concatenate([t, t * 2.0], axis=1).data, np.concatenate([x, 2 * x], 1))
    np.testing.assert_array_equal(stack([t, t], axis=2).data, np.stack([x, x], 2))
    assert gradcheck(lambda a: a.pad(((0, 1), (2, 0)), 5.0), [t64((2, 3))])
    assert gradcheck(lambda a, b: concatenate([a, b, a], axis=1), [t64((2, 3)), t64((2, 1))])
    assert gradcheck(lambda a, b: stack([a, b], axis=-1), [t64((2, 3)), t64((2, 3))])
    with pytest.raises(ValueError, match="concatenate"):
        concatenate([t, Tensor(np.ones((3, 3)))], axis=1)
    with pytest.raises(ValueError, match="stack"):
        stack([t, Tensor(np.ones((3, 3)))])
    with pytest.raises(ValueError, match="pad_width"):
        t.pad(((1, 1), (1, 1), (1, 1)))


def test_where_maximum_minimum_masked_fill():
    a, b = RNG.standard_normal((2, 3)), RNG.standard_normal((3,))
    A, B = Tensor(a, dtype=np.float64), Tensor(b, dtype=np.float64)
    np.testing.assert_array_equal(where(a > 0, A, B).data, np.where(a > 0, a, b))
    np.testing.assert_array_equal(maximum(A, B).data, np.maximum(a, b))
    np.testing.assert_array_equal(minimum(A, 0.0).data, np.minimum(a, 0))
    np.testing.assert_array_equal(A.masked_fill(a > 0, -9.0).data, np.where(a > 0, -9, a))
    cond = a > 0
    assert gradcheck(lambda x, y: where(cond, x, y), [t64((2, 3)), t64((3,))])
    assert gradcheck(lambda x, y: maximum(x, y), [t64((2, 3)), t64((3,))])
    assert gradcheck(lambda x, y: x.minimum(y), [t64((2, 3)), t64((3,))])
    assert gradcheck(lambda x: x.masked_fill(cond, 0.0), [t64((2, 3))])


# --------------------------------------------------------------------------- autograd surface


def test_backward_on_non_scalar_needs_gradient():
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(ValueError, match="gradient"):
        (x * 2.0).backward()
    (x * 2.0).backward(gradient=np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(x.grad.data, [2, 4, 6])
    with pytest.raises(ValueError, match="gradient"):
        (x * 2.0).backward(gradient=np.ones(4))


def test_detach_zero_grad_comparisons_astype():
    x = Tensor([1.0, -2.0, 3.0], requires_grad=True)
    d = x.detach()
    assert d.requires_grad is False and np.shares_memory(d.data, x.data)
    (x * d).sum().backward()
    np.testing.assert_allclose(x.grad.data, [1, -2, 3])  # d is a constant
    x.zero_grad()
    assert x.grad is None
    for mask in (x > 0, x >= 1.0, x < 0, x <= -2.0, x == 3.0, x != 1.0):
        assert mask.dtype == np.bool_ and not mask.requires_grad
    np.testing.assert_array_equal((x > 0).data, [True, False, True])
    assert x.astype(np.int64).dtype == np.int64
    assert Tensor([1, 2]).float().dtype == np.float32
    h = x.double()
    assert h.dtype == np.float64
    h.sum().backward()
    assert x.grad.dtype == np.float32


def test_setitem_writes_data_but_not_into_a_recording_tensor():
    t = Tensor(np.zeros(3))
    t[1] = 5.0
    np.testing.assert_array_equal(t.data, [0, 5, 0])
    w = Tensor(np.zeros(3), requires_grad=True)
    with pytest.raises(RuntimeError):
        w[0] = 1.0


def test_int_and_float_operands_meet_in_float32():
    x = Tensor(np.ones(3), requires_grad=True)
    i = Tensor([1, 2, 3])
    for y in (x / i, i / x, i * x, x * i, x * np.array([1, 2, 3]), i / 2, 2 / i, i / i, i * 2.5):
        assert y.dtype == np.float32
    assert (i + 1).dtype.kind == "i"
    np.testing.assert_allclose((i / Tensor([2, 2, 2])).data, [0.5, 1.0, 1.5])
    (i * x + x / i).sum().backward()
    np.testing.assert_allclose(x.grad.data, [2.0, 2.5, 1 / 3 + 3], rtol=1e-6)


def test_broadcast_to_and_cat_alias():
    from tinytorch.core.tensor import cat

    b = Tensor(np.arange(3.0), requires_grad=True)
    y = b.broadcast_to((2, 3))
    np.testing.assert_array_equal(y.data, np.broadcast_to(np.arange(3.0), (2, 3)))
    y.sum().backward()
    np.testing.assert_array_equal(b.grad.data, [2.0, 2.0, 2.0])
    assert cat([b, b]).shape == (6,)
