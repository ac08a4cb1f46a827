"""A fused NumPy inference path for cached GPT decoding (module 17, going further).

``GPT.generate(use_cache=True)`` already does O(1) new work per token, but
each step still runs ~50 framework operations (``Tensor`` wrappers, autograd
bookkeeping skipped under ``no_grad`` but still checked, shape validation).
With one token per step the arithmetic is tiny (a 128-wide vector times a few
matrices), so that per-operation overhead, not FLOPs, sets the speed.

:class:`FusedGPTDecoder` is what inference engines do: it takes a trained
``GPT`` once, keeps references to its weight arrays (``Linear`` or int8
``QuantizedLinear``, dequantized once), and decodes with plain NumPy kernels
and a :class:`~tinytorch.generation.kv_cache.KVCache`. It performs exactly
the same floating-point operations in the same order as the model's
layers, so greedy decoding returns the same tokens as ``GPT.generate``.

The decoder is a snapshot: rebuild it after further training or quantization.
"""

from __future__ import annotations

import math

import numpy as np
from tinytorch.generation.kv_cache import KVCache

_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_K = 0.044715


def _linear_arrays(layer) -> tuple[np.ndarray, np.ndarray | None]:
    """(W (in, out), b (out,) or None) of a ``Linear`` or ``QuantizedLinear``."""
    if hasattr(layer, "weight_q"):  # int8 layer: dequantize once, not every token
        return layer.dequantized_weight(), layer.bias
    bias = getattr(layer, "bias", None)
    return layer.weight.data, None if bias is None else bias.data


def _linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    out = x @ w
    if b is not None:
        out += b
    return out


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    # np.add.reduce / n is what np.mean computes, minus its Python-level wrapper (~3 us a call).
    n = x.dtype.type(x.shape[-1])
    xc = x - np.add.reduce(x, axis=-1, keepdims=True) / n
    var = np.add.reduce(xc * xc, axis=-1, keepdims=True) / n
    xc *= 1.0 / np.sqrt(var + x.dtype.type(eps))
    return xc * w + b


def _gelu(x: np.ndarray) -> np.ndarray:
    t = np.tanh(_GELU_C * (x + _GELU_K * x * x * x))
    return 0.5 * x * (1.0 + t)


