"""``tito capstone``: train the TinyGPT of Module 20 on Shakespeare, resume it, sample from it.

* ``tito capstone train --minutes N``: train (or continue training) a TinyGPT
  for a total of N minutes, with a progress bar on stderr, a validation
  measurement every minute, and a checkpoint (``--checkpoint``, default
  ``tinygpt.npz``) saved every minute, on Ctrl-C and at the end. Run the same
  command again to continue where it stopped; ``--fresh`` starts over. At the
  end: validation nats/char on held-out passages (milestone 05's split and
  sliding-window loss), eight 500-character samples greedy and eight at
  temperature 0.8 (after milestone 05's speaker lines), and the share of their
  words that occur in the corpus. ``--plot FILE.png`` writes the curves (and
  ``FILE.json`` with the numbers). ``--steps N`` trains a fixed number of steps
  instead (or as well: whichever budget is reached first); ``--clock cpu``
  counts the process's CPU time instead of elapsed time (a busy shared machine).
* ``tito capstone generate --prompt TEXT``: sample from the checkpoint
  (``--temperature``, ``--top-k``, ``--length``, ``--seed``).

The learning rate warms up over the first steps, then follows a cosine from
``--lr`` to a tenth of it over the run's budget, measured in training time
(or steps). Resuming keeps the position in that schedule, the optimizer's
moments, the step count and the batch sampler's state, so an interrupted run
continues as if it had not stopped. Raising ``--minutes`` on resume stretches
the schedule (the learning rate rises again a little).

Exit codes: 0 done, 1 an error (message on stderr), 2 bad arguments, 130 interrupted (checkpoint saved).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import signal
import sys
import time
from pathlib import Path

DEFAULT_CHECKPOINT = "tinygpt.npz"
# The capstone model: twice as wide, with twice the context of milestone 05's (d 64, 2 layers, 32): four
# times the parameters, about what ten minutes on one core can train (deeper learns less per second).
MODEL_DEFAULTS = {"embed_dim": 128, "layers": 2, "heads": 4, "context": 64}
TRAIN_DEFAULTS = {
    "batch_size": 32,
    "lr": 3e-3,
    "tokenizer": "char",
    "bpe_vocab": 512,
    "corpus": "shakespeare",
    "lowercase": False,
    "clock": "wall",
}
WARMUP_STEPS = 100
MIN_LR_RATIO = 0.1  # the cosine ends at lr / 10
EVAL_CHARS = 20_000  # the periodic validation reads this much of the validation text (the final one all)
SAMPLE_CHARS = 500
EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class CapstoneError(Exception):
    """A problem the user can fix; its message is printed as one line (no traceback)."""


# ----------------------------------------------------------------------------- arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "capstone",
        help="train the TinyGPT capstone (Module 20) on Shakespeare and sample from it",
        description="The TinyGPT capstone: train a GPT on the shipped Shakespeare corpus with a resumable "
        "checkpoint, then generate text from it.",
    )
    parser.set_defaults(func=lambda args: (parser.print_help(), EXIT_USAGE)[1], parser=parser)
    sub = parser.add_subparsers(dest="capstone_command", metavar="ACTION")

    train = sub.add_parser(
        "train",
        help="train (or resume training) for N minutes; checkpoint, progress bar, curves",
        description="Train TinyGPT on a corpus for a time (--minutes) or step (--steps) budget. A checkpoint "
        "that exists is resumed (same corpus and model options) unless --fresh is given.",
    )
    budget = train.add_argument_group("budget (at least one)")
    budget.add_argument(
        "--minutes", type=float, default=None, help="total training time of the run, in minutes"
    )
    budget.add_argument("--steps", type=int, default=None, help="total optimizer steps of the run")
    budget.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default=None,
        help="what --minutes counts: elapsed time (default) or this process's CPU time, which on a busy "
        "shared machine measures the work an idle one would do in that time",
    )
    train.add_argument(
        "--checkpoint", default=DEFAULT_CHECKPOINT, help=f"checkpoint file (default {DEFAULT_CHECKPOINT})"
    )
    train.add_argument("--fresh", action="store_true", help="start a new run even if the checkpoint exists")
    train.add_argument(
        "--corpus",
        default=None,
        metavar="NAME|FILE",
        help="'shakespeare' (default), 'tinytorch' (the project's own corpus) or a UTF-8 text file",
    )
    train.add_argument(
        "--tokenizer",
        choices=("char", "bpe"),
        default=None,
        help="character-level (default) or byte-level BPE",
    )
    train.add_argument("--bpe-vocab", type=int, default=None, help="BPE vocabulary size (default 512)")
    train.add_argument(
        "--lowercase",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="train on the lowercased text, as milestone 05 does (default: the text as it is)",
    )
    train.add_argument(
        "--embed-dim", type=int, default=None, help=f"model width (default {MODEL_DEFAULTS['embed_dim']})"
    )
    train.add_argument(
        "--layers", type=int, default=None, help=f"transformer blocks (default {MODEL_DEFAULTS['layers']})"
    )
    train.add_argument(
        "--heads", type=int, default=None, help=f"attention heads (default {MODEL_DEFAULTS['heads']})"
    )
    train.add_argument(
        "--context", type=int, default=None, help=f"context in tokens (default {MODEL_DEFAULTS['context']})"
    )
    train.add_argument("--batch-size", type=int, default=None, help="windows per step (default 32)")
    train.add_argument("--lr", type=float, default=None, help="peak learning rate (default 3e-3)")
    train.add_argument("--seed", type=int, default=0, help="seed of a new run (default 0)")
    train.add_argument(
        "--eval-every",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="validation measurement interval (default 60; 0 = every step)",
    )
    train.add_argument(
        "--save-every",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="checkpoint interval (default 60; 0 = every step)",
    )
    train.add_argument(
        "--plot",
        default=None,
        metavar="FILE.png",
        help="write the curves as PNG (needs matplotlib) and their numbers as FILE.json",
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=cmd_train, parser=train)

    gen = sub.add_parser(
        "generate",
        help="sample text from a trained checkpoint",
        description="Continue a prompt with the checkpoint's model.",
    )
    gen.add_argument("--prompt", required=True, help="the text to continue")
    gen.add_argument(
        "--checkpoint", default=DEFAULT_CHECKPOINT, help=f"checkpoint file (default {DEFAULT_CHECKPOINT})"
    )
    gen.add_argument("--length", type=int, default=SAMPLE_CHARS, help="characters to generate (default 500)")
    gen.add_argument(
        "--temperature", type=float, default=0.8, help="0 = greedy; higher = more random (default 0.8)"
    )
    gen.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens only")
    gen.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    gen.set_defaults(func=cmd_generate, parser=gen)

    for p in (parser, train, gen):
        p.error = _one_line_error(p)  # argparse's usage dump becomes one line


def _one_line_error(parser):
    def error(message: str):
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)

    return error


def _check_positive(name: str, value, *, integer: bool = False, allow_zero: bool = False) -> None:
    if value is None:
        return
    bad = not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero)
    if bad:
        kind = "an integer" if integer else "a number"
        limit = ">= 0" if allow_zero else "> 0"
        raise CapstoneError(f"{name} must be {kind} {limit}, got {value}")


# ----------------------------------------------------------------------------- shared helpers


def _require_tiers() -> None:
    from tinytorch.milestones import tiers

    missing = [t for t in ("foundation", "architecture", "optimization") if not tiers.is_installed(t)]
    if missing:
        raise CapstoneError("the capstone needs " + "; ".join(tiers.install_hint(t) for t in missing))


def _load_corpus(spec: str) -> tuple[str, str]:
    """(text, label) of a shipped corpus name or a UTF-8 text file."""
    from tinytorch.milestones.data.datasets import TEXT_CORPORA, load_text

    if spec in TEXT_CORPORA:
        return load_text(spec), spec
    path = Path(spec)
    if not path.is_file():
        raise CapstoneError(
            f"--corpus: {spec!r} is neither a shipped corpus ({', '.join(TEXT_CORPORA)}) nor a file"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CapstoneError(f"--corpus: cannot read {path} as UTF-8 text ({exc})") from None
    return text, str(path)


def _load_checkpoint(path: str):
    from tinytorch.applications.tinygpt import CheckpointError, TinyGPT

    try:
        return TinyGPT.load(path)
    except CheckpointError as exc:
        hint = "; train one with `tito capstone train --minutes 10`" if not os.path.exists(path) else ""
        raise CapstoneError(f"{exc}{hint}") from None


def _tokens_for(gpt, n_chars: int) -> int:
    """Tokens to generate for at least ``n_chars`` characters (BPE tokens stand for several characters)."""
    if gpt.tokenizer_kind == "char":
        return n_chars
    return int(n_chars / max(gpt.extra.get("chars_per_token", 1.0), 1.0) * 1.3) + 16


def _sample(gpt, prompt: str, n_chars: int, temperature: float, top_k: int | None, seed: int) -> str:
    """``n_chars`` characters generated after ``prompt`` (the prompt not included)."""
    tokens = _tokens_for(gpt, n_chars)
    try:
        text = gpt.generate(prompt, max_new_tokens=tokens, temperature=temperature, top_k=top_k, seed=seed)
    except ValueError as exc:
        raise CapstoneError(f"--prompt: {exc}") from None
    return text[len(prompt) : len(prompt) + n_chars]


def _samples(gpt, prompts: list[str], n_chars: int, temperature: float, seed: int) -> list[str]:
    """One sample of ``n_chars`` characters after each of ``prompts`` (known-good), batched (milestone 05)."""
    from tinytorch.milestones.m05_transformer import sample_text

    texts = sample_text(gpt.model, gpt.tokenizer, prompts, _tokens_for(gpt, n_chars), temperature, seed)
    return [t[:n_chars] for t in texts]


def _real_words(samples: list[str], corpus_text: str) -> tuple[float, int]:
    """Share of the words of all ``samples`` that occur in the corpus (milestone 05's measure), word count."""
    from tinytorch.milestones.m05_transformer import pooled_real_words, words

    return pooled_real_words(samples, set(words(corpus_text)))


def _run(func, args) -> int:
    try:
        return func(args)
    except CapstoneError as exc:
        print(f"tito capstone {args.capstone_command}: {exc}", file=sys.stderr)
        return EXIT_ERROR


# ----------------------------------------------------------------------------- train


def learning_rate(progress: float, step: int, peak: float) -> float:
    """Warm-up over ``WARMUP_STEPS`` steps, times a cosine from ``peak`` to ``peak * MIN_LR_RATIO``.

    ``progress`` in [0, 1] is the fraction of the run's budget used (time or steps).
    """
    warm = min(1.0, (step + 1) / WARMUP_STEPS)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
    return warm * peak * (MIN_LR_RATIO + (1.0 - MIN_LR_RATIO) * cosine)


def cmd_train(args) -> int:
    return _run(_train, args)


def _options(args, saved: dict | None) -> dict:
    """Model and training options: explicit arguments, else the checkpoint's, else the defaults.

    On resume an explicit option that differs from the checkpoint's is an error.
    """
    explicit = {
        "embed_dim": args.embed_dim,
        "layers": args.layers,
        "heads": args.heads,
        "context": args.context,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "tokenizer": args.tokenizer,
        "bpe_vocab": args.bpe_vocab,
        "corpus": args.corpus,
        "lowercase": args.lowercase,
        "clock": args.clock,
    }
    defaults = {**MODEL_DEFAULTS, **TRAIN_DEFAULTS}
    if saved is None:
        return {k: (v if v is not None else defaults[k]) for k, v in explicit.items()}
    conflicts = [
        f"--{k.replace('_', '-')} {v} (checkpoint: {saved[k]})"
        for k, v in explicit.items()
        if v is not None and k in saved and v != saved[k]
    ]
    if conflicts:
        raise CapstoneError(
            f"{args.checkpoint} was trained with other options: {', '.join(conflicts)}; "
            "drop them to resume, or pass --fresh to start a new run"
        )
    return {k: saved.get(k, defaults[k]) for k in explicit}


def _validate_train_args(args) -> None:
    if args.minutes is None and args.steps is None:
        raise CapstoneError("give a budget: --minutes N (training time) and/or --steps N")
    _check_positive("--minutes", args.minutes)
    _check_positive("--steps", args.steps, integer=True)
    _check_positive("--lr", args.lr)
    _check_positive("--eval-every", args.eval_every, allow_zero=True)
    _check_positive("--save-every", args.save_every, allow_zero=True)
    for name in ("embed_dim", "layers", "heads", "context", "batch_size"):
        _check_positive(f"--{name.replace('_', '-')}", getattr(args, name), integer=True)
    if args.bpe_vocab is not None and args.bpe_vocab < 257:
        raise CapstoneError(
            f"--bpe-vocab must be > 256 (the byte alphabet plus merges), got {args.bpe_vocab}"
        )
    if args.plot is not None and not args.plot.lower().endswith(".png"):
        raise CapstoneError(f"--plot: expected a .png file name, got {args.plot!r}")
    _check_checkpoint_path(args.checkpoint)


def _check_checkpoint_path(path: str) -> None:
    """Refuse a checkpoint path that can never be written, before any training time is spent."""
    where = Path(path)
    if where.is_dir():
        raise CapstoneError(
            f"--checkpoint {path} is a directory; give a file name such as {where / 'tinygpt.npz'}"
        )
    if not where.resolve().parent.is_dir():
        raise CapstoneError(f"--checkpoint {path}: the directory {where.resolve().parent} does not exist")


def _train(args) -> int:
    _validate_train_args(args)
    _require_tiers()
    from tinytorch.applications.tinygpt import TinyGPT

    resume = os.path.exists(args.checkpoint) and not args.fresh
    gpt = _load_checkpoint(args.checkpoint) if resume else None
    opts = _options(args, gpt.extra.get("options") if gpt else None)
    text, corpus_label = _load_corpus(opts["corpus"])
    if opts["lowercase"]:
        text = text.lower()
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    from tinytorch.milestones.m05_transformer import VAL_EVERY, split_corpus

    try:  # milestone 05's split: every 10th block (10,000 characters at most) validates
        train_text, val_text = split_corpus(text)
    except ValueError:
        train_text = val_text = ""
    if len(val_text) < 2 * opts["context"]:
        raise CapstoneError(
            f"--corpus: {len(text):,} characters are too few for a context of {opts['context']}"
        )

    if gpt is not None:
        if gpt.extra.get("corpus_sha256") != digest:
            raise CapstoneError(
                f"{args.checkpoint} was trained on another text than {corpus_label!r} (SHA-256 differs); "
                "pass --fresh to start a new run, or --checkpoint to use another file"
            )
        train_ids = gpt.encode(train_text)
        state = gpt.extra
        state["options"] = opts  # the same, plus any option added since the checkpoint was written
        what = f"resumed at step {gpt.step:,} after {_minutes_text(state)}"
    else:
        if opts["embed_dim"] % opts["heads"]:
            raise CapstoneError(
                f"--embed-dim {opts['embed_dim']} must be divisible by --heads {opts['heads']}"
            )
        gpt = TinyGPT(
            vocab_size=opts["bpe_vocab"],
            embed_dim=opts["embed_dim"],
            num_layers=opts["layers"],
            num_heads=opts["heads"],
            max_seq_len=opts["context"],
            seed=args.seed,
            tokenizer=opts["tokenizer"],
        )
        train_ids = gpt.build(train_text, betas=(0.9, 0.99))
        if train_ids.size < opts["context"] + 2:
            raise CapstoneError(f"--corpus: too short for a context of {opts['context']} tokens")
        state = gpt.extra = {
            "options": opts,
            "corpus": corpus_label,
            "corpus_sha256": digest,
            "chars_per_token": len(train_text) / train_ids.size,
            "trained_seconds": 0.0,
            "history": [],
        }
        what = "new run"
    state["budget_seconds"] = None if args.minutes is None else 60.0 * args.minutes
    state["budget_steps"] = args.steps
    val_ids = gpt.encode(val_text)
    probe_ids = gpt.encode(val_text[:EVAL_CHARS])

    from tinytorch.milestones._common import count_parameters

    ratio = state["chars_per_token"]
    print(
        f"TinyGPT capstone: corpus {corpus_label}, {len(text):,} characters "
        f"({len(train_text):,} train, {len(val_text):,} validation: every {VAL_EVERY}th of 100+ blocks)"
    )
    print(
        f"  tokenizer: {gpt.tokenizer_kind}, {gpt.tokenizer.vocab_size} tokens, "
        f"{ratio:.2f} characters per token"
    )
    print(
        f"  model: GPT(d {opts['embed_dim']}, {opts['layers']} layers, {opts['heads']} heads, context "
        f"{opts['context']}), {count_parameters(gpt.model):,} parameters; batch {opts['batch_size']}, "
        f"Adam lr {opts['lr']:g} cosine to {opts['lr'] * MIN_LR_RATIO:g}"
    )
    print(f"  checkpoint: {args.checkpoint} ({what}); budget: {_budget_text(state)}", flush=True)

    if _train_loop(gpt, args, opts, state, train_ids, probe_ids) == EXIT_INTERRUPTED:
        return EXIT_INTERRUPTED
    from tinytorch.milestones.runner import blas_threads

    with blas_threads():
        return _final_report(gpt, args, state, text, (train_text, val_text), val_ids, ratio)


def _minutes_text(state: dict) -> str:
    wall = state.get("wall_seconds", 0.0) / 60
    if state["options"]["clock"] == "cpu":
        return f"{state['trained_seconds'] / 60:.1f} CPU min ({wall:.1f} min elapsed)"
    return f"{state['trained_seconds'] / 60:.1f} min"


def _budget_text(state: dict) -> str:
    parts = []
    if state["budget_seconds"] is not None:
        cpu = " of CPU time" if state["options"]["clock"] == "cpu" else ""
        parts.append(f"{state['budget_seconds'] / 60:g} min{cpu}")
    if state["budget_steps"] is not None:
        parts.append(f"{state['budget_steps']:,} steps")
    return " or ".join(parts)


def _progress(state: dict, step: int, elapsed: float) -> float:
    fractions = []
    if state["budget_seconds"] is not None:
        fractions.append(elapsed / state["budget_seconds"])
    if state["budget_steps"] is not None:
        fractions.append(step / state["budget_steps"])
    return max(fractions)


def _save(gpt, args, state: dict, elapsed: float) -> None:
    state["trained_seconds"] = elapsed
    try:
        gpt.save(args.checkpoint)
    except OSError as exc:
        raise CapstoneError(f"cannot write the checkpoint {args.checkpoint}: {exc}") from None


class _StopRequest:
    """Ctrl-C during training: finish the current step, save, stop (a second Ctrl-C aborts at once).

    A step interrupted half-way (weights updated, step count not) would save an
    inconsistent checkpoint, so the first SIGINT only raises a flag that the
    loop checks between steps.
    """

    def __init__(self):
        self.requested = False
        self.previous = None

    def __enter__(self):
        try:
            self.previous = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread: keep the default behaviour
            self.previous = None
        return self

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


def _train_loop(gpt, args, opts: dict, state: dict, train_ids, probe_ids) -> int:
    from tinytorch.milestones.runner import blas_threads
    from tqdm.auto import tqdm

    clock = time.process_time if opts["clock"] == "cpu" else time.perf_counter  # what --minutes counts
    by_time = state["budget_seconds"] is not None
    total = state["budget_seconds"] if by_time else state["budget_steps"]
    base = state["trained_seconds"]
    start = clock()
    wall_start, wall_base = time.perf_counter(), state.get("wall_seconds", 0.0)
    last_eval = last_save = start
    elapsed = base
    recent: list[float] = []
    if _progress(state, gpt.step, elapsed) >= 1:
        print(
            f"  the run already used its budget ({_minutes_text(state)}, {gpt.step:,} steps): "
            "nothing to train; raise --minutes or --steps to train longer",
            flush=True,
        )
        return 0
    bar = tqdm(
        total=round(total, 1) if by_time else total,
        initial=round(base, 1) if by_time else gpt.step,
        unit="s" if by_time else "step",
        file=sys.stderr,
        disable=args.no_progress,
        ncols=96,
        mininterval=0.5 if sys.stderr.isatty() else 30.0,
        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} {unit} [{elapsed}{postfix}]",
    )
    shown = bar.n
    with blas_threads(), _StopRequest() as stop:
        while _progress(state, gpt.step, elapsed) < 1 and not stop.requested:
            lr = learning_rate(_progress(state, gpt.step, elapsed), gpt.step, opts["lr"])
            recent.append(gpt.train_step(train_ids, opts["batch_size"], opts["context"], lr))
            now = clock()
            state["wall_seconds"] = wall_base + (time.perf_counter() - wall_start)
            if now - last_eval >= args.eval_every:
                _record(gpt, state, recent, probe_ids, base + (now - start))
                recent, last_eval = [], clock()
                h = state["history"][-1]
                bar.set_postfix_str(
                    f"step {gpt.step} loss {h['train_loss']:.3f} val {h['val_nats_per_char']:.3f}",
                    refresh=False,
                )
            if now - last_save >= args.save_every:
                _save(gpt, args, state, base + (clock() - start))
                last_save = clock()
            elapsed = base + (clock() - start)
            position = min(elapsed, total) if by_time else min(gpt.step, total)
            bar.update(position - shown)
            shown = position
        bar.close()
        if stop.requested:
            _save(gpt, args, state, elapsed)
            print(
                f"\ninterrupted at step {gpt.step:,}: checkpoint saved to {args.checkpoint}; "
                "run the same command to continue",
                file=sys.stderr,
            )
            return EXIT_INTERRUPTED
        if recent:
            _record(gpt, state, recent, probe_ids, elapsed)
        _save(gpt, args, state, elapsed)
    return 0


