"""Milestone 05 (2017): attention is all you need: sequence challenges and a character-level GPT."""

from __future__ import annotations

import re

import numpy as np
from tinytorch.milestones._common import count_parameters, pct
from tinytorch.milestones.runner import Milestone, Outcome, Part

SEQ_LEN = 8  # challenge sequences: 8 digits 0-9
VOCAB = 10
CHALLENGES = ("copy", "reverse", "sort")


def challenge_target(task: str, x: np.ndarray) -> np.ndarray:
    """The answer sequence for each row of ``x`` (B, T): the oracle the model is scored against."""
    if task == "copy":
        return x.copy()
    if task == "reverse":
        return x[:, ::-1].copy()
    if task == "sort":
        return np.sort(x, axis=1)
    raise ValueError(f"task must be one of {CHALLENGES}, got {task!r}")


def _seq_ids(x: np.ndarray) -> np.ndarray:
    """Each digit sequence as one integer (base 10), to tell held-out sequences apart."""
    return x @ (VOCAB ** np.arange(x.shape[1] - 1, -1, -1, dtype=np.int64))


class SequenceTransformer:
    """Token + position embedding -> TransformerBlocks (no mask: all positions visible) -> logits.

    Shape: tokens (B, T) int -> logits (B, T, V). Built lazily from the architecture tier.
    """

    def __new__(cls, vocab: int, seq_len: int, dim: int = 32, heads: int = 2, layers: int = 2):
        from tinytorch.core.layers import Linear, Module
        from tinytorch.models.transformer import LayerNorm, TransformerBlock
        from tinytorch.text.embeddings import EmbeddingLayer

        class _SequenceTransformer(Module):
            def __init__(self):
                super().__init__()
                self.embed = EmbeddingLayer(vocab, dim, seq_len)
                self.blocks = [TransformerBlock(dim, heads) for _ in range(layers)]
                self.norm = LayerNorm(dim)
                self.head = Linear(dim, vocab)

            def forward(self, tokens):
                h = self.embed(tokens)  # (B, T, dim)
                for block in self.blocks:
                    h = block(h)  # bidirectional: the answer at position t may depend on any input position
                return self.head(self.norm(h))  # (B, T, V)

        return _SequenceTransformer()


def _predict_tokens(model, x: np.ndarray) -> np.ndarray:
    from tinytorch.core.autograd import no_grad
    from tinytorch.core.tensor import Tensor

    model.eval()
    with no_grad():
        logits = model(Tensor(x)).data
    model.train()
    return np.asarray(logits).argmax(axis=-1)


def train_challenge(ctx, task: str, max_steps: int = 1500, batch_size: int = 64):
    """Train a fresh model on one task; returns (model, test exact-sequence acc, test token acc, steps)."""
    from tinytorch.core.optimizers import Adam
    from tinytorch.core.training import Trainer

    rng = np.random.default_rng([ctx.seed, CHALLENGES.index(task)])
    np.random.seed(ctx.seed)
    x_test = rng.integers(0, VOCAB, size=(1000, SEQ_LEN))  # held out: never appears in training
    x_val = rng.integers(0, VOCAB, size=(1000, SEQ_LEN))  # for early stopping only
    held_out = np.concatenate([_seq_ids(x_test), _seq_ids(x_val)])
    model = SequenceTransformer(VOCAB, SEQ_LEN)
    trainer = Trainer(model, Adam(model.parameters(), lr=3e-3), next_token_loss)
    steps, good_checks = 0, 0
    bar = ctx.progress(range(max_steps), desc=f"{task:<8}")
    for step in bar:
        x = rng.integers(0, VOCAB, size=(batch_size, SEQ_LEN))
        x = x[~np.isin(_seq_ids(x), held_out)]  # drop any batch row that is a held-out sequence
        loss = trainer.train_step(x, challenge_target(task, x))  # Module 07's step
        ctx.curve(f"{task} loss", loss)
        steps = step + 1
        if steps % 50 == 0:
            val = float((_predict_tokens(model, x_val) == challenge_target(task, x_val)).all(axis=1).mean())
            bar.set_postfix_str(f"loss {loss:.3f} val {pct(val)}", refresh=False)
            good_checks = good_checks + 1 if val >= 0.999 else 0
            if good_checks == 2:  # two checks in a row: one lucky validation pass does not stop training
                break
    pred = _predict_tokens(model, x_test)
    truth = challenge_target(task, x_test)
    exact = float((pred == truth).all(axis=1).mean())
    token = float((pred == truth).mean())
    example = (x_test[0], pred[0], truth[0])
    return model, exact, token, steps, example


