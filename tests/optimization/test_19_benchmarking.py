"""Module 19: benchmark statistics against independent formulas, reports, TinyMLPerf scoring."""

import json
import math
import statistics

import numpy as np
import pytest
from tinytorch.benchmarking.benchmark import (
    Benchmark,
    BenchmarkResult,
    BenchmarkSuite,
    TinyMLPerf,
    t_critical_95,
    time_function,
)
from tinytorch.core.activations import ReLU
from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.tensor import Tensor


def test_statistics_against_statistics_module():
    samples = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]
    r = BenchmarkResult("x", samples)
    assert r.n == 8
    assert r.mean == pytest.approx(statistics.mean(samples))
    assert r.median == pytest.approx(statistics.median(samples))
    assert r.std == pytest.approx(statistics.stdev(samples))
    low, high = r.ci95
    half = 2.365 * statistics.stdev(samples) / math.sqrt(8)  # t_{0.975, 7}
    assert low == pytest.approx(r.mean - half) and high == pytest.approx(r.mean + half)
    single = BenchmarkResult("one", [2.0])
    assert single.std == 0.0 and single.ci95 == (2.0, 2.0)
    with pytest.raises(ValueError, match="empty"):
        BenchmarkResult("none", [])
    with pytest.raises(ValueError, match="finite"):
        BenchmarkResult("nan", [1.0, float("nan")])


def test_t_critical_values_against_scipy():
    stats = pytest.importorskip("scipy.stats", reason="optional oracle: scipy is not installed")
    for df in (1, 2, 5, 10, 29, 30, 31, 50, 100, 1000):
        assert t_critical_95(df) == pytest.approx(stats.t.ppf(0.975, df), abs=2e-3)


def test_ci_covers_the_true_mean_about_95_percent():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(400):
        low, high = BenchmarkResult("s", rng.normal(10.0, 2.0, 12)).ci95
        hits += low <= 10.0 <= high
    assert 0.90 <= hits / 400 <= 0.99


def test_result_json_round_trip():
    r = BenchmarkResult("lat", [1.0, 2.0, 4.0], metadata={"model": "mlp"})
    back = BenchmarkResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back.samples == r.samples and back.metadata == {"model": "mlp"} and back.median == 2.0
    assert "median 2" in str(r)


def test_time_function_measures_sleep():
    import time

    r = time_function(lambda: time.sleep(0.002), warmup=1, iterations=5)
    assert r.n == 5 and r.unit == "ms" and r.min >= 1.9


def mlp(seed, hidden=32):
    np.random.seed(seed)
    return Sequential(Linear(16, hidden), ReLU(), Linear(hidden, 4))


def test_benchmark_and_suite_reports(tmp_path):
    small, big = mlp(0, 8), mlp(1, 512)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((64, 16)).astype(np.float32))
    with_labels = (x, small(x).data.argmax(-1))
    bench = Benchmark({"small": small, "big": big}, warmup=1, iterations=8)
    results = bench.run(*with_labels)
    assert results["small"]["accuracy"] == 1.0  # labels are small's own predictions
    assert 0 <= results["big"]["accuracy"] <= 1
    assert results["big"]["memory"]["parameter_bytes"] == 4 * (16 * 512 + 512 + 512 * 4 + 4)
    assert results["small"]["latency"].n == 8
    suite = BenchmarkSuite(
        {"small": small, "big": big},
        {"train": with_labels, "noise": (x, None)},
        warmup=1,
        iterations=5,
        memory=False,
    )
    with pytest.raises(ValueError, match="run"):
        suite.to_markdown()
    suite.run()
    md = suite.to_markdown()
    assert md.count("\n") == 2 + 4 - 1 and "| noise | big |" in md
    path = tmp_path / "out" / "bench.json"
    suite.to_json(path)
    payload = json.loads(path.read_text())
    assert set(payload["results"]) == {"train", "noise"}
    assert payload["results"]["noise"]["small"]["accuracy"] is None
    assert len(payload["results"]["train"]["big"]["latency"]["samples"]) == 5


def test_tinymlperf_scores_reference_and_optimized_models(tmp_path):
    perf = TinyMLPerf(seed=7, warmup=1, iterations=5)
    assert "mlp_digits" in perf.tasks()
    x1, x2 = perf.inputs("mlp_digits"), perf.inputs("mlp_digits")
    np.testing.assert_array_equal(x1.data, x2.data)  # fixed seed: fixed inputs
    reference = perf.reference_model("mlp_digits")
    same = perf.run("mlp_digits", reference, "reference-copy")
    assert same["fidelity"] == 1.0 and same["valid"]
    assert same["normalized_score"] == pytest.approx(
        same["reference_latency"]["median"] / same["latency"]["median"]
    )
    from tinytorch.optimization.quantization import quantize_model

    quantized = perf.reference_model("mlp_digits")
    quantize_model(quantized)
    q = perf.run("mlp_digits", quantized, "int8")
    assert q["fidelity"] >= 0.97 and q["valid"]
    np.random.seed(3)
    wrong = perf.run("mlp_digits", Sequential(Linear(64, 10)), "untrained")
    assert not wrong["valid"]
    paths = []
    for i, r in enumerate((same, q, wrong)):
        paths.append(tmp_path / f"r{i}.json")
        TinyMLPerf.save(r, paths[-1])
    board = TinyMLPerf.compare(paths)
    assert [row["rank"] for row in board] == [1, 2, 3]
    assert board[-1]["model_name"] == "untrained"  # invalid results rank last
    assert "| mlp_digits | 1 |" in TinyMLPerf.leaderboard_markdown(board)
    other_seed = dict(same, seed=8)
    with pytest.raises(ValueError, match="seed"):
        TinyMLPerf.compare([same, other_seed])
    with pytest.raises(ValueError, match="task"):
        perf.run("nope", reference)


def test_tinymlperf_cnn_task(require_tier):
    require_tier("architecture")
    from tinytorch.optimization.acceleration import accelerate

    perf = TinyMLPerf(seed=1, warmup=1, iterations=3)
    r = perf.run("cnn_digits", perf.reference_model("cnn_digits"), "ref")
    assert r["fidelity"] == 1.0 and r["latency"]["n"] == 3
    # A Module 18 submission: the same weights through the accelerated layers, the same predictions.
    fast = perf.run("cnn_digits", accelerate(perf.reference_model("cnn_digits")), "accelerated")
    assert fast["fidelity"] == 1.0 and fast["valid"]
    assert fast["normalized_score"] == pytest.approx(
        fast["reference_latency"]["median"] / fast["latency"]["median"]
    )
