"""Module 09: Conv2d, pooling, BatchNorm2d, Flatten against naive loops, finite differences and PyTorch."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from _oracles import gradcheck
from tinytorch.core.activations import relu
from tinytorch.core.autograd import no_grad
from tinytorch.core.spatial import (
    AvgPool2d,
    BatchNorm2d,
    BatchNorm2dFunction,
    Conv2d,
    Flatten,
    MaxPool2d,
    avg_pool2d,
    col2im,
    conv2d,
    im2col,
    max_pool2d,
)
from tinytorch.core.tensor import Tensor

# ---------------------------------------------------------------------------
# Naive oracles: the seven loops of the definition
# ---------------------------------------------------------------------------


def naive_conv(x, w, b, stride, padding):
    N, C, H, W = x.shape
    O, _, kH, kW = w.shape
    (sH, sW), (pH, pW) = stride, padding
    xp = np.zeros((N, C, H + 2 * pH, W + 2 * pW))
    xp[:, :, pH : pH + H, pW : pW + W] = x
    OH, OW = (H + 2 * pH - kH) // sH + 1, (W + 2 * pW - kW) // sW + 1
    out = np.zeros((N, O, OH, OW))
    for n in range(N):
        for o in range(O):
            for y in range(OH):
                for x_ in range(OW):
                    acc = 0.0 if b is None else b[o]
                    for c in range(C):
                        for i in range(kH):
                            for j in range(kW):
                                acc += w[o, c, i, j] * xp[n, c, y * sH + i, x_ * sW + j]
                    out[n, o, y, x_] = acc
    return out


def naive_conv_grads(x, w, g, stride, padding):
    """d(sum(g * conv))/dx, /dw, /db by scattering each output's gradient over its patch."""
    N, C, H, W = x.shape
    O, _, kH, kW = w.shape
    (sH, sW), (pH, pW) = stride, padding
    xp = np.zeros((N, C, H + 2 * pH, W + 2 * pW))
    xp[:, :, pH : pH + H, pW : pW + W] = x
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for n, o, y, x_ in itertools.product(range(N), range(O), range(g.shape[2]), range(g.shape[3])):
        patch = (n, slice(None), slice(y * sH, y * sH + kH), slice(x_ * sW, x_ * sW + kW))
        dxp[patch] += g[n, o, y, x_] * w[o]
        dw[o] += g[n, o, y, x_] * xp[patch]
    return dxp[:, :, pH : pH + H, pW : pW + W], dw, g.sum(axis=(0, 2, 3))


