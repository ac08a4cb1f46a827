"""Module 18: every accelerated kernel equals its plain-path reference (values and gradients);
accelerate() swaps layers without touching parameters, state_dict or the plain model; fused decoding
gives the model's tokens. Speed is measured by benchmarks/_opt_timing.py, never asserted here."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tinytorch.optimization.acceleration import (
    format_speed_table,
    fused_gelu,
    measure_matmul_speed,
    naive_gelu,
    naive_matmul,
    tiled_matmul,
    unfused_gelu,
    vectorized_matmul,
)


def loop_matmul_oracle(a, b):
    """Independent oracle: float64 triple loop written here."""
    out = np.zeros((a.shape[0], b.shape[1]))
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            out[i, j] = sum(float(a[i, p]) * float(b[p, j]) for p in range(a.shape[1]))
    return out


@settings(max_examples=25, deadline=None)
@given(
    m=st.integers(1, 20),
    k=st.integers(1, 20),
    n=st.integers(1, 20),
    tile=st.integers(1, 9),
    seed=st.integers(0, 99),
)
def test_matmuls_equal_loop_oracle(m, k, n, tile, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    ref = loop_matmul_oracle(a, b)
    for out in (
        naive_matmul(a, b),
        vectorized_matmul(a, b, block_rows=3),
        tiled_matmul(a, b, tile_size=tile),
    ):
        assert out.shape == (m, n)
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_matmuls_equal_np_matmul_on_larger_nonsquare():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((130, 70)).astype(np.float32)
    b = rng.standard_normal((70, 90)).astype(np.float32)
    ref = np.matmul(a, b)
    np.testing.assert_allclose(vectorized_matmul(a, b), ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(tiled_matmul(a, b), ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(tiled_matmul(a, b, tile_size=16), ref, rtol=1e-4, atol=1e-4)
    assert tiled_matmul(a, b).dtype == np.float32


@pytest.mark.parametrize("fn", [naive_matmul, vectorized_matmul, tiled_matmul])
def test_matmul_shape_errors(fn):
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 2\)"):
        fn(np.ones((3, 4)), np.ones((5, 2)))
    with pytest.raises(ValueError):
        fn(np.ones(3), np.ones((3, 2)))


def test_tile_size_validated():
    with pytest.raises(ValueError, match="tile_size"):
        tiled_matmul(np.ones((2, 2)), np.ones((2, 2)), tile_size=0)


def gelu_reference(x):
    return np.array(
        [0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3))) for v in x.ravel()]
    )


def test_gelu_variants_equal_reference():
    x = np.linspace(-6, 6, 301).astype(np.float32).reshape(7, 43)
    ref = gelu_reference(x).reshape(x.shape)
    for fn in (naive_gelu, unfused_gelu, fused_gelu):
        out = fn(x)
        assert out.shape == x.shape and out.dtype == np.float32
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


def test_fused_gelu_equals_pytorch(torch):
    x = np.linspace(-6, 6, 301).astype(np.float32).reshape(7, 43)
    expected = torch.nn.functional.gelu(torch.from_numpy(x), approximate="tanh").numpy()
    np.testing.assert_allclose(fused_gelu(x), expected, rtol=1e-5, atol=1e-6)


def test_fused_gelu_does_not_modify_input_and_accepts_tensor():
    from tinytorch.core.tensor import Tensor

    x = np.array([-1.0, 0.0, 2.0], dtype=np.float32)
    before = x.copy()
    fused_gelu(x)
    np.testing.assert_array_equal(x, before)
    out = fused_gelu(Tensor(x))
    assert isinstance(out, Tensor)
    np.testing.assert_allclose(out.data, gelu_reference(x), rtol=1e-6, atol=1e-7)


def test_speed_report_is_measured_and_blas_wins():
    rows = measure_matmul_speed(sizes=(32, 128), repeats=2, loop_max_size=32)
    assert [r["n"] for r in rows] == [32, 128]
    small, big = rows
    assert small["flops"] == 2 * 32**3
    assert small["loop_seconds"] > 0 and big["loop_gflops"] is None
    for method in ("loop", "vectorized", "tiled", "blas"):
        if small[f"{method}_seconds"] is not None:
            assert math.isclose(small[f"{method}_gflops"], small["flops"] / small[f"{method}_seconds"] / 1e9)
    # The ratio is reported, not asserted (no wall-clock result in a test): it is derived from the times.
    assert math.isclose(small["blas_speedup_over_loop"], small["loop_seconds"] / small["blas_seconds"])
    table = format_speed_table(rows)
    assert table.count("\n") == 3 and "BLAS" in table


# ---------------------------------------------------------------- in-place GELU as a Function


def test_fused_gelu_function_equals_plain_gelu_values_and_gradients():
    from tinytorch.core.activations import gelu
    from tinytorch.core.tensor import Tensor
    from tinytorch.optimization.acceleration import FusedGELU, FusedGELUFunction

    x = np.random.default_rng(3).standard_normal((4, 33)).astype(np.float32) * 3
    before = x.copy()
    fast, plain = Tensor(x, requires_grad=True), Tensor(x, requires_grad=True)
    upstream = np.random.default_rng(4).standard_normal(x.shape).astype(np.float32)
    (FusedGELUFunction.apply(fast) * upstream).sum().backward()
    (gelu(plain, approximate="tanh") * upstream).sum().backward()
    np.testing.assert_allclose(
        FusedGELU()(Tensor(x)).data, gelu(Tensor(x), approximate="tanh").data, rtol=1e-6, atol=1e-7
    )
    np.testing.assert_allclose(fast.grad.data, plain.grad.data, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(x, before)  # in place on its own buffers only


def test_fused_gelu_gradcheck():
    from _oracles import gradcheck
    from tinytorch.core.tensor import Tensor
    from tinytorch.optimization.acceleration import FusedGELUFunction

    x = Tensor(np.linspace(-4, 4, 13).reshape(13, 1), requires_grad=True, dtype=np.float64)
    assert gradcheck(FusedGELUFunction.apply, [x])


# ---------------------------------------------------------------- Linear + ReLU as one operation


def test_linear_relu_function_equals_linear_then_relu_values_and_gradients():
    from tinytorch.core.activations import relu
    from tinytorch.core.layers import LinearFunction
    from tinytorch.core.tensor import Tensor
    from tinytorch.optimization.acceleration import LinearReLUFunction

    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 7))  # leading dims (2, 3) are rows
    w, b = rng.standard_normal((5, 7)), rng.standard_normal(5)
    upstream = rng.standard_normal((2, 3, 5))
    results = []
    for fused in (True, False):
        xs, ws, bs = (Tensor(a, dtype=np.float64, requires_grad=True) for a in (x, w, b))
        out = LinearReLUFunction.apply(xs, ws, bs) if fused else relu(LinearFunction.apply(xs, ws, bs))
        (out * upstream).sum().backward()
        results.append([out.data, xs.grad.data, ws.grad.data, bs.grad.data])
    for fused, plain in zip(*results):
        np.testing.assert_allclose(fused, plain, rtol=1e-12, atol=1e-12)
    expected = np.maximum(np.einsum("bti,oi->bto", x, w) + b, 0)  # the definition, written here
    np.testing.assert_allclose(results[0][0], expected, rtol=1e-12)
    no_bias = LinearReLUFunction.apply(Tensor(x, dtype=np.float64), Tensor(w, dtype=np.float64), None)
    np.testing.assert_allclose(no_bias.data, np.maximum(x @ w.T, 0), rtol=1e-12)


def test_linear_relu_gradcheck():
    from _oracles import gradcheck
    from tinytorch.core.tensor import Tensor
    from tinytorch.optimization.acceleration import LinearReLUFunction

    rng = np.random.default_rng(6)
    shapes = ((4, 3), (2, 3), (2,))  # x, weight, bias
    x, w, b = (Tensor(rng.standard_normal(s), dtype=np.float64, requires_grad=True) for s in shapes)
    assert gradcheck(LinearReLUFunction.apply, [x, w, b])


def test_accelerate_fuses_linear_relu_pairs_and_keeps_state_dict(require_tier):
    require_tier("architecture")
    import copy

    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.losses import cross_entropy
    from tinytorch.core.tensor import Tensor
    from tinytorch.optimization.acceleration import AppliedReLU, FusedLinearReLU, accelerate

    np.random.seed(7)
    plain = Sequential(Linear(6, 8), ReLU(), Linear(8, 8), ReLU(), Linear(8, 3))
    fast = accelerate(copy.deepcopy(plain))
    assert [type(m) for m in fast] == [FusedLinearReLU, AppliedReLU, FusedLinearReLU, AppliedReLU, Linear]
    assert list(fast.state_dict()) == list(plain.state_dict())  # "0.weight", "0.bias", "2.weight", ...
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((5, 6)).astype(np.float32), rng.integers(0, 3, 5)
    for model in (plain, fast):
        cross_entropy(model(Tensor(x)), y).backward()
    np.testing.assert_allclose(fast(Tensor(x)).data, plain(Tensor(x)).data, rtol=1e-6, atol=1e-6)
    for p, q in zip(plain.parameters(), fast.parameters()):
        np.testing.assert_allclose(q.grad.data, p.grad.data, rtol=1e-5, atol=1e-6)
    hooked = Sequential(Linear(6, 8), ReLU())
    hooked[1].register_forward_hook(lambda m, args, out: None)
    assert [type(m) for m in accelerate(hooked)] == [Linear, ReLU]  # fusing would skip the hook


def test_fused_cross_entropy_equals_plain_cross_entropy_values_and_gradients():
    from tinytorch.core.losses import cross_entropy
    from tinytorch.core.tensor import Tensor
    from tinytorch.optimization.acceleration import fused_cross_entropy

    rng = np.random.default_rng(9)
    logits, target = rng.standard_normal((7, 5)) * 4, rng.integers(0, 5, 7)
    fused, plain = (Tensor(logits, dtype=np.float64, requires_grad=True) for _ in range(2))
    (fused_cross_entropy(fused, target) * 3.0).backward()
    (cross_entropy(plain, target) * 3.0).backward()
    np.testing.assert_allclose(fused.grad.data, plain.grad.data, rtol=1e-12, atol=1e-15)
    # Closed form: 3 (softmax - onehot) / N.
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(fused.grad.data, 3 * (p - np.eye(5)[target]) / 7, rtol=1e-12, atol=1e-15)
    extreme = Tensor([[1000.0, -1000.0, 0.0]], dtype=np.float32)
    assert np.isfinite(fused_cross_entropy(extreme, np.array([1])).item())  # stable at +-1000
    with pytest.raises(ValueError, match=r"\(N, C\).*\(7, 5\)"):
        fused_cross_entropy(Tensor(logits), target[:3])
    with pytest.raises(ValueError, match="target"):
        fused_cross_entropy(Tensor(logits), target + 5)


def test_fused_cross_entropy_gradcheck():
    from _oracles import gradcheck
    from tinytorch.core.tensor import Tensor
    from tinytorch.optimization.acceleration import fused_cross_entropy

    x = Tensor(np.random.default_rng(10).standard_normal((4, 3)), dtype=np.float64, requires_grad=True)
    assert gradcheck(lambda v: fused_cross_entropy(v, np.array([2, 0, 1, 2])), [x])


# ---------------------------------------------------------------- channels-last convolution and pooling


def conv_loop_oracle(x, w, b, stride, padding):
    """Independent float64 oracle: the definition of cross-correlation, one output pixel at a time."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    (sh, sw), (ph, pw) = stride, padding
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    out = np.zeros((n, o, oh, ow))
    for y in range(oh):
        for xx in range(ow):
            patch = xp[:, :, y * sh : y * sh + kh, xx * sw : xx * sw + kw]  # (n, c, kh, kw)
            out[:, :, y, xx] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))
    return out + (0 if b is None else b[None, :, None, None])


