"""The NumPy floor: each benchmark model written by hand with a manual backward.

This is the bar a NumPy framework is held to: the same arithmetic as the
tinytorch model, with no graph, no per-op Python objects and no copies
beyond the ones the maths needs. Everything is float32. Convolutions use
im2col through ``sliding_window_view`` (a view, no copy) and one matmul;
softmax and cross-entropy are fused; the backward pass reuses forward
intermediates instead of recomputing them.

Parameters live in a plain ``dict[str, np.ndarray]`` so that identical weights
can be copied into tinytorch and PyTorch, and the tests can compare gradients
name by name. Layouts follow tinytorch and PyTorch: ``Linear`` weight is
``(out, in)`` with ``y = x @ W.T + b``; ``Conv2d`` weight is ``(out, in, kh, kw)``.

The floor knows nothing of tinytorch: it imports NumPy only.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

F32 = np.float32

# ---------------------------------------------------------------------------
# Fused building blocks (forward returns a cache the backward consumes)
# ---------------------------------------------------------------------------


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``x @ w.T + b`` for ``x (*, in)``, ``w (out, in)``: one 2-D GEMM with a transposed operand.

    A 3-D ``(B, T, in) @ w.T`` would make NumPy copy ``w.T`` into contiguous
    memory first; seen as a ``(B*T, in)`` matrix the product goes to BLAS as is.
    """
    out = x.reshape(-1, x.shape[-1]) @ w.T  # (rows, out)
    out += b
    return out.reshape(*x.shape[:-1], w.shape[0])


