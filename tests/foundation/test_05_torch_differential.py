"""Module 05 - a property-based differential test of the foundation against PyTorch.

Hypothesis draws small programs, one op family per test: random shapes (size-1
dims, 0-d tensors, broadcasting across ranks), random and negative dims, options,
and sometimes the same tensor used twice in the graph. Each program runs in
tinytorch and in PyTorch on the same float64 data; values, shapes and the
gradients of ``sum(output * w)`` (random weights ``w``) must agree to 1e-7.

Reproducible and bounded: each op of a family is its own test case with a fixed
number of examples, and Hypothesis is derandomized (the same examples on every
run, no example database), so the whole file takes seconds. It runs where
PyTorch is installed (the nox ``oracle`` session) and is skipped cleanly
elsewhere. The last test checks that every op that ran got its examples and
prints the counts per family and op (``pytest -s``).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tinytorch.core.activations import (
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
from tinytorch.core.losses import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    mse_loss,
)
from tinytorch.core.tensor import Tensor, concatenate, maximum, minimum, stack, where

torch = pytest.importorskip("torch", reason="optional oracle: PyTorch is not installed")
# var/std with correction 1 over one element is NaN in both libraries, each saying so.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Degrees of freedom:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:.*degrees of freedom:UserWarning"),
]
F = torch.nn.functional

RTOL, ATOL = 1e-7, 1e-9
EXAMPLES = 20  # per op
PROFILE = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
COUNTS: Counter = Counter()  # (family, op) -> examples run


# --------------------------------------------------------------------------- the comparison


def _values(out):
    return out if isinstance(out, (tuple, list)) else (out,)


def compare(family: str, op: str, ours_fn, torch_fn, arrays, seed: int, grad=True, rtol=RTOL) -> None:
    """Run ``ours_fn`` and ``torch_fn`` on float64 copies of ``arrays``; compare values and gradients."""
    COUNTS[family, op] += 1
    ours_in = [Tensor(a, requires_grad=grad, dtype=np.float64) for a in arrays]
    torch_in = [torch.tensor(a, dtype=torch.float64, requires_grad=grad) for a in arrays]
    with np.errstate(all="ignore"):
        ours_out = _values(ours_fn(*ours_in))
    theirs_out = _values(torch_fn(*torch_in))
    assert len(ours_out) == len(theirs_out), op
    rng = np.random.default_rng(seed)
    ours_loss, theirs_loss = None, None
    for mine, ref in zip(ours_out, theirs_out):
        assert mine.shape == tuple(ref.shape), f"{op}: shape {mine.shape} vs {tuple(ref.shape)}"
        expected = ref.detach().numpy()
        assert (mine.data.dtype.kind == "f") == (expected.dtype.kind == "f"), op
        np.testing.assert_allclose(mine.data, expected, rtol=rtol, atol=ATOL, err_msg=op)
        if grad and ref.requires_grad:
            w = rng.standard_normal(expected.shape)
            term_ours = (mine * Tensor(w, dtype=np.float64)).sum()
            term_theirs = (ref * torch.tensor(w)).sum()
            ours_loss = term_ours if ours_loss is None else ours_loss + term_ours
            theirs_loss = term_theirs if theirs_loss is None else theirs_loss + term_theirs
    if ours_loss is None:
        return
    with np.errstate(all="ignore"):
        ours_loss.backward()
    theirs_loss.backward()
    for i, (mine, ref) in enumerate(zip(ours_in, torch_in)):
        expected = np.zeros(mine.shape) if ref.grad is None else ref.grad.numpy()
        got = np.zeros(mine.shape) if mine.grad is None else mine.grad.data
        np.testing.assert_allclose(
            got, expected, rtol=rtol, atol=ATOL, err_msg=f"{op}: gradient of input {i}"
        )


# --------------------------------------------------------------------------- strategies


def shapes(min_dims=0, max_dims=4, max_side=3):
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=max_side)


def values(draw, shape, kind="normal"):
    """Float64 data of ``shape``: normal, positive (for log/sqrt/pow bases) or coarse (many ties)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal(shape) * 2
    if kind == "positive":
        return np.abs(x) + 0.5
    if kind == "coarse":
        return np.round(x)  # ties and exact zeros: kinks of relu/abs/max, ties of maximum
    if kind == "away_from_zero":
        return np.sign(x + 1e-12) * (np.abs(x) + 0.5)
    return x


