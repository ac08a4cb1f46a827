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


def test_enable_disable_sets_a_factory_sized_from_the_model():
    class Model:
        max_seq_len, num_layers, num_heads, embed_dim = 12, 3, 2, 8

        def generate(self, *args, **kwargs):
            return None

    m = Model()
    assert enable_kv_cache(m) is m
    cache = m.kv_cache_factory(batch_size=5)
    assert isinstance(cache, KVCache) and cache.seq_len == 0
    assert cache.keys.shape == (3, 5, 2, 12, 4)  # (layers, B, H, max_seq_len, D = 8 / 2)
    assert m.kv_cache_factory(1) is not cache  # a fresh cache per generation
    assert disable_kv_cache(m) is m and m.kv_cache_factory is None
    with pytest.raises(ValueError, match="generate"):
        enable_kv_cache(object())

    class NoGeometry:
        def generate(self):
            return None

    with pytest.raises(ValueError, match="max_seq_len"):
        enable_kv_cache(NoGeometry())


def numpy_two_layer_attention(x, weights, cache=None):
    """A tiny 2-layer causal self-attention stack in NumPy that speaks the cache protocol.

    x (B, T, E); weights: per layer (Wq, Wk, Wv) of shape (E, E); heads H=2.
    With ``cache``, x holds only the new positions and earlier K/V come from the cache.
    """
    b, t, e = x.shape
    h, d = 2, e // 2
    offset = cache.seq_len if cache is not None else 0
    for layer, (wq, wk, wv) in enumerate(weights):

        def heads(a):
            return a.reshape(b, t, h, d).transpose(0, 2, 1, 3)  # (B, H, T, D)

        q, k, v = heads(x @ wq), heads(x @ wk), heads(x @ wv)
        if cache is not None:
            cache.update(layer, k, v)
            k, v = cache.get(layer)
        t_k = k.shape[2]
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d)  # (B, H, T, T_k)
        allowed = np.arange(t_k)[None, :] <= (offset + np.arange(t))[:, None]
        scores = np.where(allowed, scores, -np.inf)
        w = np.exp(scores - scores.max(-1, keepdims=True))
        w /= w.sum(-1, keepdims=True)
        x = x + (w @ v).transpose(0, 2, 1, 3).reshape(b, t, e)
    if cache is not None:
        cache.advance(t)
    return x


@pytest.mark.parametrize("prompt_len", [1, 4, 7])
def test_incremental_attention_equals_full_recomputation(prompt_len):
    """Feeding the prompt then one position at a time through the cache gives the full pass's outputs."""
    rng = np.random.default_rng(prompt_len)
    b, total, e = 2, 12, 8
    weights = [
        tuple(rng.standard_normal((e, e)).astype(np.float32) * 0.3 for _ in range(3)) for _ in range(2)
    ]
    x = rng.standard_normal((b, total, e)).astype(np.float32)
    full = numpy_two_layer_attention(x, weights)
    cache = KVCache(b, total, 2, 2, e // 2)
    outs = [numpy_two_layer_attention(x[:, :prompt_len], weights, cache)]
    for pos in range(prompt_len, total):
        outs.append(numpy_two_layer_attention(x[:, pos : pos + 1], weights, cache))
    np.testing.assert_allclose(np.concatenate(outs, axis=1), full, rtol=1e-5, atol=1e-5)
    assert cache.seq_len == total
    with pytest.raises(ValueError, match="max_seq_len"):
        numpy_two_layer_attention(x[:, :1], weights, cache)


# ---------------------------------------------------------------- with the architecture tier's GPT


def small_gpt(seed=0, max_seq_len=40, embed_dim=32, num_heads=4, num_layers=2, vocab=65):
    from tinytorch.models.transformer import GPT

    np.random.seed(seed)
    return GPT(vocab, embed_dim, num_layers=num_layers, num_heads=num_heads, max_seq_len=max_seq_len)


def test_cached_forward_logits_equal_full_forward(require_tier):
    require_tier("architecture")
    from tinytorch.core.autograd import no_grad
    from tinytorch.core.tensor import Tensor

    gpt = small_gpt(1)
    tokens = np.random.default_rng(1).integers(0, 65, size=(2, 15))
    with no_grad():
        full = gpt(Tensor(tokens)).data
        cache = KVCache(2, 15, 2, 4, 8)
        pieces = [gpt(Tensor(tokens[:, :6]), cache=cache).data]
        for pos in range(6, 15):
            pieces.append(gpt(Tensor(tokens[:, pos : pos + 1]), cache=cache).data)
    assert cache.seq_len == 15
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="max_seq_len"), no_grad():
        gpt(Tensor(tokens[:, :1]), cache=cache)  # the cache is full