def naive_conv_dilated_grouped(x, w, b, stride, padding, dilation, groups):
    """The definition with dilation and groups, one output element at a time (float64)."""
    N, C, H, W = x.shape
    O, Cg, kH, kW = w.shape
    (sH, sW), (pH, pW), (dH, dW) = stride, padding, dilation
    xp = np.zeros((N, C, H + 2 * pH, W + 2 * pW))
    xp[:, :, pH : pH + H, pW : pW + W] = x
    OH = (H + 2 * pH - dH * (kH - 1) - 1) // sH + 1
    OW = (W + 2 * pW - dW * (kW - 1) - 1) // sW + 1
    out = np.zeros((N, O, OH, OW))
    for n, o, y, x_ in itertools.product(range(N), range(O), range(OH), range(OW)):
        first = (o // (O // groups)) * Cg  # the first input channel of o's group
        acc = 0.0 if b is None else b[o]
        for c, i, j in itertools.product(range(Cg), range(kH), range(kW)):
            acc += w[o, c, i, j] * xp[n, first + c, y * sH + i * dH, x_ * sW + j * dW]
        out[n, o, y, x_] = acc
    return out


def naive_pool(x, k, s, p, op):
    N, C, H, W = x.shape
    xp = np.full((N, C, H + 2 * p, W + 2 * p), -np.inf if op == "max" else 0.0)
    xp[:, :, p : p + H, p : p + W] = x
    OH, OW = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    out = np.zeros((N, C, OH, OW))
    for n, c, y, x_ in itertools.product(range(N), range(C), range(OH), range(OW)):
        win = xp[n, c, y * s : y * s + k, x_ * s : x_ * s + k]
        out[n, c, y, x_] = win.max() if op == "max" else win.mean()
    return out


def naive_maxpool_grad(x, g, k, s, p):
    """The gradient goes to the first maximum of each window (row-major), as in PyTorch."""
    N, C, H, W = x.shape
    xp = np.full((N, C, H + 2 * p, W + 2 * p), -np.inf)
    xp[:, :, p : p + H, p : p + W] = x
    dxp = np.zeros_like(xp)
    for n, c, y, x_ in itertools.product(range(N), range(C), range(g.shape[2]), range(g.shape[3])):
        win = xp[n, c, y * s : y * s + k, x_ * s : x_ * s + k]
        i, j = np.unravel_index(np.argmax(win), win.shape)  # argmax returns the first maximum
        dxp[n, c, y * s + i, x_ * s + j] += g[n, c, y, x_]
    return dxp[:, :, p : p + H, p : p + W]


def t64(a, grad=False):
    return Tensor(np.asarray(a, dtype=np.float64), requires_grad=grad, dtype=np.float64)


# ---------------------------------------------------------------------------
# im2col / col2im
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kernel,stride,padding", [((3, 3), (1, 1), (1, 1)), ((2, 3), (2, 1), (0, 2))])
def test_im2col_vs_loop_and_col2im_is_its_adjoint(kernel, stride, padding):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 5))
    (kH, kW), (sH, sW), (pH, pW) = kernel, stride, padding
    cols = im2col(x, kernel, stride, padding)
    xp = np.zeros((2, 3, 6 + 2 * pH, 5 + 2 * pW))
    xp[:, :, pH : pH + 6, pW : pW + 5] = x
    OH, OW = (6 + 2 * pH - kH) // sH + 1, (5 + 2 * pW - kW) // sW + 1
    assert cols.shape == (3 * kH * kW, 2 * OH * OW)
    for c, i, j, n, y, x_ in itertools.product(
        range(3), range(kH), range(kW), range(2), range(OH), range(OW)
    ):
        row, col = (c * kH + i) * kW + j, (n * OH + y) * OW + x_
        assert cols[row, col] == xp[n, c, y * sH + i, x_ * sW + j]
    # Adjoint (dot-product test): <im2col(x), d> == <x, col2im(d)> for every x and d.
    d = rng.standard_normal(cols.shape)
    back = col2im(d, x.shape, kernel, stride, padding)
    assert back.shape == x.shape
    np.testing.assert_allclose(np.sum(cols * d), np.sum(x * back), rtol=1e-12)


# ---------------------------------------------------------------------------
# Convolution
# ---------------------------------------------------------------------------

CONV_CASES = [
    (k, s, p, bias)
    for k in (1, 2, 3, 4, 5)
    for s in (1, 2)
    for p in (0, 1, 2)
    for bias in (True, False)
    if not (k == 5 and p == 2 and s == 2 and bias)  # keep the grid at a round number of cases
]