@pytest.mark.parametrize(
    "shape,out_ch,kernel,stride,padding,bias",
    [
        ((2, 3, 9, 9), 5, (3, 3), (1, 1), (1, 1), True),
        ((1, 4, 8, 7), 6, (2, 3), (2, 1), (0, 2), False),
        ((3, 1, 6, 6), 2, (5, 5), (1, 1), (0, 0), True),
        ((2, 2, 7, 5), 3, (3, 2), (3, 2), (1, 0), True),
    ],
)
def test_channels_last_conv_equals_plain_conv(shape, out_ch, kernel, stride, padding, bias, require_tier):
    require_tier("architecture")
    from tinytorch.core.spatial import Conv2d
    from tinytorch.core.tensor import Tensor
    from tinytorch.optimization.acceleration import ChannelsLastConv2d

    np.random.seed(sum(shape))
    plain = Conv2d(shape[1], out_ch, kernel, stride=stride, padding=padding, bias=bias)
    fast = ChannelsLastConv2d(plain)
    assert fast.weight is plain.weight and fast.bias is plain.bias
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    expected = conv_loop_oracle(
        x, plain.weight.data, None if plain.bias is None else plain.bias.data, stride, padding
    )
    grads = {}
    for name, layer in (("plain", plain), ("fast", fast)):
        layer.zero_grad()
        xt = Tensor(x, requires_grad=True)
        out = layer(xt)
        np.testing.assert_allclose(out.data, expected, rtol=1e-4, atol=1e-4)
        (out * Tensor(np.cos(np.arange(out.numel(), dtype=np.float32)).reshape(out.shape))).sum().backward()
        grads[name] = [xt.grad.data] + [p.grad.data for p in layer.parameters()]
        if name == "fast":  # the GEMM wrote the output channels-last: (N, OH, OW, O) is contiguous
            assert out.data.transpose(0, 2, 3, 1).flags["C_CONTIGUOUS"]
    for g_plain, g_fast in zip(grads["plain"], grads["fast"]):
        np.testing.assert_allclose(g_fast, g_plain, rtol=1e-4, atol=1e-5)