@pytest.mark.parametrize("prompt_len", [1, 3, 10, 17])
def test_greedy_tokens_identical_with_and_without_cache(prompt_len, require_tier):
    require_tier("architecture")
    gpt = enable_kv_cache(small_gpt(2))
    prompt = np.random.default_rng(prompt_len).integers(0, 65, size=(1, prompt_len))
    cached = np.asarray(gpt.generate(prompt, 20, temperature=0, use_cache=True))
    full = np.asarray(gpt.generate(prompt, 20, temperature=0, use_cache=False))
    assert cached.shape == (1, prompt_len + 20)
    np.testing.assert_array_equal(cached, full)
    np.testing.assert_array_equal(cached[:, :prompt_len], prompt)


def test_batched_generation_identical(require_tier):
    require_tier("architecture")
    gpt = enable_kv_cache(small_gpt(3))
    prompt = np.random.default_rng(3).integers(0, 65, size=(3, 5))
    np.testing.assert_array_equal(
        np.asarray(gpt.generate(prompt, 12, temperature=0, use_cache=True)),
        np.asarray(gpt.generate(prompt, 12, temperature=0, use_cache=False)),
    )


def test_enable_kv_cache_switches_generate_default(require_tier):
    require_tier("architecture")
    gpt = small_gpt(4)
    made = []
    enable_kv_cache(gpt)
    factory = gpt.kv_cache_factory

    def counting(batch_size):
        made.append(factory(batch_size))
        return made[-1]

    prompt = np.zeros((1, 3), dtype=np.int64)
    gpt.kv_cache_factory = counting
    cached = gpt.generate(prompt, 4, temperature=0)
    assert len(made) == 1 and made[0].seq_len >= 6 and made[0].batch_size == 1
    disable_kv_cache(gpt)
    assert gpt.kv_cache_factory is None
    np.testing.assert_array_equal(gpt.generate(prompt, 4, temperature=0), cached)
    assert len(made) == 1  # no cache asked for
    with pytest.raises(ValueError, match="enable_kv_cache"):
        gpt.generate(prompt, 4, temperature=0, use_cache=True)


def test_measured_generation_speed_is_consistent(require_tier):
    """The report's numbers are measured, and cached and uncached runs produce the same tokens.

    Speed itself (>= 10x at 256 tokens) is a ratio checked by milestone 06 and the
    benchmarks, not by a timed unit test.
    """
    require_tier("architecture")
    from tinytorch.generation.kv_cache import measure_generation_speed

    gpt = small_gpt(5, max_seq_len=40)
    prompt = np.random.default_rng(5).integers(0, 65, size=(1, 10))
    stats = measure_generation_speed(gpt, prompt, max_new_tokens=16, repeats=1)
    assert gpt.kv_cache_factory is None  # enabled for the measurement only
    assert stats["same_tokens"]
    assert stats["cached_tokens_per_s"] == pytest.approx(16 / stats["cached_seconds"])
    assert stats["speedup"] == pytest.approx(stats["uncached_seconds"] / stats["cached_seconds"])


def test_cached_generation_feeds_one_new_token_per_step(require_tier):
    """Why the cache is faster: after the prompt, each step runs the model on one token, not the prefix."""
    require_tier("architecture")
    gpt = enable_kv_cache(small_gpt(5, max_seq_len=40))
    prompt = np.random.default_rng(5).integers(0, 65, size=(1, 10))
    widths = []
    # Observed through a forward pre-hook of the first block: x is (B, T, E).
    handle = gpt.blocks[0].register_forward_pre_hook(lambda m, args: widths.append(args[0].shape[1]))
    cached = gpt.generate(prompt, 8, temperature=0, use_cache=True)
    cached_widths, widths[:] = list(widths), []
    full = gpt.generate(prompt, 8, temperature=0, use_cache=False)
    handle.remove()
    np.testing.assert_array_equal(cached, full)
    assert cached_widths == [10] + [1] * 7  # prefill the prompt, then one token per step
    assert widths == list(range(10, 18))  # recomputation re-reads the whole, growing prefix
