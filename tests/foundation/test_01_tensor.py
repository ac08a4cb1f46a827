"""Module 01 - Tensor: construction, dtype rules, every op's forward value (against NumPy, closed forms
and naive loops) and its errors. Values only: the derivatives of these ops are Module 05's tests."""

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tinytorch.core.tensor import Tensor, concatenate, maximum, minimum, stack, where

RNG = np.random.default_rng(0)


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
    assert x.shape == (2, 3) and x.ndim == 2 and len(x) == 2
    assert x.size() == (2, 3) and x.size(0) == 2 and x.size(-1) == 3 and x.numel() == 6 and x.dim() == 2
    assert Tensor(1.0).size() == () and Tensor(1.0).numel() == 1 and Tensor(1.0).dim() == 0
    for bad in (2, -3, 1.0):
        with pytest.raises(ValueError, match="size: argument 'dim'"):
            x.size(bad)
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


def test_tensor_module_imports_alone():
    code = (
        "import sys\n"
        "from tinytorch.core.tensor import Tensor\n"
        "assert (Tensor([1.0, 2.0]) * 3).data.tolist() == [3.0, 6.0]\n"
        "later = ('activations', 'module', 'layers', 'losses', 'optimizers', 'training')\n"
        "assert not any(f'tinytorch.core.{m}' in sys.modules for m in later)\n"
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
    x = Tensor(np.ones(3, dtype=np.float32))
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


@settings(max_examples=40, deadline=None)
@given(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3))
def test_broadcasting_forward_against_naive_loop(shapes):
    sa, sb = shapes.input_shapes
    out_shape = shapes.result_shape
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    y = Tensor(a, dtype=np.float64) * Tensor(b, dtype=np.float64)
    assert y.shape == out_shape
    # Oracle: every output position reads a (and b) at the position with size-1 dims pinned to 0.
    expected = np.zeros(out_shape)
    for pos in np.ndindex(*out_shape):
        pa = tuple(0 if n == 1 else pos[len(out_shape) - len(sa) + k] for k, n in enumerate(sa))
        pb = tuple(0 if n == 1 else pos[len(out_shape) - len(sb) + k] for k, n in enumerate(sb))
        expected[pos] = a[pa] * b[pb]
    np.testing.assert_allclose(y.data, expected)


def test_broadcast_error_names_op_and_both_shapes():
    with pytest.raises(ValueError, match=r"add.*\(2, 3\).*\(4,\)"):
        Tensor(np.ones((2, 3))) + Tensor(np.ones(4))
    with pytest.raises(ValueError, match=r"mul.*\(2, 3\).*\(2,\)"):
        Tensor(np.ones((2, 3))) * np.ones(2)


def test_pow_with_tensor_exponent_and_scalar_base():
    a, b = RNG.random((2, 3)) + 0.5, RNG.standard_normal(3)
    A, B = Tensor(a, dtype=np.float64), Tensor(b, dtype=np.float64)
    np.testing.assert_allclose((A**B).data, a**b)
    np.testing.assert_allclose(A.pow(B).data, a**b)
    np.testing.assert_allclose(A.pow(2).data, a**2)
    np.testing.assert_allclose((a**B).data, a**b)  # ndarray ** tensor: the tensor's __rpow__
    # Closed forms PyTorch gives: a negative base with whole exponents, and 0 ** 0 = 1.
    np.testing.assert_array_equal(((-2.0) ** Tensor([0.0, 1.0, 2.0, 3.0])).data, [1, -2, 4, -8])
    np.testing.assert_array_equal((0.0 ** Tensor([0.0, 1.0, 2.0])).data, [1, 0, 0])
    np.testing.assert_array_equal((Tensor([0.0, 3.0]) ** 0).data, [1, 1])
    assert (2 ** Tensor([1, 2, 3])).data.tolist() == [2, 4, 8]  # int ** int stays int
    with pytest.raises(TypeError, match="operand"):
        Tensor([1.0]) ** "2"


