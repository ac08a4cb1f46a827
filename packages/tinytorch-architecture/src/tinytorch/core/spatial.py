"""Module 09: spatial layers, convolution, pooling, batch normalization.

Convolution slides a small filter over an image. Written as loops it is
seven nested loops; written for a CPU it is **im2col + one matrix multiply**:

1. *im2col*: gather, for every output pixel, the ``C x kH x kW`` input patch it
   sees into one column of a matrix ``cols`` of shape ``(C*kH*kW, N*OH*OW)``.
   NumPy builds this as a strided *view* of the (padded) input (no Python loop)
   and copies it once into contiguous memory.
2. *one GEMM*: ``out = W.reshape(O, C*kH*kW) @ cols`` gives every output
   channel of every pixel of the whole batch at once.

The backward pass is two more GEMMs, ``dW = dout @ cols.T`` and
``dcols = W.T @ dout``, then *col2im*: every column of ``dcols`` is added back
onto the input pixels it came from. Patches overlap, so col2im is a sum; it
loops over the ``kH*kW`` kernel offsets only, each iteration one vectorized add
over the whole batch.

Stride 1 (the common case) uses the "wide row" layout: the padded image is
flattened so that output pixel ``(oh, ow)`` and kernel offset ``(i, j)`` read
the flat position ``(oh + i) * Wp + (ow + j)``. Computing outputs for every
``ow < Wp`` (the ``kW - 1`` extra columns per row are thrown away) turns each
patch row into one long contiguous slice, which makes the im2col copy and the
col2im adds several times faster than 2-D strided slices.

Wide layers (``O >= CHANNELS_LAST_MIN`` filters) use the transposed layout
instead: patches as *rows* ``(N*OH*OW, kH*kW*C)`` of a channels-last copy, so
``cols @ W`` is the output already in channels-last memory, returned as an
``(N, O, OH, OW)`` view. ReLU, pooling and the next convolution then all
stream over contiguous runs of channels (the memory layout changes, the
public NCHW semantics do not).

Costs for input ``(N, C, H, W)``, ``O`` filters of ``kH x kW``, output
``OH x OW``: forward ``2 N OH OW O C kH kW`` flops and an im2col buffer of
``C kH kW N OH OW`` floats (kept for backward); backward twice the flops.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view
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
]


def _pair(value, name: str) -> tuple[int, int]:
    """``3 -> (3, 3)``; ``(2, 3) -> (2, 3)``; validates non-negative ints."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        pair = (int(value), int(value))
    else:
        try:
            pair = tuple(int(v) for v in value)
        except TypeError:
            raise ValueError(f"argument '{name}' must be an int or a pair of ints, got {value!r}") from None
        if len(pair) != 2:
            raise ValueError(f"argument '{name}' must be an int or a pair of ints, got {value!r}")
    if min(pair) < 0:
        raise ValueError(f"argument '{name}' must be non-negative, got {value!r}")
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


# ---------------------------------------------------------------------------
# im2col / col2im
# ---------------------------------------------------------------------------


def im2col(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]):
    """Unfold every ``kH x kW`` patch of ``x`` into a column.

    Args:
        x: input ``(N, C, H, W)``.
        kernel, stride, padding: pairs ``(h, w)``.

    Returns:
        ``(cols, geometry)``: ``cols`` of shape ``(C*kH*kW, N*L)`` (rows ordered
        ``c, i, j``, columns ``n, then output position``) and the dict of sizes
        ``col2im`` needs. For stride 1, ``L = OH * Wp`` ("wide" rows that include
        ``kW - 1`` throw-away positions per output row); otherwise ``L = OH * OW``.

    Cost: one copy of ``C kH kW N L`` elements; no Python loop.
    """
    ### BEGIN SOLUTION
    N, C, H, W = x.shape
    (kH, kW), (sH, sW), (pH, pW) = kernel, stride, padding
    Hp, Wp = H + 2 * pH, W + 2 * pW
    OH, OW = _out_size(H, kH, sH, pH), _out_size(W, kW, sW, pW)
    geo = dict(N=N, C=C, H=H, W=W, Hp=Hp, Wp=Wp, OH=OH, OW=OW, kernel=kernel, stride=stride, padding=padding)
    if (sH, sW) == (1, 1):
        # Channel-major, flattened, padded image with kW-1 slack elements so the
        # last wide row may read past the end of the image.
        flat = Hp * Wp + kW - 1
        buf = np.zeros((C, N, flat), dtype=x.dtype)
        buf[:, :, : Hp * Wp].reshape(C, N, Hp, Wp)[:, :, pH : pH + H, pW : pW + W] = x.transpose(1, 0, 2, 3)
        L = OH * Wp
        it = buf.itemsize
        # cols[c, i, j, n, m] = buf[c, n, i*Wp + j + m]: a strided view, then one contiguous copy.
        view = as_strided(buf, shape=(C, kH, kW, N, L), strides=(N * flat * it, Wp * it, it, flat * it, it))
        cols = np.ascontiguousarray(view).reshape(C * kH * kW, N * L)
        geo["L"] = L
        return cols, geo
    xp = np.pad(x, ((0, 0), (0, 0), (pH, pH), (pW, pW))) if (pH or pW) else x
    win = sliding_window_view(xp, (kH, kW), axis=(2, 3))  # (N, C, Hp-kH+1, Wp-kW+1, kH, kW)
    win = win[:, :, ::sH, ::sW][:, :, :OH, :OW]  # (N, C, OH, OW, kH, kW)
    cols = np.ascontiguousarray(win.transpose(1, 4, 5, 0, 2, 3))  # (C, kH, kW, N, OH, OW)
    geo["L"] = OH * OW
    return cols.reshape(C * kH * kW, N * OH * OW), geo
    ### END SOLUTION


