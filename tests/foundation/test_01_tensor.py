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


def test_pow_needs_number_exponent():
    with pytest.raises(ValueError, match="exponent"):
        Tensor([1.0]) ** Tensor([2.0])


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
    np.testing.assert_allclose(t.max(axis, keepdims).data, np.max(x, axis=axis, keepdims=keepdims))
    np.testing.assert_allclose(t.min(axis, keepdims).data, np.min(x, axis=axis, keepdims=keepdims))
    np.testing.assert_allclose(
        t.var(axis, keepdims).data, np.var(x, axis=axis, keepdims=keepdims), atol=1e-12
    )


def test_argmax_argmin():
    x = Tensor([[1.0, 3.0, 3.0], [0.0, -1.0, 2.0]])
    np.testing.assert_array_equal(x.argmax(axis=1).data, [1, 2])
    np.testing.assert_array_equal(x.argmin(axis=0).data, [1, 1, 1])
    assert x.argmax().item() == 1 and x.argmax(axis=1).requires_grad is False


def test_var_unbiased_forward():
    x = RNG.standard_normal((3, 4))
    np.testing.assert_allclose(
        Tensor(x, dtype=np.float64).var(axis=1, ddof=1).data, np.var(x, axis=1, ddof=1)
    )


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