# --------------------------------------------------------------------------- matmul


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
def test_matmul_forward(sa, sb):
    a, b = RNG.standard_normal(sa), RNG.standard_normal(sb)
    A, B = Tensor(a, dtype=np.float64), Tensor(b, dtype=np.float64)
    np.testing.assert_allclose((A @ B).data, np.matmul(a, b))
    np.testing.assert_allclose(A.matmul(B).data, np.matmul(a, b))


def test_matmul_against_naive_loop():
    a, b = RNG.standard_normal((3, 4)), RNG.standard_normal((4, 2))
    expected = np.array([[sum(a[i, k] * b[k, j] for k in range(4)) for j in range(2)] for i in range(3)])
    np.testing.assert_allclose((Tensor(a, dtype=np.float64) @ Tensor(b, dtype=np.float64)).data, expected)


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
    np.testing.assert_allclose(t.amax(axis, keepdims).data, np.max(x, axis=axis, keepdims=keepdims))
    np.testing.assert_allclose(t.amin(axis, keepdims).data, np.min(x, axis=axis, keepdims=keepdims))
    np.testing.assert_allclose(
        t.var(axis, keepdim=keepdims, correction=0).data, np.var(x, axis=axis, keepdims=keepdims), atol=1e-12
    )
    # NumPy's names as keyword aliases give the same numbers.
    np.testing.assert_array_equal(t.sum(axis=axis, keepdims=keepdims).data, t.sum(axis, keepdims).data)


def test_argmax_argmin():
    x = Tensor([[1.0, 3.0, 3.0], [0.0, -1.0, 2.0]])
    np.testing.assert_array_equal(x.argmax(axis=1).data, [1, 2])
    np.testing.assert_array_equal(x.argmin(axis=0).data, [1, 1, 1])
    assert x.argmax().item() == 1 and x.argmax(axis=1).requires_grad is False


def test_var_std_unbiased_by_default_as_pytorch():
    x = RNG.standard_normal((3, 4))
    t = Tensor(x, dtype=np.float64)
    np.testing.assert_allclose(t.var(dim=1).data, np.var(x, axis=1, ddof=1))
    np.testing.assert_allclose(t.var(1, True).data, np.var(x, axis=1, ddof=1))
    np.testing.assert_allclose(t.var(1, False).data, np.var(x, axis=1))
    np.testing.assert_allclose(t.var(correction=0).data, np.var(x))
    np.testing.assert_allclose(t.std(dim=0, keepdim=True).data, np.std(x, axis=0, ddof=1, keepdims=True))
    np.testing.assert_allclose(t.std(unbiased=False).data, np.std(x))
    with pytest.raises(ValueError, match="correction"):
        t.var(correction=-1)
    with pytest.raises(ValueError, match="not both"):
        t.std(unbiased=True, correction=1)


# --------------------------------------------------------------------------- elementwise math


def test_exp_log_sqrt_abs_clip_forward():
    x = RNG.random(5) + 0.1
    t = Tensor(x, dtype=np.float64)
    np.testing.assert_allclose(t.exp().data, np.exp(x))
    np.testing.assert_allclose(t.log().data, np.log(x))
    np.testing.assert_allclose(t.sqrt().data, np.sqrt(x))
    np.testing.assert_allclose((-t).abs().data, x)
    np.testing.assert_allclose(t.clip(0.3, 0.6).data, np.clip(x, 0.3, 0.6))


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


def test_indexing_forward():
    x = np.arange(12.0).reshape(3, 4)
    t = Tensor(x)
    np.testing.assert_array_equal(t[1].data, x[1])
    np.testing.assert_array_equal(t[:, 1:3].data, x[:, 1:3])
    np.testing.assert_array_equal(t[np.array([2, 0])].data, x[[2, 0]])
    np.testing.assert_array_equal(t[Tensor([0, 0, 2]), 1].data, x[[0, 0, 2], 1])
    np.testing.assert_array_equal(t[x > 5].data, x[x > 5])


