"""Module 20 (capstone): TinyGPT, the whole stack end to end.

Everything built in the course meets in one class:

=====================  =======================================================
tokenize               ``CharTokenizer`` or ``BPETokenizer`` (10)
embed, attend, predict ``GPT`` (11-13): embeddings, causal attention, MLPs
learn                  ``Tensor`` autograd (01, 05), ``cross_entropy`` (04), ``Adam`` (06)
remember               ``save`` / ``load``: weights, optimizer moments, step, sampler state
                       in one ``.npz`` (no pickle), written atomically
generate fast          ``KVCache`` (17): one new token per step, history memoized
shrink                 ``quantize_model`` (15): every ``Linear`` to int8
measure                ``Profiler`` (14): parameters, FLOPs, latency, per-layer time
=====================  =======================================================

Run ``python -m tinytorch.applications.tinygpt`` for a one-minute demo on a
built-in text, ``tito capstone train --minutes 10`` to train on Shakespeare, or::

    gpt = TinyGPT(vocab_size=300, embed_dim=64, num_layers=2, num_heads=4, max_seq_len=64)
    gpt.fit(text, steps=300)
    print(gpt.generate("The ", max_new_tokens=40))
    gpt.quantize()
    print(gpt.profile())

Step by step (what ``fit`` does, and what a resumable training loop needs)::

    ids = gpt.build(train_text)                  # tokenizer, fresh GPT, Adam
    for _ in range(1000):
        gpt.train_step(ids, batch_size=32, lr=3e-3)
    gpt.save("tinygpt.npz")                      # later: gpt = TinyGPT.load("tinygpt.npz")
    gpt.evaluate(gpt.encode(val_text))           # {"nats_per_token", "nats_per_char", ...}
"""

from __future__ import annotations

import json
import os
import tempfile
import time

import numpy as np
from tinytorch.core.autograd import no_grad
from tinytorch.core.losses import cross_entropy
from tinytorch.core.optimizers import Adam
from tinytorch.core.tensor import Tensor
from tinytorch.core.training import Trainer
from tinytorch.generation.kv_cache import enable_kv_cache, measure_generation_speed
from tinytorch.models.transformer import GPT
from tinytorch.optimization.quantization import quantize_model
from tinytorch.profiling.profiler import Profiler
from tinytorch.text.tokenization import BPETokenizer, CharTokenizer

TOKENIZERS = ("char", "bpe")
CHECKPOINT_FORMAT = "tinygpt-checkpoint"
CHECKPOINT_VERSION = 1

DEMO_TEXT = """\
The small model reads the text one token at a time and learns to guess the next one.
The tokenizer turns frequent pairs of bytes into single tokens, so common words become short.
Attention lets every position look back at the positions before it, never ahead.
The cache remembers the keys and values of the past, so each new token costs the same.
Quantization stores every weight in one byte instead of four, and the answers barely move.
Measure first, then optimize: the profile shows where the time goes.
"""


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, unreadable, corrupt, or not a TinyGPT checkpoint."""


def next_token_loss(logits, targets):
    """Cross-entropy of every position's prediction: logits (B, T, V), targets (B, T) -> scalar."""
    return cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))  # (B*T, V) rows


