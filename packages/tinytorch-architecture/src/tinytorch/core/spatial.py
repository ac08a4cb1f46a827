"""Module 09: spatial layers, convolution, pooling, batch normalization.

Convolution slides a small filter over an image. Written as loops it is seven
nested loops (batch, output channel, output row, output column, input channel,
kernel row, kernel column); written for a CPU it is **im2col + one matrix
multiply**:

1. *im2col*: copy, for every output pixel, the ``C x kH x kW`` input patch it
   sees into one column of a matrix ``cols`` of shape ``(C*kH*kW, N*OH*OW)``.
   NumPy's ``sliding_window_view`` shows every patch of the padded input as a
   strided *view* (no copy, no Python loop); one reshape copies them into ``cols``.
2. *one matmul*: ``out = W.reshape(O, C*kH*kW) @ cols`` gives every output
   channel of every pixel of the whole batch at once.

The backward pass is two more matmuls, ``dW = dout @ cols.T`` and
``dcols = W.T @ dout``, then *col2im*, the adjoint of im2col: every column of
``dcols`` is added back onto the input pixels it was copied from. Patches
overlap, so col2im is a sum; it loops over the ``kH*kW`` kernel offsets only,
each iteration one vectorized add over the whole batch.

Pooling reduces each window to one number (its maximum or mean) and needs no
matmul: the same ``sliding_window_view`` shows the windows, and the backward
pass routes the gradient back with the same loop over kernel offsets as col2im.
Batch normalization standardizes every channel with the statistics of the batch.

Costs for input ``(N, C, H, W)``, ``O`` filters of ``kH x kW``, output
``OH x OW``: forward ``2 N OH OW O C kH kW`` flops and an im2col buffer of
``C kH kW N OH OW`` floats (kept for backward); backward twice the flops.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from tinytorch.core.autograd import Function
from tinytorch.core.layers import Module, Parameter
from tinytorch.core.tensor import Tensor

__all__ = [
    "Conv2d",
    "MaxPool2d",
    "AvgPool2d",
    "BatchNorm2d",
    "Flatten",
    "conv2d",
    "max_pool2d",
    "avg_pool2d",
    "im2col",
    "col2im",
    "Conv2dFunction",
    "MaxPool2dFunction",
    "AvgPool2dFunction",
    "BatchNorm2dFunction",
]


# ---------------------------------------------------------------------------
# Argument checks (given code)
# ---------------------------------------------------------------------------


def _pair(value, name: str, op: str = "spatial") -> tuple[int, int]:
    """``3 -> (3, 3)``; ``(2, 3) -> (2, 3)``; non-negative ints only, else a ValueError naming ``name``."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        pair = (int(value), int(value))
    else:
        try:
            pair = tuple(value)
        except TypeError:
            pair = ()
        ints = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair)
        if len(pair) != 2 or not ints:
            raise ValueError(f"{op}: argument '{name}' must be an int or a pair of ints, got {value!r}")
        pair = (int(pair[0]), int(pair[1]))
    if min(pair) < 0:
        raise ValueError(f"{op}: argument '{name}' must be non-negative, got {value!r}")
    return pair


def _out_size(size: int, k: int, s: int, p: int) -> int:
    """Output length of a ``k`` window sliding by ``s`` over ``size`` padded by ``p`` per side."""
    return (size + 2 * p - k) // s + 1


def _check_input(op: str, x: np.ndarray, channels: int | None, kernel, padding) -> None:
    """4-D input with the right channel count and room for at least one window, else ValueError."""
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{op}: expected {channels} input channels, got input of shape {x.shape}")
    H, W = x.shape[2:]
    (kH, kW), (pH, pW) = kernel, padding
    if H + 2 * pH < kH or W + 2 * pW < kW:
        raise ValueError(
            f"{op}: input of shape {x.shape} (padded by {padding}) is smaller than the kernel {kernel}"
        )


