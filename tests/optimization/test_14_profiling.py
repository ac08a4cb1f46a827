"""Module 14: profiler counts against closed forms; memory and latency are measured; observation by hooks."""

import numpy as np
import pytest
from tinytorch.core.activations import ReLU
from tinytorch.core.layers import Linear, Module, Sequential
from tinytorch.core.tensor import Tensor
from tinytorch.profiling.profiler import Profiler, count_flops, named_modules, trace_calls


@pytest.fixture
def profiler():
    return Profiler()


def test_linear_flops_closed_form(profiler):
    assert count_flops(Linear(784, 256), (1, 784)) == 2 * 784 * 256
    assert profiler.count_flops(Linear(10, 3, bias=False), (7, 10)) == 2 * 7 * 10 * 3
    # Leading dimensions multiply the rows: (B, T, in).
    assert profiler.count_flops(Linear(8, 4), (2, 5, 8)) == 2 * 10 * 8 * 4


def test_mlp_flops_and_parameters(profiler):
    mlp = Sequential(Linear(784, 256), ReLU(), Linear(256, 128), ReLU(), Linear(128, 10))
    assert profiler.count_flops(mlp, (32, 784)) == 2 * 32 * (784 * 256 + 256 * 128 + 128 * 10)
    assert profiler.count_parameters(mlp) == 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10


def test_conv_flops_closed_form(profiler, require_tier):
    require_tier("architecture")
    from tinytorch.core.spatial import Conv2d, Flatten, MaxPool2d

    conv = Conv2d(3, 16, 5, stride=2, padding=1)
    oh = (32 + 2 - 5) // 2 + 1
    assert profiler.count_flops(conv, (4, 3, 32, 32)) == 2 * 4 * 16 * oh * oh * 3 * 5 * 5
    lenet = Sequential(
        Conv2d(1, 6, 5), ReLU(), MaxPool2d(2), Conv2d(6, 16, 5), ReLU(), MaxPool2d(2), Flatten(),
        Linear(256, 120), ReLU(), Linear(120, 84), ReLU(), Linear(84, 10),
    )  # fmt: skip
    expected = 2 * (6 * 24 * 24 * 25 + 16 * 8 * 8 * 6 * 25 + 256 * 120 + 120 * 84 + 84 * 10)
    assert profiler.count_flops(lenet, (1, 1, 28, 28)) == expected
    assert profiler.count_parameters(lenet) == (
        6 * 25 + 6 + 16 * 6 * 25 + 16 + 256 * 120 + 120 + 120 * 84 + 84 + 84 * 10 + 10
    )


def gpt_flops_closed_form(b, t, vocab, d, layers, mlp_ratio=4):
    """Per block: in_proj (q|k|v) 3 d^2 and out_proj d^2, MLP 2 * ratio * d^2 per token, attention 2 T d
    per token (Q K^T and A V, each T*d multiply-adds per query); then the LM head d * vocab."""
    per_token_block = 4 * d * d + 2 * mlp_ratio * d * d
    attention = 2 * t * t * d
    return 2 * (b * t * (layers * per_token_block + d * vocab) + b * layers * attention)


def test_gpt_flops_closed_form(profiler, require_tier):
    require_tier("architecture")
    from tinytorch.models.transformer import GPT

    gpt = GPT(vocab_size=65, embed_dim=32, num_layers=2, num_heads=4, max_seq_len=16)
    assert profiler.count_flops(gpt, (2, 16)) == gpt_flops_closed_form(2, 16, 65, 32, 2)
    assert profiler.count_flops(gpt, (1, 5)) == gpt_flops_closed_form(1, 5, 65, 32, 2)


def hook_tables(module):
    """The forward hook tables Module.__call__ runs (empty when nobody observes the module)."""
    return vars(module).get("_forward_pre_hooks", {}), vars(module).get("_forward_hooks", {})


def test_hooks_removed_even_on_error(profiler):
    class Broken(Module):
        def __init__(self):
            super().__init__()
            self.fc = Linear(3, 3)

        def forward(self, x):
            self.fc(x)
            raise RuntimeError("boom")

    m = Broken()
    with pytest.raises(RuntimeError, match="boom"):
        profiler.count_flops(m, (1, 3))
    for module in (m, m.fc):
        assert hook_tables(module) == ({}, {})
        assert "forward" not in vars(module)
    assert [n for n, _ in named_modules(m)] == ["Broken", "fc"]


