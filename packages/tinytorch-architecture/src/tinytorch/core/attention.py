"""Module 12: attention, every position reads from every other, weighted by relevance.

Scaled dot-product attention (Vaswani et al., 2017)::

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + mask_bias) V

Each query row scores every key (a dot product), the scores become weights
(softmax), and the output is the weighted average of the value rows. The
``1/sqrt(d_k)`` keeps the score variance near 1 so the softmax does not
saturate as ``d_k`` grows. A *mask* (true = may attend) blocks positions, e.g.
the future in a language model.

Multi-head attention projects the input into ``num_heads`` smaller
query/key/value spaces, attends in each independently and mixes the results
with an output projection. All heads are one batched matmul over a
``(B, H, T, D)`` array, never a Python loop over heads.

Costs for ``B`` sequences of ``T`` tokens, width ``E``: projections
``8 B T E^2`` flops, attention ``4 B T^2 E`` flops and ``B H T^2`` weights of memory.

KV cache (used by ``GPT.generate``; the cache class lives in the optimization
tier): when ``cache`` is given, the keys/values of the new tokens are written
with ``cache.update(layer_idx, k, v)`` and attention runs against
``cache.get(layer_idx)``, everything computed so far. The cache is an
inference device: no gradient flows into cached keys and values.
"""

from __future__ import annotations

import math
import weakref

import numpy as np
from tinytorch.core.autograd import Function, is_grad_enabled
from tinytorch.core.layers import Dropout, Linear, Module
from tinytorch.core.tensor import Tensor

__all__ = [
    "scaled_dot_product_attention",
    "MultiHeadAttention",
    "MaskedSoftmaxFunction",
    "SplitHeadsFunction",
    "MergeHeadsFunction",
    "mask_to_bias",
]


def mask_to_bias(mask, scores_shape: tuple, dtype) -> tuple[np.ndarray, bool]:
    """Turn a boolean/0-1 mask (true = attend) into an additive bias (0 or -inf).

    Returns:
        ``(bias, has_empty_rows)``: ``bias`` broadcastable to ``scores_shape``;
        ``has_empty_rows`` is True when some query may attend to nothing.

    Raises:
        ValueError: the mask does not broadcast to the scores' shape.
    """
    m = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
    try:
        full = np.broadcast_shapes(m.shape, scores_shape)
    except ValueError:
        full = None
    if full != tuple(scores_shape):
        raise ValueError(
            f"attention: mask of shape {m.shape} does not broadcast to the scores "
            f"of shape {tuple(scores_shape)}"
        )
    allowed = m.astype(bool, copy=False)
    bias = np.zeros(allowed.shape, dtype=dtype)
    bias[~allowed] = -np.inf
    return bias, not bool(allowed.any(axis=-1).all())


# Stacked q/k/v projections per KV cache: {cache: {id(attention module): (arrays, W, b)}}.
# Weak keys: an entry lives exactly as long as its cache, i.e. one generation, during
# which the weights are fixed (the cached keys/values depend on them anyway).
_QKV_BY_CACHE = weakref.WeakKeyDictionary()


def _stacked_qkv(attn, cache) -> tuple:
    """``(W (E, 3E), b (3E,) or None)``: q_proj, k_proj, v_proj side by side, built once per cache.

    Decoding one token then runs one ``(1, E) @ (E, 3E)`` matmul instead of three
    Linear calls: the Python overhead of the two extra calls costs more than the math.
    Rebuilt if a weight array is replaced (e.g. ``load_state_dict``).
    """
    layers = (attn.q_proj, attn.k_proj, attn.v_proj)
    arrays = tuple(lin.weight.data for lin in layers) + tuple(
        None if lin.bias is None else lin.bias.data for lin in layers
    )
    try:
        per_module = _QKV_BY_CACHE.setdefault(cache, {})
    except TypeError:  # a cache object that cannot be weakly referenced: no reuse
        per_module = {}
    entry = per_module.get(id(attn))
    if entry is None or any(a is not b for a, b in zip(entry[0], arrays)):
        W = np.concatenate(arrays[:3], axis=1)  # (E, 3E)
        biases = arrays[3:]
        b = None
        if any(v is not None for v in biases):
            b = np.concatenate([np.zeros(W.shape[0], W.dtype) if v is None else v for v in biases])
        entry = per_module[id(attn)] = (arrays, W, b)
    return entry[1], entry[2]


