"""Module 12: attention, every position reads from every other, weighted by relevance.

Scaled dot-product attention (Vaswani et al., 2017)::

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + mask) V

Each query row scores every key (a dot product), the scores become weights
(softmax), and the output is the weighted average of the value rows. The
``1/sqrt(d_k)`` keeps the score variance near 1 so the softmax does not
saturate as ``d_k`` grows.

A *mask* blocks positions, e.g. the future in a language model. Masks follow
PyTorch's ``F.scaled_dot_product_attention``: a **bool** mask says where a query
may attend (True = attend, False = blocked: the score becomes ``-inf``); a
**float** mask is **added** to the scores (0 keeps a score, ``-inf`` blocks it,
any other value biases it). A query whose every key is blocked has a softmax
over ``-inf`` only, which is NaN, exactly as ``torch.softmax`` of such a row.

Multi-head attention projects the input into ``num_heads`` smaller
query/key/value spaces, attends in each independently and mixes the results
with an output projection. The three projections are one ``Linear(E, 3E)``
whose output is split into q, k and v; all heads are one batched matmul over a
``(B, H, T, D)`` array, never a Python loop over heads.

Costs for ``B`` sequences of ``T`` tokens, width ``E``: projections
``8 B T E^2`` flops, attention ``4 B T^2 E`` flops and ``B H T^2`` weights of memory.

KV cache (used by ``GPT.generate``; a cache class lives in the optimization
tier, Module 17): when ``cache`` is given, the keys/values of the new tokens are
written with ``cache.update(layer_idx, k, v)`` and attention runs against
``K, V = cache.get(layer_idx)``, everything computed so far. The cache is an
inference device: no gradient flows into cached keys and values.
"""

from __future__ import annotations

import math

import numpy as np
from tinytorch.core.activations import softmax
from tinytorch.core.layers import Dropout, Linear, Module, positive_int
from tinytorch.core.tensor import Tensor

__all__ = ["scaled_dot_product_attention", "MultiHeadAttention"]


def _checked_mask(mask, q_shape: tuple, k_shape: tuple) -> np.ndarray:
    """The values of ``mask``: bool or float, broadcastable to the scores' shape, else ValueError."""
    try:
        scores_shape = np.broadcast_shapes(q_shape[:-2], k_shape[:-2]) + (q_shape[-2], k_shape[-2])
    except ValueError:
        raise ValueError(f"attention: batch dims of Q {q_shape} and K {k_shape} do not broadcast") from None
    m = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
    if m.dtype.kind not in "bf":
        raise ValueError(
            "attention: argument 'mask' must be bool (True = may attend) or float (added to the scores: "
            f"0 keeps, -inf blocks), got dtype {m.dtype}"
        )
    try:
        fits = np.broadcast_shapes(m.shape, scores_shape) == tuple(scores_shape)
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"attention: mask of shape {m.shape} does not broadcast to the scores of shape "
            f"{tuple(scores_shape)}"
        )
    return m


def scaled_dot_product_attention(Q, K, V, mask=None, dropout=None):
    """Scaled dot-product attention: ``softmax(Q K^T / sqrt(D) + mask) V``.

    Args:
        Q: ``(..., T_q, D)`` queries.
        K: ``(..., T_k, D)`` keys.
        V: ``(..., T_k, D_v)`` values.
        mask: optional, broadcastable to ``(..., T_q, T_k)``; bool (True = may
            attend) or float (added to the scores), as PyTorch's ``scaled_dot_product_attention``.
        dropout: optional callable (e.g. a ``Dropout`` module) applied to the weights.

    Returns:
        ``(output (..., T_q, D_v), attention_weights (..., T_q, T_k))``; both differentiable.
        A query with every key blocked gets NaN weights (the softmax of ``-inf`` only).

    Cost: two batched matmuls (``2 T_q T_k (D + D_v)`` flops per batch entry) and one softmax.
    """
    Q, K, V = (t if isinstance(t, Tensor) else Tensor(t) for t in (Q, K, V))
    qs, ks, vs = Q.shape, K.shape, V.shape
    if len(qs) < 2 or len(ks) < 2 or len(vs) < 2:
        raise ValueError(f"attention: Q, K, V need at least 2 dims, got {qs}, {ks}, {vs}")
    if qs[-1] != ks[-1]:
        raise ValueError(f"attention: Q of shape {qs} and K of shape {ks} differ in feature size")
    if ks[-2] != vs[-2]:
        raise ValueError(f"attention: K of shape {ks} and V of shape {vs} differ in length")
    mask_values = None if mask is None else _checked_mask(mask, qs, ks)
    ### BEGIN SOLUTION
    # Scale the queries, not the scores: the same product, and (T_q, D) is a smaller array than
    # (T_q, T_k) for any context longer than a head is wide (one T x T array fewer in the graph).
    scores = (Q * (1.0 / math.sqrt(qs[-1]))) @ K.transpose(-2, -1)  # (..., T_q, T_k)
    if mask_values is not None and mask_values.dtype == bool:
        scores = scores.masked_fill(~mask_values, -np.inf)  # blocked: exp(-inf) = 0 weight
    elif mask_values is not None:
        scores = scores + mask  # additive: 0 keeps, -inf blocks
    weights = softmax(scores, dim=-1)  # every row sums to 1 over the keys
    attended = weights if dropout is None else dropout(weights)
    return attended @ V, weights  # (..., T_q, D_v), (..., T_q, T_k)
    ### END SOLUTION