def part1_challenges(ctx) -> Outcome:
    model = SequenceTransformer(VOCAB, SEQ_LEN)
    ctx.say(
        f"    Three tasks on sequences of {SEQ_LEN} digits; each model is scored on 1,000 held-out "
        "sequences.",
        "    model: EmbeddingLayer(10, 32, 8) -> 2 x TransformerBlock(32, 2 heads) -> LayerNorm "
        "-> Linear(32, 10)",
        f"    parameters: {count_parameters(model):,}; Adam 3e-3, batches of 64, "
        "stop after two validation checks >= 99.9%",
    )
    metrics, lines, passed = {}, [], True
    for task in CHALLENGES:
        _, exact, token, steps, (x, p, t) = train_challenge(ctx, task)
        passed = passed and exact >= 0.99
        metrics[f"{task}_exact_accuracy"] = exact
        metrics[f"{task}_token_accuracy"] = token
        metrics[f"{task}_steps"] = steps
        ctx.say(
            f"    {task:<8} input {''.join(map(str, x))} -> {''.join(map(str, p))}"
            f" (expected {''.join(map(str, t))})  exact-sequence {pct(exact)} after {steps} steps"
        )
        lines.append(f"{task} {pct(exact)}")
    metrics["test_accuracy"] = min(metrics[f"{t}_exact_accuracy"] for t in CHALLENGES)
    return Outcome(passed=passed, measured=", ".join(lines), metrics=metrics)


def unigram_loss(train_ids: np.ndarray, val_ids: np.ndarray, vocab: int) -> float:
    """Cross-entropy (nats/char) of the validation text under the training text's character frequencies.

    Add-one smoothing so an unseen character costs a finite amount. This is the
    baseline a model reaches by ignoring context entirely.
    """
    counts = np.bincount(train_ids, minlength=vocab).astype(np.float64) + 1.0
    log_p = np.log(counts / counts.sum())
    return float(-log_p[val_ids].mean())


# ----------------------------------------------------------------------------- words

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")  # "o'er", "'tis" -> "tis": apostrophes only inside a word


def words(text: str) -> list[str]:
    """The words of ``text``, lowercased: runs of letters, with apostrophes inside them ("o'er", "ne'er")."""
    return _WORD.findall(text.lower())


def real_word_fraction(sample: str, vocabulary: set[str]) -> tuple[float, int]:
    """Fraction of the words of ``sample`` that occur in ``vocabulary`` (a set of lowercase words).

    A sample cut off inside a word does not count that last, unfinished word.
    Returns ``(fraction, number of words counted)``; a sample without words scores 0.
    """
    found = words(sample)
    if found and sample[-1:].isalpha():
        found = found[:-1]  # the text stops mid-word: judge only finished words
    if not found:
        return 0.0, 0
    return sum(w in vocabulary for w in found) / len(found), len(found)


# ----------------------------------------------------------------------------- the character-level GPT

CONTEXT = 32  # characters the model sees
EMBED_DIM, LAYERS, HEADS = 64, 2, 4
# The feed-forward activation of the original transformer (Vaswani et al., 2017) and of PyTorch's
# nn.Transformer: ReLU. GPT-2's tanh GELU reaches ~0.04 nats/char lower validation in the same steps
# but costs ~14% more per step (one tanh and about twenty elementwise passes forward and backward),
# which a one-minute run cannot afford.
ACTIVATION = "relu"
BATCH = 32  # windows per step
# Fixed, so the verdict never depends on the machine's speed. 1,200 steps sometimes leave the greedy
# samples in loops of misspellings (a seed at 67% real words); 1,500 do not (100% for seeds 0 and 1).
STEPS = 1500
PEAK_LR, MIN_LR, WARMUP = 5e-3, 5e-4, 20
SAMPLE_CHARS = 500
# Eight speaker lines (lowercased) from four plays, as every speech of the corpus starts; all of one
# length so the eight samples are drawn in one batch. Eight samples, not one: a 500-character sample
# has ~90 words, too few to tell 75% from 70% (binomial standard error ~4.5 points; ~1.6 for eight),
# and one greedy sample is one loop whose few words decide everything.
SPEAKERS = ("romeo", "nurse", "queen", "friar", "ariel", "casca", "paris", "cinna")
PROMPTS = tuple(f"{name}.\n" for name in SPEAKERS)
MAX_VAL_LOSS = 1.9  # nats/char
MIN_REAL_WORDS = 0.70


VAL_BLOCK = 10_000  # characters per block of the train/validation split
VAL_EVERY = 10  # every 10th block validates: 10% of the text, spread over every play