def dims_of(draw, ndim, allow_tuple=True, allow_none=True):
    """A dim for a tensor of ``ndim`` dims: an int (possibly negative), a tuple, or None."""
    n = max(ndim, 1)
    options = [st.integers(-n, n - 1)]
    if allow_none:
        options.append(st.none())
    if allow_tuple and ndim > 0:
        options.append(st.lists(st.integers(-ndim, ndim - 1), min_size=1, max_size=ndim).map(
            lambda ds: tuple(dict.fromkeys(d % ndim for d in ds))))  # fmt: skip
    return draw(st.one_of(*options))


def seed(draw) -> int:
    return draw(st.integers(0, 2**16))


# --------------------------------------------------------------------------- families

BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b, "normal"),
    "sub": (lambda a, b: a - b, lambda a, b: a - b, "normal"),
    "mul": (lambda a, b: a * b, lambda a, b: a * b, "coarse"),
    "div": (lambda a, b: a / b, lambda a, b: a / b, "away_from_zero"),
    "pow": (lambda a, b: a.abs() ** b, lambda a, b: a.abs() ** b, "away_from_zero"),
    "remainder": (lambda a, b: a % b, lambda a, b: a % b, "away_from_zero"),
    "maximum": (maximum, torch.maximum, "coarse"),
    "minimum": (minimum, torch.minimum, "coarse"),
    "where": (lambda a, b: where(a.data > b.data, a, b), lambda a, b: torch.where(a > b, a, b), "coarse"),
    "matmul_scaled": (lambda a, b: (a * b) @ (b.T if b.ndim else b), None, "normal"),
}
del BINARY["matmul_scaled"]  # matmul has its own family


@pytest.mark.parametrize("op", sorted(BINARY))
@PROFILE
@given(data=st.data())
def test_elementwise_binary_with_broadcasting(op, data):
    draw = data.draw
    ours, theirs, kind = BINARY[op]
    shape_a, shape_b = draw(
        hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3)
    ).input_shapes
    a, b = values(draw, shape_a, kind), values(draw, shape_b, kind)
    if draw(st.booleans()):  # the same tensor twice in the graph: op(a, b) * a
        compare("binary", op, lambda x, y: ours(x, y) * x, lambda x, y: theirs(x, y) * x, [a, b], seed(draw))
    else:
        compare("binary", op, ours, theirs, [a, b], seed(draw))