def softmax_cross_entropy(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of ``logits`` (N, C) against integer ``targets`` (N,), and dL/dlogits.

    Fused and stable: log-softmax is ``z - max - log(sum(exp(z - max)))``,
    and the gradient is ``(softmax - onehot) / N`` computed from the same
    exponentials. Cost: O(N*C), three passes over the logits.
    """
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    loss = float(np.log(total[:, 0]).mean() - shifted[rows, targets].mean())
    grad = exp / total  # softmax, (N, C)
    grad[rows, targets] -= 1.0
    grad *= F32(1.0 / n)
    return loss, grad


def im2col(x: np.ndarray, kh: int, kw: int, padding: int) -> np.ndarray:
    """Patches of a channels-last ``x`` (B, H, W, C) for a stride-1 convolution: (B*Ho*Wo, kh*kw*C).

    ``sliding_window_view`` gives every patch as a view; the single copy is
    the reshape into the matrix the matmul needs. Channels-last makes that
    copy move contiguous runs of C floats (about 6x faster than gathering
    from (B, C, H, W), where every run is one float long).
    """
    if padding:
        x = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    b, hp, wp, c = x.shape
    ho, wo = hp - kh + 1, wp - kw + 1
    win = sliding_window_view(x, (kh, kw), axis=(1, 2))  # (B, Ho, Wo, C, kh, kw), a view
    return win.transpose(0, 1, 2, 4, 5, 3).reshape(b * ho * wo, kh * kw * c)  # one copy


def col2im(dcols: np.ndarray, x_shape: tuple, kh: int, kw: int, padding: int) -> np.ndarray:
    """Adjoint of :func:`im2col`: scatter-add patch gradients back to (B, H, W, C).

    Loops over the kh*kw kernel offsets only (25 at most here); each
    iteration adds one whole (B, Ho, Wo, C) slab.
    """
    b, h, w, c = x_shape
    hp, wp = h + 2 * padding, w + 2 * padding
    ho, wo = hp - kh + 1, wp - kw + 1
    d = dcols.reshape(b, ho, wo, kh, kw, c)
    dx = np.zeros((b, hp, wp, c), dtype=dcols.dtype)
    for i in range(kh):
        for j in range(kw):
            dx[:, i : i + ho, j : j + wo] += d[:, :, :, i, j]
    if padding:
        dx = dx[:, padding : padding + h, padding : padding + w]
    return dx


def conv_weight_matrix(w: np.ndarray) -> np.ndarray:
    """(O, C, kh, kw) weight -> (kh*kw*C, O) matrix matching :func:`im2col` columns."""
    return w.transpose(2, 3, 1, 0).reshape(-1, w.shape[0])


def conv_forward(x, w, b, padding):
    """Stride-1 convolution, channels-last: x (B, H, W, C), w (O, C, kh, kw), b (O,) -> (B, Ho, Wo, O)."""
    o, c, kh, kw = w.shape
    cols = im2col(x, kh, kw, padding)  # (B*Ho*Wo, kh*kw*C)
    out = cols @ conv_weight_matrix(w)  # (B*Ho*Wo, O)
    out += b
    bsz, h, wd, _ = x.shape
    return out.reshape(bsz, h + 2 * padding - kh + 1, wd + 2 * padding - kw + 1, o), cols


def conv_backward(dout, cols, x_shape, w, padding, need_dx):
    """Gradients of :func:`conv_forward`: (dx (B, H, W, C) or None, dw (O, C, kh, kw), db)."""
    o, c, kh, kw = w.shape
    d2 = dout.reshape(-1, o)  # (B*Ho*Wo, O), contiguous
    dw = (cols.T @ d2).reshape(kh, kw, c, o).transpose(3, 2, 0, 1)  # (O, C, kh, kw)
    db = d2.sum(axis=0)
    dx = col2im(d2 @ conv_weight_matrix(w).T, x_shape, kh, kw, padding) if need_dx else None
    return dx, dw, db


def maxpool2_forward(x):
    """2x2 max pooling, stride 2, channels-last (B, H, W, C) with even H, W: returns (out, mask)."""
    b, h, w, c = x.shape
    xr = x.reshape(b, h // 2, 2, w // 2, 2, c)
    out = np.maximum(  # four strided slabs: far faster than .max(axis=(2, 4))
        np.maximum(xr[:, :, 0, :, 0], xr[:, :, 0, :, 1]), np.maximum(xr[:, :, 1, :, 0], xr[:, :, 1, :, 1])
    )  # (B, H/2, W/2, C)
    mask = xr == out[:, :, None, :, None]
    return out, mask


def maxpool2_backward(dout, mask):
    """Route each pooled gradient to the maximum of its window (B, H, W, C)."""
    b, h2, _, w2, _, c = mask.shape
    return (mask * dout[:, :, None, :, None]).reshape(b, h2 * 2, w2 * 2, c)


def layernorm_forward(x, g, b, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    xc = x - mu
    var = (xc * xc).mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(var + F32(eps))
    xhat = xc * rstd
    return xhat * g + b, (xhat, rstd)


def layernorm_backward(dy, cache, g):
    """dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), per row."""
    xhat, rstd = cache
    lead = tuple(range(dy.ndim - 1))
    dg = (dy * xhat).sum(axis=lead)
    db = dy.sum(axis=lead)
    dxhat = dy * g
    dx = rstd * (
        dxhat - dxhat.mean(axis=-1, keepdims=True) - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True)
    )
    return dx, dg, db


def causal_bias(t_new: int, t_total: int, offset: int, dtype) -> np.ndarray:
    """Additive attention mask (t_new, t_total): query r (absolute position offset + r) sees keys <= it."""
    keep = np.arange(t_total)[None, :] <= (offset + np.arange(t_new))[:, None]
    return np.where(keep, 0.0, -np.inf).astype(dtype)


_GELU_C = math.sqrt(2.0 / math.pi)  # Python floats are "weak": arithmetic stays in the array's dtype
_GELU_A = 0.044715


def gelu_forward(x):
    """GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3))); returns (y, tanh term).

    Written with in-place updates of two buffers: every fresh temporary of a
    large array costs an allocation and its page faults, which here cost more
    than the arithmetic (about 3x for a (16, 64, 512) input).
    """
    t = x * x
    t *= _GELU_A
    t += 1.0
    t *= x
    t *= _GELU_C
    np.tanh(t, out=t)  # tanh(c (x + a x^3))
    y = t + 1.0
    y *= x
    y *= 0.5
    return y, t


def gelu_backward(dy, x, t):
    """dGELU/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 a x^2), with t the forward's tanh term."""
    u = x * x
    u *= 3 * _GELU_A
    u += 1.0
    u *= _GELU_C
    u *= x  # c x (1 + 3 a x^2)
    s = t * t
    np.subtract(1.0, s, out=s)
    s *= u
    s += t
    s += 1.0
    s *= 0.5
    s *= dy
    return s


