"""Module 15: int8 quantization, 4x smaller weights for a bounded error.

A float32 weight uses 4 bytes; an int8 uses 1. *Affine* (asymmetric)
quantization maps the real interval ``[x_min, x_max]`` onto the 256 integers
``[-128, 127]``::

    scale      = (x_max - x_min) / 255
    zero_point = round(-128 - x_min / scale)             # the integer that stands for 0.0
    q          = clip(round(x / scale) + zero_point, -128, 127)
    x_hat      = (q - zero_point) * scale                # dequantize

The range is first widened to contain 0, so 0.0 is represented exactly (zero
padding and pruned weights stay exactly zero). Every ``x`` in the range is
rounded to the nearest grid point, so ``|x - x_hat| <= scale / 2``.

*Per-channel* quantization gives every output channel its own scale and zero
point: a channel of small weights is then not crushed by the range of a channel
of large ones.

:class:`QuantizedLinear` stores its weight as real int8 (``weight_q.nbytes ==
in * out``) and dequantizes on the fly; activations stay float32 ("weight-only"
quantization). :func:`quantize_model` swaps every ``Linear`` of a model in place
and reports the bytes saved and the output error it caused.
"""

from __future__ import annotations

import numpy as np
from tinytorch.core.autograd import no_grad
from tinytorch.core.layers import Linear, Module
from tinytorch.core.tensor import Tensor

QMIN, QMAX = -128, 127


def _as_float_array(x, name: str) -> np.ndarray:
    arr = np.asarray(getattr(x, "data", x))
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{name} must hold numbers, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN or inf) to be quantized")
    return arr


def _qparams(x_min, x_max):
    """(scale, zero_point) for ranges ``[x_min, x_max]`` (scalars or arrays), 0 always included."""
    x_min = np.minimum(np.asarray(x_min, dtype=np.float64), 0.0)
    x_max = np.maximum(np.asarray(x_max, dtype=np.float64), 0.0)
    span = x_max - x_min
    # A constant-zero tensor has span 0: any scale represents it exactly; 1.0 avoids dividing by 0.
    scale = np.where(span > 0, span / (QMAX - QMIN), 1.0)
    zero_point = np.clip(np.round(QMIN - x_min / scale), QMIN, QMAX).astype(np.int32)
    return scale, zero_point


def quantize_int8(tensor):
    """Asymmetric affine int8 quantization with one scale for the whole tensor.

    Args:
        tensor: Tensor or array of finite floats.

    Returns:
        ``(q, scale, zero_point)``: ``q`` an int8 ndarray of the input's shape,
        ``scale`` a positive float, ``zero_point`` an int in [-128, 127], with
        ``|dequantize_int8(q, scale, zero_point) - tensor| <= scale / 2``.
    """
    ### BEGIN SOLUTION
    x = _as_float_array(tensor, "tensor")
    scale, zero_point = _qparams(x.min(), x.max())
    scale, zero_point = float(scale), int(zero_point)
    q = np.clip(np.round(x / scale) + zero_point, QMIN, QMAX).astype(np.int8)
    return q, scale, zero_point
    ### END SOLUTION


def dequantize_int8(q, scale, zero_point, axis: int | None = None) -> np.ndarray:
    """Map int8 codes back to float32: ``(q - zero_point) * scale``.

    Args:
        q: int8 array.
        scale, zero_point: scalars, or 1-D arrays (one per channel along ``axis``).
        axis: the channel axis when ``scale``/``zero_point`` are per-channel.

    Returns:
        float32 ndarray of ``q``'s shape.
    """
    ### BEGIN SOLUTION
    q = np.asarray(getattr(q, "data", q))
    scale = np.asarray(scale, dtype=np.float32)
    zero_point = np.asarray(zero_point, dtype=np.float32)
    if scale.ndim:
        if axis is None:
            raise ValueError("dequantize_int8: per-channel scale needs the channel 'axis'")
        shape = [1] * q.ndim
        shape[axis] = -1  # broadcast the per-channel parameters along their axis
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    return ((q.astype(np.float32) - zero_point) * scale).astype(np.float32)
    ### END SOLUTION


def quantize_int8_per_channel(tensor, axis: int = -1):
    """Affine int8 quantization with one (scale, zero_point) per slice along ``axis``.

    For a ``Linear`` weight ``(in, out)`` the output channels are ``axis=-1``;
    for a ``Conv2d`` weight ``(out, in, kh, kw)`` they are ``axis=0``.

    Returns:
        ``(q, scales, zero_points)``: int8 ndarray, float32 ``(C,)``, int32 ``(C,)``;
        each channel's error is at most its own ``scale / 2``.
    """
    ### BEGIN SOLUTION
    x = _as_float_array(tensor, "tensor")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis {axis} out of range for a tensor of shape {x.shape}")
    axis = axis % x.ndim
    reduce = tuple(i for i in range(x.ndim) if i != axis)
    scales, zero_points = _qparams(x.min(axis=reduce), x.max(axis=reduce))  # (C,) each
    shape = [1] * x.ndim
    shape[axis] = -1
    q = np.round(x / scales.reshape(shape)) + zero_points.reshape(shape)
    q = np.clip(q, QMIN, QMAX).astype(np.int8)
    return q, scales.astype(np.float32), zero_points.astype(np.int32)
    ### END SOLUTION


