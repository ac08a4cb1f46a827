"""The benchmark suite: its NumPy floors compute the right gradients, tinytorch and
PyTorch compute the same losses and gradients from the same weights, and the
harness reports the documented JSON shape.

Oracles: central finite differences in float64 for the floors' manual backward
passes; PyTorch autograd (optional); tinytorch autograd for the equivalence the
benchmark relies on (identical weights -> identical loss and gradients).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from tinytorch.milestones.bench import floors as F
from tinytorch.milestones.bench import harness
from tinytorch.milestones.bench import params as P
from tinytorch.milestones.bench import workloads as W


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Small matrices on a shared 2-core machine: one BLAS thread is faster and far steadier."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


# Small float64 models for the finite-difference checks.
SMALL_CONVS = [
    P.ConvNetSpec((2, 12, 12), ((3, 5, 0), (4, 3, 0)), (7,), 5),  # LeNet-like, no padding
    P.ConvNetSpec((3, 8, 8), ((4, 3, 1), (5, 3, 1)), (6,), 5),  # CIFAR-like, padding 1
]
SMALL_GPT = P.GPTSpec(vocab_size=11, embed_dim=8, num_layers=2, num_heads=2, max_seq_len=6)


def finite_difference_check(loss_and_grads, params: dict, per_param=3, eps=1e-6, seed=0):
    """Compare analytic gradients with central differences at a few random entries of every parameter."""
    rng = np.random.default_rng(seed)
    _, grads = loss_and_grads(params)
    assert set(grads) == set(params)
    for name, value in params.items():
        assert grads[name].shape == value.shape, name
        for _ in range(per_param):
            idx = tuple(int(rng.integers(0, s)) for s in value.shape)
            old = value[idx]
            value[idx] = old + eps
            plus, _ = loss_and_grads(params)
            value[idx] = old - eps
            minus, _ = loss_and_grads(params)
            value[idx] = old
            numeric = (plus - minus) / (2 * eps)
            assert grads[name][idx] == pytest.approx(numeric, rel=1e-4, abs=1e-7), (name, idx)


def test_floor_mlp_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    params = P.mlp_params((20, 16, 12, 5), dtype=np.float64)
    x, y = rng.standard_normal((8, 20)), rng.integers(0, 5, 8)
    finite_difference_check(lambda p: F.MLPFloor(p).loss_and_grads(x, y), params)


@pytest.mark.parametrize("spec", SMALL_CONVS, ids=["valid", "padded"])
def test_floor_convnet_gradients_match_finite_differences(spec):
    rng = np.random.default_rng(1)
    params = P.convnet_params(spec, dtype=np.float64)
    x, y = rng.standard_normal((3, *spec.in_shape)), rng.integers(0, 5, 3)
    finite_difference_check(lambda p: F.ConvNetFloor(p, spec.paddings).loss_and_grads(x, y), params)


def test_floor_gpt_gradients_match_finite_differences():
    rng = np.random.default_rng(2)
    params = P.gpt_params(SMALL_GPT, dtype=np.float64)
    tokens, targets = rng.integers(0, 11, (2, 5)), rng.integers(0, 11, (2, 5))
    finite_difference_check(lambda p: F.GPTFloor(p, 2, 2).loss_and_grads(tokens, targets), params)


def test_floor_pieces_against_naive_loops():
    """im2col conv and 2x2 max pooling against direct loops over output positions."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 7, 3)).astype(np.float32)  # (B, H, W, C)
    w = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)  # (O, C, kh, kw)
    b = rng.standard_normal(4).astype(np.float32)
    out, _ = F.conv_forward(x, w, b, padding=1)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    naive = np.zeros((2, 6, 8, 4), np.float32)  # Ho = 6 + 2 - 3 + 1, Wo = 7 + 2 - 2 + 1
    for i in range(6):
        for j in range(8):
            patch = xp[:, i : i + 3, j : j + 2]  # (B, kh, kw, C)
            naive[:, i, j] = np.einsum("bhwc,ochw->bo", patch, w) + b
    np.testing.assert_allclose(out, naive, rtol=1e-5, atol=1e-5)
    z = rng.standard_normal((2, 4, 6, 3)).astype(np.float32)
    pooled, _ = F.maxpool2_forward(z)
    naive = np.zeros((2, 2, 3, 3), np.float32)
    for n in range(2):
        for i in range(2):
            for j in range(3):
                naive[n, i, j] = z[n, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].max(axis=(0, 1))
    np.testing.assert_array_equal(pooled, naive)
    # Cross-entropy against its definition.
    logits = rng.standard_normal((5, 4))
    targets = rng.integers(0, 4, 5)
    loss, _ = F.softmax_cross_entropy(logits, targets)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    assert loss == pytest.approx(-logp[np.arange(5), targets].mean(), rel=1e-12)