SCALAR = {
    "add_scalar": (lambda a: 2.5 + a, lambda a: 2.5 + a, "normal"),
    "rsub_scalar": (lambda a: 1.5 - a, lambda a: 1.5 - a, "normal"),
    "rdiv_scalar": (lambda a: 3.0 / a, lambda a: 3.0 / a, "away_from_zero"),
    "pow_int": (lambda a: a**3, lambda a: a**3, "normal"),
    "pow_zero": (lambda a: a**0, lambda a: a**0, "coarse"),
    "pow_half": (lambda a: a**0.5, lambda a: a**0.5, "positive"),
    "base_positive": (lambda a: 2.5**a, lambda a: 2.5**a, "normal"),
    "base_zero": (lambda a: 0.0 ** a.abs(), lambda a: 0.0 ** a.abs(), "coarse"),
    "base_negative_int": (
        lambda a: (-2.0) ** (a * 0 + a.data.round()),
        lambda a: (-2.0) ** (a * 0 + a.detach().round()),
        "normal",
    ),
    "floor_divide": (lambda a: a // 0.75, lambda a: torch.floor_divide(a.detach(), 0.75), "normal"),
}


@pytest.mark.parametrize("op", sorted(SCALAR))
@PROFILE
@given(data=st.data())
def test_scalar_operands_and_pow_special_cases(op, data):
    draw = data.draw
    ours, theirs, kind = SCALAR[op]
    compare(
        "scalar",
        op,
        ours,
        theirs,
        [values(draw, draw(shapes()), kind)],
        seed(draw),
        grad=op != "floor_divide",
    )


UNARY = {
    "exp": (lambda x: x.exp(), torch.exp, "normal"),
    "log": (lambda x: x.log(), torch.log, "positive"),
    "sqrt": (lambda x: x.sqrt(), torch.sqrt, "positive"),
    "abs": (lambda x: x.abs(), torch.abs, "coarse"),
    "neg": (lambda x: -x, torch.neg, "normal"),
    "sin": (lambda x: x.sin(), torch.sin, "normal"),
    "cos": (lambda x: x.cos(), torch.cos, "normal"),
    "sign": (lambda x: x.sign(), torch.sign, "coarse"),
    "clamp": (lambda x: x.clamp(-1.0, 1.5), lambda x: x.clamp(-1.0, 1.5), "coarse"),
    "clamp_min": (lambda x: x.clamp(min=0.5), lambda x: x.clamp(min=0.5), "coarse"),
    "clone": (lambda x: x.clone(), lambda x: x.clone(), "normal"),
    "square_reused": (lambda x: x * x + x, lambda x: x * x + x, "normal"),
}


@pytest.mark.parametrize("op", sorted(UNARY))
@PROFILE
@given(data=st.data())
def test_elementwise_unary(op, data):
    draw = data.draw
    ours, theirs, kind = UNARY[op]
    compare("unary", op, ours, theirs, [values(draw, draw(shapes()), kind)], seed(draw))


def _activation(draw, op: str, ndim: int):
    dim = draw(st.integers(-max(ndim, 1), max(ndim, 1) - 1))
    slope = draw(st.sampled_from([0.01, 0.2, -0.5]))
    beta, threshold = draw(st.sampled_from([(1.0, 20.0), (2.0, 1.0), (0.5, 3.0)]))
    return {
        "relu": (relu, torch.relu),
        "leaky_relu": (lambda x: leaky_relu(x, slope), lambda x: F.leaky_relu(x, slope)),
        "sigmoid": (sigmoid, torch.sigmoid),
        "tanh": (tanh, torch.tanh),
        "silu": (silu, F.silu),
        "softplus": (lambda x: softplus(x, beta, threshold), lambda x: F.softplus(x, beta, threshold)),
        "gelu": (gelu, F.gelu),
        "gelu_tanh": (lambda x: gelu(x, "tanh"), lambda x: F.gelu(x, approximate="tanh")),
        "softmax": (lambda x: softmax(x, dim), lambda x: torch.softmax(x, dim)),
        "log_softmax": (lambda x: log_softmax(x, dim), lambda x: torch.log_softmax(x, dim)),
    }[op]


ACTIVATIONS = ["relu", "leaky_relu", "sigmoid", "tanh", "silu", "softplus", "gelu", "gelu_tanh", "softmax",
               "log_softmax"]  # fmt: skip


@pytest.mark.parametrize("op", ACTIVATIONS)
@PROFILE
@given(data=st.data())
def test_activations(op, data):
    draw = data.draw
    shape = draw(shapes())
    x = values(draw, shape, draw(st.sampled_from(["normal", "coarse"]))) * draw(st.sampled_from([1.0, 5.0]))
    ours, theirs = _activation(draw, op, len(shape))
    if draw(st.booleans()):  # the input used again after the activation
        compare("activation", op, lambda v: ours(v) * v, lambda v: theirs(v) * v, [x], seed(draw))
    else:
        compare("activation", op, ours, theirs, [x], seed(draw))


def _reduction(draw, op: str, ndim: int):
    keep = draw(st.booleans())
    if op in ("sum", "mean", "amax", "amin"):
        dim = dims_of(draw, ndim)
        return (lambda x: getattr(x, op)(dim, keep), lambda x: getattr(x, op)(dim=dim, keepdim=keep))
    if op in ("var", "std"):
        dim, c = dims_of(draw, ndim), draw(st.sampled_from([0, 1]))
        return (lambda x: getattr(x, op)(dim, keepdim=keep, correction=c),
                lambda x: getattr(x, op)(dim=dim, keepdim=keep, correction=c))  # fmt: skip
    if op == "logsumexp":
        dim = dims_of(draw, ndim, allow_none=False)
        return (lambda x: x.logsumexp(dim, keep), lambda x: torch.logsumexp(x, dim, keep))
    if op == "prod":
        dim = dims_of(draw, ndim, allow_tuple=False)
        if dim is None:
            return (lambda x: x.prod(), lambda x: x.prod())
        return (lambda x: x.prod(dim, keep), lambda x: x.prod(dim, keep))
    if op in ("max_dim", "min_dim"):
        dim, name = dims_of(draw, ndim, allow_tuple=False, allow_none=False), op[:3]
        return (lambda x: tuple(getattr(x, name)(dim, keep)), lambda x: tuple(getattr(x, name)(dim, keep)))
    if op in ("max_all", "min_all"):
        return (lambda x: getattr(x, op[:3])(), lambda x: getattr(x, op[:3])())
    if op in ("argmax", "argmin"):
        dim = dims_of(draw, ndim, allow_tuple=False)
        return (lambda x: getattr(x, op)(dim, keep), lambda x: getattr(x, op)(dim=dim, keepdim=keep))
    if op == "cumsum":
        dim = dims_of(draw, ndim, allow_tuple=False, allow_none=False)
        return (lambda x: x.cumsum(dim), lambda x: x.cumsum(dim))
    dim = dims_of(draw, ndim, allow_tuple=False)  # all / any on x > 0
    if dim is None:
        return (lambda x: getattr(x > 0, op)(), lambda x: getattr(x > 0, op)())
    return (lambda x: getattr(x > 0, op)(dim, keep), lambda x: getattr(x > 0, op)(dim, keep))


REDUCTIONS = ["sum", "mean", "amax", "amin", "var", "std", "logsumexp", "prod", "max_dim", "min_dim",
              "max_all", "min_all", "argmax", "argmin", "cumsum", "all", "any"]  # fmt: skip


@pytest.mark.parametrize("op", REDUCTIONS)
@PROFILE
@given(data=st.data())
def test_reductions_over_random_dims(op, data):
    draw = data.draw
    shape = draw(shapes())
    kind = (
        "coarse"
        if op in ("amax", "amin", "max_dim", "min_dim", "max_all", "min_all", "all", "any")
        else "normal"
    )
    x = values(draw, shape, draw(st.sampled_from([kind, "normal"])))
    ours, theirs = _reduction(draw, op, len(shape))
    grad = op not in ("argmax", "argmin", "all", "any")
    if grad and draw(st.booleans()):  # two reductions of the same tensor in one graph
        mine, ref = ours, theirs
        ours, theirs = lambda v: _values(mine(v)) + (v.sum(),), lambda v: _values(ref(v)) + (v.sum(),)
        compare("reduction", op, ours, theirs, [x], seed(draw))
    else:
        compare("reduction", op, ours, theirs, [x], seed(draw), grad=grad)


def _movement(draw, op: str, shape: tuple):
    ndim = len(shape)
    if op == "reshape":
        target = draw(st.sampled_from([(-1,), tuple(reversed(shape)), shape + (1,)]))
        return (lambda x: x.reshape(target), lambda x: x.reshape(target))
    if op == "permute":
        perm = tuple(draw(st.permutations(range(ndim))))
        return (lambda x: x.permute(perm), lambda x: x.permute(perm))
    if op == "transpose":
        d0, d1 = draw(st.integers(-ndim, ndim - 1)), draw(st.integers(-ndim, ndim - 1))
        return (lambda x: x.transpose(d0, d1), lambda x: x.transpose(d0, d1))
    if op == "flip":
        dims = draw(st.lists(st.integers(-ndim, ndim - 1), min_size=1, max_size=ndim))
        dims = tuple(d - ndim * draw(st.booleans()) for d in dict.fromkeys(d % ndim for d in dims))
        return (lambda x: x.flip(dims), lambda x: x.flip(dims))
    if op == "squeeze":
        dims = dims_of(draw, ndim)
        if dims is None:
            return (lambda x: x.squeeze(), lambda x: x.squeeze())
        return (lambda x: x.squeeze(dims), lambda x: x.squeeze(dims))
    if op == "unsqueeze":
        dim = draw(st.integers(-ndim - 1, ndim))
        return (lambda x: x.unsqueeze(dim), lambda x: x.unsqueeze(dim))
    if op == "expand":
        target = (2,) + tuple(3 if n == 1 else n for n in shape)
        return (lambda x: x.expand(target), lambda x: x.expand(target))
    if op == "flatten":
        start = draw(st.integers(-ndim, ndim - 1))
        end = draw(st.integers(start % ndim, ndim - 1))
        return (lambda x: x.flatten(start, end), lambda x: x.flatten(start, end))
    if op == "t":
        return (lambda x: x.reshape(-1, shape[-1]).t(), lambda x: x.reshape(-1, shape[-1]).t())
    if op in ("tril", "triu"):
        k = draw(st.integers(-2, 2))
        return (lambda x: getattr(x, op)(k), lambda x: getattr(x, op)(k))
    if op in ("split", "chunk"):
        dim = draw(st.integers(-ndim, ndim - 1))
        n = draw(st.integers(1, 3))
        return (lambda x: getattr(x, op)(n, dim), lambda x: getattr(x, op)(n, dim))
    if op in ("cat", "stack"):
        dim = draw(st.integers(-ndim, ndim - 1)) if op == "cat" else draw(st.integers(-ndim - 1, ndim))
        mine, theirs = (concatenate, torch.cat) if op == "cat" else (stack, torch.stack)
        return (lambda x: mine([x, x * 2.0, x], dim), lambda x: theirs([x, x * 2.0, x], dim))  # x three times
    if op == "gather":
        dim = draw(st.integers(-ndim, ndim - 1))
        rng = np.random.default_rng(draw(st.integers(0, 2**16)))
        index_shape = tuple(
            int(rng.integers(1, n + 1)) if d != dim % ndim else 3 for d, n in enumerate(shape)
        )
        index = rng.integers(0, shape[dim], index_shape)
        return (lambda x: x.gather(dim, index), lambda x: x.gather(dim, torch.tensor(index)))
    if op == "sort":
        dim, descending = draw(st.integers(-ndim, ndim - 1)), draw(st.booleans())
        return (
            lambda x: tuple(x.sort(dim, descending)),
            lambda x: tuple(x.sort(dim=dim, descending=descending, stable=True)),
        )
    k_dim = draw(st.integers(-ndim, ndim - 1))  # topk
    k, largest = draw(st.integers(0, shape[k_dim])), draw(st.booleans())
    return (lambda x: tuple(x.topk(k, k_dim, largest)), lambda x: tuple(x.topk(k, k_dim, largest)))


MOVEMENT = ["reshape", "permute", "transpose", "flip", "squeeze", "unsqueeze", "expand", "flatten", "t",
            "tril", "triu", "split", "chunk", "cat", "stack", "gather", "sort", "topk"]  # fmt: skip


@pytest.mark.parametrize("op", MOVEMENT)
@PROFILE
@given(data=st.data())
def test_movement_and_selection(op, data):
    draw = data.draw
    min_dims = 2 if op in ("tril", "triu", "t") else 1
    shape = draw(shapes(min_dims=min_dims))
    x = values(draw, shape)  # continuous: no ties for sort/topk
    ours, theirs = _movement(draw, op, shape)
    compare("movement", op, ours, theirs, [x], seed(draw))


def _index(draw, shape, kind: str):
    """A random index for ``shape``: ints, slices, None and ``...``, plus integer arrays or one mask."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    parts, ellipsis_used, emitted_after = [], False, False
    special = draw(st.integers(0, len(shape) - 1))  # a dim that gets an array (or the mask)
    k = draw(st.integers(1, 3))  # the common length of every integer array
    for d, n in enumerate(shape):
        if draw(st.integers(0, 4)) == 0:
            parts.append(None)
        if not ellipsis_used and d > 0 and d != special and draw(st.integers(0, 5)) == 0:
            parts.append(Ellipsis)  # stands for this dim and perhaps later ones
            ellipsis_used = True
            continue
        if ellipsis_used and not emitted_after and d != special and draw(st.booleans()):
            continue  # covered by the ellipsis (only dims right after it: the rest align to the end)
        emitted_after = ellipsis_used
        choice = draw(st.sampled_from(["int", "slice"] + (["array"] if kind == "arrays" else [])))
        if d == special and kind != "ints_slices":
            choice = "mask" if kind == "mask" else "array"
        if choice == "int":
            parts.append(int(rng.integers(-n, n)))
        elif choice == "slice":
            start, stop = sorted(rng.integers(-n - 1, n + 2, 2).tolist())
            parts.append(slice(start, stop, int(rng.integers(1, 3))))
        elif choice == "mask":
            parts.append(rng.random(n) > 0.4)
        else:
            parts.append(rng.integers(-n, n, k))
    return tuple(parts)


def _int_gap_array(draw, shape):
    """The pattern where NumPy and PyTorch place dims differently: an int, then a slice, None or
    ``...``, then an integer array or a mask (``x[0, :, [0, 1]]``), the rest random."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    parts = [int(rng.integers(-shape[0], shape[0]))]
    gap = draw(st.sampled_from(["slice", "none", "ellipsis"]))
    parts += {"slice": [slice(None)], "none": [None, slice(None)], "ellipsis": [Ellipsis]}[gap]
    last = shape[-1] if gap == "ellipsis" else shape[2]
    array = (
        rng.random(last) > 0.3 if draw(st.booleans()) else rng.integers(-last, last, draw(st.integers(1, 3)))
    )
    parts.append(array)
    return tuple(parts)


@pytest.mark.parametrize("op", ["ints_slices", "arrays", "mask", "int_gap_array"])
@PROFILE
@given(data=st.data())
def test_indexing_placed_as_pytorch(op, data):
    draw = data.draw
    if op == "int_gap_array":
        shape = draw(hnp.array_shapes(min_dims=3, max_dims=4, min_side=2, max_side=4))
        index = _int_gap_array(draw, shape)
    else:
        shape = draw(shapes(min_dims=1, max_dims=4, max_side=4))
        index = _index(draw, shape, op)
    torch_index = tuple(torch.tensor(p) if isinstance(p, np.ndarray) else p for p in index)
    compare("indexing", op, lambda x: x[index], lambda x: x[torch_index], [values(draw, shape)], seed(draw))


@pytest.mark.parametrize("op", ["vector_vector", "vector_matrix", "matrix_vector", "batched"])
@PROFILE
@given(data=st.data())
def test_matmul_shapes(op, data):
    draw = data.draw
    m, k, n = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    shapes_ab = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3))
    batch_a, batch_b = shapes_ab.input_shapes
    shape_a, shape_b = {
        "vector_vector": ((k,), (k,)),
        "vector_matrix": ((k,), batch_b + (k, n)),
        "matrix_vector": (batch_a + (m, k), (k,)),
        "batched": (batch_a + (m, k), batch_b + (k, n)),
    }[op]
    compare(
        "matmul",
        op,
        lambda a, b: a @ b,
        torch.matmul,
        [values(draw, shape_a), values(draw, shape_b)],
        seed(draw),
    )


