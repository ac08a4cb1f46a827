"""Module 20 (capstone): TinyGPT, the whole stack end to end.

Everything built in the course meets in one class:

=====================  =======================================================
tokenize               ``BPETokenizer`` (10) learns merges from the text
embed, attend, predict ``GPT`` (11-13): embeddings, causal attention, MLPs
learn                  ``Tensor`` autograd (01, 05), ``cross_entropy`` (04), ``Adam`` (06)
generate fast          ``KVCache`` (17): one new token per step, history memoized
shrink                 ``quantize_model`` (15): every ``Linear`` to int8
measure                ``Profiler`` (14): parameters, FLOPs, latency, per-layer time
=====================  =======================================================

Run ``python -m tinytorch.applications.tinygpt`` for a one-minute demo on a
built-in text, or::

    gpt = TinyGPT(vocab_size=300, embed_dim=64, num_layers=2, num_heads=4, max_seq_len=64)
    gpt.fit(text, steps=300)
    print(gpt.generate("The ", max_new_tokens=40))
    gpt.quantize()
    print(gpt.profile())
"""

from __future__ import annotations

import time

import numpy as np
from tinytorch.core.losses import cross_entropy
from tinytorch.core.optimizers import Adam
from tinytorch.core.tensor import Tensor
from tinytorch.generation.kv_cache import enable_kv_cache, measure_generation_speed
from tinytorch.models.transformer import GPT
from tinytorch.optimization.quantization import quantize_model
from tinytorch.profiling.profiler import Profiler
from tinytorch.text.tokenization import BPETokenizer

DEMO_TEXT = """\
The small model reads the text one token at a time and learns to guess the next one.
The tokenizer turns frequent pairs of bytes into single tokens, so common words become short.
Attention lets every position look back at the positions before it, never ahead.
The cache remembers the keys and values of the past, so each new token costs the same.
Quantization stores every weight in one byte instead of four, and the answers barely move.
Measure first, then optimize: the profile shows where the time goes.
"""