@pytest.mark.parametrize("k,s,p,bias", CONV_CASES)
def test_conv_forward_backward_vs_naive_loops(k, s, p, bias):
    rng = np.random.default_rng(k * 100 + s * 10 + p)
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((2, 3, k, k))
    b = rng.standard_normal(2) if bias else None
    X, Wt = t64(x, True), t64(w, True)
    B = t64(b, True) if bias else None
    y = conv2d(X, Wt, B, stride=s, padding=p)
    ref = naive_conv(x, w, b, (s, s), (p, p))
    assert y.shape == ref.shape
    np.testing.assert_allclose(y.data, ref, rtol=1e-10, atol=1e-10)
    g = rng.standard_normal(ref.shape)
    y.backward(t64(g))
    dx, dw, db = naive_conv_grads(x, w, g, (s, s), (p, p))
    np.testing.assert_allclose(X.grad.data, dx, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(Wt.grad.data, dw, rtol=1e-10, atol=1e-10)
    if bias:
        np.testing.assert_allclose(B.grad.data, db, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "kernel,stride,padding",
    [((2, 3), (1, 1), (1, 0)), ((3, 2), (2, 1), (0, 2)), ((1, 4), (1, 2), (2, 1))],
)
def test_conv_rectangular_vs_naive(kernel, stride, padding):
    rng = np.random.default_rng(7)
    x, w, b = rng.standard_normal((2, 2, 6, 7)), rng.standard_normal((3, 2, *kernel)), rng.standard_normal(3)
    X, Wt, B = t64(x, True), t64(w, True), t64(b, True)
    y = conv2d(X, Wt, B, stride=stride, padding=padding)
    np.testing.assert_allclose(y.data, naive_conv(x, w, b, stride, padding), atol=1e-10)
    g = rng.standard_normal(y.shape)
    y.backward(t64(g))
    dx, dw, db = naive_conv_grads(x, w, g, stride, padding)
    np.testing.assert_allclose(X.grad.data, dx, atol=1e-10)
    np.testing.assert_allclose(Wt.grad.data, dw, atol=1e-10)


@pytest.mark.parametrize("stride,padding", [(1, 1), (2, 0), (2, 2)])
def test_conv_gradcheck(stride, padding):
    rng = np.random.default_rng(3)
    x, w, b = (
        t64(rng.standard_normal((2, 2, 5, 5)), True),
        t64(rng.standard_normal((3, 2, 3, 3)), True),
        t64(rng.standard_normal(3), True),
    )
    assert gradcheck(lambda a, c, d: conv2d(a, c, d, stride=stride, padding=padding), [x, w, b])


@pytest.mark.parametrize(
    ("cin", "cout", "kernel", "stride", "padding", "dilation", "groups"),
    [
        (2, 3, (3, 3), (1, 1), (0, 0), (2, 2), 1),
        (4, 6, (3, 2), (2, 1), (1, 2), (1, 3), 2),
        (3, 3, (3, 3), (1, 1), (2, 2), (2, 2), 3),  # depthwise, dilated
        (6, 4, (1, 1), (1, 1), (0, 0), (1, 1), 2),
    ],
)
def test_dilated_and_grouped_conv_vs_naive_and_gradcheck(
    cin, cout, kernel, stride, padding, dilation, groups
):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, cin, 9, 8))
    w = rng.standard_normal((cout, cin // groups, *kernel))
    b = rng.standard_normal(cout)
    y = conv2d(t64(x), t64(w), t64(b), stride=stride, padding=padding, dilation=dilation, groups=groups)
    expected = naive_conv_dilated_grouped(x, w, b, stride, padding, dilation, groups)
    np.testing.assert_allclose(y.data, expected, rtol=1e-12, atol=1e-12)
    conv = Conv2d(cin, cout, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups)
    assert conv.weight.shape == (cout, cin // groups, *kernel)
    assert conv(Tensor(x.astype(np.float32))).shape == expected.shape
    small = [t64(x[:1, :, :7, :6], True), t64(w, True), t64(b, True)]
    options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    assert gradcheck(lambda a, c, d: conv2d(a, c, d, **options), small)


def test_padding_same_and_valid():
    rng = np.random.default_rng(12)
    x = t64(rng.standard_normal((1, 2, 7, 6)))
    w = t64(rng.standard_normal((3, 2, 3, 5)))
    same = conv2d(x, w, padding="same", dilation=(2, 1))  # spans 5 x 5: 2 rows and columns per side
    assert same.shape == (1, 3, 7, 6)
    np.testing.assert_allclose(same.data, conv2d(x, w, padding=(2, 2), dilation=(2, 1)).data, rtol=1e-12)
    np.testing.assert_allclose(conv2d(x, w, padding="valid").data, conv2d(x, w).data, rtol=0, atol=0)
    with pytest.raises(ValueError, match="uneven padding"):
        conv2d(x, t64(np.ones((3, 2, 2, 3))), padding="same")
    with pytest.raises(ValueError, match=r"input of shape \(1, 2, 7, 6\).*groups=2"):
        conv2d(x, t64(np.ones((4, 2, 3, 3))), groups=2)


def test_dilated_grouped_same_conv_matches_torch(torch):
    rng = np.random.default_rng(13)
    for cin, cout, k, dilation, groups in [(4, 8, 3, 2, 2), (6, 6, 5, 1, 6), (3, 6, (3, 5), (1, 2), 3)]:
        conv = Conv2d(cin, cout, k, padding="same", dilation=dilation, groups=groups)
        ref = torch.nn.Conv2d(cin, cout, k, padding="same", dilation=dilation, groups=groups)
        assert_conv_matches_torch(torch, conv, ref, rng.standard_normal((2, cin, 11, 9)), rng)


def assert_conv_matches_torch(torch, conv, ref, x, rng):
    """``conv`` and PyTorch's ``ref`` (given conv's weights) agree in output and every gradient."""
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(conv.weight.data))
        if conv.bias is not None:
            ref.bias.copy_(torch.from_numpy(conv.bias.data))
    x = x.astype(np.float32)
    X, tx = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, ty = conv(X), ref(tx)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-4, atol=1e-5)
    g = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(Tensor(g))
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(X.grad.data, tx.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(conv.weight.grad.data, ref.weight.grad.numpy(), rtol=1e-4, atol=1e-3)
    if conv.bias is not None:
        np.testing.assert_allclose(conv.bias.grad.data, ref.bias.grad.numpy(), rtol=1e-4, atol=1e-3)


def test_conv_module_matches_torch(torch):
    rng = np.random.default_rng(0)
    for cin, cout, k, s, p, bias in [(3, 8, 3, 1, 1, True), (4, 5, 5, 2, 2, False), (1, 6, 5, 1, 0, True)]:
        conv = Conv2d(cin, cout, k, stride=s, padding=p, bias=bias)
        ref = torch.nn.Conv2d(cin, cout, k, stride=s, padding=p, bias=bias)
        assert_conv_matches_torch(torch, conv, ref, rng.standard_normal((4, cin, 13, 11)), rng)


def test_conv_init_shapes_and_bounds():
    conv = Conv2d(3, 16, (3, 5))
    assert conv.weight.shape == (16, 3, 3, 5) and conv.bias.shape == (16,)
    bound = 1 / np.sqrt(3 * 3 * 5)
    assert np.abs(conv.weight.data).max() <= bound and np.abs(conv.bias.data).max() <= bound
    assert np.abs(conv.weight.data).max() > 0.8 * bound  # actually spread over the range
    assert [n for n, _ in conv.named_parameters()] == ["weight", "bias"]
    assert Conv2d(3, 4, 3, bias=False).bias is None
    assert len(Conv2d(3, 4, 3, bias=False).parameters()) == 1


def test_conv_input_without_grad_skips_dx_and_no_grad_builds_no_graph():
    conv = Conv2d(2, 3, 3)
    x = Tensor(np.ones((1, 2, 5, 5), dtype=np.float32))
    conv(x).sum().backward()
    assert x.grad is None and conv.weight.grad is not None
    with no_grad():
        y = conv(x)
    assert not y.requires_grad and y._ctx is None


def test_conv_errors_name_shapes():
    conv = Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"3 input channels.*\(2, 5, 8, 8\)"):
        conv(Tensor(np.zeros((2, 5, 8, 8), dtype=np.float32)))
    with pytest.raises(ValueError, match=r"\(1, 3, 2, 8\).*smaller than the kernel \(3, 3\)"):
        conv(Tensor(np.zeros((1, 3, 2, 8), dtype=np.float32)))
    with pytest.raises(ValueError, match=r"4-D.*\(3, 8, 8\)"):
        conv(Tensor(np.zeros((3, 8, 8), dtype=np.float32)))
    with pytest.raises(ValueError, match=r"\(1, 2, 5, 5\).*\(4, 3, 3, 3\)"):
        conv2d(Tensor(np.zeros((1, 2, 5, 5))), conv.weight)
    for kwargs, name in [
        (dict(in_channels=0, out_channels=2, kernel_size=3), "in_channels"),
        (dict(in_channels=2, out_channels=2, kernel_size=0), "kernel_size"),
        (dict(in_channels=2, out_channels=2, kernel_size=3, stride=0), "stride"),
        (dict(in_channels=2, out_channels=2, kernel_size=3, padding=-1), "padding"),
        (dict(in_channels=2, out_channels=2, kernel_size=(1, 2, 3)), "kernel_size"),
        (dict(in_channels=2, out_channels=2, kernel_size=3, padding="full"), "padding.*'full'"),
        (dict(in_channels=2, out_channels=2, kernel_size=3, stride=2, padding="same"), "needs stride 1"),
        (dict(in_channels=2, out_channels=2, kernel_size=2, padding="same"), "uneven padding"),
        (dict(in_channels=2, out_channels=2, kernel_size=3, dilation=0), "dilation"),
        (dict(in_channels=4, out_channels=6, kernel_size=3, groups=4), "groups"),
        (dict(in_channels=4, out_channels=4, kernel_size=3, groups=0), "groups"),
        (dict(in_channels=2, out_channels=2, kernel_size=(2.5, 2)), "kernel_size"),
    ]:
        with pytest.raises(ValueError, match=name):
            Conv2d(**kwargs)


# ---------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 0), (3, 3, 0), (4, 2, 2)])
def test_maxpool_vs_naive(k, s, p):
    rng = np.random.default_rng(k + 10 * s + 100 * p)
    x = rng.standard_normal((2, 3, 9, 8))
    X = t64(x, True)
    y = max_pool2d(X, k, s, p)
    ref = naive_pool(x, k, s, p, "max")
    np.testing.assert_array_equal(y.data, ref)
    g = rng.standard_normal(ref.shape)
    y.backward(t64(g))
    np.testing.assert_allclose(X.grad.data, naive_maxpool_grad(x, g, k, s, p), atol=1e-12)


def test_maxpool_ties_route_gradient_to_first_maximum():
    # integer-valued images (and ReLU zeros) make ties common: one pixel per window gets the gradient
    x = np.array([[[[1, 1, 0, 0], [1, 1, 0, 0], [2, 0, 3, 3], [0, 2, 3, 3]]]], dtype=np.float64)
    X = t64(x, True)
    y = max_pool2d(X, 2)
    np.testing.assert_array_equal(y.data[0, 0], [[1, 0], [2, 3]])
    y.sum().backward()
    expected = np.zeros((4, 4))
    expected[0, 0] = expected[0, 2] = expected[2, 0] = expected[2, 2] = 1
    np.testing.assert_array_equal(X.grad.data[0, 0], expected)


@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 1, 0), (3, 2, 1), (2, 3, 1)])
def test_avgpool_vs_naive_and_gradcheck(k, s, p):
    rng = np.random.default_rng(k * 7 + s)
    x = rng.standard_normal((2, 2, 7, 6))
    y = avg_pool2d(t64(x), k, s, p)
    np.testing.assert_allclose(y.data, naive_pool(x, k, s, p, "avg"), atol=1e-12)
    assert gradcheck(lambda a: avg_pool2d(a, k, s, p), [t64(x[:1, :2], True)])


