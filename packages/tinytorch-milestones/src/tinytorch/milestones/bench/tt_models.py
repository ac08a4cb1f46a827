"""The benchmark models in tinytorch, loaded from the shared parameter dicts.

Written with the public tier APIs only, the way a student would write them.
``named`` maps each floor parameter name to the tinytorch Parameter holding
it, so tests can compare gradients name by name.
"""

from __future__ import annotations

import numpy as np
from tinytorch.core.activations import ReLU
from tinytorch.core.layers import Linear
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import SGD, Adam
from tinytorch.core.tensor import Tensor


def _load(param, value: np.ndarray, name: str) -> None:
    """Copy ``value`` into a tinytorch parameter in place; shapes must match exactly."""
    if tuple(param.data.shape) != value.shape:
        raise ValueError(
            f"{name}: tinytorch parameter has shape {param.data.shape}, benchmark weights {value.shape}"
        )
    param.data[...] = value


class _Trainer:
    """Shared loop: loss -> backward -> optimizer step."""

    named: dict
    opt: object

    def loss(self, x, y):
        raise NotImplementedError

    def step(self, x, y) -> float:
        self.opt.zero_grad()
        loss = self.loss(x, y)
        loss.backward()
        self.opt.step()
        return float(loss.item())

    def grads(self) -> dict:
        return {k: (None if p.grad is None else np.asarray(p.grad.data)) for k, p in self.named.items()}


def _mlp_layers(p: dict, prefix: str, named: dict) -> list:
    layers = []
    i = 0
    while f"{prefix}{i}.weight" in p:
        w = p[f"{prefix}{i}.weight"]
        layer = Linear(*w.shape)
        _load(layer.weight, w, f"{prefix}{i}.weight")
        _load(layer.bias, p[f"{prefix}{i}.bias"], f"{prefix}{i}.bias")
        named[f"{prefix}{i}.weight"], named[f"{prefix}{i}.bias"] = layer.weight, layer.bias
        layers.append(layer)
        i += 1
    return layers


class MLP(_Trainer):
    def __init__(self, params: dict, lr: float):
        self.named = {}
        self.layers = _mlp_layers(params, "fc", self.named)
        self.relu = ReLU()
        self.criterion = CrossEntropyLoss()
        self.opt = SGD(list(self.named.values()), lr=lr)
        self._x = self._y = None

    def forward(self, h):
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = self.relu(h)
        return h

    def loss(self, x, y):
        return self.criterion(self.forward(Tensor(x)), Tensor(y))


class ConvNet(_Trainer):
    def __init__(self, params: dict, spec, lr: float):
        from tinytorch.core.spatial import Conv2d, MaxPool2d

        self.named = {}
        self.convs = []
        c = spec.in_shape[0]
        for i, (out, k, pad) in enumerate(spec.convs):
            conv = Conv2d(c, out, k, padding=pad)
            _load(conv.weight, params[f"conv{i}.weight"], f"conv{i}.weight")
            _load(conv.bias, params[f"conv{i}.bias"], f"conv{i}.bias")
            self.named[f"conv{i}.weight"], self.named[f"conv{i}.bias"] = conv.weight, conv.bias
            self.convs.append(conv)
            c = out
        self.pool = MaxPool2d(2)
        self.fcs = _mlp_layers(params, "fc", self.named)
        self.relu = ReLU()
        self.criterion = CrossEntropyLoss()
        self.opt = SGD(list(self.named.values()), lr=lr)

    def forward(self, h):
        for conv in self.convs:
            h = self.pool(self.relu(conv(h)))
        h = h.reshape(h.shape[0], -1)  # (B, C*H*W)
        for i, layer in enumerate(self.fcs):
            h = layer(h)
            if i < len(self.fcs) - 1:
                h = self.relu(h)
        return h

    def loss(self, x, y):
        return self.criterion(self.forward(Tensor(x)), Tensor(y))


def gpt_from_params(params: dict, spec):
    """A tinytorch ``GPT`` holding the floor's weights; returns (model, {floor name: Parameter})."""
    from tinytorch.models.transformer import GPT

    model = GPT(spec.vocab_size, spec.embed_dim, spec.num_layers, spec.num_heads, spec.max_seq_len)
    where = {
        "tok_emb": model.embedding.token_embedding.weight,
        "pos_emb": model.embedding.position_embedding.weight,
        "ln_f.weight": model.ln_f.weight,
        "ln_f.bias": model.ln_f.bias,
        "head.weight": model.head.weight,
        "head.bias": model.head.bias,
    }
    for i, block in enumerate(model.blocks):
        layers = {
            "ln1": block.ln1,
            "ln2": block.ln2,
            "attn.q": block.attn.q_proj,
            "attn.k": block.attn.k_proj,
            "attn.v": block.attn.v_proj,
            "attn.o": block.attn.out_proj,
            "fc1": block.mlp.fc1,
            "fc2": block.mlp.fc2,
        }
        for name, layer in layers.items():
            where[f"h{i}.{name}.weight"] = layer.weight
            where[f"h{i}.{name}.bias"] = layer.bias
    if set(where) != set(params):
        raise ValueError(f"GPT parameter names differ: {sorted(set(where) ^ set(params))}")
    for name, param in where.items():
        _load(param, params[name], name)
    return model, where


class GPTTrainer(_Trainer):
    """Next-token cross-entropy over every position, Adam step."""

    def __init__(self, params: dict, spec, lr: float):
        self.model, self.named = gpt_from_params(params, spec)
        self.criterion = CrossEntropyLoss()
        self.opt = Adam(list(self.named.values()), lr=lr)

    def loss(self, tokens, targets):
        logits = self.model(tokens)  # (B, T, V)
        return self.criterion(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


class GPTGenerator:
    """Greedy generation (temperature 0) with or without the KV cache."""

    def __init__(self, params: dict, spec):
        self.model, self.named = gpt_from_params(params, spec)

    def generate(self, prompt, max_new_tokens: int, use_cache: bool):
        return self.model.generate(prompt, max_new_tokens, temperature=0.0, use_cache=use_cache)