def test_channels_last_conv_gradcheck(require_tier):
    require_tier("architecture")
    from _oracles import gradcheck
    from tinytorch.core.tensor import Tensor
    from tinytorch.optimization.acceleration import ChannelsLastConv2dFunction, Workspace

    rng = np.random.default_rng(2)
    x = Tensor(rng.standard_normal((2, 2, 5, 4)), requires_grad=True, dtype=np.float64)
    w = Tensor(rng.standard_normal((3, 2, 3, 2)), requires_grad=True, dtype=np.float64)
    b = Tensor(rng.standard_normal(3), requires_grad=True, dtype=np.float64)
    for workspace in (None, Workspace()):

        def f(x, w, b, workspace=workspace):
            return ChannelsLastConv2dFunction.apply(
                x, w, b, stride=(2, 1), padding=(1, 1), workspace=workspace
            )

        assert gradcheck(f, [x, w, b])


def test_channels_last_conv_with_fused_relu_equals_conv_then_relu(require_tier):
    """relu=True: the values and gradients of the plain Conv2d followed by ReLU; a gradcheck in float64."""
    require_tier("architecture")
    from _oracles import gradcheck
    from tinytorch.core.activations import ReLU
    from tinytorch.core.spatial import Conv2d
    from tinytorch.core.tensor import Tensor
    from tinytorch.optimization.acceleration import ChannelsLastConv2d, ChannelsLastConv2dFunction

    np.random.seed(4)
    plain = Conv2d(3, 5, 3, stride=(1, 2), padding=1)
    fused = ChannelsLastConv2d(plain, relu=True)
    assert "relu=True" in repr(fused)
    x = np.random.default_rng(4).standard_normal((2, 3, 7, 6)).astype(np.float32)
    grads = {}
    for name, run in (("plain", lambda t: ReLU()(plain(t))), ("fused", fused)):
        plain.zero_grad()
        xt = Tensor(x, requires_grad=True)
        out = run(xt)
        weights = Tensor(np.cos(np.arange(out.numel(), dtype=np.float32)).reshape(out.shape))
        (out * weights).sum().backward()
        grads[name] = [out.data, xt.grad.data, plain.weight.grad.data, plain.bias.grad.data]
    assert (grads["fused"][0] == 0).any() and (grads["fused"][0] > 0).any()  # the ReLU clipped some
    for a, b in zip(grads["fused"], grads["plain"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)

    rng = np.random.default_rng(5)
    xd = Tensor(rng.standard_normal((2, 2, 5, 4)), requires_grad=True, dtype=np.float64)
    w = Tensor(rng.standard_normal((3, 2, 3, 2)), requires_grad=True, dtype=np.float64)
    b = Tensor(rng.standard_normal(3), requires_grad=True, dtype=np.float64)

    def conv_relu(x, w, b):
        return ChannelsLastConv2dFunction.apply(x, w, b, padding=(1, 1), relu=True)

    assert gradcheck(conv_relu, [xd, w, b])


def test_im2col_channels_last_rows_are_patches():
    from tinytorch.optimization.acceleration import col2im_channels_last, im2col_channels_last

    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    cols, geo = im2col_channels_last(x, (2, 3), (2, 1), (1, 0))
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (0, 0)))
    assert cols.shape == (2 * geo["OH"] * geo["OW"], 2 * 3 * 3)
    row = 0
    for n in range(2):
        for y in range(geo["OH"]):
            for xx in range(geo["OW"]):
                patch = xp[n, :, 2 * y : 2 * y + 2, xx : xx + 3]  # (C, kH, kW)
                np.testing.assert_array_equal(cols[row], patch.transpose(1, 2, 0).ravel())  # (i, j, c) order
                row += 1
    # col2im is the adjoint: <im2col(x), d> == <x, col2im(d)> for any d.
    d = rng.standard_normal(cols.shape).astype(np.float64)
    lhs = float((cols.astype(np.float64) * d).sum())
    by_offset = d.reshape(len(d), 2 * 3, 3).transpose(1, 0, 2)  # (kH*kW, N*OH*OW, C), col2im's layout
    rhs = float((x.astype(np.float64) * col2im_channels_last(by_offset, geo)).sum())
    assert lhs == pytest.approx(rhs, rel=1e-9)