def test_maxpool_gradcheck():
    x = t64(np.random.default_rng(5).permutation(2 * 49).reshape(2, 1, 7, 7) / 10.0, True)  # distinct values
    assert gradcheck(lambda a: max_pool2d(a, 3, 2, 1), [x])


def test_pool_modules_match_torch(torch):
    rng = np.random.default_rng(1)
    x = np.maximum(rng.standard_normal((4, 3, 12, 10)), 0).astype(np.float32)  # ReLU output: many ties
    for ours, ref in [
        (MaxPool2d(2), torch.nn.MaxPool2d(2)),
        (MaxPool2d(3, stride=2, padding=1), torch.nn.MaxPool2d(3, stride=2, padding=1)),
        (AvgPool2d(2), torch.nn.AvgPool2d(2)),
        (AvgPool2d(3, stride=1), torch.nn.AvgPool2d(3, stride=1)),
        (AvgPool2d(3, stride=2, padding=1), torch.nn.AvgPool2d(3, stride=2, padding=1)),
    ]:
        X, tx = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        y, ty = ours(X), ref(tx)
        np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-6, atol=1e-6)
        g = rng.standard_normal(y.shape).astype(np.float32)
        y.backward(Tensor(g))
        ty.backward(torch.from_numpy(g))
        np.testing.assert_allclose(X.grad.data, tx.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_pool_errors():
    with pytest.raises(ValueError, match=r"\(1, 1, 1, 5\).*smaller than the kernel"):
        MaxPool2d(2)(Tensor(np.zeros((1, 1, 1, 5), dtype=np.float32)))
    with pytest.raises(ValueError, match=r"4-D.*\(5, 5\)"):
        AvgPool2d(2)(Tensor(np.zeros((5, 5), dtype=np.float32)))
    with pytest.raises(ValueError, match="padding"):
        MaxPool2d(2, padding=2)(Tensor(np.zeros((1, 1, 6, 6), dtype=np.float32)))
    with pytest.raises(ValueError, match="kernel_size"):
        MaxPool2d(0)(Tensor(np.zeros((1, 1, 6, 6), dtype=np.float32)))


# ---------------------------------------------------------------------------
# BatchNorm2d, Flatten
# ---------------------------------------------------------------------------


def batch_norm_with_batch_stats(x, gamma, beta):
    """Training-mode batch norm: the statistics are recomputed from x (so finite differences move them)."""
    mean, var = x.data.mean(axis=(0, 2, 3)), x.data.var(axis=(0, 2, 3))
    return BatchNorm2dFunction.apply(x, gamma, beta, mean, var, eps=1e-5, batch_stats=True)


def test_batchnorm_train_forward_closed_form_and_gradcheck():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 2, 5)) * 3 + 1
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    y = batch_norm_with_batch_stats(t64(x), t64(gamma), t64(beta))
    mu = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    ref = (x - mu) / np.sqrt(var + 1e-5) * gamma.reshape(1, 3, 1, 1) + beta.reshape(1, 3, 1, 1)
    np.testing.assert_allclose(y.data, ref, atol=1e-10)
    inputs = [t64(x[:2, :, :, :3], True), t64(gamma, True), t64(beta, True)]
    assert gradcheck(batch_norm_with_batch_stats, inputs)


