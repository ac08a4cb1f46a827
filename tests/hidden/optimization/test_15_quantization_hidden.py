"""Hidden tests of module 15 (quantization): the round-trip error bound, per tensor and per channel."""

from __future__ import annotations

import numpy as np
from tinytorch.optimization.quantization import dequantize_int8, quantize_int8, quantize_int8_per_channel


def test_round_trip_error_is_at_most_half_a_step():
    x = np.random.default_rng(151).uniform(-3.0, 7.0, size=(9, 13)).astype(np.float32)
    q, scale, zero_point = quantize_int8(x)
    assert q.dtype == np.int8 and q.shape == x.shape and scale > 0
    assert np.abs(dequantize_int8(q, scale, zero_point) - x).max() <= scale / 2 + 1e-6
    assert q.min() == -128 and q.max() == 127  # the range is used fully


def test_per_channel_scales_follow_each_channel():
    rng = np.random.default_rng(152)
    x = rng.standard_normal((6, 4)).astype(np.float32) * np.array([0.01, 1.0, 10.0, 100.0], dtype=np.float32)
    q, scales, zero_points = quantize_int8_per_channel(x, axis=-1)
    assert scales.shape == (4,) and np.all(np.diff(scales) > 0)
    back = dequantize_int8(q, scales, zero_points, axis=-1)
    assert np.all(np.abs(back - x).max(axis=0) <= scales / 2 + 1e-6)
