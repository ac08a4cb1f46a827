"""Module 17: the KV cache, memoization for autoregressive generation.

Generating token ``t+1`` with a transformer needs the attention keys and values
of every earlier position. Without a cache, each step re-runs the model on the
whole prefix: step ``t`` costs O(t) token-forwards (and O(t^2) attention), so
``n`` new tokens cost O(n^2) token-forwards. The keys and values of a position
never change once computed (causal attention: position ``i`` only sees
``<= i``), so we can *memoize* them: keep every layer's K and V in a buffer,
feed the model only the newest token, and let attention read the history from
the buffer. ``n`` tokens then cost O(n) token-forwards.

The cache implements the protocol the architecture tier's attention speaks
(see ``tinytorch.core.attention``; that tier never imports this one)::

    cache.seq_len                       # positions already committed
    cache.update(layer_idx, key, value) # key/value (B, H, T_new, D) written at [seq_len, seq_len + T_new)
    K, V = cache.get(layer_idx)         # views (B, H, seq_len + T_new, D), new entries included
    cache.advance(n)                    # commit n positions once every layer has written

The buffers are preallocated once (``max_seq_len`` positions), so generation
never reallocates or concatenates: each step writes ``T_new`` rows in place and
reads a view. Memory: ``2 * num_layers * B * H * max_seq_len * D * 4`` bytes.

A model opts in with :func:`enable_kv_cache`, which gives it a
``kv_cache_factory``: a callable ``factory(batch_size) -> KVCache`` sized from
the model. ``GPT.generate`` asks that factory for a fresh cache per call;
:func:`disable_kv_cache` sets it back to None (recompute the prefix every step).
"""

from __future__ import annotations

import time

import numpy as np


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


