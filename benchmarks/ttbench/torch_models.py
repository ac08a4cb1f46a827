"""The benchmark models in PyTorch (CPU), built from the same parameter dicts.

Written the way a PyTorch user writes them (``nn`` layers, fused
``scaled_dot_product_attention``, ``torch.optim``), so the column measures
what a C++ framework gets on this machine. Each builder returns the module
and ``named``: floor parameter name -> the ``nn.Parameter`` holding it (the
layouts are the same, so values and gradients compare directly).
Imported only in a process that benchmarks PyTorch.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).clone()


def _copy(param: nn.Parameter, value: np.ndarray, name: str, named: dict) -> None:
    if tuple(param.shape) != value.shape:
        raise ValueError(f"{name}: torch parameter has shape {tuple(param.shape)}, weights {value.shape}")
    with torch.no_grad():
        param.copy_(_t(value))
    named[name] = param


def _linear(params: dict, name: str, named: dict) -> nn.Linear:
    w = params[f"{name}.weight"]  # (out, in), as nn.Linear stores it
    layer = nn.Linear(w.shape[1], w.shape[0])
    _copy(layer.weight, w, f"{name}.weight", named)
    _copy(layer.bias, params[f"{name}.bias"], f"{name}.bias", named)
    return layer


def _head(params: dict, named: dict) -> list:
    n = sum(1 for k in params if k.startswith("fc") and k.endswith(".weight"))
    layers = []
    for i in range(n):
        layers.append(_linear(params, f"fc{i}", named))
        if i < n - 1:
            layers.append(nn.ReLU())
    return layers


def mlp(params: dict):
    named: dict = {}
    return nn.Sequential(*_head(params, named)), named


def convnet(params: dict, paddings: list):
    named: dict = {}
    layers = []
    for i, pad in enumerate(paddings):
        w = params[f"conv{i}.weight"]
        conv = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], padding=pad)
        _copy(conv.weight, w, f"conv{i}.weight", named)
        _copy(conv.bias, params[f"conv{i}.bias"], f"conv{i}.bias", named)
        layers += [conv, nn.ReLU(), nn.MaxPool2d(2)]
    layers.append(nn.Flatten())
    layers += _head(params, named)
    return nn.Sequential(*layers), named


class Block(nn.Module):
    def __init__(self, params: dict, prefix: str, num_heads: int, named: dict):
        super().__init__()
        d = params[prefix + "ln1.weight"].shape[0]
        self.h, self.hd = num_heads, d // num_heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        for name, ln in (("ln1", self.ln1), ("ln2", self.ln2)):
            _copy(ln.weight, params[prefix + name + ".weight"], prefix + name + ".weight", named)
            _copy(ln.bias, params[prefix + name + ".bias"], prefix + name + ".bias", named)
        self.in_proj = _linear(params, prefix + "attn.in_proj", named)  # q|k|v as one Linear (d -> 3d)
        self.out_proj = _linear(params, prefix + "attn.out_proj", named)
        self.fc1 = _linear(params, prefix + "fc1", named)
        self.fc2 = _linear(params, prefix + "fc2", named)

    def forward(self, x, cache=None, pos=0):
        bsz, t, d = x.shape
        qkv = self.in_proj(self.ln1(x)).view(bsz, t, 3, self.h, self.hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, H, T, hd)
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            kc, vc = cache  # (B, H, Tmax, hd) preallocated
            kc[:, :, pos : pos + t] = k
            vc[:, :, pos : pos + t] = v
            k, v = kc[:, :, : pos + t], vc[:, :, : pos + t]
            if t == 1:
                y = F.scaled_dot_product_attention(q, k, v)
            else:
                keep = torch.arange(pos + t)[None, :] <= (pos + torch.arange(t))[:, None]
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        x = x + self.out_proj(y.transpose(1, 2).reshape(bsz, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    """Same architecture and parameter names as the floor's GPTFloor and tinytorch's GPT."""

    def __init__(self, params: dict, num_layers: int, num_heads: int):
        super().__init__()
        self.named: dict = {}
        self.tok_emb = nn.Parameter(_t(params["tok_emb"]))
        self.pos_emb = nn.Parameter(_t(params["pos_emb"]))
        self.named.update(tok_emb=self.tok_emb, pos_emb=self.pos_emb)
        self.blocks = nn.ModuleList(Block(params, f"h{i}.", num_heads, self.named) for i in range(num_layers))
        d = params["tok_emb"].shape[1]
        self.ln_f = nn.LayerNorm(d)
        _copy(self.ln_f.weight, params["ln_f.weight"], "ln_f.weight", self.named)
        _copy(self.ln_f.bias, params["ln_f.bias"], "ln_f.bias", self.named)
        self.head = _linear(params, "head", self.named)
        self.num_heads = num_heads

    def forward(self, tokens, caches=None, pos=0):
        t = tokens.shape[1]
        x = self.tok_emb[tokens] + self.pos_emb[pos : pos + t]
        for i, block in enumerate(self.blocks):
            x = block(x, None if caches is None else caches[i], pos)
        return self.head(self.ln_f(x))

    @torch.inference_mode()
    def generate(self, prompt: torch.Tensor, max_new_tokens: int, use_cache: bool) -> torch.Tensor:
        """Greedy decoding; with ``use_cache`` keys/values live in preallocated tensors."""
        tokens = prompt
        if not use_cache:
            for _ in range(max_new_tokens):
                nxt = self(tokens)[:, -1].argmax(-1, keepdim=True)
                tokens = torch.cat([tokens, nxt], dim=1)
            return tokens
        bsz, t0 = prompt.shape
        d = self.tok_emb.shape[1]
        hd = d // self.num_heads
        shape = (bsz, self.num_heads, t0 + max_new_tokens, hd)
        caches = [(torch.zeros(shape), torch.zeros(shape)) for _ in self.blocks]
        out = [prompt]
        pos, new = 0, prompt
        for _ in range(max_new_tokens):
            nxt = self(new, caches, pos)[:, -1].argmax(-1, keepdim=True)
            out.append(nxt)
            pos, new = pos + new.shape[1], nxt
        return torch.cat(out, dim=1)


class Trainer:
    """The PyTorch training step: zero_grad, forward, cross-entropy, backward, step."""

    def __init__(self, model, named: dict, optimizer):
        self.model, self.named, self.opt = model, named, optimizer

    def step(self, x, y) -> float:
        self.opt.zero_grad(set_to_none=True)
        logits = self.model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        self.opt.step()
        return loss.item()

    def grads(self) -> dict:
        return {k: (None if p.grad is None else p.grad.numpy()) for k, p in self.named.items()}
