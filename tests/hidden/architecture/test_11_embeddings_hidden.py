"""Hidden tests of module 11 (embeddings): lookups are table rows; sinusoidal codes in closed form."""

from __future__ import annotations

import math

import numpy as np
from _oracles import assert_close
from tinytorch.text.embeddings import Embedding, sinusoidal_positional_encoding


def test_lookup_returns_the_rows_and_gradient_counts_repeats():
    emb = Embedding(10, 4)
    ids = np.array([[3, 3, 9], [0, 3, 1]])
    out = emb(ids)
    assert_close(out, emb.weight.data[ids], rtol=0, atol=0, what="embedding rows")
    out.backward(np.ones(out.shape, dtype=np.float32))
    counts = np.bincount(ids.ravel(), minlength=10).astype(np.float32)
    assert_close(emb.weight.grad, np.repeat(counts[:, None], 4, axis=1), rtol=0, atol=0, what="gradient")


def test_sinusoidal_values_at_chosen_positions():
    pe = np.asarray(sinusoidal_positional_encoding(20, 6).data, dtype=np.float64)
    for p in (0, 1, 7, 19):
        for i in range(3):
            angle = p / 10000 ** (2 * i / 6)
            assert math.isclose(pe[p, 2 * i], math.sin(angle), abs_tol=1e-6)
            assert math.isclose(pe[p, 2 * i + 1], math.cos(angle), abs_tol=1e-6)
