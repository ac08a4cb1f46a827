"""Module 13: the transformer, LayerNorm, MLP, pre-norm blocks and a GPT.

A GPT is a stack of identical blocks over token + position embeddings::

    x = embed(tokens) + pos
    for each block:   x = x + attn(ln1(x), causal mask)     # tokens exchange information
                      x = x + mlp(ln2(x))                   # each token is transformed alone
    logits = head(ln_f(x))

The *pre-norm* residual form (normalize the input of each branch, add the
branch to an untouched residual stream) keeps gradients well scaled in deep
stacks. The *causal mask* lets position ``t`` attend only to positions
``<= t``, so the logits at ``t`` predict token ``t + 1`` from the past only and
one forward pass trains on every position of a sequence at once.

Generation feeds the model its own predictions. With a KV cache (optimization
tier, ``use_cache=True``) each step pushes only the newest token through the
network: the keys and values of earlier tokens are read from the cache
instead of being recomputed, turning O(T^2) work per step into O(T).
"""

from __future__ import annotations

import numpy as np
from tinytorch.core.activations import GELUFunction, gelu
from tinytorch.core.attention import MultiHeadAttention
from tinytorch.core.autograd import Function, is_grad_enabled, no_grad
from tinytorch.core.layers import Dropout, Linear, Module, Parameter
from tinytorch.core.tensor import Tensor
from tinytorch.text.embeddings import EmbeddingLayer

__all__ = ["LayerNorm", "MLP", "TransformerBlock", "GPT", "create_causal_mask", "LayerNormFunction"]


