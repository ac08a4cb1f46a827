"""Hidden tests of module 07 (training): the cosine schedule and gradient clipping in closed form."""

from __future__ import annotations

import math

import numpy as np
from tinytorch.core.layers import Parameter
from tinytorch.core.training import CosineSchedule, clip_grad_norm


def test_cosine_schedule_values():
    schedule = CosineSchedule(max_lr=0.5, min_lr=0.1, total_epochs=8)
    for epoch in (0, 2, 4, 8, 12):
        progress = min(epoch, 8) / 8
        expected = 0.1 + 0.2 * (1 + math.cos(math.pi * progress))
        assert math.isclose(schedule.get_lr(epoch), expected, rel_tol=1e-12)


def test_clip_grad_norm_scales_to_the_limit():
    a, b = Parameter(np.zeros(2, np.float32)), Parameter(np.zeros(1, np.float32))
    a.grad, b.grad = Parameter(np.array([3.0, 0.0], np.float32)), Parameter(np.array([4.0], np.float32))
    assert math.isclose(clip_grad_norm([a, b], 1.0), 5.0, rel_tol=1e-6)
    clipped = math.sqrt(float(np.sum(a.grad.data**2) + np.sum(b.grad.data**2)))
    assert math.isclose(clipped, 1.0, rel_tol=1e-5)