def test_floor_adam_matches_the_update_rule():
    p = {"w": np.array([1.0, -2.0, 3.0])}
    opt = F.Adam(p, lr=0.1)
    g = np.array([0.5, -1.0, 0.0])
    m = v = np.zeros(3)
    expected = np.array([1.0, -2.0, 3.0])
    for t in (1, 2, 3):
        opt.step({"w": g})
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        expected = expected - 0.1 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    np.testing.assert_allclose(p["w"], expected, rtol=1e-6)


def test_floor_cached_generation_matches_full_recompute():
    spec = P.GPTSpec(max_seq_len=30)
    floor = F.GPTFloor(P.gpt_params(spec), 2, 4)
    prompt = np.random.default_rng(4).integers(0, 65, (2, 5))
    with_cache = floor.generate(prompt, 20, use_cache=True)
    without = floor.generate(prompt, 20, use_cache=False)
    assert with_cache.shape == (2, 25)
    np.testing.assert_array_equal(with_cache[:, :5], prompt)
    np.testing.assert_array_equal(with_cache, without)


# ---------------------------------------------------------------------------
# Floors against PyTorch (optional oracle), at benchmark sizes
# ---------------------------------------------------------------------------


def _torch_loss_and_grads(torch, model, x, y):
    logits = model(torch.from_numpy(x))
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), torch.from_numpy(y).reshape(-1)
    )
    loss.backward()
    return loss.item()


def test_floors_match_pytorch(torch):
    from tinytorch.milestones.bench import torch_models as TM

    torch.set_num_threads(1)
    x, y = W.mlp_batch()
    params = P.mlp_params()
    loss, grads = F.MLPFloor(P.copy_params(params)).loss_and_grads(x, y)
    model = TM.mlp(params)
    assert _torch_loss_and_grads(torch, model, x, y) == pytest.approx(loss, rel=1e-5)
    np.testing.assert_allclose(model[0].weight.grad.numpy().T, grads["fc0.weight"], atol=1e-6)

    x, y = W.image_batch(P.CIFAR_CNN, batch=4)
    params = P.convnet_params(P.CIFAR_CNN)
    loss, grads = F.ConvNetFloor(P.copy_params(params), P.CIFAR_CNN.paddings).loss_and_grads(x, y)
    model = TM.convnet(params, P.CIFAR_CNN.paddings)
    assert _torch_loss_and_grads(torch, model, x, y) == pytest.approx(loss, rel=1e-5)
    np.testing.assert_allclose(model[0].weight.grad.numpy(), grads["conv0.weight"], atol=1e-5)
    np.testing.assert_allclose(model[3].weight.grad.numpy(), grads["conv1.weight"], atol=1e-5)

    tokens, targets = W.text_batch(W.GPT_SPEC, batch=2)
    params = P.gpt_params(W.GPT_SPEC)
    loss, grads = F.GPTFloor(P.copy_params(params), 2, 4).loss_and_grads(tokens, targets)
    model = TM.GPT(params, 2, 4)
    assert _torch_loss_and_grads(torch, model, tokens, targets) == pytest.approx(loss, rel=1e-5)
    np.testing.assert_allclose(model.tok_emb.grad.numpy(), grads["tok_emb"], atol=1e-5)
    qkv = model.blocks[1].qkv.weight.grad.numpy().T  # (d, 3d): q | k | v
    np.testing.assert_allclose(qkv[:, :128], grads["h1.attn.q.weight"], atol=1e-5)
    np.testing.assert_allclose(model.blocks[0].fc1.weight.grad.numpy().T, grads["h0.fc1.weight"], atol=1e-5)

    spec = P.GPTSpec(max_seq_len=40)
    params = P.gpt_params(spec)
    prompt = np.random.default_rng(5).integers(0, 65, (1, 10))
    ours = F.GPTFloor(params, 2, 4).generate(prompt, 30, use_cache=True)
    model = TM.GPT(params, 2, 4)
    for use_cache in (True, False):
        theirs = model.generate(torch.from_numpy(prompt), 30, use_cache=use_cache).numpy()
        np.testing.assert_array_equal(theirs, ours)