class TinyGPT:
    """A BPE tokenizer and a GPT trained on one text, with generation, quantization and profiling.

    Args:
        vocab_size: BPE vocabulary target (>= 256: the byte alphabet plus merges).
        embed_dim, num_layers, num_heads, max_seq_len: the GPT's size (see ``GPT``).
        seed: seeds weight initialisation and batch sampling.

    Attributes:
        tokenizer: the trained ``BPETokenizer`` (after :meth:`fit`).
        model: the ``GPT`` (after :meth:`fit`).
        losses: training loss per step.
    """

    def __init__(
        self,
        vocab_size: int = 300,
        embed_dim: int = 64,
        num_layers: int = 2,
        num_heads: int = 4,
        max_seq_len: int = 64,
        seed: int = 0,
    ):
        self.config = dict(
            embed_dim=embed_dim, num_layers=num_layers, num_heads=num_heads, max_seq_len=max_seq_len
        )
        self.seed = seed
        self.tokenizer = BPETokenizer(vocab_size)
        self.model = None
        self.losses: list = []
        self.quantization_report: dict | None = None

    def _require_model(self) -> GPT:
        if self.model is None:
            raise ValueError("TinyGPT: call fit(text) first")
        return self.model

    def fit(
        self, text: str, steps: int = 200, batch_size: int = 16, seq_len: int | None = None, lr: float = 3e-3
    ) -> list:
        """Train the tokenizer on ``text``, then the GPT on random windows of its tokens.

        Each step samples ``batch_size`` windows of ``seq_len + 1`` tokens; the
        model predicts tokens ``1..seq_len`` from tokens ``0..seq_len-1``
        (cross-entropy over every position), and Adam updates the weights.

        Returns:
            the list of per-step losses (also kept in ``self.losses``).
        """
        ### BEGIN SOLUTION
        seq_len = seq_len or self.config["max_seq_len"]
        if seq_len > self.config["max_seq_len"]:
            raise ValueError(f"seq_len {seq_len} exceeds max_seq_len {self.config['max_seq_len']}")
        self.tokenizer.train(text)
        ids = np.asarray(self.tokenizer.encode(text), dtype=np.int64)
        if ids.size < seq_len + 2:
            raise ValueError(f"text too short: {ids.size} tokens for windows of {seq_len + 1}")
        np.random.seed(self.seed)  # layers initialise from NumPy's global generator
        self.model = GPT(self.tokenizer.vocab_size, **self.config)
        optimizer = Adam(self.model.parameters(), lr=lr)
        rng = np.random.default_rng(self.seed)
        offsets = np.arange(seq_len + 1)
        for _ in range(steps):
            starts = rng.integers(0, ids.size - seq_len - 1, size=batch_size)
            windows = ids[starts[:, None] + offsets]  # (B, seq_len + 1), one fancy index, no loop
            logits = self.model(Tensor(windows[:, :-1]))  # (B, T, V)
            loss = cross_entropy(logits.reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            self.losses.append(float(loss.item()))
        enable_kv_cache(self.model)
        return self.losses
        ### END SOLUTION

    def generate(
        self,
        prompt: str,
        max_new_tokens: int = 50,
        temperature: float = 0.0,
        top_k: int | None = None,
        seed: int | None = None,
        use_cache: bool = True,
    ) -> str:
        """Continue ``prompt`` by ``max_new_tokens`` tokens (greedy when ``temperature == 0``), as text."""
        ### BEGIN SOLUTION
        model = self._require_model()
        ids = self.tokenizer.encode(prompt)
        if not ids:
            raise ValueError("prompt must encode to at least one token")
        out = model.generate(
            np.asarray([ids]),
            max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            seed=seed,
            use_cache=use_cache,
        )
        tokens = np.asarray(getattr(out, "data", out))[0]
        return self.tokenizer.decode(tokens.tolist())
        ### END SOLUTION

    def generation_speed(self, prompt: str, max_new_tokens: int = 64) -> dict:
        """Greedy generation with and without the KV cache: see :func:`measure_generation_speed`."""
        ### BEGIN SOLUTION
        model = self._require_model()
        prompt_ids = np.asarray([self.tokenizer.encode(prompt)])
        return measure_generation_speed(model, prompt_ids, max_new_tokens, repeats=1)
        ### END SOLUTION

    def quantize(self, calibration_text: str | None = None) -> dict:
        """Replace every ``Linear`` of the GPT by int8 in place; returns :func:`quantize_model`'s report.

        When ``calibration_text`` is given (e.g. the training text), the logits of
        its first ``max_seq_len`` tokens before and after quantization are
        compared and the report includes the output error.
        """
        ### BEGIN SOLUTION
        model = self._require_model()
        calibration = None
        if calibration_text is not None:
            ids = self.tokenizer.encode(calibration_text)[: self.config["max_seq_len"]]
            calibration = Tensor(np.asarray([ids], dtype=np.int64))
        self.quantization_report = quantize_model(model, calibration_data=calibration)
        return self.quantization_report
        ### END SOLUTION

    def profile(self, seq_len: int | None = None, top: int = 8) -> str:
        """A printable profile: parameters, forward FLOPs, latency, and the most expensive layers."""
        ### BEGIN SOLUTION
        model = self._require_model()
        seq_len = seq_len or self.config["max_seq_len"]
        profiler = Profiler()
        x = Tensor(np.zeros((1, seq_len), dtype=np.int64))
        latency = profiler.measure_latency(model, x, warmup=2, iterations=10)
        lines = [
            f"TinyGPT: vocab {self.tokenizer.vocab_size}, {self.config}",
            f"  parameters (float32, trainable): {profiler.count_parameters(model):,}",
            f"  forward FLOPs for 1 x {seq_len} tokens: {profiler.count_flops(model, (1, seq_len)):,}",
            f"  latency 1 x {seq_len}: median {latency['median_ms']:.2f} ms, p90 {latency['p90_ms']:.2f} ms",
        ]
        if self.quantization_report:
            r = self.quantization_report
            lines.append(
                f"  int8 Linear layers: {r['original_bytes']:,} -> {r['quantized_bytes']:,} bytes "
                f"({r['compression_ratio']:.2f}x)"
            )
        lines.append(profiler.format_table(profiler.profile_forward_pass(model, x), limit=top))
        return "\n".join(lines)
        ### END SOLUTION


def main(text: str = DEMO_TEXT, steps: int = 150) -> TinyGPT:  # pragma: no cover - a demo script
    """Train on ``text``, generate, measure the cache, quantize, profile: print everything."""
    gpt = TinyGPT(vocab_size=300, embed_dim=64, num_layers=2, num_heads=4, max_seq_len=48)
    start = time.perf_counter()
    losses = gpt.fit(text, steps=steps)
    print(
        f"trained {steps} steps in {time.perf_counter() - start:.1f} s: "
        f"loss {losses[0]:.3f} -> {losses[-1]:.3f}"
    )
    print("sample:", repr(gpt.generate("The ", max_new_tokens=30)))
    speed = gpt.generation_speed("The ", max_new_tokens=40)
    print(
        f"KV cache: {speed['cached_tokens_per_s']:.0f} tokens/s "
        f"vs {speed['uncached_tokens_per_s']:.0f} "
        f"without ({speed['speedup']:.1f}x), same tokens: {speed['same_tokens']}"
    )
    report = gpt.quantize(calibration_text=text)
    print(
        f"int8: {report['compression_ratio']:.2f}x smaller, "
        f"relative output error {report['relative_error']:.4f}"
    )
    print("sample after int8:", repr(gpt.generate("The ", max_new_tokens=30)))
    print(gpt.profile())
    return gpt


if __name__ == "__main__":  # pragma: no cover
    main()
