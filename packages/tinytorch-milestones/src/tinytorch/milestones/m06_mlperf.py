"""Milestone 06 (2018): MLPerf-style systems work: profile, quantize, prune, benchmark, and cache."""

from __future__ import annotations

import copy
import time

import numpy as np
from tinytorch.milestones._common import accuracy, pct
from tinytorch.milestones.runner import Milestone, Outcome, Part


def fp32_weight_bytes(model) -> int:
    """Bytes of the float weight matrices of every Linear layer (biases excluded)."""
    from tinytorch.core.layers import Linear

    return int(sum(np.asarray(m.weight.data).nbytes for m in model.modules() if isinstance(m, Linear)))


def int8_weight_bytes(model) -> int:
    """Bytes of the int8 weight matrices the quantized layers actually store (scales and biases excluded)."""
    from tinytorch.optimization.quantization import QuantizedLinear

    return int(sum(m.weight_q.nbytes for m in model.modules() if isinstance(m, QuantizedLinear)))


def part1_pipeline(ctx) -> Outcome:
    from tinytorch.benchmarking.benchmark import Benchmark
    from tinytorch.core.optimizers import Adam
    from tinytorch.core.tensor import Tensor
    from tinytorch.milestones._common import train_classifier
    from tinytorch.milestones.m03_mlp import train_tinydigits_mlp
    from tinytorch.optimization.compression import MaskedOptimizer, magnitude_prune, measure_sparsity
    from tinytorch.optimization.quantization import quantize_model
    from tinytorch.profiling.profiler import Profiler

    ctx.say("    step 1/5: train the fp32 baseline (the MLP of milestone 03 on TinyDigits)")
    model, digits, _ = train_tinydigits_mlp(ctx)
    x_train = digits["x_train"].reshape(len(digits["x_train"]), -1).astype(np.float32)
    x_test = digits["x_test"].reshape(len(digits["x_test"]), -1).astype(np.float32)
    y_test = digits["y_test"]
    fp32_acc = accuracy(model, x_test, y_test)

    ctx.say("    step 2/5: profile")
    profiler = Profiler()
    params = profiler.count_parameters(model)
    flops = profiler.count_flops(model, (1, 64))
    ctx.say(
        f"      parameters {params:,}   forward FLOPs per image {flops:,}   "
        f"fp32 weights {fp32_weight_bytes(model):,} bytes"
    )
    layers = profiler.profile_forward_pass(model, Tensor(x_test[:64]))  # per layer, most expensive first
    columns = ("name", "type", "time_ms", "flops", "output_shape")
    table = Profiler.format_table([{c: row.get(c) for c in columns} for row in layers])
    ctx.say("      forward pass of a batch of 64, per layer (self time, most expensive first):")
    ctx.say(*("        " + line.rstrip() for line in table.splitlines()))

    ctx.say("    step 3/5: int8 quantization of every Linear (per-output-channel scales)")
    quantized = copy.deepcopy(model)
    report = quantize_model(quantized, calibration_data=x_train[:256])
    q_acc = accuracy(quantized, x_test, y_test)
    q_bytes = int8_weight_bytes(quantized)
    weight_ratio = fp32_weight_bytes(model) / q_bytes if q_bytes else 0.0
    ctx.say(
        f"      int8 weights {q_bytes:,} bytes ({weight_ratio:.2f}x smaller); whole model "
        f"{report.get('original_bytes', 0):,} -> {report.get('quantized_bytes', 0):,} bytes "
        f"({report.get('compression_ratio', 0):.2f}x with biases and scales)",
        f"      relative output error on 256 training images: "
        f"{report.get('relative_error', float('nan')):.2%}",
    )

    ctx.say(
        "    step 4/5: magnitude pruning to 50% sparsity, then 3 epochs of fine-tuning with the zeros held"
    )
    pruned = copy.deepcopy(model)
    magnitude_prune(pruned, 0.5)
    before_ft = accuracy(pruned, x_test, y_test)
    train_classifier(
        ctx,
        pruned,
        x_train,
        digits["y_train"],
        epochs=3,
        lr=1e-3,
        desc="fine-tuning",
        optimizer=MaskedOptimizer(Adam(pruned.parameters(), lr=1e-3), pruned),
    )
    sparsity = float(measure_sparsity(pruned))
    p_acc = accuracy(pruned, x_test, y_test)
    ctx.say(
        f"      test accuracy right after pruning {pct(before_ft)}, after fine-tuning {pct(p_acc)}; "
        f"sparsity {pct(sparsity)}"
    )

    ctx.say("    step 5/5: benchmark (Benchmark: latency of a batch of 64 test images, 30 runs)")
    rows = [
        ("fp32 baseline", model, fp32_acc, fp32_weight_bytes(model), 0.0),
        ("int8 quantized", quantized, q_acc, q_bytes, 0.0),
        ("50% pruned", pruned, p_acc, fp32_weight_bytes(pruned), sparsity),
    ]
    results = Benchmark({name: m for name, m, *_ in rows}, warmup=3, iterations=30).run_latency(
        Tensor(x_test[:64])
    )
    ctx.say(f"      {'model':<16}{'test acc':>9}{'weight bytes':>14}{'sparsity':>10}   median / p90 (ms)")
    latencies = {}
    for name, _, acc, nbytes, sp in rows:
        r = results[name]
        latencies[name] = float(r.median)
        ctx.say(f"      {name:<16}{pct(acc):>9}{nbytes:>14,}{pct(sp):>10}   {r.median:.3f} / {r.p90:.3f}")
    ctx.say(
        "      (NumPy has no int8 matmul: the int8 layers dequantize on the fly, so here they save memory,",
        "       not time; the pruned zeros are still multiplied: a sparse kernel would skip them)",
    )

    q_drop, p_drop = fp32_acc - q_acc, fp32_acc - p_acc
    passed = q_drop <= 0.01 and p_drop <= 0.01 and weight_ratio >= 4.0 and sparsity >= 0.495
    return Outcome(
        passed=passed,
        measured=f"fp32 {pct(fp32_acc)}, int8 {pct(q_acc)} ({weight_ratio:.1f}x smaller weights), "
        f"pruned {pct(p_acc)} at {pct(sparsity)} sparsity",
        metrics={
            "test_accuracy": fp32_acc,
            "fp32_test_accuracy": fp32_acc,
            "int8_test_accuracy": q_acc,
            "pruned_test_accuracy": p_acc,
            "pruned_before_finetune_accuracy": before_ft,
            "weight_compression": weight_ratio,
            "sparsity": sparsity,
            "parameters": params,
            "flops": flops,
            "model_compression": float(report.get("compression_ratio", 0.0)),
            "latency_ms": {k: round(v, 4) for k, v in latencies.items()},
        },
    )


