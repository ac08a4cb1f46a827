"""Module 15: int8 affine quantization bounds, round trips, QuantizedLinear and quantize_model."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tinytorch.core.activations import ReLU
from tinytorch.core.autograd import no_grad
from tinytorch.core.layers import Linear, Module, Parameter, Sequential
from tinytorch.core.tensor import Tensor
from tinytorch.optimization.quantization import (
    QuantizedLinear,
    dequantize_int8,
    is_linear,
    is_quantized,
    linear_arrays,
    quantize_int8,
    quantize_int8_per_channel,
    quantize_model,
)


@settings(max_examples=40, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    loc=st.floats(-50, 50),
    spread=st.floats(1e-3, 100),
    seed=st.integers(0, 1000),
)
def test_error_at_most_half_scale(shape, loc, spread, seed):
    x = (loc + spread * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)
    q, scale, zp = quantize_int8(x)
    assert q.dtype == np.int8 and q.shape == x.shape
    assert scale > 0 and -128 <= zp <= 127 and isinstance(zp, int)
    err = np.abs(dequantize_int8(q, scale, zp).astype(np.float64) - x.astype(np.float64))
    assert err.max() <= scale / 2 * (1 + 1e-4) + 1e-6 * np.abs(x).max()


def test_closed_form_parameters_and_exact_zero():
    x = np.array([-1.0, 0.0, 0.5, 3.0], dtype=np.float32)
    q, scale, zp = quantize_int8(x)
    assert scale == pytest.approx(4.0 / 255)
    assert zp == round(-128 - (-1.0) / (4.0 / 255))
    assert q[0] == -128 and q[-1] == 127
    assert dequantize_int8(q, scale, zp)[1] == 0.0  # zero is exactly representable
    # The whole int8 range is used: min and max map to the extremes.
    y = np.linspace(2.0, 5.0, 7, dtype=np.float32)  # all positive: range widened to [0, 5]
    q, scale, zp = quantize_int8(y)
    assert zp == -128 and scale == pytest.approx(5.0 / 255) and q.max() == 127


@pytest.mark.parametrize("value", [0.0, 2.5, -7.0, 1e-8])
def test_constant_tensor_is_safe(value):
    x = np.full((3, 4), value, dtype=np.float32)
    with np.errstate(all="raise"):
        q, scale, zp = quantize_int8(x)
        back = dequantize_int8(q, scale, zp)
    assert np.isfinite(scale) and scale > 0
    assert np.abs(back - x).max() <= scale / 2 + 1e-12


def test_bad_inputs():
    with pytest.raises(ValueError, match="finite"):
        quantize_int8(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="empty"):
        quantize_int8(np.array([]))
    with pytest.raises(ValueError, match="axis"):
        dequantize_int8(np.zeros((2, 3), np.int8), np.ones(3), np.zeros(3))


def test_per_channel_each_channel_bounded_and_better_than_per_tensor():
    rng = np.random.default_rng(0)
    # Output channels (rows, as Linear.weight (out, in)) with very different ranges:
    # one scale for all would crush the small ones.
    w = (rng.standard_normal((5, 32)) * np.array([[0.01], [0.1], [1.0], [10.0], [100.0]])).astype(np.float32)
    q, scales, zps = quantize_int8_per_channel(w)  # axis=0 by default
    assert q.dtype == np.int8 and scales.shape == (5,) and zps.shape == (5,)
    back = dequantize_int8(q, scales, zps, axis=0)
    per_channel_err = np.abs(back - w).max(axis=1)
    assert np.all(per_channel_err <= scales / 2 * (1 + 1e-4) + 1e-7)
    # Same thing along the last axis, via a transposed copy.
    q1, s1, z1 = quantize_int8_per_channel(w.T.copy(), axis=-1)
    np.testing.assert_array_equal(q1, q.T)
    qt, st_, zt = quantize_int8(w)
    tensor_err = np.abs(dequantize_int8(qt, st_, zt) - w)[0].max()
    assert per_channel_err[0] < tensor_err / 50


def test_quantized_linear_stores_int8_and_matches_dequantized_math():
    np.random.seed(1)
    lin = Linear(20, 7)
    ql = QuantizedLinear(lin)
    assert ql.weight_q.dtype == np.int8 and ql.weight_q.shape == (7, 20) and ql.weight_q.nbytes == 20 * 7
    assert ql.scale.shape == (7,)  # one scale per output neuron: per row of the (out, in) weight
    assert ql.parameters() == []  # inference only
    # independent dequantization, row by row
    w_hat = (ql.weight_q.astype(np.float64) - ql.zero_point[:, None]) * ql.scale[:, None]
    for row in range(7):  # each row's error is bounded by its own scale
        err = np.abs(w_hat[row] - lin.weight.data[row]).max()
        assert err <= ql.scale[row] / 2 * (1 + 1e-4) + 1e-7
    x = np.random.randn(3, 20).astype(np.float32)
    expected = x.astype(np.float64) @ w_hat.T + lin.bias.data
    np.testing.assert_allclose(ql(Tensor(x)).data, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(3, 19\)"):
        ql(Tensor(np.zeros((3, 19), np.float32)))


def test_gradient_flows_to_the_input_of_a_quantized_layer():
    """The int8 weights are constants, but a model can still be trained around the layer."""
    np.random.seed(6)
    ql = QuantizedLinear(Linear(5, 4))
    x = Tensor(np.random.randn(3, 5).astype(np.float32), requires_grad=True)
    (ql(x) * Tensor(np.arange(12, dtype=np.float32).reshape(3, 4))).sum().backward()
    expected = np.arange(12, dtype=np.float64).reshape(3, 4) @ ql.dequantized_weight().astype(np.float64)
    np.testing.assert_allclose(x.grad.data, expected, rtol=1e-5, atol=1e-5)


def test_quantized_state_dict_round_trip():
    np.random.seed(7)
    model = Sequential(Linear(6, 5), ReLU(), Linear(5, 2))
    quantize_model(model)
    state = model.state_dict()
    assert set(state) == {f"{i}.{k}" for i in (0, 2) for k in ("weight_q", "scale", "zero_point", "bias")}
    assert state["0.weight_q"].dtype == np.int8
    np.random.seed(8)
    other = Sequential(Linear(6, 5), ReLU(), Linear(5, 2))
    quantize_model(other)
    other.load_state_dict(state)
    x = Tensor(np.random.randn(4, 6).astype(np.float32))
    with no_grad():
        np.testing.assert_array_equal(other(x).data, model(x).data)


class Affine(Module):
    """A linear layer that is not a Linear: recognised by what it offers, not by its class."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.in_features, self.out_features = n_in, n_out
        self.weight = Parameter(np.random.randn(n_out, n_in).astype(np.float32))
        self.bias = None

    def forward(self, x):
        return x @ self.weight.T


