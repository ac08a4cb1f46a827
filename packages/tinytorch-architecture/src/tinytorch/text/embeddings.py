"""Module 11: embeddings, from token ids to vectors, plus where each token is.

An :class:`Embedding` is a learnable table ``weight (vocab_size, embed_dim)``;
looking up ids is indexing its rows. Its gradient is a *scatter-add*: row ``v``
of ``d weight`` is the sum of the output gradients of every position holding
token ``v`` (a token used twice learns from both uses).

Attention has no notion of order, so position is added to the token vectors:
either a learned table (:class:`PositionalEncoding`) or the fixed sinusoids of
"Attention Is All You Need" (:func:`sinusoidal_positional_encoding`).
:class:`EmbeddingLayer` combines token and position embeddings in one fused
operation, the input stage of a GPT.
"""

from __future__ import annotations

import math

import numpy as np
from tinytorch.core.autograd import Function
from tinytorch.core.layers import Module, Parameter
from tinytorch.core.tensor import Tensor

__all__ = [
    "Embedding",
    "PositionalEncoding",
    "EmbeddingLayer",
    "sinusoidal_positional_encoding",
    "EmbeddingFunction",
    "scatter_add_rows",
]


def _indices(tokens, num_embeddings: int, op: str) -> np.ndarray:
    """Token ids as an integer ndarray, every id in ``[0, num_embeddings)``, else ValueError."""
    ids = tokens.data if isinstance(tokens, Tensor) else np.asarray(tokens)
    if ids.dtype.kind not in "iu":
        if ids.size and ids.dtype.kind == "f" and np.all(ids == np.round(ids)):
            ids = ids.astype(np.int64)  # float tensors of whole numbers (e.g. from a float dataset)
        elif ids.size:
            raise ValueError(f"{op}: token ids must be integers, got dtype {ids.dtype}")
        else:
            ids = ids.astype(np.int64)
    if ids.size:
        # ufunc.reduce directly: ndarray.min/max add a Python wrapper, paid per decoded token.
        lo, hi = np.minimum.reduce(ids, axis=None), np.maximum.reduce(ids, axis=None)
        if lo < 0 or hi >= num_embeddings:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"{op}: token id {int(bad)} is out of range for num_embeddings={num_embeddings} "
                f"(ids of shape {ids.shape})"
            )
    return ids


def scatter_add_rows(ids: np.ndarray, rows: np.ndarray, num_rows: int) -> np.ndarray:
    """``out[v] = sum of rows[m] over every m with ids[m] == v`` (repeated ids accumulate).

    Args:
        ids: ``(M,)`` integer ids in ``[0, num_rows)``.
        rows: ``(M, D)`` values.

    Returns:
        ``(num_rows, D)``.

    Cost: a stable sort of the ids, then one ``np.add.reduceat`` over runs of equal
    ids: O(M log M + M D), vectorized (several times faster than ``np.add.at``).
    """
    ### BEGIN SOLUTION
    out = np.zeros((num_rows, rows.shape[-1]), dtype=rows.dtype)
    if ids.size == 0:
        return out
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    # start of every run of equal ids in the sorted order
    starts = np.flatnonzero(np.concatenate(([True], sorted_ids[1:] != sorted_ids[:-1])))
    out[sorted_ids[starts]] = np.add.reduceat(rows[order], starts, axis=0)
    return out
    ### END SOLUTION


class EmbeddingFunction(Function):
    """Row lookup ``out = weight[ids]`` with a scatter-add backward.

    Inputs: ``weight (V, D)`` Tensor, ``ids`` integer ndarray of any shape ``S``.
    Output: ``S + (D,)``.
    """

    @staticmethod
    def forward(ctx, weight, ids):
        ### BEGIN SOLUTION
        ctx.ids = ids
        ctx.num_rows = weight.shape[0]
        return weight[ids]
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        D = grad.shape[-1]
        return scatter_add_rows(ctx.ids.reshape(-1), grad.reshape(-1, D), ctx.num_rows), None
        ### END SOLUTION


