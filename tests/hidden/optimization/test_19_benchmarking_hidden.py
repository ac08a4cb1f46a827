"""Hidden tests of module 19 (benchmarking): statistics against the standard library."""

from __future__ import annotations

import math
import statistics

from tinytorch.benchmarking.benchmark import BenchmarkResult, t_critical_95


def test_mean_std_and_confidence_interval():
    samples = [3.1, 2.7, 3.6, 2.9, 3.3, 3.0, 4.2]
    result = BenchmarkResult("x", samples)
    assert math.isclose(result.mean, statistics.fmean(samples), rel_tol=1e-12)
    assert math.isclose(result.std, statistics.stdev(samples), rel_tol=1e-12)
    low, high = result.ci95
    half = t_critical_95(6) * statistics.stdev(samples) / math.sqrt(7)
    assert math.isclose(low, statistics.fmean(samples) - half, rel_tol=1e-9)
    assert math.isclose(high, statistics.fmean(samples) + half, rel_tol=1e-9)
    assert math.isclose(t_critical_95(6), 2.4469, rel_tol=1e-3)  # the tabulated value