@pytest.mark.parametrize(
    "kernel,stride,padding", [((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1)), ((3, 2), (1, 2), (0, 1))]
)
def test_channels_last_max_pool_equals_plain(kernel, stride, padding, require_tier):
    require_tier("architecture")
    from tinytorch.core.spatial import MaxPool2d
    from tinytorch.core.tensor import Tensor
    from tinytorch.optimization.acceleration import ChannelsLastMaxPool2d

    plain = MaxPool2d(kernel, stride=stride, padding=padding)
    fast = ChannelsLastMaxPool2d(plain)
    rng = np.random.default_rng(6)
    x = np.round(rng.standard_normal((2, 3, 7, 8)), 1).astype(np.float32)  # rounding makes ties
    x[0, 0] = 1.0  # a constant channel: every window a tie (first maximum takes the gradient)
    x_cl = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)  # same values, channels-last
    upstream = None
    grads = []
    for layer, data in ((plain, x), (fast, x_cl)):
        xt = Tensor(data, requires_grad=True)
        out = layer(xt)
        if upstream is None:
            upstream = rng.standard_normal(out.shape).astype(np.float32)
            expected = out.data
        np.testing.assert_array_equal(out.data, expected)
        (out * Tensor(upstream)).sum().backward()
        grads.append(xt.grad.data)
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-6, atol=1e-6)