class TinyGPT:
    """A tokenizer and a GPT trained on one text, with generation, checkpoints, quantization and profiling.

    Args:
        vocab_size: BPE vocabulary target (>= 256: the byte alphabet plus merges);
            ignored by the character tokenizer, whose vocabulary is the text's characters.
        embed_dim, num_layers, num_heads, max_seq_len: the GPT's size (see ``GPT``).
        seed: seeds weight initialisation and batch sampling.
        tokenizer: ``"bpe"`` (byte-level BPE, the default here) or ``"char"`` (one token per character).

    Attributes:
        tokenizer: the ``BPETokenizer`` or ``CharTokenizer`` (trained by :meth:`build`).
        model: the ``GPT`` (after :meth:`build` or :meth:`fit`).
        optimizer: its ``Adam``.
        rng: the generator that draws training windows (saved in checkpoints).
        losses: training loss per step (nats per token); ``step == len(losses)``.
        extra: free-form JSON-able dict saved with checkpoints (a training script's own state).
    """

    def __init__(
        self,
        vocab_size: int = 300,
        embed_dim: int = 64,
        num_layers: int = 2,
        num_heads: int = 4,
        max_seq_len: int = 64,
        seed: int = 0,
        tokenizer: str = "bpe",
    ):
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"TinyGPT: argument 'tokenizer' must be one of {TOKENIZERS}, got {tokenizer!r}")
        for name, value in (
            ("embed_dim", embed_dim),
            ("num_layers", num_layers),
            ("num_heads", num_heads),
            ("max_seq_len", max_seq_len),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"TinyGPT: argument {name!r} must be a positive int, got {value!r}")
        if embed_dim % num_heads:
            raise ValueError(f"TinyGPT: embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.config = dict(
            embed_dim=int(embed_dim),
            num_layers=int(num_layers),
            num_heads=int(num_heads),
            max_seq_len=int(max_seq_len),
        )
        self.seed = int(seed)
        self.tokenizer_kind = tokenizer
        self.tokenizer = BPETokenizer(vocab_size) if tokenizer == "bpe" else CharTokenizer()
        self.model = None
        self.optimizer = None
        self.rng = np.random.default_rng(self.seed)
        self.losses: list = []
        self.extra: dict = {}
        self.quantization_report: dict | None = None

    @property
    def step(self) -> int:
        """Optimizer steps taken so far (survives :meth:`save` / :meth:`load`)."""
        return len(self.losses)

    def _require_model(self) -> GPT:
        if self.model is None:
            raise ValueError("TinyGPT: call fit(text) (or build(text)) first")
        return self.model

    # ------------------------------------------------------------------ training

    def encode(self, text: str) -> np.ndarray:
        """Token ids of ``text`` as an int64 array ``(N,)``."""
        return np.asarray(self.tokenizer.encode(text), dtype=np.int64)

    def chars_per_token(self, text: str) -> float:
        """Compression ratio of the tokenizer on ``text``: characters per token (1.0 for ``char``)."""
        n = len(self.tokenizer.encode(text))
        return len(text) / n if n else 0.0

    def build(self, text: str, betas: tuple = (0.9, 0.999)) -> np.ndarray:
        """Train the tokenizer on ``text``, create a fresh GPT and its Adam optimizer.

        Weights are drawn from NumPy's global generator seeded with ``seed``; the
        batch sampler restarts from ``seed`` and the loss history is cleared.

        Returns:
            the token ids of ``text`` (int64, ``(N,)``).
        """
        ### BEGIN SOLUTION
        if self.tokenizer_kind == "bpe":
            self.tokenizer.train(text)
        else:
            self.tokenizer.build_vocab([text])
        ids = self.encode(text)
        np.random.seed(self.seed)  # layers initialise from NumPy's global generator
        self.model = GPT(self.tokenizer.vocab_size, **self.config)
        self.optimizer = Adam(self.model.parameters(), lr=3e-3, betas=betas)
        self.rng = np.random.default_rng(self.seed)
        self.losses = []
        return ids
        ### END SOLUTION

    def train_step(self, ids: np.ndarray, batch_size: int = 16, seq_len: int | None = None, lr: float = 3e-3):
        """One Adam step on ``batch_size`` random windows of ``ids``; returns the loss (nats per token).

        Each window holds ``seq_len + 1`` consecutive tokens; the model predicts
        tokens ``1..seq_len`` from tokens ``0..seq_len-1`` (cross-entropy over
        every position). The window starts come from :attr:`rng`, so a resumed
        run draws the same batches the uninterrupted run would have.
        Cost: one forward and backward pass over ``batch_size x seq_len`` tokens.
        """
        model = self._require_model()
        seq_len = seq_len or self.config["max_seq_len"]
        if seq_len > self.config["max_seq_len"]:
            raise ValueError(f"seq_len {seq_len} exceeds max_seq_len {self.config['max_seq_len']}")
        if not (np.isfinite(lr) and lr >= 0):
            raise ValueError(f"TinyGPT.train_step: argument 'lr' must be a finite number >= 0, got {lr}")
        if ids.size < seq_len + 2:
            raise ValueError(f"text too short: {ids.size} tokens for windows of {seq_len + 1}")
        ### BEGIN SOLUTION
        starts = self.rng.integers(0, ids.size - seq_len - 1, size=batch_size)
        windows = ids[starts[:, None] + np.arange(seq_len + 1)]  # (B, seq_len + 1), one fancy index, no loop
        self.optimizer.lr = lr
        # Module 07's step: forward, next-token loss, zero_grad, backward, update.
        trainer = Trainer(model, self.optimizer, next_token_loss)
        self.losses.append(trainer.train_step(windows[:, :-1], windows[:, 1:]))
        return self.losses[-1]
        ### END SOLUTION

    def fit(
        self, text: str, steps: int = 200, batch_size: int = 16, seq_len: int | None = None, lr: float = 3e-3
    ) -> list:
        """Train the tokenizer on ``text``, then the GPT for ``steps`` steps of :meth:`train_step`.

        Returns:
            the list of per-step losses (also kept in ``self.losses``).
        """
        seq_len = seq_len or self.config["max_seq_len"]
        if seq_len > self.config["max_seq_len"]:
            raise ValueError(f"seq_len {seq_len} exceeds max_seq_len {self.config['max_seq_len']}")
        ### BEGIN SOLUTION
        ids = self.build(text)
        for _ in range(steps):  # train_step refuses a text too short for one window
            self.train_step(ids, batch_size, seq_len, lr)
        enable_kv_cache(self.model)
        return self.losses
        ### END SOLUTION

    def _chars_per_id(self) -> np.ndarray:
        """Characters each token id stands for, ``(V,)`` (bytes for BPE: one per ASCII character)."""
        if self.tokenizer_kind == "bpe":
            return np.asarray([len(b) for b in self.tokenizer.vocab], dtype=np.int64)
        return np.ones(self.tokenizer.vocab_size, dtype=np.int64)

    def evaluate(self, ids: np.ndarray, batch_size: int = 64) -> dict:
        """Cross-entropy of the model reading ``ids`` as one text (no gradients, eval mode).

        Windows of ``max_seq_len`` tokens start every ``max_seq_len // 2``
        tokens; every token after the first is scored exactly once, in the second
        half of a window (the first window also scores its first half), so each
        is predicted from at least ``max_seq_len // 2`` tokens of context.

        Returns:
            ``{"nats_per_token", "nats_per_char", "tokens", "chars"}``: mean loss per
            token, total loss over the characters the scored tokens spell (so
            tokenizers compare fairly), and the counts.
        """
        model = self._require_model()
        ids = np.asarray(ids, dtype=np.int64)
        context = self.config["max_seq_len"]
        n_targets = ids.size - 1
        if n_targets < 1:
            raise ValueError(f"TinyGPT.evaluate: need at least 2 tokens, got {ids.size}")
        context = min(context, n_targets)
        ### BEGIN SOLUTION
        half = max(context // 2, 1)
        starts = np.arange(0, n_targets - context + 1, half)
        if starts[-1] != n_targets - context:
            starts = np.append(starts, n_targets - context)  # the last window ends at the last token
        first = np.zeros_like(starts)
        first[1:] = starts[:-1] + context - starts[1:]  # first position not scored by the previous window
        offsets = np.arange(context)
        total = 0.0
        model.eval()
        try:
            with no_grad():
                for lo in range(0, starts.size, batch_size):
                    s = starts[lo : lo + batch_size]
                    x = ids[s[:, None] + offsets]  # (b, T)
                    y = ids[s[:, None] + offsets + 1]  # (b, T) next tokens
                    z = np.asarray(model(Tensor(x)).data, dtype=np.float64)  # (b, T, V)
                    z -= z.max(axis=-1, keepdims=True)
                    log_p = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
                    nll = -np.take_along_axis(log_p, y[..., None], axis=-1)[..., 0]  # (b, T)
                    total += float(nll[offsets[None, :] >= first[lo : lo + batch_size, None]].sum())
        finally:
            model.train()
        chars = int(self._chars_per_id()[ids[1:]].sum())
        return {
            "nats_per_token": total / n_targets,
            "nats_per_char": total / max(chars, 1),
            "tokens": int(n_targets),
            "chars": chars,
        }
        ### END SOLUTION

    # ------------------------------------------------------------------ checkpoints

    def _tokenizer_payload(self) -> dict:
        if self.tokenizer_kind == "bpe":
            return {
                "type": "bpe",
                "vocab_size": self.tokenizer.target_vocab_size,
                "merges": [list(m) for m in self.tokenizer.merges],
            }
        return {"type": "char", "unk_token": self.tokenizer.unk_token, "chars": self.tokenizer.id_to_char[1:]}

    def save(self, path: str | os.PathLike) -> None:
        """Write everything needed to resume training or to generate to ``path`` (a ``.npz``; no pickle).

        Arrays: ``model.<name>`` (weights), ``optim.<key>`` (Adam's moments and
        step count), ``losses``; ``meta`` is one JSON string: format and version,
        model size, seed, tokenizer (its characters or merges), the batch
        sampler's generator state, and :attr:`extra`. The file is written under a
        temporary name in the same directory, flushed to disk and renamed over
        ``path``: a crash leaves the old checkpoint or the new one, never half of one.
        """
        model = self._require_model()
        if self.quantization_report is not None:
            raise ValueError("TinyGPT.save: the model is int8-quantized; save it before quantize()")
        meta = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "config": self.config,
            "seed": self.seed,
            "tokenizer": self._tokenizer_payload(),
            "rng": self.rng.bit_generator.state,  # PCG64's state: ints, JSON-safe
            "extra": self.extra,
        }
        arrays = {f"model.{k}": v for k, v in model.state_dict().items()}
        arrays.update({f"optim.{k}": np.asarray(v) for k, v in self.optimizer.state_dict().items()})
        arrays["losses"] = np.asarray(self.losses, dtype=np.float64)
        arrays["meta"] = np.asarray(json.dumps(meta))  # a 0-d unicode array: loads without pickle
        path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tinygpt-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; a checkpoint is an ordinary file
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike) -> TinyGPT:
        """A TinyGPT restored from :meth:`save`: weights, optimizer, step, sampler state, tokenizer, extra.

        Raises:
            CheckpointError: the file is missing, unreadable, truncated, or not a
                TinyGPT checkpoint of this version; the message says which.
        """
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise CheckpointError(f"no checkpoint at {path}")
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            meta = json.loads(str(arrays.pop("meta")))
        except Exception as exc:  # zip, zlib, JSON or format errors: all mean "not a usable checkpoint"
            raise CheckpointError(
                f"{path} is not a readable TinyGPT checkpoint ({type(exc).__name__}: {exc})"
            ) from None
        if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{path} is not a TinyGPT checkpoint")
        if meta.get("version") != CHECKPOINT_VERSION:
            raise CheckpointError(
                f"{path}: checkpoint version {meta.get('version')!r}; "
                f"this TinyGPT reads version {CHECKPOINT_VERSION}"
            )
        try:
            payload = meta["tokenizer"]
            gpt = cls(seed=meta["seed"], tokenizer=payload["type"], **meta["config"])
            gpt.tokenizer = _load_tokenizer(payload)
            np.random.seed(gpt.seed)  # only shapes matter: every weight is overwritten below
            gpt.model = GPT(gpt.tokenizer.vocab_size, **gpt.config)
            gpt.model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model.")})
            gpt.optimizer = Adam(gpt.model.parameters())
            gpt.optimizer.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("optim.")})
            gpt.rng.bit_generator.state = meta["rng"]
            gpt.losses = [float(x) for x in arrays["losses"]]
            gpt.extra = dict(meta.get("extra") or {})
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: damaged checkpoint ({type(exc).__name__}: {exc})") from None
        enable_kv_cache(gpt.model)
        return gpt

    # ------------------------------------------------------------------ using the model

    def generate(
        self,
        prompt: str,
        max_new_tokens: int = 50,
        temperature: float = 0.0,
        top_k: int | None = None,
        seed: int | None = None,
        use_cache: bool = True,
    ) -> str:
        """Continue ``prompt`` by ``max_new_tokens`` tokens (greedy when ``temperature == 0``), as text.

        Raises:
            ValueError: the prompt is empty, or (character tokenizer) uses
                characters the tokenizer never saw; the message lists them.
        """
        ### BEGIN SOLUTION
        model = self._require_model()
        ids = self.tokenizer.encode(prompt)
        if not ids:
            raise ValueError("prompt must encode to at least one token")
        if self.tokenizer_kind == "char" and CharTokenizer.UNK_ID in ids:
            unknown = sorted({c for c in prompt if c not in self.tokenizer.char_to_id})
            raise ValueError(
                f"prompt uses characters not in the vocabulary: {''.join(unknown)!r} "
                f"(known: {''.join(self.tokenizer.id_to_char[1:])!r})"
            )
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


def _load_tokenizer(payload: dict):
    """A tokenizer from its checkpoint payload, through the tokenizer's own validating ``load``."""
    kinds = {"char": CharTokenizer, "bpe": BPETokenizer}
    if not isinstance(payload, dict) or payload.get("type") not in kinds:
        raise ValueError(f"unknown tokenizer payload {str(payload)[:60]!r}")
    with tempfile.TemporaryDirectory() as tmp:
        file = os.path.join(tmp, "tokenizer.json")
        with open(file, "w", encoding="utf-8") as f:
            json.dump(payload, f)
        return kinds[payload["type"]].load(file)


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