# ---------------------------------------------------------------------------
# Optimizers on parameter dicts
# ---------------------------------------------------------------------------


def sgd_step(params: dict, grads: dict, lr: float) -> None:
    """Plain SGD, in place: p -= lr * g."""
    lr = F32(lr)
    for name, g in grads.items():
        params[name] -= lr * g


class Adam:
    """Adam (Kingma & Ba) on a parameter dict, in place, bias-corrected."""

    def __init__(self, params: dict, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.params, self.lr, self.b1, self.b2, self.eps = params, lr, betas[0], betas[1], eps
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, grads: dict) -> None:
        # Python-float constants are "weak" under NumPy 2 promotion: arithmetic stays in the params' dtype.
        self.t += 1
        b1, b2 = self.b1, self.b2
        step_size = self.lr / (1 - b1**self.t)
        root_c2 = math.sqrt(1 - b2**self.t)
        for name, g in grads.items():
            m, v = self.m[name], self.v[name]
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            # p -= lr * m_hat / (sqrt(v_hat) + eps), with the bias corrections folded into two scalars
            self.params[name] -= step_size * m / (np.sqrt(v) / root_c2 + self.eps)


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


def dense_head(p: dict, n: int, x: np.ndarray, y: np.ndarray, grads: dict, need_dx: bool):
    """``fc0, ReLU, ..., fc{n-1}`` then softmax cross-entropy, forward and manual backward.

    Fills ``grads`` with every ``fc{i}.weight`` (out, in) and ``fc{i}.bias``; returns
    (loss, dL/dx (N, in) or None when ``need_dx`` is False).
    """
    acts, h = [], x
    for i in range(n):
        acts.append(h)
        h = linear(h, p[f"fc{i}.weight"], p[f"fc{i}.bias"])
        if i < n - 1:
            np.maximum(h, 0, out=h)  # ReLU in place on the fresh product
    loss, d = softmax_cross_entropy(h, y)
    for i in reversed(range(n)):
        a = acts[i]
        grads[f"fc{i}.weight"] = d.T @ a  # (out, in)
        grads[f"fc{i}.bias"] = d.sum(axis=0)
        if i or need_dx:
            d = d @ p[f"fc{i}.weight"]  # (N, in)
        if i:
            d *= a > 0  # ReLU mask from the stored activation
    return loss, (d if need_dx else None)


class MLPFloor:
    """784-256-128-10 ReLU MLP. Params ``fc{i}.weight`` (out, in), ``fc{i}.bias``."""

    def __init__(self, params: dict, lr: float = 0.01):
        self.p, self.lr = params, lr
        self.n = sum(1 for k in params if k.endswith(".weight"))

    def loss_and_grads(self, x, y):
        grads = {}
        loss, _ = dense_head(self.p, self.n, x, y, grads, need_dx=False)
        return loss, grads

    def step(self, x, y) -> float:
        loss, grads = self.loss_and_grads(x, y)
        sgd_step(self.p, grads, self.lr)
        return loss


