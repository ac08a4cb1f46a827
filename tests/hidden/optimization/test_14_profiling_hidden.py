"""Hidden tests of module 14 (profiling): parameter and FLOP counts in closed form."""

from __future__ import annotations

from tinytorch.core.activations import ReLU
from tinytorch.core.layers import Linear, Sequential
from tinytorch.profiling.profiler import Profiler


def test_parameters_and_flops_of_a_small_mlp():
    model = Sequential(Linear(5, 7), ReLU(), Linear(7, 3), ReLU(), Linear(3, 2, bias=False))
    profiler = Profiler()
    assert profiler.count_parameters(model) == 5 * 7 + 7 + 7 * 3 + 3 + 3 * 2
    assert profiler.count_flops(model, (4, 5)) == 2 * 4 * (5 * 7 + 7 * 3 + 3 * 2)