def _pad(x: np.ndarray, padding: tuple[int, int], value: float = 0.0) -> np.ndarray:
    """``x (N, C, H, W)`` with ``padding = (pH, pW)`` rows/columns of ``value`` added on each side."""
    pH, pW = padding
    if pH == pW == 0:
        return x  # nothing to add
    return np.pad(x, ((0, 0), (0, 0), (pH, pH), (pW, pW)), constant_values=value)


def _span(kernel, dilation) -> tuple[int, int]:
    """Pixels a kernel covers when it reads every ``d``-th pixel: ``d * (k - 1) + 1`` per axis."""
    return tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))


def _conv_padding(padding, kernel, stride, dilation, op: str) -> tuple[int, int]:
    """Padding per side as a pair; ``'valid'`` is 0 and ``'same'`` keeps H and W (stride 1), as PyTorch."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0)
        if padding != "same":
            raise ValueError(
                f"{op}: argument 'padding' must be 'same', 'valid', an int or a pair, got {padding!r}"
            )
        if stride != (1, 1):
            raise ValueError(f"{op}: padding='same' needs stride 1 (as in PyTorch), got stride {stride}")
        total = [span - 1 for span in _span(kernel, dilation)]
        if any(t % 2 for t in total):
            raise ValueError(
                f"{op}: padding='same' with kernel {kernel} and dilation {dilation} needs uneven padding "
                "(one more row or column on one side), which is not supported: use an odd kernel span"
            )
        return (total[0] // 2, total[1] // 2)
    return _pair(padding, "padding", op)


def _output_hw(x_shape: tuple, kernel, stride, padding) -> tuple[int, int]:
    """``(OH, OW)``: output height and width of windows ``kernel`` sliding by ``stride`` over padded ``x``."""
    return tuple(_out_size(n, k, s, p) for n, k, s, p in zip(x_shape[2:], kernel, stride, padding))


# ---------------------------------------------------------------------------
# im2col / col2im
# ---------------------------------------------------------------------------


def im2col(
    x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int], dilation=(1, 1)
):
    """Unfold every ``kH x kW`` patch of ``x`` into a column of a matrix.

    Args:
        x: input ``(N, C, H, W)``.
        kernel, stride, padding: pairs ``(h, w)``; zero padding on each side.
        dilation: pair; the kernel reads every ``d``-th pixel (1: adjacent pixels).

    Returns:
        ``cols`` of shape ``(C*kH*kW, N*OH*OW)``: rows ordered ``(c, i, j)`` (the
        order of ``weight.reshape(O, C*kH*kW)``), columns ordered ``(n, y, x)``;
        ``cols[(c, i, j), (n, y, x)] = xpad[n, c, y*sH + i*dH, x*sW + j*dW]``.

    Cost: one copy of the padded input and one of ``C kH kW N OH OW`` elements; no Python loop.
    """
    ### BEGIN SOLUTION
    N, C = x.shape[:2]
    (kH, kW), (sH, sW), (dH, dW) = kernel, stride, dilation
    # Every window of the padded input, as a view: windows[n, c, y, x] has its top-left
    # corner at xpad[n, c, y*sH, x*sW] and spans d*(k-1)+1 pixels, of which the kernel
    # reads every d-th. No copy yet.
    windows = sliding_window_view(_pad(x, padding), _span(kernel, dilation), axis=(2, 3))
    windows = windows[:, :, ::sH, ::sW, ::dH, ::dW]
    OH, OW = windows.shape[2:4]  # windows: (N, C, OH, OW, kH, kW)
    # (N, C, OH, OW, kH, kW) -> (C, kH, kW, N, OH, OW) -> (C*kH*kW, N*OH*OW): the one copy
    return windows.transpose(1, 4, 5, 0, 2, 3).reshape(C * kH * kW, N * OH * OW)
    ### END SOLUTION


def col2im(cols: np.ndarray, x_shape: tuple, kernel, stride, padding, dilation=(1, 1)) -> np.ndarray:
    """Adjoint of :func:`im2col`: add every column back onto the pixels of its patch.

    Args:
        cols: ``(C*kH*kW, N*OH*OW)``, e.g. the gradient w.r.t. im2col's output.
        x_shape: ``(N, C, H, W)``, the shape of im2col's input.
        kernel, stride, padding, dilation: the pairs im2col was called with.

    Returns:
        ``dx`` of shape ``(N, C, H, W)`` (the padding cropped away): each input
        pixel receives the sum of the entries of every patch that contains it.

    Cost: ``kH*kW`` vectorized adds of ``N C OH OW`` elements (a loop over
    kernel offsets only, never over pixels or the batch).
    """
    ### BEGIN SOLUTION
    N, C, H, W = x_shape
    (kH, kW), (sH, sW), (pH, pW), (dH, dW) = kernel, stride, padding, dilation
    OH, OW = _output_hw(x_shape, _span(kernel, dilation), stride, padding)
    patches = cols.reshape(C, kH, kW, N, OH, OW)
    dxp = np.zeros((N, C, H + 2 * pH, W + 2 * pW), dtype=cols.dtype)
    for i in range(kH):
        for j in range(kW):
            # Kernel offset (i, j) of output pixel (y, x) read input pixel (y*sH + i*dH, x*sW + j*dW).
            rows, columns = slice(i * dH, i * dH + sH * OH, sH), slice(j * dW, j * dW + sW * OW, sW)
            dxp[:, :, rows, columns] += patches[:, i, j].transpose(1, 0, 2, 3)
    return dxp[:, :, pH : pH + H, pW : pW + W]
    ### END SOLUTION


# ---------------------------------------------------------------------------
# Convolution
# ---------------------------------------------------------------------------


class Conv2dFunction(Function):
    """2-D cross-correlation ``y[n, o] = b[o] + sum_c W[o, c] (*) x[n, c]`` as im2col + one matmul.

    Inputs ``x (N, C, H, W)``, ``weight (O, C/G, kH, kW)``, ``bias (O,)`` or None;
    keywords ``stride``, ``padding``, ``dilation`` (pairs) and ``groups`` G: the
    channels split into G groups, output channels ``[k O/G, (k+1) O/G)`` seeing only
    input channels ``[k C/G, (k+1) C/G)``. Output ``(N, O, OH, OW)``.

    The matmul is batched over the groups (one group: an ordinary matmul). Backward,
    with ``g = grad`` as ``(G, O/G, N*OH*OW)``: ``dW = g @ cols.T``, ``db = g summed
    over its columns``, ``dx = col2im(W^T @ g)``.
    """

    name = "conv2d"

    @staticmethod
    def forward(ctx, x, weight, bias, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
        ctx.x_shape, ctx.stride, ctx.padding, ctx.dilation = x.shape, stride, padding, dilation
        ### BEGIN SOLUTION
        N, (O, Cg, kH, kW), G = x.shape[0], weight.shape, groups
        cols = im2col(x, (kH, kW), stride, padding, dilation)  # (C*kH*kW, N*OH*OW), C = G*Cg
        # Rows of cols are ordered (c, i, j): group k's channels are one contiguous block of rows.
        cols = cols.reshape(G, Cg * kH * kW, -1)  # (G, Cg*kH*kW, N*OH*OW)
        out = weight.reshape(G, O // G, Cg * kH * kW) @ cols  # (G, O/G, N*OH*OW): the one matmul
        out = out.reshape(O, -1)  # (O, N*OH*OW)
        if bias is not None:
            out += bias.reshape(O, 1)
        OH, OW = _output_hw(x.shape, _span((kH, kW), dilation), stride, padding)
        out = out.reshape(O, N, OH, OW).transpose(1, 0, 2, 3)  # (N, O, OH, OW), a view
        ### END SOLUTION
        ctx.save_for_backward(cols, weight)
        return out

    @staticmethod
    def backward(ctx, grad):
        cols, weight = ctx.saved_tensors
        needs_x, needs_w, needs_b = ctx.needs_input_grad
        ### BEGIN SOLUTION
        O, Cg, kH, kW = weight.shape
        G = cols.shape[0]
        g = grad.transpose(1, 0, 2, 3).reshape(G, O // G, -1)  # (N, O, OH, OW) -> (G, O/G, N*OH*OW)
        dx = dw = db = None
        if needs_x:
            dcols = weight.reshape(G, O // G, -1).transpose(0, 2, 1) @ g  # (G, Cg*kH*kW, N*OH*OW)
            dcols = dcols.reshape(G * Cg * kH * kW, -1)  # (C*kH*kW, N*OH*OW)
            dx = col2im(dcols, ctx.x_shape, (kH, kW), ctx.stride, ctx.padding, ctx.dilation)
        if needs_w:
            dw = (g @ cols.transpose(0, 2, 1)).reshape(O, Cg, kH, kW)
        if needs_b:
            db = g.reshape(O, -1).sum(axis=1)
        return dx, dw, db
        ### END SOLUTION


def _groups(groups, op: str) -> int:
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{op}: argument 'groups' must be a positive int, got {groups!r}")
    return int(groups)


def conv2d(
    x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1, groups=1
) -> Tensor:
    """2-D convolution (cross-correlation, as PyTorch) of ``x`` with ``weight``.

    ``out[n, o, y, x] = bias[o] + sum_{c,i,j} weight[o, c, i, j] * xpad[n, c0 + c, y*sH + i*dH, x*sW + j*dW]``
    where ``c0 = (o // (O/G)) * (C/G)`` is the first input channel of output channel o's group.

    Args:
        x: ``(N, C, H, W)``.
        weight: ``(O, C/G, kH, kW)``.
        bias: ``(O,)`` or None.
        stride: int or pair.
        padding: int or pair of zeros on each side, ``'valid'`` (0) or ``'same'`` (output as
            large as the input; stride 1 and an odd kernel span ``d*(k-1)+1``).
        dilation: int or pair; the kernel reads every ``d``-th pixel.
        groups: G, dividing C and O.

    Shape: ``(N, C, H, W) -> (N, O, (H + 2pH - dH(kH-1) - 1)//sH + 1, (W + 2pW - dW(kW-1) - 1)//sW + 1)``.
    """
    x = x if isinstance(x, Tensor) else Tensor(x)
    stride, dilation = _pair(stride, "stride", "conv2d"), _pair(dilation, "dilation", "conv2d")
    if min(stride) < 1:
        raise ValueError(f"conv2d: argument 'stride' must be >= 1, got {stride}")
    if min(dilation) < 1:
        raise ValueError(f"conv2d: argument 'dilation' must be >= 1, got {dilation}")
    groups = _groups(groups, "conv2d")
    if weight.ndim != 4:
        raise ValueError(f"conv2d: weight must be 4-D (O, C/groups, kH, kW), got shape {weight.shape}")
    padding = _conv_padding(padding, weight.shape[2:], stride, dilation, "conv2d")
    if x.ndim != 4 or x.shape[1] != weight.shape[1] * groups:
        raise ValueError(
            f"conv2d: input of shape {x.shape} does not match weight of shape {weight.shape} "
            f"(expected (N, {weight.shape[1] * groups}, H, W) with groups={groups})"
        )
    if weight.shape[0] % groups:
        raise ValueError(f"conv2d: weight of shape {weight.shape}: {weight.shape[0]} filters are not "
                         f"divisible by groups={groups}")  # fmt: skip
    _check_input("conv2d", x.data, None, _span(weight.shape[2:], dilation), padding)
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"conv2d: bias of shape {bias.shape} does not match weight of shape {weight.shape}")
    return Conv2dFunction.apply(
        x, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups
    )


class Conv2d(Module):
    """2-D convolution layer (as ``torch.nn.Conv2d``): ``y = conv2d(x, weight, bias, ...)``.

    Args:
        in_channels: channels ``C`` of the input.
        out_channels: number of filters ``O``.
        kernel_size: int or ``(kH, kW)``.
        stride: int or pair (default 1).
        padding: int or pair of zeros added on each side, ``'valid'`` or ``'same'`` (default 0).
        dilation: int or pair: the kernel reads every ``d``-th pixel (default 1).
        groups: G: input and output channels split into G groups that do not mix (default 1;
            ``groups == in_channels`` is a depthwise convolution).
        bias: learn a per-filter bias (default True).

    Attributes:
        weight: ``(out_channels, in_channels / groups, kH, kW)``, initialized
            ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` with ``fan_in = (C/G)*kH*kW`` (PyTorch's default).
        bias: ``(out_channels,)`` with the same bound, or None.
        padding: the padding per side as a pair (``'same'`` resolved).

    Shape: ``(N, C, H, W) -> (N, O, OH, OW)``. Cost: see :class:`Conv2dFunction`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
    ):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Conv2d: argument '{name}' must be a positive int, got {v!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size", "Conv2d")
        self.stride = _pair(stride, "stride", "Conv2d")
        self.dilation = _pair(dilation, "dilation", "Conv2d")
        self.groups = _groups(groups, "Conv2d")
        if min(self.kernel_size) < 1:
            raise ValueError(f"Conv2d: argument 'kernel_size' must be >= 1, got {kernel_size!r}")
        if min(self.stride) < 1:
            raise ValueError(f"Conv2d: argument 'stride' must be >= 1, got {stride!r}")
        if min(self.dilation) < 1:
            raise ValueError(f"Conv2d: argument 'dilation' must be >= 1, got {dilation!r}")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"Conv2d: argument 'groups' ({self.groups}) must divide in_channels ({self.in_channels}) "
                f"and out_channels ({self.out_channels})"
            )
        self.padding = _conv_padding(padding, self.kernel_size, self.stride, self.dilation, "Conv2d")
        fan_in = self.in_channels // self.groups * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / math.sqrt(fan_in)
        shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        # The global NumPy generator, like Linear: np.random.seed(...) makes models reproducible.
        self.weight = Parameter(np.random.uniform(-bound, bound, size=shape).astype(np.float32))
        self.bias = (
            Parameter(np.random.uniform(-bound, bound, size=self.out_channels).astype(np.float32))
            if bias
            else None
        )

    def forward(self, x: Tensor) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        _check_input("Conv2d", x.data, self.in_channels, _span(self.kernel_size, self.dilation), self.padding)
        ### BEGIN SOLUTION
        return Conv2dFunction.apply(
            x, self.weight, self.bias, stride=self.stride, padding=self.padding,
            dilation=self.dilation, groups=self.groups,
        )  # fmt: skip
        ### END SOLUTION

    def extra_repr(self) -> str:
        extra = "" if self.dilation == (1, 1) else f", dilation={self.dilation}"
        extra += "" if self.groups == 1 else f", groups={self.groups}"
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}{extra}, bias={self.bias is not None}"
        )


# ---------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------


class MaxPool2dFunction(Function):
    """Max over each ``kH x kW`` window (``-inf`` padding); the gradient goes to the window's arg-max.

    Pooling works on every channel of every image alone, so the input is seen
    as ``N*C`` one-channel images; :func:`im2col` then lays every window out as
    one column of ``cols (kH*kW, N*C*OH*OW)``. The forward pass takes each
    column's maximum; the backward pass puts each window's gradient on the row
    of its maximum and adds the columns back with :func:`col2im`.
    Ties: the first maximum in row-major window order takes the whole gradient (PyTorch's rule).

    The maximum's row is found in backward by comparing each column with its
    maximum, not with ``argmax(axis=0)``: NumPy runs an arg-max along a short
    axis as one tiny reduction per window, about 30x slower than the comparison.

    Cost: one im2col copy of ``N C OH OW kH kW`` elements and one max; backward
    one comparison and one col2im. Memory: ``cols`` is kept for backward.
    """

    name = "max_pool2d"

    @staticmethod
    def forward(ctx, x, kernel=(2, 2), stride=(2, 2), padding=(0, 0)):
        ctx.x_shape, ctx.kernel, ctx.stride, ctx.padding = x.shape, kernel, stride, padding
        ### BEGIN SOLUTION
        N, C, H, W = x.shape
        xp = _pad(x, padding, -np.inf)  # a padded pixel never wins the max
        xp = xp.reshape(N * C, 1, *xp.shape[2:])  # (N*C, 1, Hp, Wp): one image per channel
        cols = im2col(xp, kernel, stride, (0, 0))  # (kH*kW, N*C*OH*OW): one window per column
        best = cols.max(axis=0)  # (N*C*OH*OW,): each window's maximum
        out = best.reshape(N, C, *_output_hw(x.shape, kernel, stride, padding))  # (N, C, OH, OW)
        ### END SOLUTION
        ctx.save_for_backward(cols, best)
        return out

    @staticmethod
    def backward(ctx, grad):
        cols, best = ctx.saved_tensors
        ### BEGIN SOLUTION
        N, C, H, W = ctx.x_shape
        (pH, pW) = ctx.padding
        hit = cols == best  # (kH*kW, N*C*OH*OW): the offsets holding their window's maximum
        taken = hit[0].copy()  # windows whose maximum an earlier offset already holds
        for t in range(1, len(hit)):  # ties: only the first offset in window order keeps its hit
            hit[t] &= ~taken
            taken |= hit[t]
        # dcols[t, m] = the gradient of window m if its (first) maximum sat at offset t, else 0
        dcols = hit * grad.reshape(1, -1)  # (kH*kW, N*C*OH*OW)
        padded = (N * C, 1, H + 2 * pH, W + 2 * pW)
        dxp = col2im(dcols, padded, ctx.kernel, ctx.stride, (0, 0)).reshape(N, C, *padded[2:])
        return dxp[:, :, pH : pH + H, pW : pW + W]
        ### END SOLUTION


class AvgPool2dFunction(Function):
    """Mean over each ``kH x kW`` window (zero padding counts, as PyTorch's default).

    As max pooling: :func:`im2col` of the ``N*C`` one-channel images, a mean over
    each column; backward, every pixel of a window receives ``grad / (kH*kW)``
    through :func:`col2im`. Cost: one im2col copy; backward one col2im.
    """

    name = "avg_pool2d"

    @staticmethod
    def forward(ctx, x, kernel=(2, 2), stride=(2, 2), padding=(0, 0)):
        ctx.x_shape, ctx.kernel, ctx.stride, ctx.padding = x.shape, kernel, stride, padding
        ### BEGIN SOLUTION
        N, C, H, W = x.shape
        cols = im2col(x.reshape(N * C, 1, H, W), kernel, stride, padding)  # (kH*kW, N*C*OH*OW)
        return cols.mean(axis=0).reshape(N, C, *_output_hw(x.shape, kernel, stride, padding))
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        N, C, H, W = ctx.x_shape
        kH, kW = ctx.kernel
        # Every pixel of a window contributed 1/(kH*kW) of its mean: each column gets grad / (kH*kW).
        dcols = np.broadcast_to(grad.reshape(1, -1) / (kH * kW), (kH * kW, grad.size))
        return col2im(dcols, (N * C, 1, H, W), ctx.kernel, ctx.stride, ctx.padding).reshape(N, C, H, W)
        ### END SOLUTION


def _pool_args(op: str, x, kernel_size, stride, padding):
    """Checked ``(x, kernel, stride, padding)`` for a pooling op (given code)."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    kernel = _pair(kernel_size, "kernel_size", op)
    stride = kernel if stride is None else _pair(stride, "stride", op)
    padding = _pair(padding, "padding", op)
    if min(kernel) < 1 or min(stride) < 1:
        raise ValueError(f"{op}: arguments 'kernel_size' and 'stride' must be >= 1, got {kernel}, {stride}")
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{op}: argument 'padding' {padding} must be at most half the kernel {kernel}")
    _check_input(op, x.data, None, kernel, padding)
    return x, kernel, stride, padding


def max_pool2d(x: Tensor, kernel_size, stride=None, padding=0) -> Tensor:
    """Max pooling: ``out[n, c, y, x] = max of the window at (y*sH - pH, x*sW - pW)``.

    Args:
        kernel_size: int or pair. stride: defaults to ``kernel_size``.
        padding: implicit ``-inf`` padding, at most half the kernel (as PyTorch).

    Shape: ``(N, C, H, W) -> (N, C, (H + 2pH - kH)//sH + 1, (W + 2pW - kW)//sW + 1)``.
    """
    x, kernel, stride, padding = _pool_args("max_pool2d", x, kernel_size, stride, padding)
    return MaxPool2dFunction.apply(x, kernel=kernel, stride=stride, padding=padding)


def avg_pool2d(x: Tensor, kernel_size, stride=None, padding=0) -> Tensor:
    """Average pooling over ``kernel_size`` windows (stride defaults to the kernel).

    ``padding`` adds zeros that count in the mean (PyTorch's ``count_include_pad=True``).
    Shape: ``(N, C, H, W) -> (N, C, (H + 2pH - kH)//sH + 1, (W + 2pW - kW)//sW + 1)``.
    """
    x, kernel, stride, padding = _pool_args("avg_pool2d", x, kernel_size, stride, padding)
    return AvgPool2dFunction.apply(x, kernel=kernel, stride=stride, padding=padding)


class MaxPool2d(Module):
    """Max pooling layer, see :func:`max_pool2d`. ``stride`` defaults to ``kernel_size``."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size", "MaxPool2d")
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride", "MaxPool2d")
        self.padding = _pair(padding, "padding", "MaxPool2d")

    def forward(self, x: Tensor) -> Tensor:
        ### BEGIN SOLUTION
        return max_pool2d(x, self.kernel_size, self.stride, self.padding)
        ### END SOLUTION

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    """Average pooling layer, see :func:`avg_pool2d`. ``stride`` defaults to ``kernel_size``."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size", "AvgPool2d")
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride", "AvgPool2d")
        self.padding = _pair(padding, "padding", "AvgPool2d")

    def forward(self, x: Tensor) -> Tensor:
        ### BEGIN SOLUTION
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding)
        ### END SOLUTION

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


# ---------------------------------------------------------------------------
# Batch normalization
# ---------------------------------------------------------------------------


class BatchNorm2dFunction(Function):
    """Per-channel normalization ``y = weight * (x - mean) / sqrt(var + eps) + bias``, fused.

    Inputs ``x (N, C, H, W)``, ``weight``/``bias`` ``(C,)`` Tensors, ``mean``/``var``
    ``(C,)`` arrays. ``batch_stats=True`` (training) says that ``mean`` and ``var``
    are the batch's own mean and biased variance over (N, H, W), so they move with
    ``x`` and the derivative includes that; with ``batch_stats=False`` (evaluation,
    running statistics) they are constants.

    Backward, ``xhat = (x - mean) / sqrt(var + eps)``, ``dxhat = grad * weight``, means over (N, H, W)::

        dx = (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / sqrt(var + eps)   # batch_stats
        dx = dxhat / sqrt(var + eps)                                               # fixed statistics

    Cost: a few elementwise passes and per-channel reductions over ``x``.
    """

    name = "batch_norm"

    @staticmethod
    def forward(ctx, x, weight, bias, mean, var, eps=1e-5, batch_stats=True):
        ctx.batch_stats = batch_stats
        ### BEGIN SOLUTION
        channel = (1, -1, 1, 1)  # (C,) -> (1, C, 1, 1): broadcast over N, H, W
        inv_std = (1.0 / np.sqrt(var + eps)).reshape(channel)
        xhat = (x - mean.reshape(channel)) * inv_std
        out = xhat * weight.reshape(channel) + bias.reshape(channel)
        ### END SOLUTION
        ctx.save_for_backward(xhat, inv_std, weight)
        return out

    @staticmethod
    def backward(ctx, grad):
        xhat, inv_std, weight = ctx.saved_tensors
        ### BEGIN SOLUTION
        axes = (0, 2, 3)
        dxhat = grad * weight.reshape(1, -1, 1, 1)
        if ctx.batch_stats:
            # mean and var moved with x: subtract the gradient's parts along them
            mean_dxhat = dxhat.mean(axis=axes, keepdims=True)
            mean_dxhat_xhat = (dxhat * xhat).mean(axis=axes, keepdims=True)
            dxhat = dxhat - mean_dxhat - xhat * mean_dxhat_xhat
        return dxhat * inv_std, (grad * xhat).sum(axis=axes), grad.sum(axis=axes), None, None
        ### END SOLUTION


class BatchNorm2d(Module):
    """Batch normalization over the channels of ``(N, C, H, W)`` input (as ``torch.nn.BatchNorm2d``).

    Training: normalize with the batch mean and biased variance over (N, H, W),
    then update ``running_mean`` / ``running_var`` as
    ``r = (1 - momentum) r + momentum * batch_stat`` using the *unbiased*
    variance (``* M / (M - 1)``, M = N*H*W), in the buffers' own dtype. Eval:
    normalize with the running statistics. Output ``weight * xhat + bias``.

    Args:
        num_features: channels C.
        eps: added to the variance for stability.
        momentum: weight of the new batch statistic in the running averages.

    Attributes:
        weight (gamma, ones), bias (beta, zeros): ``(C,)`` Parameters.
        running_mean (zeros), running_var (ones): ``(C,)`` arrays (buffers, not Parameters).
        num_batches_tracked: 0-d int64 buffer counting training batches (PyTorch keeps it in
            its state_dict too, so state dicts move between the two libraries).

    Shape: ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        if (
            isinstance(num_features, bool)
            or not isinstance(num_features, (int, np.integer))
            or num_features < 1
        ):
            raise ValueError(
                f"BatchNorm2d: argument 'num_features' must be a positive int, got {num_features!r}"
            )
        if not 0.0 <= momentum <= 1.0:  # also refuses NaN
            raise ValueError(f"BatchNorm2d: argument 'momentum' must be in [0, 1], got {momentum}")
        if not eps > 0:
            raise ValueError(f"BatchNorm2d: argument 'eps' must be positive, got {eps}")
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.momentum = float(momentum)
        self.weight = Parameter(np.ones(num_features, dtype=np.float32))
        self.bias = Parameter(np.zeros(num_features, dtype=np.float32))
        self.register_buffer("running_mean", np.zeros(num_features, dtype=np.float32))
        self.register_buffer("running_var", np.ones(num_features, dtype=np.float32))
        self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))

    def forward(self, x: Tensor) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        _check_input("BatchNorm2d", x.data, self.num_features, (1, 1), (0, 0))
        m = x.data.size // self.num_features  # values per channel
        if self.training and m < 2:
            raise ValueError(
                f"BatchNorm2d: training needs more than 1 value per channel, got input of shape {x.shape}"
            )
        ### BEGIN SOLUTION
        if not self.training:
            mean, var = self.running_mean.astype(x.dtype), self.running_var.astype(x.dtype)
            return BatchNorm2dFunction.apply(
                x, self.weight, self.bias, mean, var, eps=self.eps, batch_stats=False
            )
        mean, var = x.data.mean(axis=(0, 2, 3)), x.data.var(axis=(0, 2, 3))  # (C,) each, biased variance
        # In place (a state_dict holding these arrays sees the update), in the buffers' dtype.
        self.running_mean *= 1.0 - self.momentum
        self.running_mean += self.momentum * mean
        self.running_var *= 1.0 - self.momentum
        self.running_var += self.momentum * var * (m / (m - 1))  # unbiased, as PyTorch
        self.num_batches_tracked += 1
        return BatchNorm2dFunction.apply(x, self.weight, self.bias, mean, var, eps=self.eps, batch_stats=True)
        ### END SOLUTION

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class Flatten(Module):
    """Flatten dimensions ``start_dim..`` into one: ``(N, C, H, W) -> (N, C*H*W)`` by default."""

    def __init__(self, start_dim: int = 1):
        super().__init__()
        self.start_dim = int(start_dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        start = self.start_dim if self.start_dim >= 0 else x.ndim + self.start_dim
        if not 0 <= start < max(x.ndim, 1):
            raise ValueError(
                f"Flatten: argument 'start_dim' {self.start_dim} out of range for shape {x.shape}"
            )
        ### BEGIN SOLUTION
        return x.reshape(*x.shape[:start], -1)  # (N, C, H, W) -> (N, C*H*W) for start_dim=1
        ### END SOLUTION

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}"