NEW_TOKENS = 256
PROMPT_LEN = 10
EMBED_DIM = 256  # wide enough that the full recomputation is arithmetic-bound, as in real models
# Sequences decoded together, as a server batches requests. With one sequence a cached step is
# bound by reading every weight from memory (6 MB here) for a single token, which hides much of
# what the cache saves; benchmarks/ measures batch 1 as well.
BATCH = 4


def part2_kv_cache(ctx) -> Outcome:
    from tinytorch.generation.kv_cache import enable_kv_cache
    from tinytorch.models.transformer import GPT

    np.random.seed(ctx.seed)
    vocab = 65
    model = GPT(vocab, EMBED_DIM, num_layers=2, num_heads=4, max_seq_len=PROMPT_LEN + NEW_TOKENS)
    enable_kv_cache(model)  # Module 17: GPT.generate(use_cache=True) now has a cache to use
    prompt = np.random.default_rng(ctx.seed).integers(0, vocab, size=(BATCH, PROMPT_LEN))
    ctx.say(
        f"    GPT(vocab {vocab}, d {EMBED_DIM}, 2 layers, 4 heads), {BATCH} sequences decoded together, "
        f"{PROMPT_LEN}-token prompts, greedy decoding of {NEW_TOKENS} tokens each.",
        "    Without a cache every step re-runs attention over the whole prefix (quadratic work);",
        "    with it, each step computes keys and values for the new token only and reuses the rest.",
        "    (The weights are random: this part measures speed and exactness, not prose.)",
    )

    def timed(use_cache: bool):
        # CPU time of this process: `tito milestone` runs BLAS on one thread (the calling one), so
        # this is the work each path does, and a busy machine (other processes taking turns on
        # the cores) does not change the ratio as much as it changes wall-clock time.
        start = time.process_time()
        out = model.generate(prompt, max_new_tokens=NEW_TOKENS, temperature=0, use_cache=use_cache)
        return np.asarray(getattr(out, "data", out)), time.process_time() - start

    bar = ctx.progress(total=3, desc="generating")
    tokens_cached, t_cached = timed(True)  # first cached run: also warms up
    bar.update(1)
    tokens_full, t_full = timed(False)
    bar.update(1)
    _, t_cached2 = timed(True)
    bar.update(1)
    bar.close()
    t_cached = min(t_cached, t_cached2)  # best of two: the machine is shared, noise only slows things down
    same = tokens_full.shape == tokens_cached.shape and bool(np.array_equal(tokens_full, tokens_cached))
    speedup = t_full / t_cached
    ctx.say(
        f"      without cache: {t_full:7.3f} s CPU  ({BATCH * NEW_TOKENS / t_full:8.0f} tokens/s)",
        f"      with cache:    {t_cached:7.3f} s CPU  ({BATCH * NEW_TOKENS / t_cached:8.0f} tokens/s)",
        f"      identical tokens: {'yes' if same else 'NO'}   speedup {speedup:.1f}x",
    )
    return Outcome(
        passed=same and speedup >= 10.0,
        measured=f"{speedup:.1f}x faster, tokens {'identical' if same else 'DIFFERENT'}",
        metrics={
            "speedup": speedup,
            "same_tokens": same,
            "seconds_without_cache": t_full,
            "seconds_with_cache": t_cached,
            "tokens_per_second_cached": BATCH * NEW_TOKENS / t_cached,
            "batch": BATCH,
        },
    )