class LayerNormFunction(Function):
    """Normalize over the last ``k`` axes, then scale and shift; fused backward.

    ``xhat = (x - mean) / sqrt(var + eps)`` (biased variance), ``y = weight * xhat + bias``.
    Backward, with ``n`` elements per normalized group and ``dxhat = dy * weight``::

        dx = (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / sqrt(var + eps)
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps=1e-5):
        ### BEGIN SOLUTION
        axes = tuple(range(x.ndim - weight.ndim, x.ndim))
        inv_n = 1.0 / weight.size
        # np.add.reduce(...) * (1/n) rather than mean(): the same numbers without mean's
        # Python wrapper; decoding one token at a time calls this on tiny arrays, where
        # per-call overhead, not arithmetic, sets the cost.
        xc = x - np.add.reduce(x, axes, keepdims=True) * inv_n
        var = np.add.reduce(xc * xc, axes, keepdims=True) * inv_n
        inv = (var + eps) ** -0.5  # 1 / sqrt(var + eps) in one ufunc call
        xhat = xc
        xhat *= inv  # reuse the centered buffer
        ctx.save_for_backward(xhat, inv, weight)
        ctx.axes, ctx.inv_n = axes, inv_n
        out = xhat * weight
        out += bias
        return out
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        xhat, inv, weight = ctx.saved_tensors
        axes = ctx.axes
        lead = tuple(range(grad.ndim - weight.ndim))  # the axes that were broadcast over
        dweight = (grad * xhat).sum(axis=lead) if ctx.needs_input_grad[1] else None
        dbias = grad.sum(axis=lead) if ctx.needs_input_grad[2] else None
        dx = None
        if ctx.needs_input_grad[0]:
            dxhat = grad * weight
            dx = dxhat - dxhat.sum(axis=axes, keepdims=True) * ctx.inv_n
            dx -= xhat * ((dxhat * xhat).sum(axis=axes, keepdims=True) * ctx.inv_n)
            dx *= inv
        return dx, dweight, dbias
        ### END SOLUTION


class LayerNorm(Module):
    """Layer normalization over the trailing ``normalized_shape`` dimensions.

    ``y = weight * (x - mean) / sqrt(var + eps) + bias`` with mean and (biased)
    variance over the normalized dimensions of each sample.

    Args:
        normalized_shape: int or tuple, the trailing shape to normalize.
        eps: added to the variance.

    Attributes:
        weight: ones, bias: zeros, both of ``normalized_shape``.

    Shape: ``(*, *normalized_shape) -> same``.
    """

    def __init__(self, normalized_shape, eps: float = 1e-5):
        super().__init__()
        shape = (
            (normalized_shape,)
            if isinstance(normalized_shape, (int, np.integer))
            else tuple(normalized_shape)
        )
        if not shape or any(int(s) < 1 for s in shape):
            raise ValueError(
                f"LayerNorm: argument 'normalized_shape' must be positive, got {normalized_shape!r}"
            )
        if eps <= 0:
            raise ValueError(f"LayerNorm: argument 'eps' must be positive, got {eps}")
        self.normalized_shape = tuple(int(s) for s in shape)
        self.eps = float(eps)
        self.weight = Parameter(np.ones(self.normalized_shape, dtype=np.float32))
        self.bias = Parameter(np.zeros(self.normalized_shape, dtype=np.float32))

    def forward(self, x: Tensor) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        shape, k = x.data.shape, len(self.normalized_shape)
        if shape[len(shape) - k :] != self.normalized_shape or len(shape) < k:
            raise ValueError(
                f"LayerNorm: input of shape {shape} does not end in normalized_shape {self.normalized_shape}"
            )
        ### BEGIN SOLUTION
        return LayerNormFunction.apply(x, self.weight, self.bias, eps=self.eps)
        ### END SOLUTION

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"


class MLP(Module):
    """Position-wise feed-forward network ``fc2(GELU(fc1(x)))``.

    Args:
        embed_dim: input and output width ``E``.
        hidden_dim: inner width (default ``4 E``).
        dropout: dropout on the output in training.

    Shape: ``(*, E) -> (*, E)``. GELU is the tanh approximation (as GPT-2).
    """

    def __init__(self, embed_dim: int, hidden_dim: int | None = None, dropout: float = 0.0):
        super().__init__()
        hidden_dim = 4 * embed_dim if hidden_dim is None else hidden_dim
        self.fc1 = Linear(embed_dim, hidden_dim)
        self.fc2 = Linear(hidden_dim, embed_dim)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        ### BEGIN SOLUTION
        fc1, fc2 = self.fc1, self.fc2
        h = x.data if isinstance(x, Tensor) else None
        if (
            h is not None
            and not is_grad_enabled()
            and type(fc1) is Linear
            and type(fc2) is Linear
            and "forward" not in fc1.__dict__  # an instrumented layer (profiler) is called
            and "forward" not in fc2.__dict__
            and not (self.training and self.dropout.p > 0)
            and h.dtype.kind == "f"
            and h.shape
            and h.shape[-1] == fc1.in_features
        ):
            # Inference fast path on plain Linear layers, raw arrays: the same arithmetic as
            # the three ops below without their per-op overhead, which dominates when
            # decoding one token.
            h = h @ fc1.weight.data  # (*, hidden)
            if fc1.bias is not None:
                h += fc1.bias.data
            h = GELUFunction.forward(GELUFunction(), h)
            h = h @ fc2.weight.data  # (*, E)
            if fc2.bias is not None:
                h += fc2.bias.data
            return Tensor(h, dtype=h.dtype)
        return self.dropout(fc2(gelu(fc1(x))))
        ### END SOLUTION


class TransformerBlock(Module):
    """Pre-norm transformer block.

    ``x = x + attn(ln1(x), mask)``; ``x = x + mlp(ln2(x))``.

    Args:
        embed_dim: width ``E``; num_heads: attention heads.
        mlp_ratio: MLP hidden width is ``mlp_ratio * E``.
        dropout: on attention weights and on both residual branches.

    Shape: ``(B, T, E) -> (B, T, E)``.
    """

    def __init__(self, embed_dim: int, num_heads: int, mlp_ratio: int = 4, dropout: float = 0.0):
        super().__init__()
        self.ln1 = LayerNorm(embed_dim)
        self.attn = MultiHeadAttention(embed_dim, num_heads, dropout=dropout)
        self.ln2 = LayerNorm(embed_dim)
        self.mlp = MLP(embed_dim, int(mlp_ratio * embed_dim), dropout=dropout)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, mask=None, cache=None, layer_idx: int = 0) -> Tensor:
        ### BEGIN SOLUTION
        x = x + self.dropout(self.attn(self.ln1(x), mask=mask, cache=cache, layer_idx=layer_idx))
        return x + self.mlp(self.ln2(x))
        ### END SOLUTION


def create_causal_mask(seq_len: int, offset: int = 0) -> Tensor:
    """Causal attention mask: 1 where query ``t`` may attend to key ``j`` (``j <= offset + t``).

    Args:
        seq_len: number of queries ``T``.
        offset: number of earlier positions (already in a KV cache) before the queries.

    Returns:
        float32 Tensor ``(T, offset + T)``; for ``offset=0`` ones on and below the diagonal.
    """
    if seq_len < 1 or offset < 0:
        raise ValueError(f"create_causal_mask: need seq_len >= 1 and offset >= 0, got {seq_len}, {offset}")
    ### BEGIN SOLUTION
    return Tensor(np.tri(seq_len, offset + seq_len, k=offset, dtype=np.float32))
    ### END SOLUTION


def _sample(
    logits: np.ndarray, temperature: float, top_k: int | None, rng: np.random.Generator
) -> np.ndarray:
    """Pick one token per row of ``logits (B, V)``.

    ``temperature == 0``: argmax (greedy). Otherwise sample from
    ``softmax(logits / temperature)`` restricted to the ``top_k`` largest logits.
    Vectorized over the batch (inverse-CDF with one uniform draw per row).
    """
    ### BEGIN SOLUTION
    if temperature == 0:
        return logits.argmax(axis=-1)
    z = logits.astype(np.float64) / temperature
    if top_k is not None and top_k < z.shape[-1]:
        kth = np.partition(z, -top_k, axis=-1)[:, -top_k][:, None]  # k-th largest per row
        z = np.where(z < kth, -np.inf, z)
    z -= z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    cdf = np.cumsum(p, axis=-1)
    u = rng.random((z.shape[0], 1)) * cdf[:, -1:]
    return np.minimum((cdf <= u).sum(axis=-1), z.shape[-1] - 1)
    ### END SOLUTION


class GPT(Module):
    """Decoder-only transformer language model.

    Args:
        vocab_size: number of token ids ``V``.
        embed_dim: width ``E``.
        num_layers: transformer blocks.
        num_heads: attention heads per block.
        max_seq_len: longest context (learned positions ``0..max_seq_len-1``).
        dropout: dropout probability in training.

    Attributes:
        embedding (EmbeddingLayer: ``token_embedding``, ``position_embedding``),
        blocks (list of TransformerBlock), ln_f (LayerNorm), head (Linear(E, V)),
        kv_cache_enabled (bool, default False; ``generate`` uses a KV cache when True).

    Shape: ``forward``: tokens ``(B, T)`` -> logits ``(B, T, V)``.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        num_layers: int,
        num_heads: int,
        max_seq_len: int,
        dropout: float = 0.0,
    ):
        super().__init__()
        if num_layers < 1 or max_seq_len < 1:
            raise ValueError(
                f"GPT: num_layers and max_seq_len must be positive, got {num_layers}, {max_seq_len}"
            )
        self.vocab_size, self.embed_dim = int(vocab_size), int(embed_dim)
        self.num_layers, self.num_heads = int(num_layers), int(num_heads)
        self.max_seq_len = int(max_seq_len)
        self.embedding = EmbeddingLayer(vocab_size, embed_dim, max_seq_len)
        # GPT-2 initialization of the token table: N(0, 0.02^2) keeps early logits small.
        self.embedding.token_embedding.weight.data[...] = 0.02 * np.random.standard_normal(
            (self.vocab_size, self.embed_dim)
        )
        self.blocks = [TransformerBlock(embed_dim, num_heads, 4, dropout) for _ in range(num_layers)]
        self.ln_f = LayerNorm(embed_dim)
        self.head = Linear(embed_dim, vocab_size)
        self.kv_cache_enabled = False

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    def forward(self, tokens, cache=None) -> Tensor:
        """Logits ``(B, T, V)`` for tokens ``(B, T)``.

        With ``cache`` (KV-cache protocol), ``tokens`` are the *new* tokens at
        positions ``cache.seq_len ..``; their keys/values are added to the cache
        and ``cache.advance(T)`` commits them.
        """
        ids = tokens.data if isinstance(tokens, Tensor) else np.asarray(tokens)
        if ids.ndim != 2 or ids.shape[1] < 1:
            raise ValueError(f"GPT: tokens must have shape (B, T) with T >= 1, got shape {ids.shape}")
        offset = 0 if cache is None else int(cache.seq_len)
        T = ids.shape[1]
        if offset + T > self.max_seq_len:
            raise ValueError(
                f"GPT: {offset} cached + {T} new positions exceed max_seq_len={self.max_seq_len} "
                f"(tokens of shape {ids.shape})"
            )
        ### BEGIN SOLUTION
        x = self.embedding(ids, offset=offset)  # (B, T, E)
        # Query t (absolute position offset + t) sees keys 0..offset + t; one new token sees everything.
        mask = None if T == 1 else np.tri(T, offset + T, k=offset, dtype=bool)
        for i, block in enumerate(self.blocks):
            x = block(x, mask=mask, cache=cache, layer_idx=i)
        if cache is not None:
            cache.advance(T)
        return self.head(self.ln_f(x))  # (B, T, V)
        ### END SOLUTION

    def _kv_cache(self, batch_size: int):
        """A fresh KV cache from the optimization tier (imported only when asked for)."""
        try:
            from tinytorch.generation.kv_cache import KVCache
        except ImportError as exc:
            raise ImportError(
                "GPT.generate(use_cache=True) needs the KV cache of the optimization tier: "
                "pip install tinytorch-optimization"
            ) from exc
        return KVCache(batch_size, self.max_seq_len, self.num_layers, self.num_heads, self.head_dim)

    def generate(
        self,
        prompt_tokens,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
        use_cache: bool | None = None,
    ) -> np.ndarray:
        """Extend ``prompt_tokens`` by ``max_new_tokens`` sampled tokens.

        Args:
            prompt_tokens: ``(B, T)`` or ``(T,)`` token ids (array, list or Tensor).
            max_new_tokens: tokens to append.
            temperature: 0 = greedy (argmax); larger = more random.
            top_k: sample only among the ``top_k`` most likely tokens.
            seed: seed of the sampling generator (reproducible sampling).
            use_cache: True = KV cache (needs tinytorch-optimization), False = recompute
                the whole context each step, None = ``self.kv_cache_enabled``.

        Returns:
            int64 array ``(B, T + max_new_tokens)`` (``(T + max_new_tokens,)`` for a 1-D prompt):
            the prompt followed by the generated tokens. The model only sees the
            last ``max_seq_len`` tokens (longer contexts are cropped to that window).

        Runs in eval mode (dropout off) without building an autograd graph.
        With the cache each step processes one token; once the window is full,
        steps fall back to recomputing the cropped window, so cached and
        uncached generation produce the same tokens.
        """
        ids = prompt_tokens.data if isinstance(prompt_tokens, Tensor) else np.asarray(prompt_tokens)
        squeeze = ids.ndim == 1
        ids = ids[None] if squeeze else ids
        if ids.ndim != 2 or ids.shape[1] < 1:
            raise ValueError(
                f"GPT.generate: prompt_tokens must have shape (B, T) or (T,), got {np.shape(prompt_tokens)}"
            )
        if ids.dtype.kind not in "iu" or ids.min() < 0 or ids.max() >= self.vocab_size:
            raise ValueError(f"GPT.generate: prompt_tokens must be integer ids in [0, {self.vocab_size})")
        if (
            isinstance(max_new_tokens, bool)
            or not isinstance(max_new_tokens, (int, np.integer))
            or max_new_tokens < 0
        ):
            raise ValueError(
                f"GPT.generate: argument 'max_new_tokens' must be an int >= 0, got {max_new_tokens!r}"
            )
        if temperature < 0:
            raise ValueError(f"GPT.generate: argument 'temperature' must be >= 0, got {temperature}")
        if top_k is not None and top_k < 1:
            raise ValueError(f"GPT.generate: argument 'top_k' must be >= 1, got {top_k}")
        if use_cache is None:
            use_cache = bool(getattr(self, "kv_cache_enabled", False))
        ### BEGIN SOLUTION
        B, T = ids.shape
        P = self.max_seq_len
        out = np.empty((B, T + max_new_tokens), dtype=np.int64)
        out[:, :T] = ids
        rng = np.random.default_rng(seed)
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                cache = self._kv_cache(B) if (use_cache and max_new_tokens > 0) else None
                for step in range(max_new_tokens):
                    n = T + step  # tokens so far
                    if cache is not None and n <= P:
                        # Positions 0..n-1 fit the window: feed only what the cache lacks
                        # (the whole prompt at the first step, then the newest token).
                        logits = self.forward(out[:, cache.seq_len : n], cache=cache)
                    else:
                        # Recompute the last window (no cache, or the window has slid).
                        logits = self.forward(out[:, max(0, n - P) : n])
                    out[:, n] = _sample(logits.data[:, -1], temperature, top_k, rng)
        finally:
            self.train(was_training)
        return out[0] if squeeze else out
        ### END SOLUTION