class KVCache:
    """Preallocated per-layer key/value buffers for incremental decoding.

    Args:
        batch_size: sequences decoded together (B).
        max_seq_len: capacity in positions (prompt + generated tokens).
        num_layers: transformer blocks; each owns one K and one V buffer.
        num_heads: attention heads (H).
        head_dim: per-head dimension (D = embed_dim / H).

    Shape:
        keys, values: ``(num_layers, B, H, max_seq_len, D)`` float32.

    Attributes:
        seq_len: number of committed positions (the next write starts here).
    """

    def __init__(self, batch_size: int, max_seq_len: int, num_layers: int, num_heads: int, head_dim: int):
        ### BEGIN SOLUTION
        self.batch_size = _positive_int(batch_size, "batch_size")
        self.max_seq_len = _positive_int(max_seq_len, "max_seq_len")
        self.num_layers = _positive_int(num_layers, "num_layers")
        self.num_heads = _positive_int(num_heads, "num_heads")
        self.head_dim = _positive_int(head_dim, "head_dim")
        shape = (self.num_layers, self.batch_size, self.num_heads, self.max_seq_len, self.head_dim)
        # One allocation for the whole generation: steps write in place, never concatenate.
        self.keys = np.zeros(shape, dtype=np.float32)
        self.values = np.zeros(shape, dtype=np.float32)
        # Per-layer views (B, H, max_seq_len, D): generation calls update/get twice per layer per token.
        self._layer_keys = list(self.keys)
        self._layer_values = list(self.values)
        self.seq_len = 0
        # Positions written by each layer since the last advance() (not yet committed).
        self._pending = [0] * self.num_layers
        ### END SOLUTION

    def _check_layer(self, layer_idx) -> int:
        if isinstance(layer_idx, bool) or not isinstance(layer_idx, (int, np.integer)):
            raise ValueError(f"layer_idx must be an int, got {layer_idx!r}")
        if not 0 <= layer_idx < self.num_layers:
            raise ValueError(f"layer_idx must be in [0, {self.num_layers}), got {layer_idx}")
        return int(layer_idx)

    def update(self, layer_idx: int, key, value) -> None:
        """Write ``key``/``value`` of the new positions of one layer at ``[seq_len, seq_len + T_new)``.

        Args:
            layer_idx: which block's buffers to write.
            key, value: arrays (or Tensors) of shape ``(B, H, T_new, D)``.

        Raises:
            ValueError: wrong shapes, bad ``layer_idx``, or writing past ``max_seq_len``
                (nothing is written then).
        """
        ### BEGIN SOLUTION
        if type(layer_idx) is not int or not 0 <= layer_idx < self.num_layers:  # fast path: plain int
            layer_idx = self._check_layer(layer_idx)
        key = key if type(key) is np.ndarray else np.asarray(getattr(key, "data", key))
        value = value if type(value) is np.ndarray else np.asarray(getattr(value, "data", value))
        shape = key.shape
        if (
            len(shape) != 4
            or shape[0] != self.batch_size
            or shape[1] != self.num_heads
            or shape[3] != self.head_dim
        ):
            raise ValueError(
                f"KVCache.update: key must have shape (B={self.batch_size}, H={self.num_heads}, T_new, "
                f"D={self.head_dim}), got {shape}"
            )
        if value.shape != shape:
            raise ValueError(f"KVCache.update: key shape {shape} != value shape {value.shape}")
        start, t_new = self.seq_len, shape[2]
        end = start + t_new
        if end > self.max_seq_len:
            raise ValueError(
                f"KVCache overflow: writing {t_new} position(s) at {start} exceeds max_seq_len="
                f"{self.max_seq_len}; create the cache with a larger max_seq_len or reset() it"
            )
        self._layer_keys[layer_idx][:, :, start:end] = key  # (B, H, T_new, D) into (B, H, max_seq_len, D)
        self._layer_values[layer_idx][:, :, start:end] = value
        self._pending[layer_idx] = t_new
        ### END SOLUTION

    def get(self, layer_idx: int) -> tuple[np.ndarray, np.ndarray]:
        """Keys and values of one layer up to the current length, just-written entries included.

        Returns:
            (K, V): views (no copy) of shape ``(B, H, seq_len + T_new, D)``.
        """
        ### BEGIN SOLUTION
        if type(layer_idx) is not int or not 0 <= layer_idx < self.num_layers:
            layer_idx = self._check_layer(layer_idx)
        end = self.seq_len + self._pending[layer_idx]
        return self._layer_keys[layer_idx][:, :, :end], self._layer_values[layer_idx][:, :, :end]
        ### END SOLUTION

    def advance(self, n: int | None = None) -> None:
        """Commit ``n`` new positions (default: the number the layers just wrote).

        Raises:
            ValueError: ``n`` negative, or ``seq_len + n`` beyond ``max_seq_len``.
        """
        ### BEGIN SOLUTION
        if n is None:
            n = max(self._pending)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"advance: n must be a non-negative int, got {n!r}")
        if self.seq_len + n > self.max_seq_len:
            raise ValueError(
                f"KVCache overflow: advancing {n} position(s) from {self.seq_len} exceeds "
                f"max_seq_len={self.max_seq_len}"
            )
        self.seq_len += int(n)
        self._pending = [0] * self.num_layers
        ### END SOLUTION

    def reset(self) -> None:
        """Forget every position (the buffers are reused, not reallocated)."""
        ### BEGIN SOLUTION
        self.seq_len = 0
        self._pending = [0] * self.num_layers
        ### END SOLUTION

    def get_memory_usage(self) -> dict:
        """Bytes held by the cache.

        Returns:
            dict with ``total_bytes`` (both preallocated buffers), ``used_bytes``
            (the committed positions), ``bytes_per_token`` (K and V of one
            position across layers, heads and the batch), ``capacity_tokens``,
            ``seq_len`` and ``utilization`` (used / total).
        """
        ### BEGIN SOLUTION
        total = self.keys.nbytes + self.values.nbytes
        per_token = total // self.max_seq_len
        used = per_token * self.seq_len
        return {
            "total_bytes": int(total),
            "used_bytes": int(used),
            "bytes_per_token": int(per_token),
            "capacity_tokens": self.max_seq_len,
            "seq_len": self.seq_len,
            "utilization": used / total,
        }
        ### END SOLUTION

    def __repr__(self) -> str:
        return (
            f"KVCache(batch_size={self.batch_size}, max_seq_len={self.max_seq_len}, num_layers="
            f"{self.num_layers}, num_heads={self.num_heads}, head_dim={self.head_dim}, "
            f"seq_len={self.seq_len})"
        )


class KVCacheFactory:
    """``factory(batch_size) -> KVCache`` with the sizes of one model (what ``enable_kv_cache`` installs).

    Args:
        max_seq_len: the model's context length (the cache's capacity).
        num_layers, num_heads, head_dim: the model's attention geometry.
    """

    def __init__(self, max_seq_len: int, num_layers: int, num_heads: int, head_dim: int):
        self.max_seq_len = _positive_int(max_seq_len, "max_seq_len")
        self.num_layers = _positive_int(num_layers, "num_layers")
        self.num_heads = _positive_int(num_heads, "num_heads")
        self.head_dim = _positive_int(head_dim, "head_dim")

    def __call__(self, batch_size: int) -> KVCache:
        return KVCache(batch_size, self.max_seq_len, self.num_layers, self.num_heads, self.head_dim)

    def __repr__(self) -> str:
        return (
            f"KVCacheFactory(max_seq_len={self.max_seq_len}, num_layers={self.num_layers}, "
            f"num_heads={self.num_heads}, head_dim={self.head_dim})"
        )