def block_size(n_chars: int, block: int = VAL_BLOCK) -> int:
    """The split's block length for a text of ``n_chars``: ``block``, or ``n_chars // 100`` if smaller."""
    return max(1, min(block, n_chars // 100))


def validation_sample(val_ids: np.ndarray, block: int) -> np.ndarray:
    """The first half of every ``block``-long held-out block, concatenated.

    The loss is measured on these: 50,000 characters of Shakespeare from every
    play, in half the time of all 100,000 (~1.8 s of the part's minute); the
    standard error of a mean over 50,000 characters is ~0.01 nats/char.
    """
    return np.concatenate([val_ids[i : i + max(1, block // 2)] for i in range(0, len(val_ids), block)])


def split_corpus(text: str, block: int = VAL_BLOCK, every: int = VAL_EVERY) -> tuple[str, str]:
    """(training text, validation text): the text cut into blocks of ``block`` characters (fewer for a
    text under 100 blocks: ``len(text) // 100``), every ``every``-th block (the 10th, 20th, ...) held
    out for validation, the others concatenated for training.

    Held-out passages of every play measure how well the model predicts text like
    its training text that it has never seen; the last 10% alone would be one play
    (new names, rhymed verse) and measure something else. The few windows that
    straddle a seam between two blocks read two passages as one, a negligible effect.
    """
    if block < 1 or every < 2:
        raise ValueError(f"split_corpus: need block >= 1 and every >= 2, got {block}, {every}")
    block = block_size(len(text), block)
    blocks = [text[i : i + block] for i in range(0, len(text), block)]
    held = [i % every == every - 1 for i in range(len(blocks))]
    if not any(held):
        raise ValueError(f"split_corpus: a text of {len(text)} characters has fewer than {every} blocks")
    train = "".join(b for b, h in zip(blocks, held) if not h)
    val = "".join(b for b, h in zip(blocks, held) if h)
    return train, val


def learning_rate(step: int, steps: int, peak: float = PEAK_LR, floor: float = MIN_LR, warmup: int = WARMUP):
    """Linear warm-up over ``warmup`` steps, then Module 07's cosine decay from ``peak`` to ``floor``."""
    from tinytorch.core.training import CosineSchedule

    if step < warmup:
        return peak * (step + 1) / warmup
    return CosineSchedule(peak, floor, total_epochs=max(steps - warmup - 1, 1)).get_lr(step - warmup)


def next_token_loss(logits, targets):
    """Cross-entropy of every position's prediction: logits (B, T, V), targets (B, T) -> scalar."""
    from tinytorch.core.losses import cross_entropy

    return cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))  # (B*T, V) rows


def train_char_gpt(ctx, text: str, steps: int = STEPS, context: int = CONTEXT, batch_size: int = BATCH):
    """A character-level GPT trained on the training blocks of ``text`` (see :func:`split_corpus`).

    Each step samples ``batch_size`` random windows of ``context + 1``
    characters; the model predicts characters 1..context from 0..context-1.
    Returns (model, tokenizer, train_ids, val_ids, per-step losses).
    """
    from tinytorch.core.optimizers import Adam
    from tinytorch.core.training import Trainer
    from tinytorch.models.transformer import GPT
    from tinytorch.text.tokenization import CharTokenizer

    train_text, val_text = split_corpus(text)  # the validation blocks are never trained on
    tokenizer = CharTokenizer([train_text])
    train_ids = np.asarray(tokenizer.encode(train_text), dtype=np.int64)
    val_ids = np.asarray(tokenizer.encode(val_text), dtype=np.int64)
    np.random.seed(ctx.seed)  # layers draw their initial weights from NumPy's global generator
    rng = np.random.default_rng(ctx.seed)
    model = GPT(
        tokenizer.vocab_size,
        EMBED_DIM,
        num_layers=LAYERS,
        num_heads=HEADS,
        max_seq_len=context,
        activation=ACTIVATION,
    )
    optimizer = Adam(model.parameters(), lr=PEAK_LR, betas=(0.9, 0.99))
    trainer = Trainer(model, optimizer, next_token_loss)  # Module 07's step, one batch at a time
    offsets = np.arange(context + 1)
    losses = []
    bar = ctx.progress(range(steps), desc="training")
    for step in bar:
        optimizer.lr = learning_rate(step, steps)
        starts = rng.integers(0, len(train_ids) - context - 1, size=batch_size)
        window = train_ids[starts[:, None] + offsets]  # (B, T+1): inputs and next-character targets
        losses.append(trainer.train_step(window[:, :-1], window[:, 1:]))
        ctx.curve("training loss (nats/char)", losses[-1])
        if step % 20 == 0:
            bar.set_postfix_str(f"loss {losses[-1]:.3f}", refresh=False)
    return model, tokenizer, train_ids, val_ids, losses


def validation_loss(model, ids: np.ndarray, context: int, batch_size: int = 256) -> float:
    """Mean next-character cross-entropy (nats/char) of the model reading ``ids`` as one text.

    The text is cut into windows of ``context`` characters that start every
    ``context // 2`` characters; each character is scored once, in the second
    half of a window, so it is predicted from at least ``context // 2``
    characters before it (the first window also scores its first half, which
    has no earlier text). Cost: about two forward passes over the text.
    """
    from tinytorch.core.autograd import no_grad
    from tinytorch.core.tensor import Tensor

    half = context // 2
    targets_len = len(ids) - 1  # characters 1..n-1 have a character before them to predict from
    if targets_len < context:
        raise ValueError(f"validation_loss: need more than {context} tokens, got {len(ids)}")
    starts = np.arange(0, targets_len - context + 1, half)
    if starts[-1] != targets_len - context:
        starts = np.append(starts, targets_len - context)  # the last window ends at the last character
    # Each window scores the targets from the end of the previous window's scored part to its own end.
    first_scored = np.empty_like(starts)
    first_scored[0] = 0
    first_scored[1:] = starts[:-1] + context - starts[1:]  # (W,) offsets inside the window
    offsets = np.arange(context)
    total, count = 0.0, 0
    model.eval()
    try:
        with no_grad():
            for lo in range(0, len(starts), batch_size):
                s = starts[lo : lo + batch_size]
                x = ids[s[:, None] + offsets]  # (b, T) inputs
                y = ids[s[:, None] + offsets + 1]  # (b, T) next characters
                logits = np.asarray(model(Tensor(x)).data, dtype=np.float64)  # (b, T, V)
                logits -= logits.max(axis=-1, keepdims=True)
                log_p = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
                nll = -np.take_along_axis(log_p, y[..., None], axis=-1)[..., 0]  # (b, T)
                scored = offsets[None, :] >= first_scored[lo : lo + batch_size, None]  # (b, T)
                total += float(nll[scored].sum())
                count += int(scored.sum())
    finally:
        model.train()
    return total / count


def sample_text(model, tokenizer, prompts, n_chars: int, temperature: float, seed: int) -> list[str]:
    """One text of ``n_chars`` tokens generated after each of ``prompts`` (prompts not included).

    Prompts that encode to the same number of tokens are continued in one
    batched ``generate`` call (with a KV cache when the optimization tier is
    installed), so eight samples cost little more than one.
    """
    from tinytorch.milestones import tiers

    encoded = [tokenizer.encode(p) for p in prompts]
    rows_by_length: dict[int, list[int]] = {}
    for i, ids in enumerate(encoded):
        rows_by_length.setdefault(len(ids), []).append(i)
    samples = [""] * len(prompts)
    for length, rows in rows_by_length.items():
        ids = np.asarray([encoded[i] for i in rows])  # (rows, length)
        if tiers.is_installed("optimization"):
            from tinytorch.generation.kv_cache import enable_kv_cache

            enable_kv_cache(model)  # Module 17: generate() then feeds one new token per step
        out = model.generate(ids, n_chars, temperature=temperature, seed=seed)
        for i, row in zip(rows, np.asarray(getattr(out, "data", out))[:, length:]):
            samples[i] = tokenizer.decode([int(t) for t in row])
    return samples


def pooled_real_words(samples: list[str], vocabulary: set[str]) -> tuple[float, int]:
    """Share of all the words of ``samples`` that occur in ``vocabulary``, and how many words were counted."""
    scores = [real_word_fraction(sample, vocabulary) for sample in samples]
    n_words = sum(count for _, count in scores)
    return sum(f * count for f, count in scores) / max(n_words, 1), n_words


def part2_char_gpt(ctx) -> Outcome:
    import time

    from tinytorch.milestones.data import load_shakespeare

    # Lowercased: capitals would be a second spelling of every letter to learn, and a one-minute model
    # is better spent on words (the real-word count ignores case either way).
    text = load_shakespeare().lower()
    vocabulary = set(words(text))
    start = time.perf_counter()
    model, tok, train_ids, val_ids, losses = train_char_gpt(ctx, text)
    train_seconds = time.perf_counter() - start
    baseline = unigram_loss(train_ids, val_ids, tok.vocab_size)
    val_sample = validation_sample(val_ids, block_size(len(text)))
    val = validation_loss(model, val_sample, CONTEXT)
    seen = len(losses) * BATCH * CONTEXT
    ctx.say(
        f"    corpus: 8 Shakespeare plays, lowercased: {len(text):,} characters, "
        f"{len(vocabulary):,} distinct words; character-level tokens ({tok.vocab_size} symbols, "
        "1.00 chars/token)",
        f"    every {VAL_EVERY}th block of {block_size(len(text)):,} characters is held out for validation "
        f"({len(val_ids):,} characters from every play; the loss is measured on the first half of each "
        f"block, {len(val_sample):,} characters)",
        f"    model: GPT(vocab {tok.vocab_size}, d {EMBED_DIM}, {LAYERS} layers, {HEADS} heads, "
        f"context {CONTEXT}, {ACTIVATION} MLP), {count_parameters(model):,} parameters",
        f"    training: {len(losses)} steps of {BATCH} windows x {CONTEXT} characters ({seen:,} characters, "
        f"{seen / len(train_ids):.1f} passes), Adam {PEAK_LR:g} -> {MIN_LR:g} cosine; {train_seconds:.1f} s",
        f"    validation {val:.3f} nats/char ({val / np.log(2):.2f} bits)  vs  unigram baseline "
        f"{baseline:.3f}  (uniform guessing: {np.log(tok.vocab_size):.3f})",
    )
    metrics = {
        "val_loss": val,
        "unigram_loss": baseline,
        "final_train_loss": float(np.mean(losses[-50:])),
        "steps": len(losses),
        "train_seconds": train_seconds,
        "corpus_chars": len(text),
        "vocab_size": tok.vocab_size,
        "chars_per_token": 1.0,
    }
    passed = val <= MAX_VAL_LOSS
    measured = [f"validation {val:.3f} nats/char"]
    for name, temperature in (("greedy", 0.0), ("t08", 0.8)):
        samples = sample_text(model, tok, PROMPTS, SAMPLE_CHARS, temperature, ctx.seed)
        fraction, n_words = pooled_real_words(samples, vocabulary)
        passed = passed and fraction >= MIN_REAL_WORDS
        label = "greedy" if temperature == 0 else f"temperature {temperature}"
        ctx.say(
            f"    {len(samples)} samples, {label}, one per speaker line ({', '.join(SPEAKERS)}): "
            f"{pct(fraction)} of their {n_words} words are real; the first:"
        )
        ctx.say(*("      | " + line for line in (PROMPTS[0] + samples[0]).splitlines()))
        metrics[f"real_words_{name}"] = fraction
        metrics[f"words_{name}"] = n_words
        metrics[f"sample_{name}"] = samples[0]
        measured.append(f"{pct(fraction)} real words ({label})")
    metrics["sample"] = metrics["sample_t08"]
    return Outcome(passed=passed, measured=", ".join(measured), metrics=metrics)


MILESTONE = Milestone(
    id="05",
    year=2017,
    title="The transformer era",
    tiers=("foundation", "architecture"),
    history="""
"Attention Is All You Need" (Vaswani et al., 2017) dropped recurrence: every position of a sequence looks
at every other through learned queries, keys and values, and all positions are computed at once.

Stacked into GPT (2018 onwards) and trained to predict the next token, the same block now writes text,
code and more. Here it first learns three algorithmic tasks, then writes words of Shakespeare's plays.
""",
    architecture="""
part 1: digits (B, 8) -> token + position embedding (32) -> 2 x [LayerNorm -> MultiHeadAttention(2 heads)
        -> residual -> LayerNorm -> MLP(GELU) -> residual] -> LayerNorm -> Linear(32, 10) per position
part 2: GPT: characters (B, 32) -> embeddings (64) -> 2 causal TransformerBlocks (4 heads, ReLU MLP as
        in the 2017 paper) -> logits (B, 32, 50): the next character of (lowercased) Shakespeare at every
        position
""",
    proves="Embeddings, multi-head attention, layer norm, the transformer block and GPT learn: attention "
    "routes information by position (reverse) and by content (sort), and a GPT trained for a minute "
    "spells mostly real English words and predicts an unseen play far better than character frequencies.",
    parts=(
        Part(
            1,
            "Attention challenges: copy, reverse, sort",
            "each task >= 99% exact-sequence accuracy on held-out sequences",
            part1_challenges,
        ),
        Part(
            2,
            "Character-level GPT on Shakespeare",
            f"validation <= {MAX_VAL_LOSS} nats/char and >= {MIN_REAL_WORDS:.0%} real words in "
            f"{len(PROMPTS)} {SAMPLE_CHARS}-character samples, greedy and at temperature 0.8",
            part2_char_gpt,
        ),
    ),
)
