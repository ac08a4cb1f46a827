"""Hidden tests of module 06 (optimizers): one step of SGD and Adam in closed form."""

from __future__ import annotations

import numpy as np
from _oracles import assert_close
from tinytorch.core.layers import Parameter
from tinytorch.core.optimizers import SGD, Adam


def test_sgd_momentum_two_steps():
    p = Parameter(np.array([1.0, -2.0], dtype=np.float32))
    opt = SGD([p], lr=0.1, momentum=0.9)
    g = np.array([0.5, 1.0], dtype=np.float32)
    for _ in range(2):
        p.grad = Parameter(g.copy())
        opt.step()
    # b1 = g; b2 = 0.9 g + g = 1.9 g; p = p0 - 0.1 (g + 1.9 g)
    assert_close(p, np.array([1.0, -2.0]) - 0.1 * 2.9 * g, rtol=1e-6, what="parameter after two steps")


def test_adam_first_step_moves_by_lr_times_sign():
    p = Parameter(np.array([0.3, -0.7, 2.0], dtype=np.float32))
    opt = Adam([p], lr=0.01)
    p.grad = Parameter(np.array([4.0, -0.5, 1e-3], dtype=np.float32))
    opt.step()
    assert_close(p, np.array([0.29, -0.69, 1.99]), rtol=1e-4, atol=1e-5, what="parameter after one step")