def _record(gpt, state: dict, recent: list[float], probe_ids, elapsed: float) -> None:
    """Append one point to the curves: mean training loss since the last point, validation on the probe."""
    val = gpt.evaluate(probe_ids)
    ratio = state["chars_per_token"]
    state["history"].append(
        {
            "step": gpt.step,
            "minutes": round(elapsed / 60, 4),  # of the run's clock (--clock)
            "wall_minutes": round(state.get("wall_seconds", 0.0) / 60, 4),
            "train_loss": round(sum(recent) / len(recent), 5),  # nats per token, mean since the last point
            "train_nats_per_char": round(sum(recent) / len(recent) / ratio, 5),
            "val_nats_per_char": round(val["nats_per_char"], 5),  # on the first EVAL_CHARS of validation
        }
    )


def _unigram_nats(train_text: str, val_text: str) -> float:
    """The validation text's cross-entropy under the training text's character frequencies (add-one)."""
    import numpy as np
    from tinytorch.milestones.m05_transformer import unigram_loss

    alphabet = {c: i for i, c in enumerate(sorted(set(train_text) | set(val_text)))}

    def encode(t: str) -> np.ndarray:
        return np.fromiter(map(alphabet.__getitem__, t), dtype=np.int64, count=len(t))

    return unigram_loss(encode(train_text), encode(val_text), len(alphabet))