class TokenPositionFunction(Function):
    """Fused ``out[b, t] = tok_weight[ids[b, t]] + pos_weight[offset + t]``.

    Backward: scatter-add into the token table; the position rows get the
    gradient summed over the batch.
    """

    @staticmethod
    def forward(ctx, tok_weight, pos_weight, ids, offset=0):
        ### BEGIN SOLUTION
        T = ids.shape[-1]
        ctx.ids, ctx.offset = ids, offset
        ctx.shapes = (tok_weight.shape[0], pos_weight.shape[0])
        out = tok_weight[ids]  # (B, T, D): a fresh array, safe to add into
        out += pos_weight[offset : offset + T]
        return out
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        V, P = ctx.shapes
        D = grad.shape[-1]
        T = grad.shape[-2]
        d_tok = d_pos = None
        if ctx.needs_input_grad[0]:
            d_tok = scatter_add_rows(ctx.ids.reshape(-1), grad.reshape(-1, D), V)
        if ctx.needs_input_grad[1]:
            d_pos = np.zeros((P, D), dtype=grad.dtype)
            d_pos[ctx.offset : ctx.offset + T] = grad.reshape(-1, T, D).sum(axis=0)
        return d_tok, d_pos, None
        ### END SOLUTION


class Embedding(Module):
    """Lookup table of ``num_embeddings`` vectors of size ``embedding_dim``.

    ``Embedding(V, D)(ids)[..., :] = weight[ids[...]]``.

    Args:
        vocab_size: number of rows ``V`` (valid ids are ``0..V-1``).
        embed_dim: vector size ``D``.

    Attributes:
        weight: ``(V, D)`` Parameter, initialized ``N(0, 1)`` as PyTorch.

    Shape: ids ``(*)`` (integers) -> ``(*, D)``. Out-of-range ids raise ValueError.
    """

    def __init__(self, vocab_size: int, embed_dim: int):
        super().__init__()
        for name, v in (("vocab_size", vocab_size), ("embed_dim", embed_dim)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Embedding: argument '{name}' must be a positive int, got {v!r}")
        self.vocab_size, self.embed_dim = int(vocab_size), int(embed_dim)
        self.weight = Parameter(
            np.random.standard_normal((self.vocab_size, self.embed_dim)).astype(np.float32)
        )

    def forward(self, tokens) -> Tensor:
        ids = _indices(tokens, self.vocab_size, "Embedding")
        ### BEGIN SOLUTION
        return EmbeddingFunction.apply(self.weight, ids)
        ### END SOLUTION

    def extra_repr(self) -> str:
        return f"{self.vocab_size}, {self.embed_dim}"


def sinusoidal_positional_encoding(max_seq_len: int, embed_dim: int) -> Tensor:
    """Fixed position codes of Vaswani et al. (2017).

    ``PE[p, 2i] = sin(p / 10000^(2i/D))``, ``PE[p, 2i+1] = cos(p / 10000^(2i/D))``.
    Each pair of dimensions is a rotation at its own frequency, so ``PE[p + k]``
    is a linear function of ``PE[p]``: relative offsets are easy to read out.

    Returns:
        Tensor ``(max_seq_len, embed_dim)`` (float32, no gradient).
    """
    if max_seq_len < 1 or embed_dim < 1:
        raise ValueError(
            f"sinusoidal_positional_encoding: sizes must be positive, got {max_seq_len}, {embed_dim}"
        )
    ### BEGIN SOLUTION
    pos = np.arange(max_seq_len, dtype=np.float64)[:, None]  # (P, 1)
    freq = np.exp(
        -math.log(10000.0) * np.arange(0, embed_dim, 2, dtype=np.float64) / embed_dim
    )  # (ceil(D/2),)
    angles = pos * freq  # (P, ceil(D/2))
    pe = np.zeros((max_seq_len, embed_dim), dtype=np.float64)
    pe[:, 0::2] = np.sin(angles)
    pe[:, 1::2] = np.cos(angles[:, : embed_dim // 2])
    return Tensor(pe.astype(np.float32))
    ### END SOLUTION


class PositionalEncoding(Module):
    """Learned position embeddings added to a sequence of vectors.

    ``out[b, t] = x[b, t] + weight[offset + t]``.

    Args:
        max_seq_len: number of positions ``P``.
        embed_dim: vector size ``D``.

    Attributes:
        weight: ``(P, D)`` Parameter, initialized ``N(0, 0.02^2)`` (GPT-2).

    Shape: ``(B, T, D) -> (B, T, D)`` with ``offset + T <= P``.
    """

    def __init__(self, max_seq_len: int, embed_dim: int):
        super().__init__()
        if max_seq_len < 1 or embed_dim < 1:
            raise ValueError(f"PositionalEncoding: sizes must be positive, got {max_seq_len}, {embed_dim}")
        self.max_seq_len, self.embed_dim = int(max_seq_len), int(embed_dim)
        self.weight = Parameter(
            (0.02 * np.random.standard_normal((self.max_seq_len, self.embed_dim))).astype(np.float32)
        )

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        if x.ndim < 2 or x.shape[-1] != self.embed_dim:
            raise ValueError(
                f"PositionalEncoding: input of shape {x.shape} does not end in embed_dim={self.embed_dim}"
            )
        T = x.shape[-2]
        if offset < 0 or offset + T > self.max_seq_len:
            raise ValueError(
                f"PositionalEncoding: positions {offset}..{offset + T - 1} "
                f"exceed max_seq_len={self.max_seq_len}"
            )
        ### BEGIN SOLUTION
        return x + self.weight[offset : offset + T]
        ### END SOLUTION

    def extra_repr(self) -> str:
        return f"{self.max_seq_len}, {self.embed_dim}"


class EmbeddingLayer(Module):
    """Token embedding plus position embedding: the input stage of a transformer.

    ``out[b, t] = token_embedding.weight[ids[b, t]] + position(offset + t)``, in
    one fused operation (one gather, one add; backward one scatter-add).

    Args:
        vocab_size, embed_dim, max_seq_len: table sizes.
        positional: ``"learned"`` (a :class:`PositionalEncoding`, default) or
            ``"sinusoidal"`` (fixed codes, nothing learned).

    Shape: ids ``(B, T)`` -> ``(B, T, D)``; ``offset`` shifts positions (KV-cached decoding).
    """

    def __init__(self, vocab_size: int, embed_dim: int, max_seq_len: int, positional: str = "learned"):
        super().__init__()
        if positional not in ("learned", "sinusoidal"):
            raise ValueError(
                f"EmbeddingLayer: argument 'positional' must be 'learned' or 'sinusoidal', got {positional!r}"
            )
        self.token_embedding = Embedding(vocab_size, embed_dim)
        self.max_seq_len = int(max_seq_len)
        self.positional = positional
        if positional == "learned":
            self.position_embedding = PositionalEncoding(max_seq_len, embed_dim)
        else:
            self.position_table = sinusoidal_positional_encoding(max_seq_len, embed_dim)

    def forward(self, tokens, offset: int = 0) -> Tensor:
        ids = _indices(tokens, self.token_embedding.vocab_size, "EmbeddingLayer")
        if ids.ndim < 1:
            raise ValueError(f"EmbeddingLayer: token ids need a sequence axis, got shape {ids.shape}")
        T = ids.shape[-1]
        if offset < 0 or offset + T > self.max_seq_len:
            raise ValueError(
                f"EmbeddingLayer: positions {offset}..{offset + T - 1} exceed max_seq_len={self.max_seq_len} "
                f"(tokens of shape {ids.shape})"
            )
        ### BEGIN SOLUTION
        pos = self.position_embedding.weight if self.positional == "learned" else self.position_table
        return TokenPositionFunction.apply(self.token_embedding.weight, pos, ids, offset=offset)
        ### END SOLUTION