def test_workspace_reuses_buffers_and_refuses_a_stale_backward(require_tier):
    require_tier("architecture")
    from tinytorch.core.spatial import Conv2d
    from tinytorch.core.tensor import Tensor
    from tinytorch.optimization.acceleration import ChannelsLastConv2d, Workspace

    ws = Workspace()
    a = ws.take((4, 3), np.float32, holder="a")
    ws.give(a)
    assert ws.take((4, 3), np.float32, holder="b") is a  # the same memory, handed on
    with pytest.raises(RuntimeError, match="reuse_buffers=False"):
        ws.check(a, "a")
    ws.check(a, "b")

    np.random.seed(7)
    conv = ChannelsLastConv2d(Conv2d(2, 3, 3, padding=1))
    x = Tensor(np.random.randn(2, 2, 6, 6).astype(np.float32))
    first = conv(x).sum()
    first.backward(retain_graph=True)
    grad_once = conv.weight.grad.data.copy()
    conv(Tensor(np.random.randn(2, 2, 6, 6).astype(np.float32))).sum()  # a newer forward takes the buffer
    with pytest.raises(RuntimeError, match="reuse_buffers=False"):
        first.backward()
    safe = ChannelsLastConv2d(conv, reuse_buffers=False)
    safe.zero_grad()
    out = safe(x).sum()
    out.backward(retain_graph=True)
    safe(Tensor(np.random.randn(2, 2, 6, 6).astype(np.float32))).sum()
    out.backward()
    np.testing.assert_allclose(safe.weight.grad.data, 2 * grad_once, rtol=1e-5)


# ---------------------------------------------------------------- accelerate(): the opt-in entry point


def lenet(seed=0):
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.spatial import Conv2d, Flatten, MaxPool2d

    np.random.seed(seed)
    return Sequential(
        Conv2d(1, 6, 5), ReLU(), MaxPool2d(2), Conv2d(6, 16, 5, padding=1), ReLU(), MaxPool2d(2), Flatten(),
        Linear(144, 32), ReLU(), Linear(32, 10),
    )  # fmt: skip


def test_accelerate_keeps_dilated_and_grouped_convolutions(require_tier):
    require_tier("architecture")
    from tinytorch.core.layers import Sequential
    from tinytorch.core.spatial import Conv2d
    from tinytorch.core.tensor import Tensor
    from tinytorch.optimization.acceleration import ChannelsLastConv2d, accelerate

    np.random.seed(3)
    plain = Sequential(Conv2d(4, 4, 3, dilation=2), Conv2d(4, 8, 3, groups=2), Conv2d(8, 8, 1))
    fast = accelerate(plain)
    assert [type(m) for m in fast] == [Conv2d, Conv2d, ChannelsLastConv2d]
    x = Tensor(np.random.default_rng(3).standard_normal((2, 4, 12, 12)).astype(np.float32))
    np.testing.assert_allclose(fast(x).data, plain(x).data, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="dilation and groups"):
        ChannelsLastConv2d(plain[1])


def test_accelerate_swaps_layers_and_keeps_parameters_and_state_dict(require_tier):
    require_tier("architecture")
    from tinytorch.core.spatial import Conv2d, MaxPool2d
    from tinytorch.optimization.acceleration import (
        AppliedReLU,
        ChannelsLastConv2d,
        ChannelsLastMaxPool2d,
        accelerate,
    )

    plain = lenet()
    plain_types = [type(m) for m in plain.modules()]
    fast = accelerate(plain)
    assert [type(m) for m in plain.modules()] == plain_types  # the plain model is untouched (opt-out)
    assert {type(fast[0]), type(fast[2])} == {ChannelsLastConv2d, ChannelsLastMaxPool2d}
    assert fast[0].relu and isinstance(fast[1], AppliedReLU)  # Conv2d -> ReLU: the ReLU fused in
    assert isinstance(plain[0], Conv2d) and isinstance(plain[2], MaxPool2d)
    assert all(p is q for p, q in zip(fast.parameters(), plain.parameters()))
    state, fast_state = plain.state_dict(), fast.state_dict()
    assert list(state) == list(fast_state)
    for key in state:
        np.testing.assert_array_equal(state[key], fast_state[key])
    fast.load_state_dict(state)  # loads into the shared parameters