def _final_report(gpt, args, state: dict, text: str, split: tuple, val_ids, ratio: float) -> int:
    val = gpt.evaluate(val_ids)
    baseline = _unigram_nats(*split)
    state["final"] = {
        "step": gpt.step,
        "minutes": round(state["trained_seconds"] / 60, 3),
        "clock": state["options"]["clock"],
        "wall_minutes": round(state.get("wall_seconds", 0.0) / 60, 3),
        "val_nats_per_char": val["nats_per_char"],
        "val_bits_per_char": val["nats_per_char"] / math.log(2),
        "unigram_nats_per_char": baseline,
        "chars_per_token": ratio,
    }
    print(
        f"\nstep {gpt.step:,} after {_minutes_text(state)}: validation "
        f"{val['nats_per_char']:.3f} nats/char ({val['nats_per_char'] / math.log(2):.2f} bits; "
        f"unigram baseline {baseline:.3f}) on all {val['chars']:,} validation characters"
    )
    prompts = _speaker_prompts(gpt, split[0])
    for name, temperature in (("greedy", 0.0), ("t08", 0.8)):
        samples = _samples(gpt, prompts, SAMPLE_CHARS, temperature, args.seed)
        fraction, n_words = _real_words(samples, text)
        state["final"][f"real_words_{name}"] = fraction
        state["final"][f"sample_{name}"] = prompts[0] + samples[0]
        label = "greedy" if temperature == 0 else f"temperature {temperature}"
        print(
            f"\n{len(samples)} samples, {label}, after {', '.join(repr(p) for p in dict.fromkeys(prompts))}: "
            f"{100 * fraction:.1f}% of their {n_words} words occur in the corpus; the first:"
        )
        print("\n".join("  | " + line for line in (prompts[0] + samples[0]).splitlines()))
    _save(gpt, args, state, state["trained_seconds"])
    print(f"\ncheckpoint: {args.checkpoint}  (sample more: tito capstone generate --prompt TEXT)")
    if args.plot:
        _write_curves(args.plot, state)
    return 0