class MultiHeadAttention(Module):
    """Multi-head self-attention (``torch.nn.MultiheadAttention`` with ``batch_first=True``, q = k = v = x).

    ``[q | k | v] = in_proj(x)``; ``head_h = Attention(q_h, k_h, v_h)``;
    ``out = out_proj(concat(head_1..head_H))``, where ``q_h`` is columns
    ``h*D .. (h+1)*D`` of ``q`` (``D = E / H``).

    Args:
        embed_dim: model width ``E`` (divisible by ``num_heads``).
        num_heads: ``H``; each head has width ``D = E / H``.
        dropout: probability of dropping attention weights in training.

    Attributes:
        in_proj: ``Linear(E, 3E)``; its weight ``(3E, E)`` holds the q, k, v
            projections as three row blocks, PyTorch's ``in_proj_weight`` layout.
        out_proj: ``Linear(E, E)``.

    PyTorch name map (``state_dict`` keys): ``in_proj_weight <-> in_proj.weight``,
    ``in_proj_bias <-> in_proj.bias``, ``out_proj.weight`` and ``out_proj.bias`` as they are.

    Shape: ``(B, T, E) -> (B, T, E)``; ``mask`` broadcastable to ``(B, H, T, T_k)``
    (bool: True = may attend; float: added to the scores).
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        self.embed_dim = positive_int(embed_dim, "embed_dim", "MultiHeadAttention")
        self.num_heads = positive_int(num_heads, "num_heads", "MultiHeadAttention")
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"MultiHeadAttention: argument 'embed_dim' ({embed_dim}) must be a multiple of "
                f"'num_heads' ({num_heads})"
            )
        self.head_dim = self.embed_dim // self.num_heads
        self.in_proj = Linear(self.embed_dim, 3 * self.embed_dim)
        self.out_proj = Linear(self.embed_dim, self.embed_dim)
        self.dropout = Dropout(dropout)

    def forward(self, x, mask=None, *extra, cache=None, layer_idx: int = 0) -> Tensor:
        """Self-attention of ``x`` (B, T, E); with ``cache``, ``x`` holds only the new tokens."""
        if extra:
            raise TypeError(
                "MultiHeadAttention is self-attention: call mha(x, mask=...) with one input x (B, T, E); "
                f"got {2 + len(extra)} positional inputs (query, key, value, as torch.nn.MultiheadAttention "
                "takes them)"
            )
        x = x if isinstance(x, Tensor) else Tensor(x)
        if x.ndim != 3 or x.shape[-1] != self.embed_dim:
            raise ValueError(
                f"MultiHeadAttention: expected input (B, T, {self.embed_dim}), got shape {x.shape}"
            )
        ### BEGIN SOLUTION
        B, T, E = x.shape
        H, D = self.num_heads, self.head_dim
        qkv = self.in_proj(x).reshape(B, T, 3, H, D).permute(2, 0, 3, 1, 4)  # (B, T, 3E) -> (3, B, H, T, D)
        q, k, v = qkv[0], qkv[1], qkv[2]  # each (B, H, T, D)
        if cache is not None:
            # Store this step's keys/values; attend over everything cached so far.
            cache.update(layer_idx, k.data, v.data)
            k_all, v_all = cache.get(layer_idx)  # (B, H, seq_len + T, D) arrays
            k, v = Tensor(k_all, dtype=k_all.dtype), Tensor(v_all, dtype=v_all.dtype)
        out, _ = scaled_dot_product_attention(q, k, v, mask=mask, dropout=self.dropout)  # (B, H, T, D)
        merged = out.transpose(1, 2).reshape(B, T, E)  # (B, H, T, D) -> (B, T, H, D) -> (B, T, E)
        return self.out_proj(merged)
        ### END SOLUTION

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}"