def test_pad_concatenate_stack():
    x = RNG.standard_normal((2, 3))
    t = Tensor(x, dtype=np.float64)
    np.testing.assert_array_equal(
        t.pad(((1, 0), (2, 1)), value=-1.0).data, np.pad(x, ((1, 0), (2, 1)), constant_values=-1)
    )
    np.testing.assert_array_equal(t.pad(1).data, np.pad(x, 1))
    np.testing.assert_array_equal(concatenate([t, t * 2.0], axis=1).data, np.concatenate([x, 2 * x], 1))
    np.testing.assert_array_equal(stack([t, t], axis=2).data, np.stack([x, x], 2))
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


# --------------------------------------------------------------------------- other methods


def test_detach_comparisons_astype_float_double():
    x = Tensor([1.0, -2.0, 3.0])
    d = x.detach()
    assert d.requires_grad is False and np.shares_memory(d.data, x.data)
    for mask in (x > 0, x >= 1.0, x < 0, x <= -2.0, x == 3.0, x != 1.0):
        assert mask.dtype == np.bool_ and not mask.requires_grad
    np.testing.assert_array_equal((x > 0).data, [True, False, True])
    assert x.astype(np.int64).dtype == np.int64
    assert Tensor([1, 2]).float().dtype == np.float32
    assert x.double().dtype == np.float64 and x.double().data.tolist() == [1.0, -2.0, 3.0]


def test_setitem_writes_data_but_not_into_a_recording_tensor():
    t = Tensor(np.zeros(3))
    t[1] = 5.0
    np.testing.assert_array_equal(t.data, [0, 5, 0])
    w = Tensor(np.zeros(3), requires_grad=True)
    with pytest.raises(RuntimeError):
        w[0] = 1.0


def test_int_and_float_operands_meet_in_float32():
    x = Tensor(np.ones(3))
    i = Tensor([1, 2, 3])
    for y in (x / i, i / x, i * x, x * i, x * np.array([1, 2, 3]), i / 2, 2 / i, i / i, i * 2.5):
        assert y.dtype == np.float32
    assert (i + 1).dtype.kind == "i"
    np.testing.assert_allclose((i / Tensor([2, 2, 2])).data, [0.5, 1.0, 1.5])
    np.testing.assert_allclose((i * x + x / i).data, [2.0, 2.5, 1 / 3 + 3], rtol=1e-6)


def test_broadcast_to_and_cat_alias():
    from tinytorch.core.tensor import cat

    b = Tensor(np.arange(3.0))
    np.testing.assert_array_equal(b.broadcast_to((2, 3)).data, np.broadcast_to(np.arange(3.0), (2, 3)))
    assert cat([b, b]).shape == (6,)


def test_results_record_nothing_without_requires_grad():
    """Module 01 computes values: with no input requiring grad no graph node is kept."""
    a, b = Tensor(np.ones((2, 3))), Tensor(np.ones(3))
    for y in (a + b, a * b, a @ b, a.sum(axis=0), a.reshape(3, 2), a[0], (a - b).exp()):
        assert y.requires_grad is False and y.is_leaf


def test_importing_tensor_keeps_freed_memory_unless_told_not_to():
    """The allocator setting is made once at import (glibc only) and can be switched off."""
    import platform

    code = (
        "from tinytorch.core.memory import allocator_settings as s\nimport tinytorch.core.tensor\nprint(s())"
    )
    env = dict(os.environ, TINYTORCH_MALLOC="default")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    assert "'tuned': False" in out.stdout and "TINYTORCH_MALLOC=default" in out.stdout
    env.pop("TINYTORCH_MALLOC")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert "'tuned': True" in out.stdout and "'mmap_threshold': 268435456" in out.stdout


# --------------------------------------------------------------------------- PyTorch's names and layouts