class MaskedSoftmaxFunction(Function):
    """``softmax(scores * scale + bias)`` over the last axis, fused.

    ``bias`` holds 0 (attend) or -inf (blocked); a row with every key blocked
    gets all-zero weights (not NaN). Backward: ``scale * p * (g - sum(g * p))``.
    """

    @staticmethod
    def forward(ctx, scores, scale=1.0, bias=None, empty_rows=False):
        ### BEGIN SOLUTION
        s = scores * float(scale)  # a Python float keeps the scores' dtype (NEP 50)
        if bias is not None:
            s += bias  # broadcast (Tq, Tk) or (..., Tq, Tk) over the batch and heads
        # ufunc.reduce directly: ndarray.max/sum add a Python wrapper (~0.2 us), which
        # shows when decoding runs this on one query row at a time.
        m = np.maximum.reduce(s, axis=-1, keepdims=True)
        if empty_rows:
            m[~np.isfinite(m)] = 0.0  # all -inf row: avoid (-inf) - (-inf) = nan
        np.subtract(s, m, out=s)
        np.exp(s, out=s)
        denom = np.add.reduce(s, axis=-1, keepdims=True)
        if empty_rows:
            denom[denom == 0] = 1.0  # exp(-inf) = 0 everywhere: weights stay 0
        s /= denom
        ctx.save_for_backward(s)
        ctx.scale = scale
        return s
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        (p,) = ctx.saved_tensors
        gs = grad * p
        gs -= p * gs.sum(axis=-1, keepdims=True)  # p * (g - sum(g p))
        if ctx.scale != 1.0:
            gs *= p.dtype.type(ctx.scale)
        return gs
        ### END SOLUTION