@pytest.mark.parametrize("op", ["cross_entropy", "mse", "bce", "bce_with_logits"])
@PROFILE
@given(data=st.data())
def test_losses_with_options(op, data):
    draw = data.draw
    reduction = draw(st.sampled_from(["mean", "sum", "none"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if op == "cross_entropy":
        classes = draw(st.integers(1, 4))
        extra = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3))
        batched = draw(st.booleans())
        shape = ((2, classes) + extra) if batched else (classes,)
        target = rng.integers(0, classes, ((2,) + extra) if batched else ())
        smoothing = draw(st.sampled_from([0.0, 0.1, 0.5]))
        if target.ndim and draw(st.booleans()):
            target.reshape(-1)[0] = -100  # one ignored prediction (never all: the mean would be 0/0)
        options = dict(reduction=reduction, label_smoothing=smoothing)
        ours = lambda x: cross_entropy(x, target, **options)  # noqa: E731
        theirs = lambda x: F.cross_entropy(x, torch.tensor(target), **options)  # noqa: E731
        compare("loss", op, ours, theirs, [values(draw, shape)], seed(draw))
        return
    shape = draw(shapes())
    target = (rng.random(shape) > 0.5).astype(float) if op != "mse" else rng.standard_normal(shape)
    ours, theirs, kind = {
        "mse": (mse_loss, F.mse_loss, "normal"),
        "bce": (binary_cross_entropy, F.binary_cross_entropy, "probability"),
        "bce_with_logits": (binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits, "normal"),
    }[op]
    x = rng.random(shape) * 0.9 + 0.05 if kind == "probability" else values(draw, shape)
    compare("loss", op, lambda v: ours(v, target, reduction=reduction),
            lambda v: theirs(v, torch.tensor(target), reduction=reduction), [x], seed(draw))  # fmt: skip


def test_every_op_of_every_family_was_exercised():
    """Runs last: every op that ran got all its examples; prints the counts per family and op."""
    families = sorted({family for family, _ in COUNTS})
    if not families:
        pytest.skip("optional oracle: no family ran in this session (selected out)")
    for family in families:
        ops = {op: n for (f, op), n in COUNTS.items() if f == family}
        print(
            f"{family}: {sum(ops.values())} examples; "
            + ", ".join(f"{op} {n}" for op, n in sorted(ops.items()))
        )
    expected = {
        "binary": BINARY,
        "scalar": SCALAR,
        "unary": UNARY,
        "reduction": REDUCTIONS,
        "movement": MOVEMENT,
        "activation": ACTIVATIONS,
        "indexing": ["ints_slices", "arrays", "mask", "int_gap_array"],
        "matmul": ["vector_vector", "vector_matrix", "matrix_vector", "batched"],
        "loss": ["cross_entropy", "mse", "bce", "bce_with_logits"],
    }
    for family in families:
        short = [op for op in expected[family] if 0 < COUNTS[family, op] < EXAMPLES]
        assert not short, f"{family}: ops that ran fewer than {EXAMPLES} examples: {short}"