def _model_geometry(model, op: str) -> tuple[int, int, int, int]:
    """``(max_seq_len, num_layers, num_heads, head_dim)`` read from a GPT-shaped model."""
    if not callable(getattr(model, "generate", None)):
        raise ValueError(f"{op}: model must have a generate() method, got {type(model).__name__}")
    missing = [a for a in ("max_seq_len", "num_heads", "embed_dim") if not hasattr(model, a)]
    if not hasattr(model, "num_layers") and not hasattr(model, "blocks"):
        missing.append("num_layers (or blocks)")
    if missing:
        raise ValueError(f"{op}: {type(model).__name__} lacks {', '.join(missing)} to size a KV cache")
    num_layers = getattr(model, "num_layers", None) or len(model.blocks)
    return (
        int(model.max_seq_len),
        int(num_layers),
        int(model.num_heads),
        int(model.embed_dim // model.num_heads),
    )


def enable_kv_cache(model):
    """Make ``model.generate`` use a :class:`KVCache` by default (``use_cache=None``).

    Sets ``model.kv_cache_factory`` to a :class:`KVCacheFactory` sized from the
    model's ``max_seq_len``, ``num_layers``, ``num_heads`` and ``embed_dim``.

    Args:
        model: a model with a ``generate`` method that follows the cache protocol (e.g. ``GPT``).

    Returns:
        the same model, for chaining.
    """
    ### BEGIN SOLUTION
    model.kv_cache_factory = KVCacheFactory(*_model_geometry(model, "enable_kv_cache"))
    return model
    ### END SOLUTION


def disable_kv_cache(model):
    """Make ``model.generate`` recompute the whole prefix each step: ``model.kv_cache_factory = None``.

    Returns:
        the same model, for chaining.
    """
    ### BEGIN SOLUTION
    if not callable(getattr(model, "generate", None)):
        raise ValueError(f"disable_kv_cache: model must have a generate() method, got {type(model).__name__}")
    model.kv_cache_factory = None
    return model
    ### END SOLUTION


def measure_generation_speed(model, prompt_tokens, max_new_tokens: int = 256, repeats: int = 2) -> dict:
    """Time greedy generation with and without the cache on the same prompt.

    Each variant runs ``repeats`` times and keeps its fastest run (noise from
    other processes only ever slows a run down). A model without a
    ``kv_cache_factory`` gets one for the measurement (and has it removed after).

    Args:
        model: a model with ``generate(prompt, max_new_tokens, temperature=0, use_cache=...)``.
        prompt_tokens: int array ``(B, T_prompt)``.
        max_new_tokens: tokens to generate.
        repeats: runs per variant.

    Returns:
        dict with ``cached_seconds``, ``uncached_seconds``, ``cached_tokens_per_s``,
        ``uncached_tokens_per_s`` (new tokens per second, batch included),
        ``speedup`` (uncached / cached time) and ``same_tokens`` (bool).
    """
    ### BEGIN SOLUTION
    prompt = np.asarray(getattr(prompt_tokens, "data", prompt_tokens))
    if prompt.ndim != 2:
        raise ValueError(f"prompt_tokens must be (B, T), got shape {prompt.shape}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"measure_generation_speed: argument 'repeats' must be an int >= 1, got {repeats!r}")
    enabled_here = getattr(model, "kv_cache_factory", None) is None
    if enabled_here:
        enable_kv_cache(model)
    best, tokens = {}, {}
    try:
        for use_cache in (True, False):
            for _ in range(repeats):
                start = time.perf_counter()
                out = model.generate(prompt, max_new_tokens, temperature=0.0, use_cache=use_cache)
                elapsed = time.perf_counter() - start
                best[use_cache] = min(best.get(use_cache, np.inf), elapsed)
            tokens[use_cache] = np.asarray(getattr(out, "data", out))
    finally:
        if enabled_here:
            disable_kv_cache(model)
    new_tokens = max_new_tokens * prompt.shape[0]
    return {
        "cached_seconds": best[True],
        "uncached_seconds": best[False],
        "cached_tokens_per_s": new_tokens / best[True],
        "uncached_tokens_per_s": new_tokens / best[False],
        "speedup": best[False] / best[True],
        "same_tokens": bool(np.array_equal(tokens[True], tokens[False])),
    }
    ### END SOLUTION