def test_batchnorm_fixed_statistics_gradcheck():
    rng = np.random.default_rng(1)
    mean, var = rng.standard_normal(3), rng.random(3) + 0.5
    inputs = [
        t64(rng.standard_normal((2, 3, 2, 3)), True),
        t64(rng.standard_normal(3), True),
        t64(np.ones(3), True),
    ]
    assert gradcheck(
        lambda a, g, b: BatchNorm2dFunction.apply(a, g, b, mean, var, eps=1e-5, batch_stats=False), inputs
    )


def test_batchnorm_float64_running_statistics_in_float64():
    """After .to(float64) the running statistics are updated in float64 (not rounded to float32)."""
    bn = BatchNorm2d(2, momentum=0.3).to(np.float64)
    x = np.random.default_rng(5).standard_normal((3, 2, 2, 2)) * 1e-3 + 1 / 3
    bn(t64(x))
    assert bn.running_mean.dtype == np.float64 and bn.running_var.dtype == np.float64
    m = 3 * 2 * 2
    np.testing.assert_allclose(bn.running_mean, 0.3 * x.mean(axis=(0, 2, 3)), rtol=1e-14)
    np.testing.assert_allclose(bn.running_var, 0.7 + 0.3 * x.var(axis=(0, 2, 3)) * m / (m - 1), rtol=1e-14)
    bn.eval()
    y = bn(t64(x))
    assert y.dtype == np.float64
    ref = (x - bn.running_mean.reshape(1, 2, 1, 1)) / np.sqrt(bn.running_var.reshape(1, 2, 1, 1) + 1e-5)
    np.testing.assert_allclose(y.data, ref, rtol=1e-12)