def col2im(dcols: np.ndarray, geo: dict) -> np.ndarray:
    """Adjoint of :func:`im2col`: add every column back onto the pixels of its patch.

    Args:
        dcols: ``(C*kH*kW, N*L)`` gradient w.r.t. ``cols``.
        geo: the geometry returned by ``im2col``.

    Returns:
        ``dx`` of shape ``(N, C, H, W)`` (padding cropped away).

    Cost: ``kH*kW`` vectorized adds of ``C N L`` elements (a loop over kernel offsets only).
    """
    ### BEGIN SOLUTION
    N, C, H, W, Hp, Wp = (geo[k] for k in ("N", "C", "H", "W", "Hp", "Wp"))
    OH, OW, L = geo["OH"], geo["OW"], geo["L"]
    (kH, kW), (sH, sW), (pH, pW) = geo["kernel"], geo["stride"], geo["padding"]
    if (sH, sW) == (1, 1):
        d = dcols.reshape(C, kH, kW, N, L)
        buf = np.zeros((C, N, Hp * Wp + kW - 1), dtype=dcols.dtype)
        for i in range(kH):
            for j in range(kW):
                off = i * Wp + j
                buf[:, :, off : off + L] += d[:, i, j]  # one contiguous run per (c, n)
        dxp = buf[:, :, : Hp * Wp].reshape(C, N, Hp, Wp)
    else:
        d = dcols.reshape(C, kH, kW, N, OH, OW)
        dxp = np.zeros((C, N, Hp, Wp), dtype=dcols.dtype)
        for i in range(kH):
            for j in range(kW):
                dxp[:, :, i : i + sH * (OH - 1) + 1 : sH, j : j + sW * (OW - 1) + 1 : sW] += d[:, i, j]
    # (C, N, Hp, Wp) -> crop the padding -> (N, C, H, W), a strided view (no copy)
    return dxp[:, :, pH : pH + H, pW : pW + W].transpose(1, 0, 2, 3)
    ### END SOLUTION