def test_indexing_places_dims_as_pytorch():
    """An int and an array separated by a slice/None/...: PyTorch applies the int first (closed forms)."""
    x = np.arange(24.0).reshape(2, 3, 4)
    t = Tensor(x)
    np.testing.assert_array_equal(
        t[0, :, [0, 1]].data, x[0][:, [0, 1]]
    )  # (3, 2); NumPy's x[0, :, [0, 1]] is (2, 3)
    assert t[0, :, [0, 1]].shape == (3, 2)
    assert t[0, None, [0, 1]].shape == (1, 2, 4)
    np.testing.assert_array_equal(t[0, ..., [1, 2]].data, x[0][..., [1, 2]])
    np.testing.assert_array_equal(t[[1, 0], :, 0].data, x[[1, 0], :, 0])  # array first: the same in both
    np.testing.assert_array_equal(t[:, 0, [3, 1]].data, x[:, 0, [3, 1]])  # adjacent: the same in both
    np.testing.assert_array_equal(t[Tensor(1), :, [0, 0]].data, x[1][:, [0, 0]])  # a 0-d index is an int
    np.testing.assert_array_equal(t[1, :, x[1, 0] > 5].data, x[1][:, x[1, 0] > 5])  # a mask as well
    np.testing.assert_array_equal(t[[0, 1], [2, 0]].data, x[[0, 1], [2, 0]])
    assert t[0, True].shape == (1, 3, 4)


def test_indexing_matches_torch(torch):
    x = np.arange(120.0).reshape(2, 3, 4, 5)
    tx = torch.tensor(x)
    mask = x[0, 0, :, 0] > 20
    for index in [
        (0, slice(None), [0, 1]),
        (1, slice(None), slice(None), [4, 0, 4]),
        (slice(None), 2, slice(1, 3), [1, 2]),
        (0, None, [2, 1], slice(None), 1),
        (Ellipsis, 0, [1, 2]),
        ([1, 0], slice(None), [0, 3], 2),
        (1, slice(None), mask),
        (None, 1, [0, 2], Ellipsis, [4, 4]),
        ([[0], [1]], [[0, 1, 2]]),
    ]:
        torch_index = tuple(torch.tensor(i) if isinstance(i, (list, np.ndarray)) else i for i in index)
        expected = tx[torch_index].numpy()
        ours = Tensor(x, dtype=np.float64)[index]
        assert ours.shape == expected.shape, index
        np.testing.assert_array_equal(ours.data, expected)


def test_squeeze_with_a_tuple_of_dims():
    t = Tensor(np.ones((1, 3, 1, 2, 1)))
    assert t.squeeze((0, 2)).shape == (3, 2, 1)
    assert t.squeeze((0, -1)).shape == (3, 1, 2)
    assert t.squeeze((1, 2)).shape == (1, 3, 2, 1)  # dim 1 (size 3) is left alone, as PyTorch
    assert t.squeeze(2).shape == (1, 3, 2, 1) and t.squeeze().shape == (3, 2)
    with pytest.raises(ValueError, match="squeeze"):
        t.squeeze((0, 5))


def test_reductions_over_a_0d_tensor():
    """As PyTorch: dim 0 or -1 of a scalar is the scalar itself (softmax: Module 02's tests)."""
    s = Tensor(3.0)
    for dim in (0, -1):
        for keepdim in (False, True):
            assert s.sum(dim, keepdim).shape == () and s.sum(dim, keepdim).item() == 3.0
        assert s.mean(dim).item() == 3.0 and s.amax(dim).item() == 3.0 and s.amin(dim).item() == 3.0
        assert s.prod(dim).item() == 3.0 and s.cumsum(dim).item() == 3.0 and s.logsumexp(dim).item() == 3.0
        values, indices = s.max(dim)
        assert values.item() == 3.0 and indices.item() == 0 and values.shape == indices.shape == ()
        assert s.argmax(dim).item() == 0 and s.var(dim, unbiased=False).item() == 0.0
        assert s.sort(dim).values.item() == 3.0 and s.flip(dim).item() == 3.0
    with pytest.raises(ValueError, match="dim"):
        s.sum(1)