def test_accelerated_training_follows_the_plain_path(require_tier):
    """Same losses and gradients to float32 rounding: trained from one start, both models stay together."""
    require_tier("architecture")
    import copy

    from tinytorch.core.losses import cross_entropy
    from tinytorch.core.optimizers import SGD
    from tinytorch.core.tensor import Tensor
    from tinytorch.optimization.acceleration import accelerate

    plain = lenet(1)
    fast = accelerate(copy.deepcopy(plain))  # separate parameters, same values
    rng = np.random.default_rng(8)
    x = rng.standard_normal((8, 1, 20, 20)).astype(np.float32)  # -> 16 x 3 x 3 = 144 features
    y = rng.integers(0, 10, 8)
    optimizers = [SGD(m.parameters(), lr=0.05, momentum=0.9) for m in (plain, fast)]
    for _ in range(4):
        losses = []
        for model, opt in zip((plain, fast), optimizers):
            opt.zero_grad()
            loss = cross_entropy(model(Tensor(x)), y)
            loss.backward()
            losses.append(float(loss.data))
        for p, q in zip(plain.parameters(), fast.parameters()):
            np.testing.assert_allclose(q.grad.data, p.grad.data, rtol=1e-3, atol=1e-5)
        for opt in optimizers:
            opt.step()
        assert losses[1] == pytest.approx(losses[0], rel=1e-5)


def test_accelerate_keeps_shared_modules_shared_and_hooks(require_tier):
    require_tier("architecture")
    from tinytorch.core.activations import GELU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.tensor import Tensor
    from tinytorch.optimization.acceleration import FusedGELU, accelerate

    np.random.seed(9)
    shared = Linear(4, 4)
    model = Sequential(shared, GELU(approximate="tanh"), shared)
    calls = []
    model.register_forward_hook(lambda m, args, out: calls.append(out.shape))
    fast = accelerate(model)
    assert fast[0] is fast[2] and isinstance(fast[1], FusedGELU)
    x = Tensor(np.random.randn(3, 4).astype(np.float32))
    np.testing.assert_allclose(fast(x).data, model(x).data, rtol=1e-6, atol=1e-6)
    assert calls == [(3, 4), (3, 4)]  # the hook registered before accelerate() runs on both
    fast.register_forward_hook(lambda m, args, out: calls.append("fast only"))
    model(x)
    assert calls[-1] == (3, 4)  # new hooks on the copy do not reach the original
    with pytest.raises(ValueError, match="model"):
        accelerate("not a model")