def _cols_to_output(out: np.ndarray, geo: dict) -> np.ndarray:
    """GEMM result ``(O, N*L)`` -> output ``(N, O, OH, OW)`` (drops the wide-row extras).

    Returns a strided *view*: the memory stays channel-major ``(O, N, OH, .)``.
    NumPy ops downstream work on any strides, and the backward pass wants this
    layout back, so copying into ``(N, O, OH, OW)`` order would cost two passes for nothing.
    """
    O = out.shape[0]
    N, OH, OW, L = geo["N"], geo["OH"], geo["OW"], geo["L"]
    out = out.reshape(O, N, OH, L // OH)[:, :, :, :OW]  # (O, N, OH, OW)
    return out.transpose(1, 0, 2, 3)  # (N, O, OH, OW) view


def _output_to_cols(grad: np.ndarray, geo: dict) -> np.ndarray:
    """Adjoint of :func:`_cols_to_output`: ``(N, O, OH, OW)`` -> ``(O, N*L)`` (zeros on wide extras)."""
    N, O, OH, OW = grad.shape
    width = geo["L"] // OH
    g = grad.transpose(1, 0, 2, 3)  # (O, N, OH, OW)
    if width != OW:
        wide = np.zeros((O, N, OH, width), dtype=grad.dtype)
        wide[..., :OW] = g
        g = wide
    return np.ascontiguousarray(g).reshape(O, N * geo["L"])


def im2col_channels_last(
    x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]
):
    """Unfold every ``kH x kW`` patch of ``x`` into one row of a matrix.

    Args:
        x: input ``(N, C, H, W)``, any memory layout (channels-last memory, which
            :class:`Conv2dFunction` outputs, makes the copy fastest).
        kernel, stride, padding: pairs ``(h, w)``.

    Returns:
        ``(cols, geometry)``: ``cols`` of shape ``(N*OH*OW, kH*kW*C)``, one row per
        output pixel (ordered ``n, oh, ow``), columns ordered ``i, j, c`` (kernel
        row, kernel column, channel), and the dict of sizes ``col2im`` needs.

    Layout (why channels-last): with channels innermost every patch row is a
    run of ``kW*C`` neighbouring floats, so the one copy moves contiguous
    blocks; the GEMM ``cols @ W`` then yields ``(N*OH*OW, O)``, which *is* the
    output in channels-last memory, with no transposing copy.

    Cost: one copy of ``N OH OW kH kW C`` elements (plus one of the input when
    padding); no Python loop.
    """
    ### BEGIN SOLUTION
    N, C, H, W = x.shape
    (kH, kW), (sH, sW), (pH, pW) = kernel, stride, padding
    Hp, Wp = H + 2 * pH, W + 2 * pW
    OH, OW = _out_size(H, kH, sH, pH), _out_size(W, kW, sW, pW)
    geo = dict(N=N, C=C, H=H, W=W, Hp=Hp, Wp=Wp, OH=OH, OW=OW, kernel=kernel, stride=stride, padding=padding)
    xl = x.transpose(0, 2, 3, 1)  # (N, H, W, C): a view
    if pH or pW:
        padded = np.zeros((N, Hp, Wp, C), dtype=x.dtype)
        padded[:, pH : pH + H, pW : pW + W] = xl
        xl = padded
    win = sliding_window_view(xl, (kH, kW), axis=(1, 2))  # (N, Hp-kH+1, Wp-kW+1, C, kH, kW), a view
    if (sH, sW) != (1, 1):
        win = win[:, ::sH, ::sW]  # (N, OH, OW, C, kH, kW)
    cols = win.transpose(0, 1, 2, 4, 5, 3).reshape(N * OH * OW, kH * kW * C)  # the one copy
    return cols, geo
    ### END SOLUTION


def col2im_channels_last(dcols: np.ndarray, geo: dict) -> np.ndarray:
    """Adjoint of :func:`im2col_channels_last`: add every row back onto the pixels of its patch.

    Args:
        dcols: ``(N*OH*OW, kH*kW*C)`` gradient w.r.t. ``cols``.
        geo: the geometry returned by ``im2col_channels_last``.

    Returns:
        ``dx`` of shape ``(N, C, H, W)`` (padding cropped away), a view with
        channels-last memory.

    Cost: ``kH*kW`` vectorized adds of ``N OH OW C`` elements (a loop over kernel
    offsets only); each add moves contiguous runs of ``C`` floats.
    """
    ### BEGIN SOLUTION
    N, C, H, W, Hp, Wp = (geo[k] for k in ("N", "C", "H", "W", "Hp", "Wp"))
    OH, OW = geo["OH"], geo["OW"]
    (kH, kW), (sH, sW), (pH, pW) = geo["kernel"], geo["stride"], geo["padding"]
    d = dcols.reshape(N, OH, OW, kH, kW, C)
    dxp = np.zeros((N, Hp, Wp, C), dtype=dcols.dtype)
    for i in range(kH):
        for j in range(kW):
            # kernel offset (i, j) of output pixel (oh, ow) read input pixel (oh*sH + i, ow*sW + j)
            dxp[:, i : i + sH * (OH - 1) + 1 : sH, j : j + sW * (OW - 1) + 1 : sW] += d[:, :, :, i, j]
    # crop the padding; (N, H, W, C) -> (N, C, H, W) as a view (no copy)
    return dxp[:, pH : pH + H, pW : pW + W].transpose(0, 3, 1, 2)
    ### END SOLUTION