def test_batchnorm_matches_torch_train_and_eval(torch):
    rng = np.random.default_rng(2)
    bn, ref = BatchNorm2d(3, momentum=0.2), torch.nn.BatchNorm2d(3, momentum=0.2)
    bn.weight.data[...] = rng.standard_normal(3)
    bn.bias.data[...] = rng.standard_normal(3)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(bn.weight.data))
        ref.bias.copy_(torch.from_numpy(bn.bias.data))
    for step in range(3):
        x = (rng.standard_normal((5, 3, 4, 4)) * (step + 1) + step).astype(np.float32)
        X, tx = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        y, ty = bn(X), ref(tx)
        np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-4, atol=1e-5)
        g = rng.standard_normal(x.shape).astype(np.float32)
        y.backward(Tensor(g))
        ty.backward(torch.from_numpy(g))
        np.testing.assert_allclose(X.grad.data, tx.grad.numpy(), rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(bn.weight.grad.data, ref.weight.grad.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(bn.bias.grad.data, ref.bias.grad.numpy(), rtol=1e-4, atol=1e-4)
        bn.zero_grad()
        ref.zero_grad()
    # running statistics use the unbiased variance, exactly as PyTorch
    np.testing.assert_allclose(bn.running_mean, ref.running_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_var, ref.running_var.numpy(), rtol=1e-5, atol=1e-6)
    bn.eval()
    ref.eval()
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    X, tx = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, ty = bn(X), ref(tx)
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-4, atol=1e-5)
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_allclose(X.grad.data, tx.grad.numpy(), rtol=1e-5, atol=1e-5)
    # buffers are part of the state dict
    state = bn.state_dict()
    assert set(state) == set(ref.state_dict()) == {
        "weight", "bias", "running_mean", "running_var", "num_batches_tracked"
    }
    assert int(state["num_batches_tracked"]) == int(ref.num_batches_tracked) == 3


def test_cnn_state_dict_moves_between_pytorch_and_tinytorch(torch):
    """A PyTorch CNN's state_dict (conv, batch norm with its buffers, linear) loads unchanged, and back."""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential

    nn = torch.nn
    rng = np.random.default_rng(7)

    def theirs_model():
        return nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 8, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 3 * 3, 5),
        )  # fmt: skip

    theirs = theirs_model()
    for _ in range(2):  # running statistics and the batch count away from their initial values
        theirs(torch.from_numpy(rng.standard_normal((4, 3, 16, 16)).astype(np.float32)))
    theirs.eval()
    ours = Sequential(
        Conv2d(3, 6, 3, padding=1), BatchNorm2d(6), ReLU(), MaxPool2d(2),
        Conv2d(6, 8, 3, stride=2), ReLU(), Flatten(), Linear(8 * 3 * 3, 5),
    ).eval()  # fmt: skip
    state = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    assert set(state) == set(ours.state_dict())
    ours.load_state_dict(state)
    x = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    expected = theirs(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(ours(Tensor(x)).data, expected, rtol=1e-4, atol=1e-5)
    back = theirs_model().eval()
    back.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.state_dict().items()})
    np.testing.assert_array_equal(back(torch.from_numpy(x)).detach().numpy(), expected)