# ---------------------------------------------------------------------------
# Harness
# ---------------------------------------------------------------------------


@pytest.fixture
def tiny_budget(monkeypatch):
    """The quick settings with minimal rounds, so harness tests take about a second."""
    small = dict(budget=0.0, min_reps=2, max_reps=2, warmup=1, tokens=8, peak_n=128)
    monkeypatch.setitem(harness.SETTINGS, True, small)


def test_json_report_shape(tiny_budget, capsys):
    code = harness.main(
        ["--quick", "--json", "--workload", "mlp", "--workload", "generate_kv", "--threads", "1"]
    )
    out = capsys.readouterr().out
    records = json.loads(out)
    assert code == 0
    assert [r["workload"] for r in records] == ["mlp", "generate_kv"]
    for rec in records:
        for key in ("workload", "tinytorch_ms", "numpy_ms", "torch_ms", "ratio_numpy", "ratio_torch"):
            assert key in rec
        assert rec["peak_gflops"] > 0 and rec["threads"] == 1
        if rec["status"] == "skipped":
            assert "pip install" in rec["reason"]
            continue
        assert rec["numpy_ms"] > 0
        assert rec["numpy_ms_min"] <= rec["numpy_ms"] <= rec["numpy_ms_max"]
        if rec["tinytorch_ms"] is not None:
            assert rec["ratio_numpy"] == pytest.approx(rec["tinytorch_ms"] / rec["numpy_ms"], rel=1e-2)
        else:
            assert rec["ratio_numpy"] is None and rec["errors"]["tinytorch"]
        if rec["torch_ms"] is None:
            assert rec["ratio_torch"] is None
    gen = records[1]
    if gen["status"] == "ok":
        assert gen["tokens"] == 8
        assert gen["numpy_tok_s_cached"] == pytest.approx(
            8 / (gen["timings_ms"]["numpy_cached"]["median"] / 1e3), rel=1e-2
        )
        assert gen["numpy_tok_s_uncached"] > 0


def test_missing_tier_is_reported_skipped_with_install_hint(tiny_budget, monkeypatch, capsys):
    import tinytorch.milestones.tiers as tiers

    monkeypatch.setattr(tiers, "is_installed", lambda tier: tier != "architecture")
    assert harness.main(["--quick", "--json", "--workload", "lenet", "--threads", "1", "--no-torch"]) == 0
    (rec,) = json.loads(capsys.readouterr().out)
    assert rec["status"] == "skipped"
    assert tiers.install_hint("architecture") in rec["reason"]
    assert rec["tinytorch_ms"] is None and rec["numpy_ms"] is None


def test_tito_benchmark_command_parses_and_runs(tiny_budget, capsys):
    from tinytorch.milestones import cli

    args = cli.build_parser().parse_args(
        ["benchmark", "--quick", "--json", "--workload", "mlp", "--no-torch"]
    )
    assert args.quick and args.json and args.workload == ["mlp"]
    assert args.func(args) == 0
    (rec,) = json.loads(capsys.readouterr().out)
    assert rec["workload"] == "mlp" and rec["torch_ms"] is None and rec["ratio_torch"] is None
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["benchmark", "--workload", "resnet"])


def test_interleaved_timer_rotates_and_counts():
    calls = []
    runners = {name: (lambda n=name: calls.append(n)) for name in "abc"}
    times, first = harness.time_interleaved(runners, warmup=1, budget_s=0.0, min_reps=3, max_reps=3)
    assert calls[:3] == ["a", "b", "c"]  # warm-up round
    assert calls[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}
    assert set(first) == {"a", "b", "c"}


