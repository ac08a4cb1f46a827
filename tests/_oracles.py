"""Oracles of the tests: gradient checks and comparisons that never come from the code under test.

A test that judged gradients with ``tinytorch.core.autograd.gradcheck`` would let a
submission grade itself: a student's ``gradcheck`` that returns True passes every
gradient test. These helpers belong to the tests instead: they use only NumPy (and
the public ``Tensor`` protocol: ``.data``, ``.grad``, ``.requires_grad``,
``.backward(gradient)``), import nothing from ``tinytorch`` at module level, and ship
with the tests of a release (``tests/_oracles.py``, importable because the release's
``pytest.ini`` puts ``tests/`` on ``sys.path``). When ``tito course grade`` runs the
tests, its plugin snapshots this module (and NumPy's comparison functions) before any
submission code is imported and fails every test during which one was replaced.

Usage in a test::

    from _oracles import assert_close, gradcheck

    assert gradcheck(lambda a, b: a @ b, [a64, b64])
    assert_close(layer(x), expected, rtol=1e-5)
"""

from __future__ import annotations

import numpy as np

__all__ = ["assert_close", "gradcheck", "numeric_gradient", "to_numpy"]


def to_numpy(value) -> np.ndarray:
    """An ndarray view of ``value``: a Tensor's ``.data``, or ``np.asarray(value)``."""
    data = getattr(value, "data", value)
    return data if isinstance(data, np.ndarray) else np.asarray(data)


def assert_close(actual, expected, rtol: float = 1e-6, atol: float = 0.0, what: str = "value") -> None:
    """Fail unless ``|actual - expected| <= atol + rtol * |expected|`` elementwise (shapes equal).

    Accepts Tensors, arrays and scalars. NaNs must sit at the same places. The message
    names ``what``, the shapes or the worst element with both values and how many
    elements differ, so a failure says what to fix.
    """
    a, e = to_numpy(actual), to_numpy(expected)
    if a.shape != e.shape:
        raise AssertionError(f"{what}: shape {a.shape}, expected {e.shape}")
    a64, e64 = a.astype(np.float64), e.astype(np.float64)
    nan_a, nan_e = np.isnan(a64), np.isnan(e64)
    if not np.array_equal(nan_a, nan_e):
        where = tuple(int(i) for i in np.argwhere(nan_a != nan_e)[0])
        raise AssertionError(f"{what}: NaN mismatch at {where}: got {a64[where]!r}, expected {e64[where]!r}")
    excess = np.where(nan_e, 0.0, np.abs(a64 - e64) - (atol + rtol * np.abs(e64)))
    excess = np.where(np.isnan(excess), np.inf, excess)  # inf - inf: a wrong infinity
    if excess.size and excess.max() > 0:
        worst = np.unravel_index(int(np.argmax(excess)), excess.shape)
        count = int(np.sum(excess > 0))
        raise AssertionError(
            f"{what}: {count} of {excess.size} elements differ (rtol={rtol:g}, atol={atol:g}); "
            f"worst at {tuple(int(i) for i in worst)}: got {a64[worst]:.8g}, expected {e64[worst]:.8g}"
        )


def numeric_gradient(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar function ``f()`` with respect to ``x``, perturbed in place.

    ``x`` must be a C-contiguous float64 array that ``f`` reads; every element is
    restored. Cost: ``2 * x.size`` evaluations of ``f``.
    """
    if x.dtype != np.float64 or not x.flags.c_contiguous:
        raise ValueError("numeric_gradient: x must be a C-contiguous float64 array")
    grad = np.zeros_like(x)
    flat, out = x.reshape(-1), grad.reshape(-1)  # views: perturbing flat perturbs x
    for j in range(flat.size):
        original = flat[j]
        flat[j] = original + eps
        plus = f()
        flat[j] = original - eps
        minus = f()
        flat[j] = original
        out[j] = (plus - minus) / (2 * eps)
    return grad


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3) -> bool:
    """Compare the autograd gradients of ``fn`` with central finite differences in float64.

    The output is reduced with fixed random weights ``r`` (``L = sum(fn(*inputs) * r)``),
    so every output element counts: the analytic gradient is ``fn(*inputs).backward(r)``
    (the code under test), the numeric one perturbs each element of each input that
    requires grad by ``+-eps`` and evaluates ``L`` from the forward values alone.

    Args:
        fn: callable taking ``*inputs`` and returning a Tensor.
        inputs: sequence; the Tensors with ``requires_grad`` are checked and must be float64.
        eps, atol, rtol: step and tolerances, ``|analytic - numeric| <= atol + rtol * |numeric|``.

    Returns True; raises AssertionError naming the input, the worst element and both values.
    Cost: two evaluations of ``fn`` per checked element plus one backward.
    """
    inputs = list(inputs)
    checked = [i for i, t in enumerate(inputs) if getattr(t, "requires_grad", False)]
    if not checked:
        raise ValueError("gradcheck: argument 'inputs' has no tensor with requires_grad=True")
    for i in checked:
        if to_numpy(inputs[i]).dtype != np.float64:
            raise ValueError(f"gradcheck: input {i} must be float64, got {to_numpy(inputs[i]).dtype}")
        if not inputs[i].data.flags.c_contiguous:
            inputs[i].data = np.ascontiguousarray(inputs[i].data)

    saved = [inputs[i].grad for i in checked]
    for i in checked:
        inputs[i].grad = None
    out = fn(*inputs)
    weights = np.random.default_rng(1234).standard_normal(to_numpy(out).shape)
    out.backward(type(out)(weights, dtype=np.float64))
    analytic = [
        np.zeros_like(to_numpy(inputs[i])) if inputs[i].grad is None else to_numpy(inputs[i].grad).copy()
        for i in checked
    ]
    for i, g in zip(checked, saved):
        inputs[i].grad = g

    def objective() -> float:
        return float(np.sum(to_numpy(fn(*inputs)).astype(np.float64) * weights))

    for k, i in enumerate(checked):
        x = inputs[i].data
        numeric = numeric_gradient(objective, x, eps)
        if analytic[k].shape != numeric.shape:
            raise AssertionError(
                f"gradcheck: input {i}: gradient of shape {analytic[k].shape}, "
                f"input has shape {numeric.shape}"
            )
        error = np.abs(analytic[k] - numeric) - (atol + rtol * np.abs(numeric))
        error = np.where(np.isnan(error), np.inf, error)
        if error.size and error.max() > 0:
            worst = np.unravel_index(int(np.argmax(error)), x.shape)
            raise AssertionError(
                f"gradcheck: input {i} element {tuple(int(w) for w in worst)}: "
                f"analytic {analytic[k][worst]:.6g} vs numeric {numeric[worst]:.6g}"
            )
    return True