def test_layers_recognised_by_protocol():
    np.random.seed(9)
    model = Sequential(Affine(4, 3), ReLU())
    x = Tensor(np.random.randn(2, 4).astype(np.float32))
    with no_grad():
        before = model(x).data
    assert is_linear(model[0]) and not is_quantized(model[0])
    report = quantize_model(model, calibration_data=x)
    assert report["layers_quantized"] == 1 and is_quantized(model[0]) and not is_linear(model[0])
    assert report["relative_error"] < 0.02
    w, b = linear_arrays(model[0])
    assert w.shape == (3, 4) and b is None
    with no_grad():
        np.testing.assert_allclose(model(x).data, before, atol=0.05)
    with pytest.raises(ValueError, match="linear"):
        linear_arrays(ReLU())


class TwoBranch(Module):
    """A model whose Linears sit in an attribute, a list and a nested Sequential."""

    def __init__(self):
        super().__init__()
        self.head = Linear(16, 16)
        self.blocks = [Linear(16, 16), Sequential(ReLU(), Linear(16, 16))]
        self.out = Linear(16, 4)

    def forward(self, x):
        x = self.head(x)
        for b in self.blocks:
            x = b(x)
        return self.out(x)


def test_quantize_model_replaces_every_linear_in_place():
    np.random.seed(2)
    model = TwoBranch()
    blocks = model.blocks
    report = quantize_model(model)
    assert report["layers_quantized"] == 4
    assert model.blocks is blocks
    found = [m for m in model.modules() if isinstance(m, (Linear, QuantizedLinear))]
    assert len(found) == 4 and all(isinstance(m, QuantizedLinear) for m in found)
    assert model.parameters() == []
    with pytest.raises(ValueError, match="no linear layer"):
        quantize_model(model)