# ---------------------------------------------------------------------------
# tinytorch against the floor: the equivalence the benchmark ratios rely on
# ---------------------------------------------------------------------------


def _assert_same_loss_and_grads(trainer, floor_loss, floor_grads, x, y, atol):
    loss = trainer.loss(x, y)
    loss.backward()
    assert float(loss.item()) == pytest.approx(floor_loss, rel=1e-5)
    grads = trainer.grads()
    assert set(grads) == set(floor_grads)
    for name, g in floor_grads.items():
        assert grads[name] is not None, f"{name}: tinytorch left no gradient"
        np.testing.assert_allclose(grads[name], g, atol=atol, rtol=1e-4, err_msg=name)


def test_tinytorch_mlp_matches_floor():
    from tinytorch.milestones.bench import tt_models

    x, y = W.mlp_batch()
    params = P.mlp_params()
    loss, grads = F.MLPFloor(P.copy_params(params)).loss_and_grads(x, y)
    _assert_same_loss_and_grads(tt_models.MLP(P.copy_params(params), lr=0.01), loss, grads, x, y, atol=1e-6)


@pytest.mark.parametrize("spec", [P.LENET, P.CIFAR_CNN], ids=["lenet", "cifar_cnn"])
def test_tinytorch_convnet_matches_floor(spec, require_tier):
    require_tier("architecture")
    from tinytorch.milestones.bench import tt_models

    x, y = W.image_batch(spec, batch=4)
    params = P.convnet_params(spec)
    loss, grads = F.ConvNetFloor(P.copy_params(params), spec.paddings).loss_and_grads(x, y)
    trainer = tt_models.ConvNet(P.copy_params(params), spec, lr=0.01)
    _assert_same_loss_and_grads(trainer, loss, grads, x, y, atol=1e-5)


def test_tinytorch_gpt_matches_floor(require_tier):
    require_tier("architecture")
    from tinytorch.milestones.bench import tt_models

    tokens, targets = W.text_batch(W.GPT_SPEC, batch=2)
    params = P.gpt_params(W.GPT_SPEC)
    loss, grads = F.GPTFloor(P.copy_params(params), 2, 4).loss_and_grads(tokens, targets)
    trainer = tt_models.GPTTrainer(P.copy_params(params), W.GPT_SPEC, lr=1e-3)
    _assert_same_loss_and_grads(trainer, loss, grads, tokens, targets, atol=2e-5)


def test_tinytorch_generation_matches_floor(require_tier):
    require_tier("architecture")
    require_tier("optimization")
    from tinytorch.milestones.bench import tt_models

    spec = P.GPTSpec(max_seq_len=40)
    params = P.gpt_params(spec)
    prompt = np.random.default_rng(6).integers(0, 65, (1, 10))
    expected = F.GPTFloor(P.copy_params(params), 2, 4).generate(prompt, 30, use_cache=True)
    gen = tt_models.GPTGenerator(P.copy_params(params), spec)
    for use_cache in (True, False):
        np.testing.assert_array_equal(gen.generate(prompt, 30, use_cache=use_cache), expected)


def test_cpu_clock_is_recorded(tiny_budget, capsys):
    argv = ["--quick", "--json", "--workload", "mlp", "--threads", "1", "--clock", "cpu", "--no-torch"]
    assert harness.main(argv) == 0
    (rec,) = json.loads(capsys.readouterr().out)
    assert rec["clock"] == "cpu" and rec["numpy_ms"] > 0


def test_unfinished_tinytorch_is_reported_and_the_floor_still_timed(tiny_budget, monkeypatch, capsys):
    from tinytorch.milestones.bench import tt_models

    def unfinished(self, x, y):
        raise NotImplementedError("Linear.forward: write me")

    monkeypatch.setattr(tt_models.MLP, "step", unfinished)
    assert harness.main(["--quick", "--json", "--workload", "mlp", "--threads", "1", "--no-torch"]) == 1
    (rec,) = json.loads(capsys.readouterr().out)
    assert rec["status"] == "ok" and rec["numpy_ms"] > 0
    assert rec["tinytorch_ms"] is None and rec["ratio_numpy"] is None
    assert rec["errors"] == {"tinytorch": "NotImplementedError: Linear.forward: write me"}