def assert_same_next_token_gradients(gpt, fast, tokens):
    """Next-token cross-entropy on ``tokens (B, T)`` gives both models the same parameter gradients."""
    from tinytorch.core.losses import cross_entropy
    from tinytorch.core.tensor import Tensor

    grads = []
    for model in (gpt, fast):
        model.zero_grad()
        logits = model(Tensor(tokens[:, :-1]))  # (B, T-1, V)
        cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1)).backward()
        grads.append([p.grad.data.copy() for p in model.parameters()])
    for g_plain, g_fast in zip(*grads):
        np.testing.assert_allclose(g_fast, g_plain, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_accelerated_gpt_matches_plain_gpt(activation, require_tier):
    require_tier("architecture")
    from tinytorch.core.tensor import Tensor
    from tinytorch.models.transformer import GPT
    from tinytorch.optimization.acceleration import FlatIndexEmbedding, FusedMLP, accelerate

    np.random.seed(10)
    gpt = GPT(30, 16, num_layers=2, num_heads=2, max_seq_len=12, activation=activation)
    fast = accelerate(gpt)
    assert all(isinstance(b.mlp, FusedMLP) for b in fast.blocks)
    assert isinstance(fast.embedding.token_embedding, FlatIndexEmbedding)
    assert fast.embedding.token_embedding.weight is gpt.embedding.token_embedding.weight
    assert list(fast.state_dict()) == list(gpt.state_dict())
    tokens = np.random.default_rng(10).integers(0, 30, (3, 12))
    assert_same_next_token_gradients(gpt, fast, tokens)
    np.testing.assert_allclose(fast(Tensor(tokens)).data, gpt(Tensor(tokens)).data, rtol=1e-5, atol=1e-5)


def test_flat_index_embedding_equals_plain_embedding_bit_for_bit(require_tier):
    require_tier("architecture")
    from tinytorch.optimization.acceleration import FlatIndexEmbedding
    from tinytorch.text.embeddings import Embedding

    np.random.seed(3)
    plain = Embedding(7, 5)
    fast = FlatIndexEmbedding(plain)
    ids = np.array([[0, 3, 3, 6], [3, 1, 0, 3]])  # repeats: their gradients must add up
    upstream = np.random.default_rng(3).standard_normal((2, 4, 5)).astype(np.float32)
    grads = []
    for layer in (plain, fast):
        layer.weight.grad = None
        out = layer(ids)
        np.testing.assert_array_equal(out.data, plain.weight.data[ids])
        (out * upstream).sum().backward()
        grads.append(layer.weight.grad.data.copy())
    np.testing.assert_array_equal(grads[1], grads[0])  # the same adds in the same order
    # the oracle: a loop over positions
    expected = np.zeros((7, 5), np.float32)
    for (b, t), v in np.ndenumerate(ids):
        expected[v] += upstream[b, t]
    np.testing.assert_allclose(grads[1], expected, rtol=1e-6)
    assert not grads[1][[2, 4, 5]].any()  # unused ids learn nothing
    with pytest.raises(ValueError, match="out of range"):
        fast(np.array([7]))


# ---------------------------------------------------------------- blockwise (online-softmax) attention


@pytest.mark.parametrize("block", [1, 3, 4, 11, 16])
def test_blockwise_attention_equals_plain_causal_attention(block, require_tier):
    require_tier("architecture")
    from tinytorch.core.attention import scaled_dot_product_attention
    from tinytorch.core.tensor import Tensor
    from tinytorch.optimization.acceleration import blockwise_attention

    rng = np.random.default_rng(block)
    # T = 11: the last block is ragged for every block size but 1 and 11.
    q, k, v, upstream = (rng.standard_normal((2, 3, 11, 4)) * 2 for _ in range(4))
    results = []
    for blockwise in (True, False):
        qkv = [Tensor(a, dtype=np.float64, requires_grad=True) for a in (q, k, v)]
        if blockwise:
            out = blockwise_attention(*qkv, block=block)
        else:
            out, _ = scaled_dot_product_attention(*qkv, mask=Tensor(np.tri(11, dtype=bool)))
        (out * upstream).sum().backward()
        results.append([out.data] + [t.grad.data for t in qkv])
    for fast, plain in zip(*results):
        np.testing.assert_allclose(fast, plain, rtol=1e-12, atol=1e-13)


def test_blockwise_attention_gradcheck_and_errors(require_tier):
    require_tier("architecture")
    from _oracles import gradcheck
    from tinytorch.core.tensor import Tensor
    from tinytorch.optimization.acceleration import blockwise_attention

    rng = np.random.default_rng(12)
    q, k, v = (Tensor(rng.standard_normal((1, 2, 5, 3)), dtype=np.float64, requires_grad=True) for _ in "qkv")
    assert gradcheck(lambda a, b, c: blockwise_attention(a, b, c, block=2), [q, k, v])
    with pytest.raises(ValueError, match=r"\(B, H, T, D\)"):
        blockwise_attention(q, k.data[:, :, :4], v)
    with pytest.raises(ValueError, match="block"):
        blockwise_attention(q, k, v, block=0)


def test_accelerate_blockwise_attention_gpt_matches_plain(require_tier):
    require_tier("architecture")
    from tinytorch.generation.kv_cache import enable_kv_cache
    from tinytorch.optimization.acceleration import BlockwiseMultiHeadAttention, accelerate

    gpt = small_gpt(13, max_seq_len=20, embed_dim=16, num_heads=2)
    fast = accelerate(gpt, attention_block=6)
    assert all(isinstance(b.attn, BlockwiseMultiHeadAttention) for b in fast.blocks)
    assert list(fast.state_dict()) == list(gpt.state_dict())
    assert not isinstance(accelerate(gpt).blocks[0].attn, BlockwiseMultiHeadAttention)  # opt-in only
    tokens = np.random.default_rng(13).integers(0, 65, (3, 20))
    assert_same_next_token_gradients(gpt, fast, tokens)
    enable_kv_cache(fast)  # a KV cache and single new tokens take the plain attention: same tokens
    prompt = tokens[:2, :5]
    np.testing.assert_array_equal(
        fast.generate(prompt, 12, temperature=0), gpt.generate(prompt, 12, temperature=0, use_cache=False)
    )
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="attention_block"):
            accelerate(gpt, attention_block=bad)


# ---------------------------------------------------------------- fused decoding of a GPT


def small_gpt(seed=0, max_seq_len=40, embed_dim=32, num_heads=4, num_layers=2, vocab=65, activation="gelu"):
    from tinytorch.models.transformer import GPT

    np.random.seed(seed)
    return GPT(vocab, embed_dim, num_layers, num_heads, max_seq_len, activation=activation)