class SplitHeadsFunction(Function):
    """``(B, T, H * D) -> (B, H, T, D)``: give every head its own ``(T, D)`` slab.

    One fused op instead of ``reshape`` + ``permute``: when decoding one token at
    a time the arrays are tiny and each framework op costs more than its NumPy
    work, so halving the op count is a real speed-up. The result is a view.
    Backward: the inverse movement, ``(B, H, T, D) -> (B, T, H * D)``.
    """

    @staticmethod
    def forward(ctx, x, num_heads):
        ### BEGIN SOLUTION
        B, T, E = x.shape
        ctx.shape = x.shape
        return x.reshape(B, T, num_heads, E // num_heads).transpose(0, 2, 1, 3)  # (B, H, T, D)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        return grad.transpose(0, 2, 1, 3).reshape(ctx.shape)  # (B, H, T, D) -> (B, T, E)
        ### END SOLUTION


class MergeHeadsFunction(Function):
    """``(B, H, T, D) -> (B, T, H * D)``: concatenate the heads' outputs per position.

    The inverse of :class:`SplitHeadsFunction`, also one op (it copies: the
    heads become interleaved in memory). Backward: split the gradient again.
    """

    @staticmethod
    def forward(ctx, x):
        ### BEGIN SOLUTION
        B, H, T, D = x.shape
        ctx.shape = x.shape
        return x.transpose(0, 2, 1, 3).reshape(B, T, H * D)  # (B, T, E)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        B, H, T, D = ctx.shape
        return grad.reshape(B, T, H, D).transpose(0, 2, 1, 3)  # (B, H, T, D)
        ### END SOLUTION


def scaled_dot_product_attention(Q: Tensor, K: Tensor, V: Tensor, mask=None, dropout=None):
    """Scaled dot-product attention.

    ``weights = softmax(Q K^T / sqrt(D) + bias)``, ``output = weights @ V`` where
    ``bias`` is 0 where ``mask`` is true/1 and -inf where it is false/0.

    Args:
        Q: ``(..., T_q, D)`` queries.
        K: ``(..., T_k, D)`` keys.
        V: ``(..., T_k, D_v)`` values.
        mask: optional, broadcastable to ``(..., T_q, T_k)``; true/1 = may attend.
            A query that may attend to nothing gets zero weights (and output).
        dropout: optional callable (e.g. a ``Dropout`` module) applied to the weights.

    Returns:
        ``(output (..., T_q, D_v), attention_weights (..., T_q, T_k))``; both differentiable.

    Cost: two batched matmuls (``2 T_q T_k (D + D_v)`` flops per batch entry) and one softmax.
    """
    Q = Q if isinstance(Q, Tensor) else Tensor(Q)
    K = K if isinstance(K, Tensor) else Tensor(K)
    V = V if isinstance(V, Tensor) else Tensor(V)
    qs, ks, vs = Q.data.shape, K.data.shape, V.data.shape
    if len(qs) < 2 or len(ks) < 2 or len(vs) < 2:
        raise ValueError(f"attention: Q, K, V need at least 2 dims, got {qs}, {ks}, {vs}")
    if qs[-1] != ks[-1]:
        raise ValueError(f"attention: Q of shape {qs} and K of shape {ks} differ in feature size")
    if ks[-2] != vs[-2]:
        raise ValueError(f"attention: K of shape {ks} and V of shape {vs} differ in length")
    ### BEGIN SOLUTION
    scale = 1.0 / math.sqrt(qs[-1])
    needs_graph = is_grad_enabled() and (Q.requires_grad or K.requires_grad or V.requires_grad)
    if dropout is None and not needs_graph:
        # Inference fast path: no gradient can be asked for, so run the same arithmetic
        # on the raw arrays instead of four graph ops (transpose, matmul, softmax,
        # matmul). Decoding calls this once per layer per token on tiny arrays, where
        # each op's Python overhead costs more than its math.
        s = Q.data @ K.data.swapaxes(-1, -2)  # (..., T_q, T_k)
        bias, empty = (None, False) if mask is None else mask_to_bias(mask, s.shape, s.dtype)
        p = MaskedSoftmaxFunction.forward(MaskedSoftmaxFunction(), s, scale, bias, empty)
        out = p @ V.data  # (..., T_q, D_v)
        return Tensor(out, dtype=out.dtype), Tensor(p, dtype=p.dtype)  # keep float64 as float64
    scores = Q @ K.transpose(-2, -1)  # (..., T_q, T_k)
    bias, empty = (None, False) if mask is None else mask_to_bias(mask, scores.shape, scores.dtype)
    weights = MaskedSoftmaxFunction.apply(scores, scale=scale, bias=bias, empty_rows=empty)
    attended = weights if dropout is None else dropout(weights)
    return attended @ V, weights
    ### END SOLUTION


class MultiHeadAttention(Module):
    """Multi-head self-attention.

    ``head_h = Attention(x Wq_h, x Wk_h, x Wv_h)``; ``out = concat(head_1..head_H) Wo``.

    Args:
        embed_dim: model width ``E`` (divisible by ``num_heads``).
        num_heads: ``H``; each head has width ``E / H``.
        dropout: probability of dropping attention weights in training.

    Attributes:
        q_proj, k_proj, v_proj, out_proj: ``Linear(E, E)`` layers.

    Shape: ``(B, T, E) -> (B, T, E)``; ``mask`` broadcastable to ``(B, H, T, T_k)``.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if embed_dim < 1 or num_heads < 1 or embed_dim % num_heads:
            raise ValueError(
                f"MultiHeadAttention: argument 'embed_dim' ({embed_dim}) must be a positive multiple of "
                f"'num_heads' ({num_heads})"
            )
        self.embed_dim, self.num_heads = int(embed_dim), int(num_heads)
        self.head_dim = self.embed_dim // self.num_heads
        self.q_proj = Linear(embed_dim, embed_dim)
        self.k_proj = Linear(embed_dim, embed_dim)
        self.v_proj = Linear(embed_dim, embed_dim)
        self.out_proj = Linear(embed_dim, embed_dim)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, mask=None, cache=None, layer_idx: int = 0) -> Tensor:
        """Self-attention of ``x`` (B, T, E); with ``cache``, ``x`` holds only the new tokens."""
        x = x if isinstance(x, Tensor) else Tensor(x)
        shape = x.data.shape
        if len(shape) != 3 or shape[-1] != self.embed_dim:
            raise ValueError(
                f"MultiHeadAttention: expected input (B, T, {self.embed_dim}), got shape {x.shape}"
            )
        ### BEGIN SOLUTION
        H = self.num_heads
        dropout = self.dropout if (self.training and self.dropout.p > 0) else None
        if (
            cache is not None
            and dropout is None
            and not is_grad_enabled()
            and type(self.q_proj) is type(self.k_proj) is type(self.v_proj) is Linear
            and not any("forward" in m.__dict__ for m in (self.q_proj, self.k_proj, self.v_proj))
        ):
            # Cached decoding (inference only): raw arrays, q/k/v from one stacked matmul.
            # Plain Linear projections only: a replaced (quantized) or instrumented (profiler)
            # layer keeps its own forward.
            B, T, E = shape
            W, b = _stacked_qkv(self, cache)
            qkv = x.data @ W  # (B, T, 3E)
            if b is not None:
                qkv += b
            qkv = qkv.reshape(B, T, 3, H, self.head_dim).transpose(2, 0, 3, 1, 4)  # (3, B, H, T, D)
            cache.update(layer_idx, qkv[1], qkv[2])
            k_all, v_all = cache.get(layer_idx)  # (B, H, seq_len + T, D)
            s = qkv[0] @ k_all.swapaxes(-1, -2)  # (B, H, T, seq_len + T)
            bias, empty = (None, False) if mask is None else mask_to_bias(mask, s.shape, s.dtype)
            p = MaskedSoftmaxFunction.forward(
                MaskedSoftmaxFunction(), s, 1.0 / math.sqrt(self.head_dim), bias, empty
            )
            merged = (p @ v_all).transpose(0, 2, 1, 3).reshape(B, T, E)  # (B, H, T, D) -> (B, T, E)
            return self.out_proj(Tensor(merged, dtype=merged.dtype))
        # (B, T, E) -> (B, H, T, D): one fused op per projection (cheap when decoding).
        q = SplitHeadsFunction.apply(self.q_proj(x), H)
        k = SplitHeadsFunction.apply(self.k_proj(x), H)
        v = SplitHeadsFunction.apply(self.v_proj(x), H)
        if cache is not None:
            # Store this step's keys/values; attend over everything cached so far.
            cache.update(layer_idx, k.data, v.data)
            k_all, v_all = cache.get(layer_idx)  # (B, H, seq_len + T, D)
            k, v = Tensor(k_all), Tensor(v_all)
        out, _ = scaled_dot_product_attention(q, k, v, mask=mask, dropout=dropout)  # (B, H, T, D)
        return self.out_proj(MergeHeadsFunction.apply(out))  # (B, H, T, D) -> (B, T, E)
        ### END SOLUTION

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}"