class QuantizedLinear(Module):
    """Inference-only ``Linear`` with int8 weights and float32 activations.

    Args:
        linear: the trained float ``Linear`` to convert (left unchanged).
        per_channel: one scale per output neuron (default) or one for the whole matrix.

    Attributes:
        weight_q: int8 ndarray ``(in, out)``.
        scale, zero_point: float32/int32 arrays ``(out,)`` (per channel) or 0-d.
        bias: float32 ndarray ``(out,)`` or None (biases are tiny; kept exact).

    Shape:
        input ``(*, in)`` -> output ``(*, out)``.

    Cost: the same ``2 * M * in * out`` FLOPs as ``Linear``, plus an ``in*out``
    int8->float conversion per call (real int8 kernels skip it; NumPy has none).
    """

    def __init__(self, linear: Linear, per_channel: bool = True):
        ### BEGIN SOLUTION
        super().__init__()
        if not isinstance(linear, Linear):
            raise ValueError(f"QuantizedLinear: expects a Linear, got {type(linear).__name__}")
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.per_channel = per_channel
        if per_channel:
            self.weight_q, scale, zero_point = quantize_int8_per_channel(linear.weight, axis=-1)
        else:
            self.weight_q, scale, zero_point = quantize_int8(linear.weight)
        self.scale = np.asarray(scale, dtype=np.float32)
        self.zero_point = np.asarray(zero_point, dtype=np.int32)
        self.bias = None if linear.bias is None else np.array(linear.bias.data, dtype=np.float32)
        ### END SOLUTION

    def dequantized_weight(self) -> np.ndarray:
        """The float32 ``(in, out)`` weight the int8 codes stand for."""
        return dequantize_int8(
            self.weight_q, self.scale, self.zero_point, axis=-1 if self.scale.ndim else None
        )

    def forward(self, x) -> Tensor:
        ### BEGIN SOLUTION
        x_data = np.asarray(getattr(x, "data", x), dtype=np.float32)
        if x_data.ndim == 0 or x_data.shape[-1] != self.in_features:
            raise ValueError(
                f"QuantizedLinear: input shape {x_data.shape} does not match weight shape "
                f"{self.weight_q.shape} (in_features={self.in_features})"
            )
        out = x_data @ self.dequantized_weight()
        if self.bias is not None:
            out += self.bias
        return Tensor(out)
        ### END SOLUTION

    def memory_bytes(self) -> int:
        """Bytes actually stored: int8 weights + quantization parameters + float32 bias."""
        extra = 0 if self.bias is None else self.bias.nbytes
        return int(self.weight_q.nbytes + self.scale.nbytes + self.zero_point.nbytes + extra)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, int8, "
            f"per_channel={self.per_channel}"
        )


def _linear_bytes(linear: Linear) -> int:
    return int(linear.weight.data.nbytes + (0 if linear.bias is None else linear.bias.data.nbytes))


def _replace_linears(module, per_channel: bool, swapped: dict) -> None:
    """Replace every ``Linear`` reachable from ``module`` (attributes, lists, tuples) in place.

    ``swapped`` maps ``id(linear) -> (linear, QuantizedLinear)``: a layer shared by
    two owners is quantized once and both owners get the same replacement.
    """

    def convert(linear):
        if id(linear) not in swapped:
            swapped[id(linear)] = (linear, QuantizedLinear(linear, per_channel))
        return swapped[id(linear)][1]

    for name, value in list(vars(module).items()):
        if isinstance(value, Linear):
            setattr(module, name, convert(value))
        elif isinstance(value, Module):
            _replace_linears(value, per_channel, swapped)
        elif isinstance(value, (list, tuple)):
            items = list(value)
            for i, item in enumerate(items):
                if isinstance(item, Linear):
                    items[i] = convert(item)
                elif isinstance(item, Module):
                    _replace_linears(item, per_channel, swapped)
            if isinstance(value, list):
                value[:] = items  # keep the same list object (others may hold a reference)
            else:
                setattr(module, name, type(value)(items))


def _forward_numpy(model, data) -> np.ndarray:
    with no_grad():
        out = model(data if isinstance(data, Tensor) else Tensor(data))
    return np.asarray(getattr(out, "data", out), dtype=np.float64)


def quantize_model(model, calibration_data=None, per_channel: bool = True) -> dict:
    """Replace every ``Linear`` in ``model`` by a :class:`QuantizedLinear`, in place.

    Args:
        model: a Module (``Linear`` layers found through attributes, lists, tuples, ``Sequential``).
        calibration_data: optional input batch; the fp32 and int8 outputs on it are compared.
        per_channel: per-output-neuron scales (default) or one scale per matrix.

    Returns:
        dict with ``layers_quantized``, ``original_bytes`` and ``quantized_bytes``
        (of the replaced layers), ``compression_ratio`` (original / quantized), and
        when ``calibration_data`` is given ``max_abs_error``, ``mean_abs_error`` and
        ``relative_error`` (``||y_int8 - y_fp32|| / ||y_fp32||``, Frobenius norms).
    """
    ### BEGIN SOLUTION
    if not isinstance(model, Module):
        raise ValueError(f"quantize_model: model must be a Module, got {type(model).__name__}")
    reference = _forward_numpy(model, calibration_data) if calibration_data is not None else None
    swapped = {}
    _replace_linears(model, per_channel, swapped)
    swapped = list(swapped.values())
    if not swapped:
        raise ValueError(f"quantize_model: no Linear layer found in {type(model).__name__}")
    original = sum(_linear_bytes(lin) for lin, _ in swapped)
    quantized = sum(q.memory_bytes() for _, q in swapped)
    report = {
        "layers_quantized": len(swapped),
        "original_bytes": original,
        "quantized_bytes": quantized,
        "compression_ratio": original / quantized,
    }
    if reference is not None:
        diff = _forward_numpy(model, calibration_data) - reference
        report["max_abs_error"] = float(np.abs(diff).max())
        report["mean_abs_error"] = float(np.abs(diff).mean())
        report["relative_error"] = float(np.linalg.norm(diff) / max(np.linalg.norm(reference), 1e-12))
    return report
    ### END SOLUTION