class ConvNetFloor:
    """[Conv -> ReLU -> MaxPool2]* -> flatten -> [Linear -> ReLU]* -> Linear, cross-entropy, SGD.

    ``paddings`` has one entry per conv layer (params ``conv{i}.weight``
    (O, C, k, k) and ``conv{i}.bias``); linear params ``fc{i}.weight`` (out, in).
    Inputs and the flatten order are (B, C, H, W) as in tinytorch and PyTorch;
    inside, activations are channels-last so that im2col, the conv output and
    pooling all work on contiguous runs of channels.
    """

    def __init__(self, params: dict, paddings: list[int], lr: float = 0.01):
        self.p, self.pads, self.lr = params, paddings, lr
        self.n_fc = sum(1 for k in params if k.startswith("fc") and k.endswith(".weight"))

    def loss_and_grads(self, x, y):
        p, caches = self.p, []
        h = np.ascontiguousarray(x.transpose(0, 2, 3, 1))  # (B, H, W, C)
        for i, pad in enumerate(self.pads):
            z, cols = conv_forward(h, p[f"conv{i}.weight"], p[f"conv{i}.bias"], pad)
            np.maximum(z, 0, out=z)  # ReLU in place on the fresh conv output
            pooled, mask = maxpool2_forward(z)
            caches.append((h.shape, cols, z, mask))
            h = pooled
        conv_shape = h.shape
        h = h.transpose(0, 3, 1, 2).reshape(h.shape[0], -1)  # (B, C*H*W) in (C, H, W) order
        grads = {}
        loss, d = dense_head(p, self.n_fc, h, y, grads, need_dx=True)
        b, hh, ww, cc = conv_shape
        d = d.reshape(b, cc, hh, ww).transpose(0, 2, 3, 1)  # back to (B, H, W, C)
        for i in reversed(range(len(self.pads))):
            x_shape, cols, z, mask = caches[i]
            dz = maxpool2_backward(d, mask)
            dz *= z > 0
            d, grads[f"conv{i}.weight"], grads[f"conv{i}.bias"] = conv_backward(
                dz, cols, x_shape, p[f"conv{i}.weight"], self.pads[i], need_dx=i > 0
            )
        return loss, grads

    def step(self, x, y) -> float:
        loss, grads = self.loss_and_grads(x, y)
        sgd_step(self.p, grads, self.lr)
        return loss


