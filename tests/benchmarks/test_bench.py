"""The benchmark suite (benchmarks/ttbench): its NumPy floors compute the right gradients,
tinytorch and PyTorch compute the same losses and gradients from the same weights, and the
harness runs each measurement in a fresh process and summarizes it as documented.

Oracles: central finite differences in float64 for the floors' manual backward passes;
naive loops for im2col and pooling; the update rule for Adam; PyTorch autograd (optional);
tinytorch autograd for the equivalence the benchmark relies on (identical weights ->
identical loss and gradients). No test asserts a time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from ttbench import child as C  # noqa: E402
from ttbench import floors as F  # noqa: E402
from ttbench import harness as H  # noqa: E402
from ttbench import params as P  # noqa: E402


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


GPT_SPEC = P.GPTSpec(vocab_size=65, embed_dim=128, num_layers=2, num_heads=4, max_seq_len=64)


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



def test_floor_linear_is_x_wt_plus_b():
    rng = np.random.default_rng(7)
    x, w, b = rng.standard_normal((2, 3, 5)), rng.standard_normal((4, 5)), rng.standard_normal(4)
    np.testing.assert_allclose(F.linear(x, w, b), np.einsum("bti,oi->bto", x, w) + b, rtol=1e-12)


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


def _assert_grads_close(named, grads, atol):
    assert set(named) == set(grads)
    for name, param in named.items():
        np.testing.assert_allclose(param.grad.numpy(), grads[name], atol=atol, rtol=1e-4, err_msg=name)


def test_floors_match_pytorch(torch):
    from ttbench import torch_models as TM

    torch.set_num_threads(1)
    cfg = C.DEFAULTS["mlp"]
    x, y = C.inputs("mlp", cfg)
    params = C.weights("mlp", cfg)
    loss, grads = F.MLPFloor(P.copy_params(params)).loss_and_grads(x, y)
    model, named = TM.mlp(params)
    assert _torch_loss_and_grads(torch, model, x, y) == pytest.approx(loss, rel=1e-5)
    _assert_grads_close(named, grads, atol=1e-6)

    cfg = {**C.DEFAULTS["cifar_cnn"], "batch": 4}
    x, y = C.inputs("cifar_cnn", cfg)
    params = P.convnet_params(P.CIFAR_CNN)
    loss, grads = F.ConvNetFloor(P.copy_params(params), P.CIFAR_CNN.paddings).loss_and_grads(x, y)
    model, named = TM.convnet(params, P.CIFAR_CNN.paddings)
    assert _torch_loss_and_grads(torch, model, x, y) == pytest.approx(loss, rel=1e-5)
    _assert_grads_close(named, grads, atol=1e-5)

    cfg = {**C.DEFAULTS["gpt"], "batch": 2}
    tokens, targets = C.inputs("gpt", cfg)
    params = P.gpt_params(GPT_SPEC)
    loss, grads = F.GPTFloor(P.copy_params(params), 2, 4).loss_and_grads(tokens, targets)
    model = TM.GPT(params, 2, 4)
    assert _torch_loss_and_grads(torch, model, tokens, targets) == pytest.approx(loss, rel=1e-5)
    _assert_grads_close(model.named, grads, atol=2e-5)

    spec = P.GPTSpec(max_seq_len=40)
    params = P.gpt_params(spec)
    prompt = np.random.default_rng(5).integers(0, 65, (1, 10))
    ours = F.GPTFloor(params, 2, 4).generate(prompt, 30, use_cache=True)
    model = TM.GPT(params, 2, 4)
    for use_cache in (True, False):
        theirs = model.generate(torch.from_numpy(prompt), 30, use_cache=use_cache).numpy()
        np.testing.assert_array_equal(theirs, ours)


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


@pytest.mark.parametrize("accelerated", [False, True], ids=["plain", "module18"])
def test_tinytorch_mlp_matches_floor(require_tier, accelerated):
    require_tier("foundation")
    if accelerated:
        require_tier("optimization")
    from ttbench import tt_models

    cfg = C.DEFAULTS["mlp"]
    x, y = C.inputs("mlp", cfg)
    params = C.weights("mlp", cfg)
    loss, grads = F.MLPFloor(P.copy_params(params)).loss_and_grads(x, y)
    trainer = tt_models.mlp(P.copy_params(params), lr=0.01, accelerated=accelerated)
    _assert_same_loss_and_grads(trainer, loss, grads, x, y, atol=1e-6)


@pytest.mark.parametrize("accelerated", [False, True], ids=["plain", "module18"])
@pytest.mark.parametrize("spec", [P.LENET, P.CIFAR_CNN], ids=["lenet", "cifar_cnn"])
def test_tinytorch_convnet_matches_floor(spec, accelerated, require_tier):
    require_tier("architecture")
    if accelerated:
        require_tier("optimization")
    from ttbench import tt_models

    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((4, *spec.in_shape), dtype=np.float32), rng.integers(0, 10, 4)
    params = P.convnet_params(spec)
    loss, grads = F.ConvNetFloor(P.copy_params(params), spec.paddings).loss_and_grads(x, y)
    trainer = tt_models.convnet(P.copy_params(params), spec, lr=0.01, accelerated=accelerated)
    _assert_same_loss_and_grads(trainer, loss, grads, x, y, atol=1e-5)


@pytest.mark.parametrize("accelerated", [False, True], ids=["plain", "module18"])
def test_tinytorch_gpt_matches_floor(require_tier, accelerated):
    require_tier("architecture")
    if accelerated:
        require_tier("optimization")
    from ttbench import tt_models

    tokens, targets = C.inputs("gpt", {**C.DEFAULTS["gpt"], "batch": 2})
    params = P.gpt_params(GPT_SPEC)
    loss, grads = F.GPTFloor(P.copy_params(params), 2, 4).loss_and_grads(tokens, targets)
    trainer = tt_models.gpt(P.copy_params(params), GPT_SPEC, lr=1e-3, accelerated=accelerated)
    _assert_same_loss_and_grads(trainer, loss, grads, tokens, targets, atol=2e-5)


@pytest.mark.parametrize("mode", ["cached", "uncached", "fused"])
def test_tinytorch_generation_matches_floor(require_tier, mode):
    require_tier("architecture")
    require_tier("optimization")
    from ttbench import tt_models

    spec = P.GPTSpec(max_seq_len=40)
    params = P.gpt_params(spec)
    prompt = np.random.default_rng(6).integers(0, 65, (1, 10))
    expected = F.GPTFloor(P.copy_params(params), 2, 4).generate(prompt, 30, use_cache=True)
    gen = tt_models.Generator(P.copy_params(params), spec, mode)
    np.testing.assert_array_equal(gen.generate(prompt, 30), expected)


# ---------------------------------------------------------------------------
# The harness: fresh processes, pinned threads, summaries, cross-checks
# ---------------------------------------------------------------------------


def test_rotation_interleaves_every_order():
    items = ["a", "b", "c"]
    assert [H.rotated(items, r) for r in range(4)] == [
        ["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]
    ]


def test_child_env_pins_threads_before_import():
    env = H.child_env(2)
    assert all(env[name] == "2" for name in H.THREAD_VARIABLES)
    assert env["PYTHONPATH"].split(":")[0] == str(BENCHMARKS)


def test_training_numbers_split_first_steps_from_steady_state():
    run = {"wall_s": [9.0, 5.0] + [3.0] * 8 + [1.0, 2.0] * 11}  # 32 steps
    n = H.training_numbers(run, "wall")
    assert n["first"] == 9.0
    assert n["first10"] == pytest.approx((9 + 5 + 3 * 8) / 10)
    assert n["steady"] == pytest.approx(1.5)  # median of the last 16 steps: 1, 2, 1, 2, ...


def _fake_training_run(impl, steady, loss=2.3, norm=0.5, threads=1, workload="mlp"):
    return {"workload": workload, "impl": impl, "threads_requested": threads, "wall_s": [steady] * 20,
            "cpu_s": [steady] * 20, "first_loss": loss, "grad_norms": {"fc0.weight": norm},
            "peak_rss_mb": 50.0, "workload_mb": 10.0, "load_before": 1.0}  # fmt: skip


def test_summary_medians_over_rounds_and_cross_check(monkeypatch):
    runs = [_fake_training_run("numpy", s) for s in (0.001, 0.003, 0.002)]
    runs += [_fake_training_run("tinytorch", 0.004)]
    runs += [_fake_training_run("torch", 0.002, loss=2.3 + 1e-7)]
    s = H.summarize(runs, "wall")
    assert s[(1, "mlp", "numpy")]["steady_ms"] == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert H.checks(s)["mlp/1"]["agree"] is True
    runs.append(_fake_training_run("accelerated", 0.004, norm=0.6))  # a wrong gradient
    bad = H.checks(H.summarize(runs, "wall"))["mlp/1"]
    assert bad["agree"] is False and "accelerated" in bad["problems"][0]
    table = H.training_table(H.summarize(runs, "wall"), 1)
    assert "| mlp | 4.00 | 2.00 (1.00-3.00) | 2.00 | 4.00 | 2.00x | 2.00x | 2.00x |" in table
    monkeypatch.setitem(H.ACCELERATED_APPLIES, "mlp", False)  # a workload Module 18 swaps nothing in
    table = H.training_table(H.summarize(runs, "wall"), 1)
    assert "| mlp | 4.00 | 2.00 (1.00-3.00) | 2.00 | n/a | 2.00x | - | 2.00x |" in table


def test_generation_check_requires_identical_tinytorch_tokens():
    base = {"workload": "generate", "threads_requested": 1, "wall_s": [1.0, 0.5], "cpu_s": [1.0, 0.5],
            "config": {"tokens": 4}, "peak_rss_mb": 1.0, "workload_mb": 1.0}  # fmt: skip
    toks = list(range(40))
    runs = [{**base, "impl": i, "tokens": toks} for i in ("numpy_cached", "tinytorch_cached", "fused")]
    s = H.summarize(runs, "wall")
    assert s[(1, "generate", "fused")]["tok_s"]["median"] == pytest.approx(8.0)
    assert H.checks(s)["generate/1"]["agree"] is True
    runs.append({**base, "impl": "tinytorch_uncached", "tokens": toks[:-1] + [99]})
    c = H.checks(H.summarize(runs, "wall"))["generate/1"]
    assert c["agree"] is False and c["tinytorch_cached_uncached_fused_identical"] is False


def test_matmul_flops_closed_forms():
    assert C.matmul_flops("mlp", {"batch": 1, "width": 256}) == 3 * 2 * (784 * 256 + 256 * 128 + 128 * 10)
    # LeNet: conv1 24x24x6 outputs of 25 MACs, conv2 8x8x16 of 150, then 256-120-84-10
    lenet = 2 * (24 * 24 * 6 * 25 + 8 * 8 * 16 * 150 + 256 * 120 + 120 * 84 + 84 * 10)
    assert C.matmul_flops("lenet", {"batch": 2}) == 3 * 2 * lenet


def test_a_fresh_child_process_reports_steps_memory_and_threads():
    """One real child: the floor MLP at batch 8, 12 steps, one pinned thread."""
    spec = {"workload": "mlp", "impl": "numpy", "steps": 12, "min_seconds": 0, "config": {"batch": 8}}
    run = H.run_child(spec, threads=1)
    assert "error" not in run, run.get("error")
    assert len(run["wall_s"]) == len(run["cpu_s"]) == 12
    assert run["peak_rss_mb"] >= run["workload_mb"] >= 0
    assert run["threads"].get("blas", [1]) == [1]
    x, y = C.inputs("mlp", {"batch": 8, "width": 256})
    loss, _ = F.MLPFloor(C.weights("mlp", {"batch": 8, "width": 256})).loss_and_grads(x, y)
    assert run["first_loss"] == pytest.approx(loss, rel=1e-6)  # the same model as in this process


def test_a_failing_child_is_reported_not_raised():
    run = H.run_child({"workload": "mlp", "impl": "fortran", "steps": 1}, threads=1)
    assert "error" in run and "mlp/fortran" in run["error"]


def test_run_json_report(tmp_path, capsys):
    out = tmp_path / "run.json"
    code = H.main(["--quick", "--rounds", "1", "--threads", "1", "--workload", "mlp", "--impl", "numpy",
                   "--no-torch", "--json", str(out)])  # fmt: skip
    assert code == 0
    data = json.loads(out.read_text())
    assert data["meta"]["threads"] == [1] and data["meta"]["torch"] is None
    (run,) = data["runs"]
    assert run["impl"] == "numpy" and run["threads_requested"] == 1
    assert "| mlp | - |" in capsys.readouterr().out