# Convolutions with at least this many output channels use the channels-last im2col:
# the GEMM result (N*OH*OW, O) is then the output in channels-last memory, and the
# ReLU, pooling and next convolution downstream all stream over runs of O contiguous
# floats. With few channels those runs are too short (every NumPy inner loop restarts
# every O elements), so narrow layers keep the channel-major "wide row" layout, whose
# runs span whole image rows (LeNet's 6 and 16 channels vs the CIFAR CNN's 32 and 64).
CHANNELS_LAST_MIN = 32


def _weight_matrix(weight: np.ndarray) -> np.ndarray:
    """``(O, C, kH, kW)`` filters -> ``(kH*kW*C, O)``, rows in :func:`im2col_channels_last`'s column order."""
    O = weight.shape[0]
    return weight.transpose(2, 3, 1, 0).reshape(-1, O)


class Conv2dFunction(Function):
    """Fused 2-D cross-correlation: ``y[n,o] = b[o] + sum_c W[o,c] (*) x[n,c]``.

    Inputs ``x (N, C, H, W)``, ``weight (O, C, kH, kW)``, ``bias (O,)`` or None;
    keywords ``stride``, ``padding`` (pairs). Output ``(N, O, OH, OW)``.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, stride=(1, 1), padding=(0, 0)):
        ### BEGIN SOLUTION
        O = weight.shape[0]
        ctx.channels_last = O >= CHANNELS_LAST_MIN
        ctx.has_bias = bias is not None
        if ctx.channels_last:
            cols, geo = im2col_channels_last(x, weight.shape[2:], stride, padding)  # (N*OH*OW, kH*kW*C)
            out = cols @ _weight_matrix(weight)  # (N*OH*OW, O): the one GEMM
            if bias is not None:
                out += bias
            # (N, OH, OW, O) memory seen as (N, O, OH, OW): a view, channels-last underneath.
            out = out.reshape(geo["N"], geo["OH"], geo["OW"], O).transpose(0, 3, 1, 2)
        else:
            cols, geo = im2col(x, weight.shape[2:], stride, padding)  # (C*kH*kW, N*L)
            out = weight.reshape(O, -1) @ cols  # (O, N*L): the one GEMM
            if bias is not None:
                out += bias.reshape(O, 1)
            out = _cols_to_output(out, geo)
        ctx.save_for_backward(cols, weight)
        ctx.geo = geo
        return out
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        cols, weight = ctx.saved_tensors
        O = weight.shape[0]
        needs_x, needs_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        dx = dw = db = None
        if ctx.channels_last:
            # (N, O, OH, OW) -> (N*OH*OW, O): a view when grad kept the output's memory layout.
            g = grad.transpose(0, 2, 3, 1).reshape(-1, O)
            if needs_x:
                dx = col2im_channels_last(g @ _weight_matrix(weight).T, ctx.geo)
            if needs_w:
                kH, kW = ctx.geo["kernel"]
                dw = (cols.T @ g).reshape(kH, kW, -1, O).transpose(3, 2, 0, 1)  # (O, C, kH, kW)
                dw = np.ascontiguousarray(dw)
            if ctx.has_bias and ctx.needs_input_grad[2]:
                db = g.sum(axis=0)
            return dx, dw, db
        g = _output_to_cols(grad, ctx.geo)  # (O, N*L)
        if needs_x:
            dx = col2im(weight.reshape(O, -1).T @ g, ctx.geo)
        if needs_w:
            # (cols @ g.T).T rather than g @ cols.T: the same product, but BLAS runs the long
            # N*L reduction faster with the small (O) operand on the right.
            dw = (cols @ g.T).T.reshape(weight.shape)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = g.sum(axis=1)
        return dx, dw, db
        ### END SOLUTION


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0) -> Tensor:
    """2-D convolution (cross-correlation, as PyTorch) of ``x`` with ``weight``.

    ``out[n, o, y, x] = bias[o] + sum_{c,i,j} weight[o, c, i, j] * xpad[n, c, y*sH + i, x*sW + j]``

    Args:
        x: ``(N, C, H, W)``.
        weight: ``(O, C, kH, kW)``.
        bias: ``(O,)`` or None.
        stride, padding: int or pair; zero padding on each side.

    Shape: ``(N, C, H, W) -> (N, O, (H + 2pH - kH)//sH + 1, (W + 2pW - kW)//sW + 1)``.
    """
    x = x if isinstance(x, Tensor) else Tensor(x)
    stride, padding = _pair(stride, "stride"), _pair(padding, "padding")
    if min(stride) < 1:
        raise ValueError(f"conv2d: argument 'stride' must be >= 1, got {stride}")
    if weight.ndim != 4:
        raise ValueError(f"conv2d: weight must be 4-D (O, C, kH, kW), got shape {weight.shape}")
    if x.ndim != 4 or x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"conv2d: input of shape {x.shape} does not match weight of shape {weight.shape} "
            f"(expected (N, {weight.shape[1]}, H, W))"
        )
    _check_input("conv2d", x.data, None, weight.shape[2:], padding)
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"conv2d: bias of shape {bias.shape} does not match weight of shape {weight.shape}")
    return Conv2dFunction.apply(x, weight, bias, stride=stride, padding=padding)


class Conv2d(Module):
    """2-D convolution layer.

    ``y = conv2d(x, weight, bias, stride, padding)``, see :func:`conv2d`.

    Args:
        in_channels: channels ``C`` of the input.
        out_channels: number of filters ``O``.
        kernel_size: int or ``(kH, kW)``.
        stride: int or pair (default 1).
        padding: int or pair of zeros added on each side (default 0).
        bias: learn a per-filter bias (default True).

    Attributes:
        weight: ``(out_channels, in_channels, kH, kW)``, initialized
            ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` with ``fan_in = C*kH*kW`` (PyTorch's default).
        bias: ``(out_channels,)`` with the same bound, or None.

    Shape: ``(N, C, H, W) -> (N, O, OH, OW)``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, bias: bool = True
    ):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Conv2d: argument '{name}' must be a positive int, got {v!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        if min(self.kernel_size) < 1:
            raise ValueError(f"Conv2d: argument 'kernel_size' must be >= 1, got {kernel_size!r}")
        if min(self.stride) < 1:
            raise ValueError(f"Conv2d: argument 'stride' must be >= 1, got {stride!r}")
        fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / math.sqrt(fan_in)
        shape = (self.out_channels, self.in_channels, *self.kernel_size)
        # The global NumPy generator, like Linear: np.random.seed(...) makes models reproducible.
        self.weight = Parameter(np.random.uniform(-bound, bound, size=shape).astype(np.float32))
        self.bias = (
            Parameter(np.random.uniform(-bound, bound, size=self.out_channels).astype(np.float32))
            if bias
            else None
        )

    def forward(self, x: Tensor) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        _check_input("Conv2d", x.data, self.in_channels, self.kernel_size, self.padding)
        ### BEGIN SOLUTION
        return Conv2dFunction.apply(x, self.weight, self.bias, stride=self.stride, padding=self.padding)
        ### END SOLUTION

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}"
        )


# ---------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------


def _window_slices(i: int, j: int, OH: int, OW: int, stride) -> tuple:
    """Index selecting, for kernel offset (i, j), the input pixel of every output position."""
    sH, sW = stride
    return (
        slice(None),
        slice(None),
        slice(i, i + sH * (OH - 1) + 1, sH),
        slice(j, j + sW * (OW - 1) + 1, sW),
    )


def _empty_in_layout(shape: tuple, order: tuple, dtype, zero: bool) -> np.ndarray:
    """An array of ``shape`` whose memory runs along axes ``order`` (outermost first).

    Gradients written in the memory order of the arrays they are computed from
    stream through the cache; a mismatched layout (e.g. a C-contiguous result
    built from channel-major inputs) makes every write a cache miss.
    """
    make = np.zeros if zero else np.empty
    buf = make(tuple(shape[a] for a in order), dtype=dtype)
    return buf.transpose(np.argsort(order))


def _memory_order(x: np.ndarray) -> tuple:
    """Axes of ``x`` from the largest stride to the smallest (its memory layout)."""
    return tuple(int(a) for a in np.argsort([-abs(s) for s in x.strides], kind="stable"))


def _first_argmax(views: list) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise max over same-shape arrays, and the index of the *first* array attaining it.

    A strict ``>`` keeps the earliest maximum on ties (PyTorch's choice). Because the
    index only grows, "arg = t where better" is ``arg = max(arg, better * t)``: branch-free
    and much faster than a boolean-mask assignment. Cost: ~4 passes per extra view.
    """
    if len(views) == 1:
        return views[0].copy(), np.zeros(views[0].shape, dtype=np.uint8)
    best = np.maximum(views[0], views[1])
    arg = (views[1] > views[0]).view(np.uint8)
    for t in range(2, len(views)):
        better = views[t] > best
        np.maximum(best, views[t], out=best)
        np.maximum(arg, better * np.uint8(t), out=arg)
    return best, arg


class MaxPool2dFunction(Function):
    """Max over each ``kH x kW`` window; the gradient goes to the (first) arg-max of each window.

    Non-overlapping windows (stride == kernel, no padding, the usual ``MaxPool2d(2)``)
    reduce over the ``kH*kW`` window offsets in one stage, each offset one strided
    view of the input (any memory layout); the backward writes each offset's gradient
    straight into its strided slab of ``dx``, in the input's memory layout. Other
    cases scan all ``kH*kW`` offsets of a padded input. No Python loop over pixels.
    """

    @staticmethod
    def forward(ctx, x, kernel=(2, 2), stride=(2, 2), padding=(0, 0)):
        ### BEGIN SOLUTION
        (kH, kW), (pH, pW) = kernel, padding
        N, C, H, W = x.shape
        OH, OW = _out_size(H, kH, stride[0], pH), _out_size(W, kW, stride[1], pW)
        ctx.geo = (x.shape, OH, OW, kernel, stride, padding)
        ctx.order = _memory_order(x)
        if tuple(stride) == tuple(kernel) and (pH, pW) == (0, 0):
            xc = x[:, :, : OH * kH, : OW * kW]  # drop the rows/columns no window covers
            # One strided view per window offset, row-major (first maximum = PyTorch's tie rule).
            out, arg = _first_argmax([xc[:, :, i::kH, j::kW] for i in range(kH) for j in range(kW)])
            ctx.save_for_backward(arg)  # (N, C, OH, OW) window offsets i*kW + j
            ctx.tiled = True
            return out
        xp = np.pad(x, ((0, 0), (0, 0), (pH, pH), (pW, pW)), constant_values=-np.inf) if (pH or pW) else x
        out, arg = _first_argmax(
            [xp[_window_slices(t // kW, t % kW, OH, OW, stride)] for t in range(kH * kW)]
        )
        ctx.save_for_backward(arg)
        return out
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        shape, OH, OW, (kH, kW), stride, (pH, pW) = ctx.geo
        saved = ctx.saved_tensors
        if getattr(ctx, "tiled", False):  # non-overlapping windows
            (arg,) = saved
            covered = shape[2] == OH * kH and shape[3] == OW * kW  # else the uncovered border stays zero
            dx = _empty_in_layout(shape, ctx.order, grad.dtype, zero=not covered)
            if _memory_order(grad) != ctx.order:
                # One copy of the (small) pooled gradient into the input's layout, so every
                # pass below streams through memory in the same order.
                g = _empty_in_layout(grad.shape, ctx.order, grad.dtype, zero=False)
                g[...] = grad
                grad = g
            for t in range(kH * kW):
                i, j = divmod(t, kW)
                np.multiply(grad, arg == t, out=dx[:, :, i : OH * kH : kH, j : OW * kW : kW])
            return dx
        (arg,) = saved
        dxp = np.zeros((shape[0], shape[1], shape[2] + 2 * pH, shape[3] + 2 * pW), dtype=grad.dtype)
        for t in range(kH * kW):
            dxp[_window_slices(t // kW, t % kW, OH, OW, stride)] += grad * (arg == t)
        return dxp[:, :, pH : pH + shape[2], pW : pW + shape[3]]
        ### END SOLUTION


class AvgPool2dFunction(Function):
    """Mean over each ``kH x kW`` window; the gradient is spread evenly over the window."""

    @staticmethod
    def forward(ctx, x, kernel=(2, 2), stride=(2, 2)):
        ### BEGIN SOLUTION
        kH, kW = kernel
        N, C, H, W = x.shape
        OH, OW = _out_size(H, kH, stride[0], 0), _out_size(W, kW, stride[1], 0)
        out = x[_window_slices(0, 0, OH, OW, stride)].copy()
        for t in range(1, kH * kW):
            out += x[_window_slices(t // kW, t % kW, OH, OW, stride)]
        out *= 1.0 / (kH * kW)
        ctx.geo = (x.shape, OH, OW, kernel, stride)
        return out
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        shape, OH, OW, (kH, kW), stride = ctx.geo
        dx = np.zeros(shape, dtype=grad.dtype)
        share = grad * (1.0 / (kH * kW))
        for t in range(kH * kW):
            dx[_window_slices(t // kW, t % kW, OH, OW, stride)] += share
        return dx
        ### END SOLUTION


def max_pool2d(x: Tensor, kernel_size, stride=None, padding=0) -> Tensor:
    """Max pooling: ``out[n,c,y,x] = max over the window at (y*sH - pH, x*sW - pW)``.

    Args:
        kernel_size: int or pair. stride: defaults to ``kernel_size``.
        padding: implicit ``-inf`` padding, at most half the kernel (as PyTorch).

    Shape: ``(N, C, H, W) -> (N, C, (H + 2pH - kH)//sH + 1, (W + 2pW - kW)//sW + 1)``.
    """
    x = x if isinstance(x, Tensor) else Tensor(x)
    kernel = _pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else _pair(stride, "stride")
    padding = _pair(padding, "padding")
    if min(kernel) < 1 or min(stride) < 1:
        raise ValueError(f"max_pool2d: kernel_size and stride must be >= 1, got {kernel}, {stride}")
    if kernel[0] * kernel[1] > 256:
        raise ValueError(f"max_pool2d: argument 'kernel_size' {kernel} has more than 256 elements")
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"max_pool2d: argument 'padding' {padding} must be at most half the kernel {kernel}")
    _check_input("max_pool2d", x.data, None, kernel, padding)
    return MaxPool2dFunction.apply(x, kernel=kernel, stride=stride, padding=padding)


def avg_pool2d(x: Tensor, kernel_size, stride=None) -> Tensor:
    """Average pooling over ``kernel_size`` windows (stride defaults to the kernel).

    Shape: ``(N, C, H, W) -> (N, C, (H - kH)//sH + 1, (W - kW)//sW + 1)``.
    """
    x = x if isinstance(x, Tensor) else Tensor(x)
    kernel = _pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else _pair(stride, "stride")
    if min(kernel) < 1 or min(stride) < 1:
        raise ValueError(f"avg_pool2d: kernel_size and stride must be >= 1, got {kernel}, {stride}")
    _check_input("avg_pool2d", x.data, None, kernel, (0, 0))
    return AvgPool2dFunction.apply(x, kernel=kernel, stride=stride)


class MaxPool2d(Module):
    """Max pooling layer, see :func:`max_pool2d`. ``stride`` defaults to ``kernel_size``."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride")
        self.padding = _pair(padding, "padding")

    def forward(self, x: Tensor) -> Tensor:
        ### BEGIN SOLUTION
        return max_pool2d(x, self.kernel_size, self.stride, self.padding)
        ### END SOLUTION

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    """Average pooling layer, see :func:`avg_pool2d`. ``stride`` defaults to ``kernel_size``."""

    def __init__(self, kernel_size, stride=None):
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride")

    def forward(self, x: Tensor) -> Tensor:
        ### BEGIN SOLUTION
        return avg_pool2d(x, self.kernel_size, self.stride)
        ### END SOLUTION

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


# ---------------------------------------------------------------------------
# Batch normalization
# ---------------------------------------------------------------------------


class BatchNorm2dFunction(Function):
    """Training-mode batch norm over axes (N, H, W) per channel, with a fused backward.

    ``xhat = (x - mean) / sqrt(var + eps)`` (biased batch variance), ``y = gamma xhat + beta``.
    Backward (M = N*H*W values per channel)::

        dxhat = dy * gamma
        dx = (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / sqrt(var + eps)

    ``stats`` (a dict) receives the batch ``mean`` and biased ``var`` for the running averages.
    """

    @staticmethod
    def forward(ctx, x, gamma, beta, eps=1e-5, stats=None):
        ### BEGIN SOLUTION
        axes = (0, 2, 3)
        mean = x.mean(axis=axes, keepdims=True)  # (1, C, 1, 1)
        xc = x - mean
        var = np.mean(xc * xc, axis=axes, keepdims=True)
        inv = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
        xhat = xc * inv
        if stats is not None:
            stats["mean"], stats["var"] = mean.reshape(-1), var.reshape(-1)
        ctx.save_for_backward(xhat, inv, gamma)
        return xhat * gamma.reshape(1, -1, 1, 1) + beta.reshape(1, -1, 1, 1)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        xhat, inv, gamma = ctx.saved_tensors
        axes = (0, 2, 3)
        dgamma = (grad * xhat).sum(axis=axes)
        dbeta = grad.sum(axis=axes)
        dx = None
        if ctx.needs_input_grad[0]:
            m = grad.size // grad.shape[1]
            g = gamma.reshape(1, -1, 1, 1)
            # mean(dxhat) = gamma * dbeta / m ; mean(dxhat * xhat) = gamma * dgamma / m
            dx = (
                grad * g - (g * dbeta.reshape(1, -1, 1, 1)) / m - xhat * (g * dgamma.reshape(1, -1, 1, 1)) / m
            ) * inv
        return dx, dgamma, dbeta
        ### END SOLUTION


class BatchNormEvalFunction(Function):
    """Eval-mode batch norm with fixed statistics: ``y = gamma (x - mu) / sqrt(var + eps) + beta``."""

    @staticmethod
    def forward(ctx, x, gamma, beta, mean=None, var=None, eps=1e-5):
        ### BEGIN SOLUTION
        shape = (1, -1, 1, 1)
        inv = (1.0 / np.sqrt(var + eps)).astype(x.dtype).reshape(shape)
        xhat = (x - mean.reshape(shape).astype(x.dtype)) * inv
        ctx.save_for_backward(xhat, inv, gamma)
        return xhat * gamma.reshape(shape) + beta.reshape(shape)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        xhat, inv, gamma = ctx.saved_tensors
        dx = grad * (gamma.reshape(1, -1, 1, 1) * inv) if ctx.needs_input_grad[0] else None
        return dx, (grad * xhat).sum(axis=(0, 2, 3)), grad.sum(axis=(0, 2, 3))
        ### END SOLUTION


class BatchNorm2d(Module):
    """Batch normalization over the channels of ``(N, C, H, W)`` input (PyTorch semantics).

    Training: normalize with the batch mean and biased variance over (N, H, W),
    then update ``running_mean`` / ``running_var`` as
    ``r = (1 - momentum) r + momentum * batch_stat`` using the *unbiased*
    variance (``* M / (M - 1)``, M = N*H*W). Eval: normalize with the running
    statistics. Output ``weight * xhat + bias``.

    Args:
        num_features: channels C.
        eps: added to the variance for stability.
        momentum: weight of the new batch statistic in the running averages.

    Attributes:
        weight (gamma, ones), bias (beta, zeros): ``(C,)`` Parameters.
        running_mean (zeros), running_var (ones): ``(C,)`` arrays (buffers, not Parameters).

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
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm2d: argument 'momentum' must be in [0, 1], got {momentum}")
        if eps <= 0:
            raise ValueError(f"BatchNorm2d: argument 'eps' must be positive, got {eps}")
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.momentum = float(momentum)
        self.weight = Parameter(np.ones(num_features, dtype=np.float32))
        self.bias = Parameter(np.zeros(num_features, dtype=np.float32))
        self.register_buffer("running_mean", np.zeros(num_features, dtype=np.float32))
        self.register_buffer("running_var", np.ones(num_features, dtype=np.float32))

    def forward(self, x: Tensor) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        _check_input("BatchNorm2d", x.data, self.num_features, (1, 1), (0, 0))
        ### BEGIN SOLUTION
        if not self.training:
            return BatchNormEvalFunction.apply(
                x, self.weight, self.bias, mean=self.running_mean, var=self.running_var, eps=self.eps
            )
        m = x.data.size // self.num_features
        if m < 2:
            raise ValueError(
                f"BatchNorm2d: training needs more than 1 value per channel, got input of shape {x.shape}"
            )
        stats = {}
        out = BatchNorm2dFunction.apply(x, self.weight, self.bias, eps=self.eps, stats=stats)
        unbiased = stats["var"] * (m / (m - 1))
        mom = self.momentum
        # In place, so that a state_dict holding these arrays sees the update.
        self.running_mean *= 1.0 - mom
        self.running_mean += (mom * stats["mean"]).astype(np.float32)
        self.running_var *= 1.0 - mom
        self.running_var += (mom * unbiased).astype(np.float32)
        return out
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
        ### BEGIN SOLUTION
        start = self.start_dim if self.start_dim >= 0 else x.ndim + self.start_dim
        if not 0 <= start < max(x.ndim, 1):
            raise ValueError(
                f"Flatten: argument 'start_dim' {self.start_dim} out of range for shape {x.shape}"
            )
        return x.reshape(*x.shape[:start], -1)
        ### END SOLUTION

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}"
