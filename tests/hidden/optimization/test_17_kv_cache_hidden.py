"""Hidden tests of module 17 (KV cache): writes land at the committed length; memory accounting."""

from __future__ import annotations

import numpy as np
import pytest
from tinytorch.generation.kv_cache import KVCache


def test_two_writes_read_back_in_order():
    cache = KVCache(batch_size=1, max_seq_len=6, num_layers=2, num_heads=2, head_dim=3)
    rng = np.random.default_rng(171)
    first_k, first_v = rng.standard_normal((2, 1, 2, 4, 3)).astype(np.float32)
    for layer in range(2):
        cache.update(layer, first_k, first_v)
    cache.advance()
    new_k, new_v = rng.standard_normal((2, 1, 2, 1, 3)).astype(np.float32)
    cache.update(1, new_k, new_v)
    k, v = cache.get(1)
    np.testing.assert_array_equal(k, np.concatenate([first_k, new_k], axis=2))
    np.testing.assert_array_equal(v, np.concatenate([first_v, new_v], axis=2))
    with pytest.raises(ValueError):
        cache.update(0, np.zeros((1, 2, 3, 3), np.float32), np.zeros((1, 2, 3, 3), np.float32))


def test_memory_usage_counts_both_buffers():
    cache = KVCache(batch_size=2, max_seq_len=10, num_layers=3, num_heads=4, head_dim=5)
    usage = cache.get_memory_usage()
    assert usage["total_bytes"] == 2 * 3 * 2 * 4 * 10 * 5 * 4  # K and V, float32
    assert usage["used_bytes"] == 0 and usage["capacity_tokens"] == 10