class GPTFloor:
    """Decoder-only transformer with a manual backward, pre-LayerNorm blocks.

    Per block ``h{i}``: ``x = x + attn(ln1(x))``, ``x = x + mlp(ln2(x))`` with
    ``mlp = fc2(gelu(fc1(.)))`` (hidden 4d). Then final ``ln_f`` and the
    ``head`` Linear to vocabulary logits. Parameter names (tinytorch's layers)::

        tok_emb (V, d), pos_emb (Tmax, d)
        h{i}.ln1.{weight,bias}, h{i}.attn.in_proj.{weight (3d, d), bias}, h{i}.attn.out_proj.* (d, d),
        h{i}.ln2.{weight,bias}, h{i}.fc1.{weight,bias} (4d, d), h{i}.fc2.{weight,bias} (d, 4d)
        ln_f.{weight,bias}, head.{weight,bias} (V, d)

    Forward cost per token: about 24 d^2 L + 2 d V multiply-adds plus attention.
    """

    def __init__(self, params: dict, num_layers: int, num_heads: int, lr: float = 1e-3):
        self.p, self.L, self.H = params, num_layers, num_heads
        self.opt = Adam(params, lr=lr)

    def forward(self, tokens, train=False):
        """tokens (B, T) int -> logits (B, T, V) [and the caches when ``train``]."""
        p, H = self.p, self.H
        bsz, t = tokens.shape
        d = p["tok_emb"].shape[1]
        hd = d // H
        scale = F32(1.0 / math.sqrt(hd))
        causal = causal_bias(t, t, 0, p["tok_emb"].dtype)  # (T, T): 0 on and below the diagonal, -inf above
        x = p["tok_emb"][tokens] + p["pos_emb"][:t]  # (B, T, d)
        caches = []
        for i in range(self.L):
            pre = f"h{i}."
            a, ln1 = layernorm_forward(x, p[pre + "ln1.weight"], p[pre + "ln1.bias"])
            qkv = linear(a, p[pre + "attn.in_proj.weight"], p[pre + "attn.in_proj.bias"])  # (B, T, 3d)
            qkv = qkv.reshape(bsz, t, 3, H, hd).transpose(2, 0, 3, 1, 4)  # (3, B, H, T, hd)
            q, k, v = qkv[0], qkv[1], qkv[2]
            s = q @ k.transpose(0, 1, 3, 2)  # (B, H, T, T)
            s *= scale
            s += causal
            s -= s.max(axis=-1, keepdims=True)
            np.exp(s, out=s)
            s /= s.sum(axis=-1, keepdims=True)
            att = s  # (B, H, T, T) probabilities
            y = (att @ v).transpose(0, 2, 1, 3).reshape(bsz, t, d)  # (B, T, d)
            x += linear(y, p[pre + "attn.out_proj.weight"], p[pre + "attn.out_proj.bias"])  # in place
            m, ln2 = layernorm_forward(x, p[pre + "ln2.weight"], p[pre + "ln2.bias"])
            f = linear(m, p[pre + "fc1.weight"], p[pre + "fc1.bias"])  # (B, T, 4d)
            g, tanh_f = gelu_forward(f)
            x += linear(g, p[pre + "fc2.weight"], p[pre + "fc2.bias"])
            if train:
                caches.append((a, ln1, q, k, v, att, y, m, ln2, f, g, tanh_f))
        out, lnf = layernorm_forward(x, p["ln_f.weight"], p["ln_f.bias"])
        logits = linear(out, p["head.weight"], p["head.bias"])
        return (logits, (tokens, caches, out, lnf)) if train else logits

    def loss_and_grads(self, tokens, targets):
        p, H = self.p, self.H
        bsz, t = tokens.shape
        logits, (tokens, caches, out, lnf) = self.forward(tokens, train=True)
        vocab = logits.shape[-1]
        d = p["tok_emb"].shape[1]
        hd = d // H
        scale = F32(1.0 / math.sqrt(hd))
        loss, dlog = softmax_cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1))
        g = {}
        g["head.weight"] = dlog.T @ out.reshape(-1, d)  # (V, d)
        g["head.bias"] = dlog.sum(axis=0)
        dout = (dlog @ p["head.weight"]).reshape(bsz, t, d)
        dx, g["ln_f.weight"], g["ln_f.bias"] = layernorm_backward(dout, lnf, p["ln_f.weight"])
        for i in reversed(range(self.L)):
            pre = f"h{i}."
            a, ln1, q, k, v, att, y, m, ln2, f, gl, tanh_f = caches[i]
            # MLP branch: x = x + fc2(gelu(fc1(ln2(x))))
            dx2 = dx.reshape(-1, d)
            g[pre + "fc2.weight"] = dx2.T @ gl.reshape(-1, 4 * d)  # (d, 4d)
            g[pre + "fc2.bias"] = dx2.sum(axis=0)
            dgl = (dx2 @ p[pre + "fc2.weight"]).reshape(bsz, t, 4 * d)
            df = gelu_backward(dgl, f, tanh_f)
            df2 = df.reshape(-1, 4 * d)
            g[pre + "fc1.weight"] = df2.T @ m.reshape(-1, d)  # (4d, d)
            g[pre + "fc1.bias"] = df2.sum(axis=0)
            dm = (df2 @ p[pre + "fc1.weight"]).reshape(bsz, t, d)
            dln, g[pre + "ln2.weight"], g[pre + "ln2.bias"] = layernorm_backward(
                dm, ln2, p[pre + "ln2.weight"]
            )
            dx = dx + dln
            # Attention branch: x = x + out_proj(attention(ln1(x)))
            dx2 = dx.reshape(-1, d)
            g[pre + "attn.out_proj.weight"] = dx2.T @ y.reshape(-1, d)
            g[pre + "attn.out_proj.bias"] = dx2.sum(axis=0)
            dy = (
                (dx2 @ p[pre + "attn.out_proj.weight"]).reshape(bsz, t, H, hd).transpose(0, 2, 1, 3)
            )  # (B, H, T, hd)
            datt = dy @ v.transpose(0, 1, 3, 2)  # (B, H, T, T)
            dv = att.transpose(0, 1, 3, 2) @ dy
            # softmax backward: ds = P * (dP - sum(dP * P)); masked entries have P = 0
            datt -= (datt * att).sum(axis=-1, keepdims=True)
            datt *= att
            datt *= scale
            ds = datt
            dq = ds @ k
            dk = ds.transpose(0, 1, 3, 2) @ q
            dqkv = np.stack([dq, dk, dv]).transpose(1, 3, 0, 2, 4).reshape(-1, 3 * d)  # (B*T, 3d)
            g[pre + "attn.in_proj.weight"] = dqkv.T @ a.reshape(-1, d)  # (3d, d)
            g[pre + "attn.in_proj.bias"] = dqkv.sum(axis=0)
            da = (dqkv @ p[pre + "attn.in_proj.weight"]).reshape(bsz, t, d)
            dln, g[pre + "ln1.weight"], g[pre + "ln1.bias"] = layernorm_backward(
                da, ln1, p[pre + "ln1.weight"]
            )
            dx = dx + dln
        # Token table: scatter-add of rows, as one small GEMM onehot^T @ dx (np.add.at is ~20x slower).
        ids = tokens.reshape(-1)
        onehot = np.zeros((ids.size, p["tok_emb"].shape[0]), dtype=dx.dtype)  # (B*T, V)
        onehot[np.arange(ids.size), ids] = 1.0
        g["tok_emb"] = onehot.T @ dx.reshape(-1, d)
        # Positions: sum over the batch.
        dpos = np.zeros_like(p["pos_emb"])
        dpos[:t] = dx.sum(axis=0)
        g["pos_emb"] = dpos
        return loss, g

    def step(self, tokens, targets) -> float:
        loss, grads = self.loss_and_grads(tokens, targets)
        self.opt.step(grads)
        return loss

    # ----- generation -----------------------------------------------------

    def generate(self, prompt, max_new_tokens: int, use_cache: bool) -> np.ndarray:
        """Greedy decoding from ``prompt`` (B, T0): returns (B, T0 + max_new_tokens) tokens."""
        if not use_cache:
            tokens = prompt
            for _ in range(max_new_tokens):
                logits = self.forward(tokens)[:, -1]  # full forward over the prefix each step
                tokens = np.concatenate([tokens, logits.argmax(axis=-1)[:, None]], axis=1)
            return tokens
        return self._generate_cached(prompt, max_new_tokens)

    def _generate_cached(self, prompt, max_new_tokens):
        p, H = self.p, self.H
        bsz, t0 = prompt.shape
        d = p["tok_emb"].shape[1]
        hd = d // H
        total = t0 + max_new_tokens
        scale = F32(1.0 / math.sqrt(hd))
        kc = np.zeros((self.L, bsz, H, total, hd), F32)  # (L, B, H, Tmax, hd), preallocated once
        vc = np.zeros_like(kc)
        out = np.empty((bsz, total), dtype=prompt.dtype)
        out[:, :t0] = prompt
        pos, new = 0, prompt
        for _ in range(max_new_tokens):
            tn = new.shape[1]
            x = p["tok_emb"][new] + p["pos_emb"][pos : pos + tn]  # (B, tn, d)
            end = pos + tn
            for i in range(self.L):
                pre = f"h{i}."
                a, _ = layernorm_forward(x, p[pre + "ln1.weight"], p[pre + "ln1.bias"])
                qkv = linear(a, p[pre + "attn.in_proj.weight"], p[pre + "attn.in_proj.bias"])
                qkv = qkv.reshape(bsz, tn, 3, H, hd).transpose(2, 0, 3, 1, 4)  # (3, B, H, tn, hd)
                kc[i, :, :, pos:end] = qkv[1]
                vc[i, :, :, pos:end] = qkv[2]
                s = (qkv[0] @ kc[i, :, :, :end].transpose(0, 1, 3, 2)) * scale  # (B, H, tn, end)
                if tn > 1:  # the prompt: causal within the new positions
                    s += causal_bias(tn, end, pos, s.dtype)
                s -= s.max(axis=-1, keepdims=True)
                np.exp(s, out=s)
                s /= s.sum(axis=-1, keepdims=True)
                y = (s @ vc[i, :, :, :end]).transpose(0, 2, 1, 3).reshape(bsz, tn, d)
                x = x + linear(y, p[pre + "attn.out_proj.weight"], p[pre + "attn.out_proj.bias"])
                m, _ = layernorm_forward(x, p[pre + "ln2.weight"], p[pre + "ln2.bias"])
                gl, _ = gelu_forward(linear(m, p[pre + "fc1.weight"], p[pre + "fc1.bias"]))
                x = x + linear(gl, p[pre + "fc2.weight"], p[pre + "fc2.bias"])
            last, _ = layernorm_forward(x[:, -1], p["ln_f.weight"], p["ln_f.bias"])
            nxt = linear(last, p["head.weight"], p["head.bias"]).argmax(axis=-1)  # (B,)
            out[:, end] = nxt
            pos, new = end, nxt[:, None]
        return out