def test_mlp_compression_ratio_and_output_error():
    np.random.seed(3)
    mlp = Sequential(Linear(784, 256), ReLU(), Linear(256, 128), ReLU(), Linear(128, 10))
    x = Tensor(np.random.default_rng(3).random((64, 784)).astype(np.float32))
    with no_grad():
        fp32 = mlp(x).data.astype(np.float64)
    params = 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10
    report = quantize_model(mlp, calibration_data=x)
    assert report["original_bytes"] == 4 * params
    int8_bytes = 784 * 256 + 256 * 128 + 128 * 10
    # int8 weights + float32 bias + per-channel float32 scale and int32 zero point
    assert report["quantized_bytes"] == int8_bytes + 3 * 4 * (256 + 128 + 10)
    assert report["compression_ratio"] == pytest.approx(report["original_bytes"] / report["quantized_bytes"])
    assert report["compression_ratio"] >= 3.5
    with no_grad():
        int8 = mlp(x).data.astype(np.float64)
    rel = np.linalg.norm(int8 - fp32) / np.linalg.norm(fp32)
    assert rel < 0.03
    assert report["relative_error"] == pytest.approx(rel, rel=1e-4)
    assert report["max_abs_error"] == pytest.approx(np.abs(int8 - fp32).max(), rel=1e-4)


def test_trained_mlp_keeps_its_predictions():
    """Train a small classifier, quantize it: accuracy within 1 point of fp32."""
    from tinytorch.core.losses import cross_entropy
    from tinytorch.core.optimizers import Adam

    rng = np.random.default_rng(4)
    centers = rng.standard_normal((5, 20)) * 3
    labels = rng.integers(0, 5, 500)
    data = (centers[labels] + rng.standard_normal((500, 20))).astype(np.float32)
    np.random.seed(4)
    mlp = Sequential(Linear(20, 64), ReLU(), Linear(64, 5))
    opt = Adam(mlp.parameters(), lr=0.01)
    x = Tensor(data)
    for _ in range(60):
        opt.zero_grad()
        loss = cross_entropy(mlp(x), labels)
        loss.backward()
        opt.step()
    with no_grad():
        acc_fp32 = np.mean(mlp(x).data.argmax(-1) == labels)
    quantize_model(mlp, calibration_data=x)
    with no_grad():
        acc_int8 = np.mean(mlp(x).data.argmax(-1) == labels)
    assert acc_fp32 > 0.9
    assert abs(acc_fp32 - acc_int8) <= 0.01


def test_shared_linear_quantized_once():
    np.random.seed(5)
    shared = Linear(8, 8)
    model = Sequential(shared, ReLU(), shared)
    report = quantize_model(model, calibration_data=np.ones((2, 8), np.float32))
    assert report["layers_quantized"] == 1
    assert model[0] is model[2] and isinstance(model[0], QuantizedLinear)
    assert report["original_bytes"] == 4 * (64 + 8)


def test_profiler_counts_quantized_layers_like_linear_ones():
    """The profiler (Module 14) recognises a quantized layer by protocol: same FLOPs as the float one."""
    from tinytorch.profiling.profiler import Profiler

    np.random.seed(3)
    mlp = Sequential(Linear(40, 30), ReLU(), Linear(30, 10))
    quantize_model(mlp)
    assert Profiler().count_flops(mlp, (5, 40)) == 2 * 5 * (40 * 30 + 30 * 10)
