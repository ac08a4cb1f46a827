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
of large ones. Weights are stored as PyTorch stores them, ``Linear`` as
``(out_features, in_features)`` and ``Conv2d`` as ``(out, in, kH, kW)``, so the
output channels are the rows, ``axis=0``, in both.

:class:`QuantizedLinear` stores its weight as real int8 (``weight_q.nbytes ==
in * out``) and dequantizes on the fly; activations stay float32 ("weight-only"
quantization). :func:`quantize_model` swaps every linear layer of a model in
place and reports the bytes saved and the output error it caused.

Layers are recognised by what they offer, never by their class: a layer is
*linear* when it has ``in_features``, ``out_features`` and a 2-D ``weight``
(:func:`is_linear`); a layer is *quantized* when it can give back its float
weight through ``dequantized_weight()`` (:func:`is_quantized`). The profiler,
the fused decoder and the compression tools read layers the same way.
"""

from __future__ import annotations

import numpy as np
from tinytorch.core.autograd import no_grad
from tinytorch.core.layers import LinearFunction, Module
from tinytorch.core.tensor import Tensor

__all__ = [
    "QMIN", "QMAX", "QuantizedLinear", "dequantize_int8", "is_linear", "is_quantized", "linear_arrays",
    "quantize_int8", "quantize_int8_per_channel", "quantize_model",
]  # fmt: skip

QMIN, QMAX = -128, 127


def is_linear(module) -> bool:
    """True for a float linear layer: ``in_features``, ``out_features`` and a weight ``(out, in)``."""
    weight = getattr(module, "weight", None)
    return (
        isinstance(weight, Tensor)
        and hasattr(module, "in_features")
        and hasattr(module, "out_features")
        and weight.shape == (module.out_features, module.in_features)
    )


def is_quantized(module) -> bool:
    """True for a layer that stores a compressed weight and can give back its float ``(out, in)`` weight."""
    return callable(getattr(module, "dequantized_weight", None))


def linear_arrays(layer) -> tuple[np.ndarray, np.ndarray | None]:
    """``(W (out, in), b (out,) or None)`` as float arrays, for a float or a quantized linear layer.

    A quantized layer is dequantized here (call it once and keep the result, not per use).
    """
    if is_quantized(layer):
        weight = layer.dequantized_weight()
    elif is_linear(layer):
        weight = layer.weight.data
    else:
        raise ValueError(f"linear_arrays: {type(layer).__name__} is not a linear layer")
    bias = getattr(layer, "bias", None)
    return weight, None if bias is None else np.asarray(getattr(bias, "data", bias))


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


def quantize_int8_per_channel(tensor, axis: int = 0):
    """Affine int8 quantization with one (scale, zero_point) per slice along ``axis``.

    For a ``Linear`` weight ``(out, in)`` and a ``Conv2d`` weight ``(out, in, kh, kw)``
    the output channels are the rows, ``axis=0`` (the default).

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
    """Inference ``Linear`` with int8 weights and float32 activations.

    Args:
        linear: the trained float linear layer to convert (left unchanged); any
            layer that :func:`is_linear` accepts.
        per_channel: one scale per output neuron, i.e. per row of the weight
            (default), or one for the whole matrix.

    Attributes (buffers: ``state_dict`` saves them, there are no parameters):
        weight_q: int8 ndarray ``(out, in)``, the same layout as ``Linear.weight``.
        scale, zero_point: float32/int32 arrays ``(out,)`` (per channel) or 0-d.
        bias: float32 ndarray ``(out,)`` or None (biases are tiny; kept exact).

    Shape:
        input ``(*, in)`` -> output ``(*, out)``.

    The weights are constants (no gradient for them), but gradients still flow
    to the input, so a quantized layer can sit inside a model that is trained
    around it. Cost: the same ``2 * M * in * out`` FLOPs as ``Linear``, plus an
    ``in*out`` int8->float conversion per call (real int8 kernels skip it; NumPy has none).
    """

    def __init__(self, linear, per_channel: bool = True):
        super().__init__()
        if not is_linear(linear):
            raise ValueError(
                f"QuantizedLinear: expects a linear layer (in_features, out_features, weight (out, in)), "
                f"got {type(linear).__name__}"
            )
        self.in_features, self.out_features = int(linear.in_features), int(linear.out_features)
        self.per_channel = bool(per_channel)
        ### BEGIN SOLUTION
        if per_channel:
            weight_q, scale, zero_point = quantize_int8_per_channel(linear.weight, axis=0)
        else:
            weight_q, scale, zero_point = quantize_int8(linear.weight)
        self.register_buffer("weight_q", weight_q)
        self.register_buffer("scale", np.asarray(scale, dtype=np.float32))
        self.register_buffer("zero_point", np.asarray(zero_point, dtype=np.int32))
        if linear.bias is None:
            self.bias = None
        else:
            self.register_buffer("bias", np.array(linear.bias.data, dtype=np.float32))
        ### END SOLUTION

    def dequantized_weight(self) -> np.ndarray:
        """The float32 ``(out, in)`` weight the int8 codes stand for."""
        return dequantize_int8(
            self.weight_q, self.scale, self.zero_point, axis=0 if self.scale.ndim else None
        )

    def forward(self, x) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"QuantizedLinear: input shape {x.shape} does not match weight shape "
                f"{self.weight_q.shape} (in_features={self.in_features})"
            )
        ### BEGIN SOLUTION
        # The same affine map as Linear, with the int8 codes turned back into floats.
        return LinearFunction.apply(x, self.dequantized_weight(), self.bias)
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


def _linear_bytes(linear) -> int:
    return int(linear.weight.data.nbytes + (0 if linear.bias is None else linear.bias.data.nbytes))


def _replace_linears(module, per_channel: bool, swapped: dict) -> None:
    """Replace every linear layer reachable from ``module`` (attributes, lists, tuples) in place.

    ``swapped`` maps ``id(linear) -> (linear, QuantizedLinear)``: a layer shared by
    two owners is quantized once and both owners get the same replacement.
    """

    def convert(linear):
        if id(linear) not in swapped:
            swapped[id(linear)] = (linear, QuantizedLinear(linear, per_channel))
        return swapped[id(linear)][1]

    for name, value in list(vars(module).items()):
        if isinstance(value, Module) and is_linear(value):
            setattr(module, name, convert(value))
        elif isinstance(value, Module):
            _replace_linears(value, per_channel, swapped)
        elif isinstance(value, (list, tuple)):
            items = list(value)
            for i, item in enumerate(items):
                if isinstance(item, Module) and is_linear(item):
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
    """Replace every linear layer in ``model`` by a :class:`QuantizedLinear`, in place.

    Args:
        model: a Module (linear layers, as :func:`is_linear` recognises them, found
            through attributes, lists, tuples, ``Sequential``).
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
        raise ValueError(
            "quantize_model: no linear layer (in_features, out_features, weight) found in "
            f"{type(model).__name__}"
        )
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