def test_dim_and_keepdim_everywhere_with_numpy_aliases():
    x = RNG.standard_normal((2, 3, 4))
    t = Tensor(x, dtype=np.float64)
    np.testing.assert_allclose(t.sum(dim=(0, 2), keepdim=True).data, x.sum(axis=(0, 2), keepdims=True))
    np.testing.assert_allclose(t.mean(axis=-1, keepdims=True).data, x.mean(axis=-1, keepdims=True))
    np.testing.assert_allclose(t.sum(dim=()).data, x.sum())  # an empty dim list reduces all (PyTorch)
    np.testing.assert_array_equal(t.argmax(dim=1, keepdim=True).data, x.argmax(axis=1)[:, None, :])
    np.testing.assert_array_equal(concatenate([t, t], dim=2).data, np.concatenate([x, x], axis=2))
    np.testing.assert_array_equal(stack([t, t], axis=-1).data, np.stack([x, x], axis=-1))
    np.testing.assert_array_equal(t.cumsum(axis=1).data, np.cumsum(x, axis=1))
    with pytest.raises(ValueError, match="not both"):
        t.sum(dim=0, axis=1)
    with pytest.raises(ValueError, match="repeats"):
        t.sum(dim=(0, -3))


def test_max_min_with_dim_return_values_and_indices():
    x = Tensor([[1.0, 5.0, 5.0], [7.0, 0.0, -2.0]])
    out = x.max(dim=1)
    assert isinstance(out, tuple) and out._fields == ("values", "indices")
    np.testing.assert_array_equal(out.values.data, [5.0, 7.0])
    np.testing.assert_array_equal(out.indices.data, [1, 0])  # the first maximum, as PyTorch
    values, indices = x.min(0, keepdim=True)
    np.testing.assert_array_equal(values.data, [[1.0, 0.0, -2.0]])
    np.testing.assert_array_equal(indices.data, [[0, 1, 1]])
    assert isinstance(x.max(), Tensor) and x.max().item() == 7.0 and x.min().item() == -2.0
    np.testing.assert_array_equal(x.max(Tensor([2.0, 2.0, 2.0])).data, np.maximum(x.data, 2.0))
    assert indices.dtype == np.int64 and not values.requires_grad
    with pytest.raises(ValueError, match="size 0"):
        Tensor(np.zeros((2, 0))).max(1)


def test_new_reductions_forward():
    x = RNG.standard_normal((3, 4)) * 2
    t = Tensor(x, dtype=np.float64)
    np.testing.assert_allclose(t.prod(1).data, np.prod(x, axis=1))
    np.testing.assert_allclose(t.prod().data, np.prod(x))
    np.testing.assert_allclose(t.prod(0, keepdim=True).data, np.prod(x, axis=0, keepdims=True))
    naive = np.array([np.log(sum(np.exp(v) for v in row)) for row in x])  # naive loop
    np.testing.assert_allclose(t.logsumexp(1).data, naive)
    np.testing.assert_allclose(t.logsumexp((0, 1)).data, np.log(np.exp(x).sum()))
    big = Tensor([[1000.0, 1000.0], [-np.inf, -np.inf]], dtype=np.float64)
    with np.errstate(divide="ignore"):  # log(0) = -inf for the all -inf row: the right answer
        np.testing.assert_allclose(big.logsumexp(1).data, [1000.0 + np.log(2.0), -np.inf])
    np.testing.assert_allclose(t.cumsum(1).data, [np.cumsum(row) for row in x])
    b = Tensor([[True, False], [True, True]])
    assert b.all().item() is False and b.any().item() is True
    np.testing.assert_array_equal(b.all(dim=1).data, [False, True])
    np.testing.assert_array_equal(Tensor([[0.0, 2.0]]).any(dim=0, keepdim=True).data, [[False, True]])


