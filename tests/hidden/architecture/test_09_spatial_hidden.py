"""Hidden tests of module 09 (spatial): convolution and pooling against naive loops, gradients by
finite differences (the tests' own oracle, not the framework's gradcheck)."""

from __future__ import annotations

import numpy as np
from _oracles import assert_close, gradcheck
from tinytorch.core.spatial import Flatten, MaxPool2d, conv2d
from tinytorch.core.tensor import Tensor


def naive_conv(x, w, b, stride, padding):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh = (h + 2 * padding - kh) // stride + 1
    ow = (wd + 2 * padding - kw) // stride + 1
    out = np.zeros((n, o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out


def test_conv_rectangular_kernel_stride_two_padding_one_vs_loop():
    rng = np.random.default_rng(91)
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((4, 3, 3, 2))
    b = rng.standard_normal(4)
    out = conv2d(Tensor(x, dtype=np.float64), Tensor(w, dtype=np.float64), Tensor(b, dtype=np.float64), 2, 1)
    assert_close(out, naive_conv(x, w, b, 2, 1), rtol=1e-9, atol=1e-9, what="conv2d output")


def test_conv_gradients_by_finite_differences():
    rng = np.random.default_rng(92)
    x = Tensor(rng.standard_normal((1, 2, 5, 4)), requires_grad=True, dtype=np.float64)
    w = Tensor(rng.standard_normal((3, 2, 2, 3)), requires_grad=True, dtype=np.float64)
    b = Tensor(rng.standard_normal(3), requires_grad=True, dtype=np.float64)
    assert gradcheck(lambda x, w, b: conv2d(x, w, b, 1, 1), [x, w, b])


def test_maxpool_vs_loop_and_flatten():
    rng = np.random.default_rng(93)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    out = MaxPool2d(3, stride=3)(Tensor(x))
    expected = x.reshape(2, 3, 2, 3, 2, 3).max(axis=(3, 5))
    assert_close(out, expected, rtol=0, atol=0, what="max pool")
    assert Flatten()(out).shape == (2, 12)


def test_batchnorm_eval_mode_uses_the_running_statistics_and_its_gradient():
    """Eval mode in closed form (PyTorch's momentum rule, unbiased running variance), then its gradient."""
    from tinytorch.core.spatial import BatchNorm2d

    rng = np.random.default_rng(94)
    bn = BatchNorm2d(3, momentum=0.5)
    batch = rng.standard_normal((4, 3, 2, 2)).astype(np.float32) * 2 + 1
    bn(Tensor(batch))  # one training step updates the running statistics
    m = 4 * 2 * 2
    mean = 0.5 * 0 + 0.5 * batch.mean(axis=(0, 2, 3))
    var = 0.5 * 1 + 0.5 * batch.var(axis=(0, 2, 3)) * m / (m - 1)
    assert_close(bn.running_mean, mean, rtol=1e-5, atol=1e-6, what="running mean")
    assert_close(bn.running_var, var, rtol=1e-5, atol=1e-6, what="running var")
    bn.eval()
    x = rng.standard_normal((2, 3, 2, 2))
    expected = (x - mean.reshape(1, 3, 1, 1)) / np.sqrt(var.reshape(1, 3, 1, 1) + bn.eps)
    assert_close(bn(Tensor(x.astype(np.float32))), expected, rtol=1e-4, atol=1e-5, what="eval output")
    bn.weight.data = bn.weight.data.astype(np.float64)
    bn.bias.data = bn.bias.data.astype(np.float64)
    xt = Tensor(x, requires_grad=True, dtype=np.float64)
    assert gradcheck(lambda t, w, b: bn(t), [xt, bn.weight, bn.bias])