class FusedGPTDecoder:
    """Greedy/sampled decoding of a ``GPT`` with a KV cache, in plain NumPy.

    Args:
        model: a ``tinytorch.models.transformer.GPT`` (its ``Linear`` layers may be
            int8 ``QuantizedLinear``).

    Example::

        decoder = FusedGPTDecoder(gpt)
        tokens = decoder.generate(prompt, 256)          # == gpt.generate(prompt, 256, temperature=0)
    """

    def __init__(self, model):
        try:
            emb = model.embedding
            self.tok = emb.token_embedding.weight.data
            learned = getattr(emb, "positional", "learned") == "learned"
            pos = emb.position_embedding.weight if learned else emb.position_table
            self.pos = np.asarray(getattr(pos, "data", pos))
            self.blocks = []
            for blk in model.blocks:
                a = blk.attn
                self.blocks.append({
                    "ln1": (blk.ln1.weight.data, blk.ln1.bias.data, blk.ln1.eps),
                    "q": _linear_arrays(a.q_proj), "k": _linear_arrays(a.k_proj),
                    "v": _linear_arrays(a.v_proj), "o": _linear_arrays(a.out_proj),
                    "ln2": (blk.ln2.weight.data, blk.ln2.bias.data, blk.ln2.eps),
                    "fc1": _linear_arrays(blk.mlp.fc1), "fc2": _linear_arrays(blk.mlp.fc2),
                })  # fmt: skip
            self.ln_f = (model.ln_f.weight.data, model.ln_f.bias.data, model.ln_f.eps)
            self.head = _linear_arrays(model.head)
            self.num_heads, self.head_dim = model.num_heads, model.embed_dim // model.num_heads
            self.max_seq_len, self.vocab_size = model.max_seq_len, model.vocab_size
        except AttributeError as exc:
            raise ValueError(f"FusedGPTDecoder: expects a GPT-shaped model ({exc})") from None
        self.model = model

    def _step(self, ids: np.ndarray, cache: KVCache) -> np.ndarray:
        """Logits ``(B, T, V)`` of the new tokens ``ids (B, T)``; their K/V go into ``cache``."""
        bsz, t = ids.shape
        h, d = self.num_heads, self.head_dim
        offset = cache.seq_len
        x = self.tok[ids]  # (B, T, E)
        x += self.pos[offset : offset + t]
        bias = None
        if t > 1:  # causal within the new positions: query i sees keys <= offset + i
            bias = np.zeros((t, offset + t), dtype=x.dtype)
            bias[~np.tri(t, offset + t, k=offset, dtype=bool)] = -np.inf
        scale = x.dtype.type(1.0 / math.sqrt(d))
        for i, p in enumerate(self.blocks):
            a = _layer_norm(x, *p["ln1"])

            def heads(z):
                return z.reshape(bsz, t, h, d).transpose(0, 2, 1, 3)  # (B, T, E) -> (B, H, T, D)

            q, k, v = (heads(_linear(a, *p[name])) for name in ("q", "k", "v"))
            cache.update(i, k, v)
            k_all, v_all = cache.get(i)  # (B, H, offset + T, D)
            s = (q @ k_all.transpose(0, 1, 3, 2)) * scale  # (B, H, T, offset + T)
            if bias is not None:
                s += bias
            s -= s.max(axis=-1, keepdims=True)
            np.exp(s, out=s)
            s /= s.sum(axis=-1, keepdims=True)
            y = (s @ v_all).transpose(0, 2, 1, 3).reshape(bsz, t, h * d)  # (B, H, T, D) -> (B, T, E)
            x = x + _linear(y, *p["o"])
            x = x + _linear(_gelu(_linear(_layer_norm(x, *p["ln2"]), *p["fc1"])), *p["fc2"])
        cache.advance(t)
        return _linear(_layer_norm(x, *self.ln_f), *self.head)

    def generate(self, prompt_tokens, max_new_tokens: int, temperature: float = 0.0, top_k: int | None = None,
                 seed: int | None = None) -> np.ndarray:  # fmt: skip
        """Prompt ``(B, T)`` (or ``(T,)``) followed by ``max_new_tokens`` tokens, int64.

        ``temperature == 0`` is greedy (same tokens as ``GPT.generate``); otherwise
        tokens are sampled from ``softmax(logits / temperature)`` over the ``top_k``
        best. When prompt plus new tokens exceed ``max_seq_len`` (the window would
        slide), this defers to ``model.generate(use_cache=True)``.
        """
        ids = np.asarray(getattr(prompt_tokens, "data", prompt_tokens))
        squeeze = ids.ndim == 1
        ids = ids[None] if squeeze else ids
        if ids.ndim != 2 or ids.shape[1] < 1 or ids.dtype.kind not in "iu":
            raise ValueError(
                f"prompt_tokens must be integer ids of shape (B, T), got {np.shape(prompt_tokens)}"
            )
        if ids.min() < 0 or ids.max() >= self.vocab_size:
            raise ValueError(f"prompt_tokens must be in [0, {self.vocab_size})")
        if (
            isinstance(max_new_tokens, bool)
            or not isinstance(max_new_tokens, (int, np.integer))
            or max_new_tokens < 0
        ):
            raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
        bsz, t0 = ids.shape
        if t0 + max_new_tokens > self.max_seq_len:
            out = self.model.generate(ids, max_new_tokens, temperature, top_k, seed, use_cache=True)
            return out[0] if squeeze else out
        out = np.empty((bsz, t0 + max_new_tokens), dtype=np.int64)
        out[:, :t0] = ids
        rng = np.random.default_rng(seed)
        cache = KVCache(bsz, self.max_seq_len, len(self.blocks), self.num_heads, self.head_dim)
        new = out[:, :t0]
        for n in range(t0, t0 + max_new_tokens):
            logits = self._step(new, cache)[:, -1]  # (B, V)
            out[:, n] = _pick(logits, temperature, top_k, rng)
            new = out[:, n : n + 1]
        return out[0] if squeeze else out


def _pick(logits: np.ndarray, temperature: float, top_k: int | None, rng) -> np.ndarray:
    """Greedy argmax (temperature 0) or one sample per row from the tempered top-k softmax."""
    if temperature == 0:
        return logits.argmax(axis=-1)
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    z = logits.astype(np.float64) / temperature
    if top_k is not None and top_k < z.shape[-1]:
        kth = np.partition(z, -top_k, axis=-1)[:, -top_k:].min(axis=-1, keepdims=True)
        z = np.where(z < kth, -np.inf, z)
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    cdf = np.cumsum(p, axis=-1)
    u = rng.random((z.shape[0], 1)) * cdf[:, -1:]
    return np.minimum((cdf <= u).sum(axis=-1), z.shape[-1] - 1)