MILESTONE = Milestone(
    id="06",
    year=2018,
    title="MLPerf: the systems of machine learning",
    tiers=("foundation", "architecture", "optimization"),
    history="""
MLPerf (2018) gave the field shared benchmarks for how fast and how efficiently models train and run:
accuracy alone was no longer enough, the cost of reaching it had to be measured the same way by everyone.

Deployed models are made small and fast by measuring first (profiling), then trading a little precision
for a lot of memory (int8 quantization, pruning), and by not recomputing what can be remembered (the
key/value cache every modern text generator uses).
""",
    architecture="""
part 1: MLP 64-128-64-10 trained on TinyDigits -> profile (parameters, FLOPs)
        -> int8 copy (quantize_model) | 50% magnitude-pruned copy -> accuracy, size and latency table
part 2: GPT(vocab 65, d 256, 2 layers, 4 heads): generate 256 tokens greedily, with and without KVCache
""",
    proves="Profiling, quantization, pruning, benchmarking and the KV cache deliver real, measured savings "
    "while preserving the model's answers.",
    parts=(
        Part(
            1,
            "Optimization pipeline: profile, int8 quantize, prune, benchmark",
            "int8 and 50%-pruned models within 1 point of fp32 test accuracy; int8 weights >= 4x smaller",
            part1_pipeline,
        ),
        Part(
            2,
            "GPT generation with and without the KV cache",
            f"identical tokens and >= 10x faster with the cache at {NEW_TOKENS} tokens",
            part2_kv_cache,
        ),
    ),
)