def test_batchnorm_running_stats_closed_form():
    bn = BatchNorm2d(2, momentum=0.5)
    x = np.random.default_rng(4).standard_normal((3, 2, 2, 2)).astype(np.float32)
    bn(Tensor(x))
    m = 3 * 2 * 2
    np.testing.assert_allclose(bn.running_mean, 0.5 * x.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(bn.running_var, 0.5 + 0.5 * x.var(axis=(0, 2, 3)) * m / (m - 1), rtol=1e-5)


def test_batchnorm_errors():
    bn = BatchNorm2d(3)
    with pytest.raises(ValueError, match=r"3 input channels.*\(2, 4, 3, 3\)"):
        bn(Tensor(np.zeros((2, 4, 3, 3), dtype=np.float32)))
    with pytest.raises(ValueError, match="more than 1 value"):
        bn(Tensor(np.zeros((1, 3, 1, 1), dtype=np.float32)))
    for kwargs, name in [
        (dict(num_features=0), "num_features"),
        (dict(num_features=2, momentum=2), "momentum"),
    ]:
        with pytest.raises(ValueError, match=name):
            BatchNorm2d(**kwargs)


def test_flatten():
    x = Tensor(np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5), requires_grad=True)
    y = Flatten()(x)
    assert y.shape == (2, 60)
    np.testing.assert_array_equal(y.data, x.data.reshape(2, 60))
    assert Flatten(2)(x).shape == (2, 3, 20)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.ones((2, 3, 4, 5)))
    with pytest.raises(ValueError, match="start_dim"):
        Flatten(7)(x)