def test_observes_through_hooks_never_by_patching():
    """During a trace every module keeps its own class forward; the user's hooks run alongside and stay."""
    np.random.seed(4)
    shared = Linear(6, 6)
    model = Sequential(shared, ReLU(), shared)
    seen = []
    handle = shared.register_forward_hook(lambda m, args, out: seen.append(out.shape))
    with trace_calls(model) as records:
        for m in model.modules():
            assert "forward" not in vars(m) and type(m).forward is not Module.forward
        model(Tensor(np.ones((2, 6), np.float32)))
    assert [r.name for r in records] == ["Sequential", "0", "1", "0"]  # the shared layer, twice
    assert records[1].flops == records[3].flops == 2 * 2 * 6 * 6 and records[1].depth == 1
    assert records[0].inclusive_s >= records[0].children_s > 0
    assert seen == [(2, 6), (2, 6)]
    assert hook_tables(shared)[1] and hook_tables(model) == ({}, {})  # only the user's hook remains
    handle.remove()
    assert hook_tables(shared) == ({}, {})


def test_bad_input_shape(profiler):
    with pytest.raises(ValueError, match="input_shape"):
        profiler.count_flops(Linear(3, 2), (0, 3))
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        profiler.count_flops(Linear(3, 2), (2, 4))  # Linear reports both shapes


def test_measure_memory_tracks_real_allocations(profiler):
    np.random.seed(0)
    mlp = Sequential(Linear(256, 512), ReLU(), Linear(512, 256))
    small = profiler.measure_memory(mlp, (8, 256))
    big = profiler.measure_memory(mlp, (256, 256))
    n_params = 256 * 512 + 512 + 512 * 256 + 256
    assert small["parameter_count"] == n_params and small["parameter_bytes"] == 4 * n_params
    # Gradients: one float32 array per parameter, measured (tracemalloc), not computed.
    for m in (small, big):
        assert 0.9 * 4 * n_params <= m["gradient_bytes"] <= 1.2 * 4 * n_params
        assert m["peak_bytes"] >= m["activation_bytes"]
    # Activations grow with the batch: the hidden (B, 512) and output (B, 256) float32 arrays at least.
    assert big["activation_bytes"] >= 256 * (512 + 256) * 4
    assert big["activation_bytes"] > 10 * small["activation_bytes"] / 2
    assert big["inference_peak_bytes"] >= 256 * 512 * 4
    assert all(p.grad is None for p in mlp.parameters())  # the model's grads restored


def test_measure_latency_statistics(profiler):
    model = Linear(64, 64)
    stats = profiler.measure_latency(model, Tensor(np.ones((16, 64), np.float32)), warmup=2, iterations=25)
    assert stats["iterations"] == 25
    assert 0 < stats["min_ms"] <= stats["median_ms"] <= stats["p90_ms"]
    with pytest.raises(ValueError, match="iterations"):
        profiler.measure_latency(model, (1, 64), iterations=0)


def test_forward_profile_rows(profiler):
    np.random.seed(1)
    mlp = Sequential(Linear(512, 1024), ReLU(), Linear(1024, 8))
    rows = profiler.profile_forward_pass(mlp, (64, 512))
    by_name = {r["name"]: r for r in rows}
    assert set(by_name) == {"Sequential", "0", "1", "2"}
    assert [r["time_ms"] for r in rows] == sorted((r["time_ms"] for r in rows), reverse=True)
    assert by_name["0"]["flops"] == 2 * 64 * 512 * 1024 and by_name["0"]["output_shape"] == (64, 1024)
    assert by_name["0"]["params"] == 512 * 1024 + 1024 and by_name["1"]["flops"] == 0
    text = Profiler.format_table(rows)
    assert "Linear" in text and "time_ms" in text


def test_backward_profile_rows(profiler):
    np.random.seed(2)
    mlp = Sequential(Linear(256, 1024), ReLU(), Linear(1024, 256))
    rows = profiler.profile_backward_pass(mlp, (64, 256))
    by_name = {r["name"]: r for r in rows}
    assert by_name["0"]["backward_flops"] == 2 * by_name["0"]["flops"] == 4 * 64 * 256 * 1024
    assert by_name["0"]["backward_ms"] > 0 and by_name["2"]["backward_ms"] > 0
    assert [r["backward_ms"] for r in rows] == sorted((r["backward_ms"] for r in rows), reverse=True)
    assert all(p.grad is None for p in mlp.parameters())
