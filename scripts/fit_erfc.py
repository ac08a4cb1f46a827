"""Derive the coefficients of ``tinytorch.core.activations.erfc`` (used by the exact GELU).

NumPy has no erf. The activations module computes, for z >= 0,

    erfc(z) = t * exp(-z**2 + P(2t - 1)),   t = 1 / (1 + z/2),

the form of Press et al.'s Numerical Recipes ``erfcc``, with a polynomial P of our own:
t maps [0, inf) onto (0, 1], and ``log(erfc(z) / t) + z**2`` is a smooth function of t there,
so a modest polynomial fits it to near double precision.

This script fits P by least squares on Chebyshev nodes (numpy.polynomial), reference values
from ``math.erfc`` (for z >= 5, where erfc underflows towards 0, from its continued fraction
``erfc(z) = exp(-z**2) / (sqrt(pi) * (z + (1/2)/(z + 1/(z + (3/2)/(z + ...)))))``), prints the
coefficients in powers of u = 2t - 1 (all below 1 in magnitude, so Horner's rule is stable)
and the largest relative error of erfc on a dense grid.

    python scripts/fit_erfc.py [degree]      # default 16
"""

from __future__ import annotations

import math
import sys

import numpy as np
from numpy.polynomial import chebyshev


def log_erfc_over_t_plus_z2(t: float) -> float:
    """``log(erfc(z) / t) + z**2`` at ``z = 2/t - 2``, accurate also where erfc(z) underflows."""
    z = 2.0 / t - 2.0
    if z < 5.0:
        return math.log(math.erfc(z) / t) + z * z
    denominator = z  # continued fraction, evaluated from a depth where it has converged
    for n in range(400, 0, -1):
        denominator = z + (n / 2) / denominator
    return -math.log(math.sqrt(math.pi) * denominator * t)


def main(degree: int = 16) -> None:
    nodes = 4000
    u = np.cos(np.pi * (np.arange(nodes) + 0.5) / nodes)  # Chebyshev nodes in (-1, 1)
    t = (u + 1) / 2
    values = np.array([log_erfc_over_t_plus_z2(v) for v in t])
    coefficients = chebyshev.cheb2poly(chebyshev.chebfit(u, values, degree))

    z = np.concatenate([np.linspace(0, 6, 60001), np.linspace(6, 26, 20001)])
    tz = 1 / (1 + z / 2)
    poly = np.zeros_like(z)
    for c in coefficients[::-1]:  # Horner's rule, as the activations module evaluates it
        poly = poly * (2 * tz - 1) + c
    approx = tz * np.exp(-z * z + poly)
    exact = np.array([math.erfc(v) for v in z])
    print("coefficients (powers of u = 2t - 1, constant first):")
    for c in coefficients:
        print(f"    {float(c)!r},")
    print(f"max relative error of erfc on [0, 26]: {np.max(np.abs(approx - exact) / exact):.2e}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 16)