def test_sort_and_topk():
    x = Tensor([[3.0, 1.0, 2.0, 1.0], [0.0, 5.0, -1.0, 5.0]])
    values, indices = x.sort(dim=1)
    np.testing.assert_array_equal(values.data, [[1, 1, 2, 3], [-1, 0, 5, 5]])
    np.testing.assert_array_equal(indices.data, [[1, 3, 2, 0], [2, 0, 1, 3]])  # ties keep their order
    values, indices = x.sort(dim=1, descending=True)
    np.testing.assert_array_equal(values.data, [[3, 2, 1, 1], [5, 5, 0, -1]])
    np.testing.assert_array_equal(indices.data, [[0, 2, 1, 3], [1, 3, 0, 2]])
    np.testing.assert_array_equal(x.sort(0).values.data, np.sort(x.data, axis=0))
    values, indices = x.topk(2)
    np.testing.assert_array_equal(values.data, [[3, 2], [5, 5]])
    np.testing.assert_array_equal(indices.data, [[0, 2], [1, 3]])
    np.testing.assert_array_equal(x.topk(1, dim=0, largest=False).values.data, [[0, 1, -1, 1]])
    for k in (-1, 5, 1.0):
        with pytest.raises(ValueError, match="'k'"):
            x.topk(k)


def test_sort_matches_torch_on_distinct_values(torch):
    x = RNG.permutation(60).reshape(3, 4, 5).astype(float)
    for dim in (0, 1, -1):
        for descending in (False, True):
            ours = Tensor(x, dtype=np.float64).sort(dim, descending)
            theirs = torch.tensor(x).sort(dim, descending)
            np.testing.assert_array_equal(ours.values.data, theirs.values.numpy())
            np.testing.assert_array_equal(ours.indices.data, theirs.indices.numpy())
        ours = Tensor(x, dtype=np.float64).topk(3, dim)
        theirs = torch.tensor(x).topk(3, dim)
        np.testing.assert_array_equal(ours.indices.data, theirs.indices.numpy())


def test_movement_and_shape_methods():
    x = RNG.standard_normal((2, 3, 4))
    t = Tensor(x, dtype=np.float64)
    c = t.clone()
    assert not np.shares_memory(c.data, t.data) and np.array_equal(c.data, x)
    m = Tensor(x[0], dtype=np.float64)
    np.testing.assert_array_equal(m.t().data, x[0].T)
    assert Tensor([1.0, 2.0]).t().shape == (2,)
    with pytest.raises(ValueError, match="t:"):
        t.t()
    np.testing.assert_array_equal(t.flip(0).data, x[::-1])
    np.testing.assert_array_equal(t.flip((0, 2)).data, x[::-1, :, ::-1])
    np.testing.assert_array_equal(t.flip(-1, 1).data, x[:, ::-1, ::-1])
    np.testing.assert_array_equal(t.tril().data, np.tril(x))
    np.testing.assert_array_equal(t.triu(1).data, np.triu(x, 1))
    np.testing.assert_array_equal(Tensor(np.ones((3, 3))).tril(-1).data, [[0, 0, 0], [1, 0, 0], [1, 1, 0]])
    with pytest.raises(ValueError, match="tril"):
        Tensor([1.0, 2.0]).tril()
    assert (
        t.flatten(0, 1).shape == (6, 4)
        and t.flatten(1).shape == (2, 12)
        and Tensor(2.0).flatten().shape == (1,)
    )


def test_split_and_chunk():
    t = Tensor(np.arange(10.0).reshape(5, 2))
    assert [p.shape for p in t.split(2)] == [(2, 2), (2, 2), (1, 2)]
    assert [p.shape for p in t.split([1, 4])] == [(1, 2), (4, 2)]
    assert [p.shape for p in t.split(1, dim=1)] == [(5, 1), (5, 1)]
    np.testing.assert_array_equal(concatenate(t.split([3, 2])).data, t.data)
    assert [p.shape for p in t.chunk(3)] == [(2, 2), (2, 2), (1, 2)]
    assert [p.shape for p in t.chunk(5, dim=1)] == [(5, 1), (5, 1)]  # fewer pieces than asked (PyTorch)
    with pytest.raises(ValueError, match="sections"):
        t.split([2, 2])
    with pytest.raises(ValueError, match="split_size"):
        t.split(0)
    with pytest.raises(ValueError, match="chunks"):
        t.chunk(0)


