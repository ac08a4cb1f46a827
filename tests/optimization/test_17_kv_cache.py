"""Module 17: the KV cache buffers, its protocol, and cached generation equal to full recomputation."""

import numpy as np
import pytest
from tinytorch.generation.kv_cache import KVCache, disable_kv_cache, enable_kv_cache


def rand(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_preallocated_float32_and_memory_usage():
    cache = KVCache(batch_size=2, max_seq_len=16, num_layers=3, num_heads=4, head_dim=8)
    assert cache.seq_len == 0
    usage = cache.get_memory_usage()
    total = 2 * 3 * 2 * 4 * 16 * 8 * 4  # K and V, layers, B, H, T, D, float32 bytes
    assert usage["total_bytes"] == total
    assert usage["bytes_per_token"] == total // 16
    assert usage["used_bytes"] == 0 and usage["capacity_tokens"] == 16
    cache.update(0, rand((2, 4, 5, 8)), rand((2, 4, 5, 8)))
    cache.advance(5)
    assert cache.get_memory_usage()["used_bytes"] == 5 * total // 16
    assert cache.get_memory_usage()["utilization"] == pytest.approx(5 / 16)


def test_protocol_matches_concatenation_oracle():
    """Writing chunks then reading equals concatenating the chunks along time, per layer."""
    b, h, d = 1, 2, 4
    cache = KVCache(b, 10, 2, h, d)
    history = {0: ([], []), 1: ([], [])}
    for step, t_new in enumerate((3, 1, 1, 4)):
        for layer in (0, 1):
            k, v = (
                rand((b, h, t_new, d), seed=10 * step + layer),
                rand((b, h, t_new, d), seed=99 + step + layer),
            )
            cache.update(layer, k, v)
            history[layer][0].append(k)
            history[layer][1].append(v)
            K, V = cache.get(layer)
            np.testing.assert_array_equal(K, np.concatenate(history[layer][0], axis=2))
            np.testing.assert_array_equal(V, np.concatenate(history[layer][1], axis=2))
        before = cache.seq_len
        cache.advance(t_new)
        assert cache.seq_len == before + t_new
    assert cache.seq_len == 9
    # advance() without n commits what the layers just wrote.
    cache.update(0, rand((b, h, 1, d)), rand((b, h, 1, d)))
    cache.update(1, rand((b, h, 1, d)), rand((b, h, 1, d)))
    cache.advance()
    assert cache.seq_len == 10


def test_get_before_write_returns_committed_only_and_views():
    cache = KVCache(1, 8, 1, 1, 2)
    cache.update(0, np.ones((1, 1, 3, 2)), np.ones((1, 1, 3, 2)))
    cache.advance(3)
    K, V = cache.get(0)
    assert K.shape == (1, 1, 3, 2) and V.shape == (1, 1, 3, 2)
    assert np.shares_memory(K, cache.keys)  # a view, not a copy


def test_overflow_raises_and_leaves_cache_intact():
    cache = KVCache(1, 4, 1, 2, 3)
    cache.update(0, rand((1, 2, 3, 3)), rand((1, 2, 3, 3)))
    cache.advance(3)
    snapshot = cache.keys.copy()
    with pytest.raises(ValueError, match="max_seq_len=4"):
        cache.update(0, rand((1, 2, 2, 3)), rand((1, 2, 2, 3)))
    np.testing.assert_array_equal(cache.keys, snapshot)
    assert cache.seq_len == 3
    with pytest.raises(ValueError, match="max_seq_len"):
        cache.advance(2)
    cache.reset()
    assert cache.seq_len == 0
    cache.update(0, rand((1, 2, 4, 3)), rand((1, 2, 4, 3)))  # full capacity fits after reset
    cache.advance(4)
    assert cache.get(0)[0].shape == (1, 2, 4, 3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_seq_len"):
        KVCache(1, 0, 1, 1, 1)
    with pytest.raises(ValueError, match="num_heads"):
        KVCache(1, 4, 1, 2.5, 1)
    cache = KVCache(2, 4, 2, 2, 3)
    with pytest.raises(ValueError, match="layer_idx"):
        cache.update(2, rand((2, 2, 1, 3)), rand((2, 2, 1, 3)))
    with pytest.raises(ValueError, match=r"key.*\(1, 2, 1, 3\)"):
        cache.update(0, rand((1, 2, 1, 3)), rand((1, 2, 1, 3)))
    with pytest.raises(ValueError, match="value shape"):
        cache.update(0, rand((2, 2, 1, 3)), rand((2, 2, 2, 3)))
    with pytest.raises(ValueError, match="layer_idx"):
        cache.get(-1)


def test_enable_disable_flag():
    class Model:
        def generate(self, *args, **kwargs):
            return None

    m = Model()
    assert enable_kv_cache(m) is m and m.kv_cache_enabled is True
    assert disable_kv_cache(m) is m and m.kv_cache_enabled is False
    with pytest.raises(ValueError, match="generate"):
        enable_kv_cache(object())