def _speaker_prompts(gpt, train_text: str) -> list[str]:
    """Milestone 05's eight speaker lines as the training text writes them ("Romeo.\n", "ARIEL.\n", ...).

    A text without all of them (another corpus) gets eight newlines instead.
    """
    from tinytorch.milestones.m05_transformer import SPEAKERS

    prompts = []
    for name in SPEAKERS:
        found = re.search(rf"\n\n({re.escape(name)}\.)\n", train_text, re.IGNORECASE)
        prompts.append(found.group(1) + "\n" if found else None)
    if None in prompts:
        prompts = ["\n"] * len(SPEAKERS)
    return prompts


def _write_curves(png: str, state: dict) -> None:
    from tinytorch.milestones.runner import matplotlib_available

    data = {
        "options": state["options"],
        "corpus": state["corpus"],
        "corpus_sha256": state["corpus_sha256"],
        "history": state["history"],
        "final": state["final"],
    }
    json_path = str(Path(png).with_suffix(".json"))
    Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(json_path).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    if not matplotlib_available():
        print(
            f"--plot: matplotlib is not installed, so no PNG was written "
            f"(pip install 'tinytorch-milestones[plot]'); the curve data is in {json_path}"
        )
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = state["history"]
    minutes = [p["minutes"] for p in h]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ax.plot(minutes, [p["train_nats_per_char"] for p in h], label="training (mean since last point)")
    ax.plot(
        minutes,
        [p["val_nats_per_char"] for p in h],
        marker="o",
        ms=3,
        label=f"validation (first {EVAL_CHARS:,} characters)",
    )
    final = state["final"]
    ax.axhline(
        final["val_nats_per_char"],
        color="gray",
        ls=":",
        lw=1,
        label=f"final validation, all of it: {final['val_nats_per_char']:.3f}",
    )
    ax.set_xlabel(
        "training time (CPU minutes)" if state["options"]["clock"] == "cpu" else "training time (minutes)"
    )
    ax.set_ylabel("nats per character")
    o = state["options"]
    ax.set_title(
        f"TinyGPT on {state['corpus']}: d {o['embed_dim']}, {o['layers']} layers, "
        f"context {o['context']}, {o['tokenizer']} tokens",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)
    print(f"curves: {png} and {json_path}")


# ----------------------------------------------------------------------------- generate


def cmd_generate(args) -> int:
    return _run(_generate, args)


def _generate(args) -> int:
    _check_positive("--length", args.length, integer=True)
    _check_positive("--temperature", args.temperature, allow_zero=True)
    _check_positive("--top-k", args.top_k, integer=True)
    if not args.prompt:
        raise CapstoneError("--prompt must not be empty")
    _check_checkpoint_path(args.checkpoint)
    _require_tiers()
    gpt = _load_checkpoint(args.checkpoint)
    sample = _sample(gpt, args.prompt, args.length, args.temperature, args.top_k, args.seed)
    print(args.prompt + sample)
    return 0