def test_conv_relu_pool_chain_matches_torch(torch):
    """Conv outputs are strided views (channel-major memory); pooling and gradients must not care."""
    rng = np.random.default_rng(11)
    conv = Conv2d(3, 4, 3, padding=1)
    ref = torch.nn.Conv2d(3, 4, 3, padding=1)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(conv.weight.data))
        ref.bias.copy_(torch.from_numpy(conv.bias.data))
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    X, tx = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y = MaxPool2d(2)(relu(conv(X) * 1.0))
    ty = torch.nn.functional.max_pool2d(torch.relu(ref(tx)), 2)
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    g = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(Tensor(g))
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(X.grad.data, tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(conv.weight.grad.data, ref.weight.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_maxpool_on_transposed_memory_layout_vs_naive():
    rng = np.random.default_rng(12)
    base = rng.standard_normal((3, 2, 8, 6))
    x = np.ascontiguousarray(base.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)  # (N, C, H, W), C-major memory
    X = t64(x, True)
    X.data = x  # keep the channel-major layout (t64 may copy)
    y = max_pool2d(X, 2)
    np.testing.assert_array_equal(y.data, naive_pool(base, 2, 2, 0, "max"))
    g = rng.standard_normal(y.shape)
    y.backward(t64(g))
    np.testing.assert_allclose(X.grad.data, naive_maxpool_grad(base, g, 2, 2, 0), atol=1e-12)


def test_maxpool_channels_last_memory_with_uncovered_border_vs_naive():
    """Any memory layout of the input, and rows/columns no window covers (9 x 7 pooled by 2)."""
    rng = np.random.default_rng(13)
    base = np.round(rng.standard_normal((2, 5, 9, 7)))  # integer values: ties are common
    x = np.ascontiguousarray(base.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)  # channels-last memory
    X = t64(x, True)
    X.data = x
    y = max_pool2d(X, 2)
    np.testing.assert_array_equal(y.data, naive_pool(base, 2, 2, 0, "max"))
    g = rng.standard_normal(y.shape)  # C-contiguous: a different layout from the input
    y.backward(t64(g))
    np.testing.assert_allclose(X.grad.data, naive_maxpool_grad(base, g, 2, 2, 0), atol=1e-12)