def test_gather_against_naive_loop():
    x = RNG.standard_normal((3, 4))
    index = np.array([[0, 0, 3], [1, 2, 1]])  # smaller than x along dim 0 too (allowed, as PyTorch)
    ours = Tensor(x, dtype=np.float64).gather(1, index)
    expected = np.array([[x[i, index[i, j]] for j in range(3)] for i in range(2)])
    np.testing.assert_array_equal(ours.data, expected)
    index0 = np.array([[2, 0, 1, 1]])
    np.testing.assert_array_equal(
        Tensor(x, dtype=np.float64).gather(0, index0).data, [[x[2, 0], x[0, 1], x[1, 2], x[1, 3]]]
    )
    with pytest.raises(ValueError, match="outside"):
        Tensor(x).gather(1, np.array([[4]]))
    with pytest.raises(ValueError, match="rank"):
        Tensor(x).gather(1, np.array([1]))
    with pytest.raises(ValueError, match="integers"):
        Tensor(x).gather(1, np.array([[1.0]]))
    with pytest.raises(ValueError, match="larger"):
        Tensor(x).gather(1, np.zeros((4, 1), dtype=np.int64))


def test_elementwise_newcomers():
    x = RNG.standard_normal(7) * 3
    t = Tensor(x, dtype=np.float64)
    np.testing.assert_allclose(t.sin().data, np.sin(x))
    np.testing.assert_allclose(t.cos().data, np.cos(x))
    np.testing.assert_array_equal(Tensor([-2.0, 0.0, 3.0]).sign().data, [-1, 0, 1])
    a, b = Tensor([7.0, -7.0, 7.5, -7.5]), Tensor([2.0, 2.0, -2.0, -2.0])
    np.testing.assert_array_equal((a // b).data, [3, -4, -4, 3])  # floor, as PyTorch's floor_divide
    np.testing.assert_array_equal((a % b).data, [1, 1, -0.5, -1.5])  # sign of the divisor, as Python
    np.testing.assert_array_equal((7 // Tensor([2, -2])).data, [3, -4])
    np.testing.assert_array_equal((7.0 % Tensor([2.0, -2.0])).data, [1, -1])
    assert (Tensor([7, 8]) // 2).dtype.kind == "i"


def test_factories():
    from tinytorch.core.tensor import (
        arange,
        eye,
        full,
        full_like,
        ones,
        ones_like,
        rand,
        rand_like,
        randn,
        randn_like,
        zeros,
        zeros_like,
    )

    assert zeros(2, 3).shape == (2, 3) and zeros((2, 3)).dtype == np.float32 and zeros(()).shape == ()
    assert ones([4]).data.tolist() == [1, 1, 1, 1] and ones(2, dtype=np.float64).dtype == np.float64
    assert full((2,), 7).dtype == np.int64 and full((2,), 0.5).dtype == np.float32
    assert full((1,), True).dtype == np.bool_ and full((2, 2), 3.0).data.tolist() == [[3, 3], [3, 3]]
    assert arange(4).data.tolist() == [0, 1, 2, 3] and arange(4).dtype == np.int64
    assert arange(1, 2, 0.25).dtype == np.float32 and arange(1, 2, 0.25).data.tolist() == [1, 1.25, 1.5, 1.75]
    assert arange(5, 0, -2).data.tolist() == [5, 3, 1]
    np.testing.assert_array_equal(eye(3).data, np.eye(3))
    assert eye(2, 3).shape == (2, 3)
    x = Tensor(np.ones((2, 2)), dtype=np.float64)
    assert zeros_like(x).dtype == np.float64 and ones_like(x).shape == (2, 2)
    assert full_like(x, 2).data.tolist() == [[2, 2], [2, 2]] and full_like(x, 2).dtype == np.float64
    assert rand_like(Tensor([1, 2])).dtype == np.float32 and randn_like(x).dtype == np.float64
    assert zeros(3, requires_grad=True).requires_grad
    u = rand(2000)
    assert (
        u.dtype == np.float32 and 0 <= u.data.min() and u.data.max() < 1 and abs(u.data.mean() - 0.5) < 0.05
    )
    n = randn(4000)
    assert abs(n.data.mean()) < 0.1 and abs(n.data.std() - 1) < 0.1
    for bad in ((-1,), (2.0,), ("a",)):
        with pytest.raises(ValueError, match="size"):
            zeros(*bad)
    with pytest.raises(ValueError, match="step"):
        arange(0, 3, 0)


def test_manual_seed_repeats_random_tensors_and_layer_init():
    from tinytorch.core.tensor import manual_seed, rand, randn

    manual_seed(123)
    first = (rand(3).data, randn(2, 2).data, np.random.random_sample(2))
    manual_seed(123)
    second = (rand(3).data, randn(2, 2).data, np.random.random_sample(2))  # NumPy's global generator
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    for bad in (-1, 2**32, 1.5, True):
        with pytest.raises(ValueError, match="seed"):
            manual_seed(bad)


# --------------------------------------------------------------------------- NumPy interoperation


def test_numpy_sees_the_data():
    t = Tensor([[1.0, -2.0]])
    assert np.asarray(t) is t.data
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    copied = np.array(t, copy=True)
    copied[0, 0] = 9.0
    assert t.data[0, 0] == 1.0
    np.testing.assert_array_equal(np.stack([t, t]), np.stack([t.data, t.data]))


def test_numpy_ufuncs_return_arrays_without_graph():
    p = Tensor([[1.0, -2.0], [0.5, -0.25]], requires_grad=True)
    for ufunc in (np.abs, np.exp, np.sqrt, np.isnan, np.sign):
        with np.errstate(invalid="ignore"):
            out = ufunc(p)
        assert isinstance(out, np.ndarray) and not isinstance(out, Tensor), ufunc
        with np.errstate(invalid="ignore"):
            np.testing.assert_array_equal(out, ufunc(p.data))
    assert isinstance(np.maximum(p, 0.0), np.ndarray) and np.add.reduce(p, axis=0).tolist() == [1.5, -2.25]
    total = np.zeros(2)
    total += Tensor([1.0, 2.0])  # ndarray += tensor: written into the ndarray (out=), no Tensor
    assert isinstance(total, np.ndarray) and total.tolist() == [1.0, 2.0]
    with pytest.raises(RuntimeError, match="requires grad"):
        np.add(p.data, 1.0, out=(p,))


def test_numpy_operators_on_tensors_run_the_tensor_operator():
    """ndarray <op> tensor goes to the tensor's reflected operator: a Tensor, dtype kept, graph kept."""
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    t = Tensor([[2.0, 0.5], [1.0, -1.0]])
    for result, expected in [
        (a + t, a + t.data),
        (a - t, a - t.data),
        (a * t, a * t.data),
        (a / t, a / t.data),
        (a // t, a // t.data),
        (a % t, a % t.data),
        (a**t, a**t.data),
        (a @ t, a @ t.data),
        (np.float64(3.0) * t, 3.0 * t.data),
        (np.negative(t), -t.data),
    ]:
        assert isinstance(result, Tensor) and result.dtype == np.float32
        np.testing.assert_allclose(result.data, expected, rtol=1e-6)
    for result, expected in [(a < t, a < t.data), (a >= t, a >= t.data), (a == t, a == t.data)]:
        assert isinstance(result, Tensor)
        np.testing.assert_array_equal(result.data, expected)