DECODER_CASES = [(1, 1, "gelu"), (4, 1, "gelu"), (10, 1, "relu"), (6, 3, "gelu"), (6, 3, "relu")]


@pytest.mark.parametrize("prompt_len,batch,activation", DECODER_CASES)
def test_fused_decoder_same_tokens_as_model(prompt_len, batch, activation, require_tier):
    require_tier("architecture")
    from tinytorch.optimization.acceleration import FusedGPTDecoder, fast_generate

    gpt = small_gpt(6, activation=activation)
    prompt = np.random.default_rng(prompt_len).integers(0, 65, size=(batch, prompt_len))
    fused = FusedGPTDecoder(gpt).generate(prompt, 25, temperature=0)
    np.testing.assert_array_equal(fused, gpt.generate(prompt, 25, temperature=0, use_cache=False))
    np.testing.assert_array_equal(fast_generate(gpt, prompt, 25, temperature=0), fused)
    one = FusedGPTDecoder(gpt).generate(prompt[0], 5, temperature=0)  # 1-D prompt -> 1-D result
    assert one.shape == (prompt_len + 5,)


def test_fused_decoder_step_logits_equal_model_logits(require_tier):
    require_tier("architecture")
    from tinytorch.core.autograd import no_grad
    from tinytorch.core.tensor import Tensor
    from tinytorch.generation.kv_cache import KVCache
    from tinytorch.optimization.acceleration import FusedGPTDecoder

    gpt = small_gpt(11)
    tokens = np.random.default_rng(11).integers(0, 65, (2, 9))
    decoder = FusedGPTDecoder(gpt)
    cache = KVCache(2, 40, 2, 4, 8)
    pieces = [decoder.step(tokens[:, :5], cache)] + [
        decoder.step(tokens[:, t : t + 1], cache) for t in range(5, 9)
    ]
    with no_grad():
        full = gpt(Tensor(tokens)).data
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, rtol=1e-4, atol=1e-5)
    assert cache.seq_len == 9


def test_fused_decoder_sampling_matches_model_sampling(require_tier):
    """Sampling goes through the architecture tier's own sampler: same seed, same tokens."""
    require_tier("architecture")
    from tinytorch.optimization.acceleration import FusedGPTDecoder

    gpt = small_gpt(12)
    prompt = np.random.default_rng(12).integers(0, 65, size=(2, 4))
    fused = FusedGPTDecoder(gpt).generate(prompt, 12, temperature=0.8, top_k=7, seed=3)
    np.testing.assert_array_equal(fused, gpt.generate(prompt, 12, temperature=0.8, top_k=7, seed=3))


def test_fused_decoder_on_int8_model_and_window_fallback(require_tier):
    require_tier("architecture")
    from tinytorch.optimization.acceleration import FusedGPTDecoder
    from tinytorch.optimization.quantization import quantize_model

    gpt = small_gpt(7, max_seq_len=24)
    quantize_model(gpt)
    prompt = np.random.default_rng(7).integers(0, 65, size=(1, 5))
    decoder = FusedGPTDecoder(gpt)
    np.testing.assert_array_equal(
        decoder.generate(prompt, 15, temperature=0), gpt.generate(prompt, 15, temperature=0)
    )
    # 5 + 30 > 24: the window slides; the decoder defers to the model's own generate.
    np.testing.assert_array_equal(
        decoder.generate(prompt, 30, temperature=0), gpt.generate(prompt, 30, temperature=0)
    )
    sampled = decoder.generate(prompt, 10, temperature=1.0, top_k=5, seed=1)
    np.testing.assert_array_equal(sampled, decoder.generate(prompt, 10, temperature=1.0, top_k=5, seed=1))
    with pytest.raises(ValueError, match="prompt_tokens"):
        decoder.generate(np.array([[70]]), 3)
    with pytest.raises(ValueError, match="temperature"):
        decoder.generate(prompt, 3, temperature=float("nan"))
    with pytest.raises(ValueError, match="GPT"):
        FusedGPTDecoder(object())


def test_fused_decoder_matches_a_long_generation(require_tier):
    """96 greedy tokens: the fused NumPy path and full recomputation agree token for token.

    Its speed against the plain and cached paths is measured by benchmarks/_opt_timing.py.
    """
    require_tier("architecture")
    from tinytorch.optimization.acceleration import FusedGPTDecoder

    gpt = small_gpt(8, max_seq_len=110, embed_dim=64)
    prompt = np.random.default_rng(8).integers(0, 65, size=(1, 10))
    fused = FusedGPTDecoder(gpt).generate(prompt, 96, temperature=0)
    np.testing.assert_array_equal(fused, gpt.generate(prompt, 96, temperature=0, use_cache=False))
