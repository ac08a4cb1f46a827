"""The parent process: fresh child per measurement, threads pinned, interleaved rounds, tables.

Method (what ``python benchmarks/run.py`` does):

* **Fresh processes.** Every (workload, implementation) measurement is its own
  ``python -m ttbench.child`` process, so nothing one measurement did (a warmed
  allocator, loaded kernels, cached buffers) helps another: each number is what
  a user gets who starts a script and trains.
* **Same threads for everyone, set before import.** The parent puts
  ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS`` into the
  child's environment (BLAS and OpenMP read them when they load), and the
  PyTorch child also calls ``torch.set_num_threads``. Each child reports the
  thread counts it actually ran with (threadpoolctl, ``torch.get_num_threads``).
* **Clocks.** Every step is timed with the wall clock and with the process's CPU
  clock. Wall time is the default; CPU time is offered only for one thread (it
  adds up every thread of a process, and it leaves out the time a busy machine
  kept the process waiting, which makes it the steadier view on a shared machine).
* **Steady state and first steps.** A child runs at least ``--steps`` training
  steps (30, and at least one second; past ``--max-seconds`` it stops once it
  has 12); *first 10* is the mean of steps 1-10, *steady* the median of the last
  half of the steps.
* **Interleaved rounds.** Round ``r`` runs the implementations of each workload
  in an order rotated by ``r`` (A B C D, B C D A, ...), so a burst of load from
  other users hits every column alike; tables show the median over rounds and
  the min-max spread.
* **Same numbers.** All implementations start from the same seeded weights and
  batch; the parent checks that their first losses agree, that every
  parameter's gradient norm after the first step agrees, and that generation
  returns the same tokens.
* **Memory.** Each child reports its peak resident set size and the peak net
  of what it held after its imports (``workload_mb``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from ttbench.child import CACHED_GEN_IMPL, GEN_IMPLS, GENERATION, TRAIN_IMPLS, TRAINING

HERE = Path(__file__).resolve().parent.parent  # benchmarks/
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
WORKLOADS = (*TRAINING, *GENERATION)
# Module 18's opt-in path applies where it swaps something in: Linear+ReLU, convolutions, GELU.
ACCELERATED_APPLIES = {"mlp": True, "lenet": True, "cifar_cnn": True, "gpt": True}
MEMORY_GEN_IMPLS = tuple(CACHED_GEN_IMPL[i] for i in TRAIN_IMPLS)
DESCRIPTIONS = {
    "mlp": "MLP 784-256-128-10, batch 64, SGD step",
    "lenet": "LeNet-5, batch 32 of 1x28x28, SGD step",
    "cifar_cnn": "CNN conv3(3->32) conv3(32->64) 4096-128-10, batch 32 of 3x32x32, SGD step",
    "gpt": "GPT vocab 65, d 128, 4 heads, 2 layers, seq 64, batch 16, Adam step",
    "generate": "GPT generation, 256 tokens after a 10-token prompt, batch 1, greedy",
}


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def child_env(threads: int, malloc: str | None = None) -> dict:
    env = dict(os.environ)
    for name in THREAD_VARIABLES:
        env[name] = str(threads)  # read by BLAS / OpenMP when they load in the child
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), *filter(None, [env.get("PYTHONPATH")])])
    if malloc:
        env["TINYTORCH_MALLOC"] = malloc
    return env


def run_child(spec: dict, threads: int, malloc: str | None = None, timeout: float = 900) -> dict:
    """Run one measurement in a fresh process; returns its JSON report (``error`` on failure)."""
    cmd = [sys.executable, "-m", "ttbench.child", json.dumps(spec)]
    load = load_average()
    done = subprocess.run(
        cmd, env=child_env(threads, malloc), capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-3:]
        return {**spec, "error": " | ".join(tail) or f"exit code {done.returncode}", "load_before": load}
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["load_before"] = load
    out["threads_requested"] = threads
    return out


def rotated(items: list, r: int) -> list:
    k = r % len(items)
    return items[k:] + items[:k]


# ----------------------------------------------------------------------------- summaries


def _median_spread(values: list) -> dict | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def training_numbers(run: dict, clock: str) -> dict:
    """first step, mean of the first 10, median of the last half (seconds) of one child's steps."""
    s = run[f"{clock}_s"]
    half = s[len(s) // 2 :]
    return {"first": s[0], "first10": sum(s[:10]) / len(s[:10]), "steady": statistics.median(half)}


def summarize(runs: list, clock: str) -> dict:
    """{(threads, workload, impl): summary over rounds} from the raw child reports."""
    groups: dict = {}
    for run in runs:
        if "error" in run:
            continue
        groups.setdefault((run["threads_requested"], run["workload"], run["impl"]), []).append(run)
    out = {}
    for key, rs in groups.items():
        _, workload, _ = key
        entry = {
            "peak_rss_mb": _median_spread([r["peak_rss_mb"] for r in rs]),
            "workload_mb": _median_spread([r.get("workload_mb") for r in rs]),
            "load": _median_spread([r.get("load_before") for r in rs]),
            "rounds": len(rs),
        }
        if workload in TRAINING:
            nums = [training_numbers(r, clock) for r in rs]
            for k in ("first", "first10", "steady"):
                entry[k + "_ms"] = _median_spread([1e3 * n[k] for n in nums])
            entry["first_loss"] = rs[0]["first_loss"]
            entry["grad_norms"] = rs[0]["grad_norms"]
            entry["steps"] = len(rs[0][f"{clock}_s"])
        else:
            ntok = rs[0]["config"]["tokens"]
            steady = [statistics.median(r[f"{clock}_s"][1:] or r[f"{clock}_s"]) for r in rs]
            entry["ms"] = _median_spread([1e3 * s for s in steady])
            entry["first_ms"] = _median_spread([1e3 * r[f"{clock}_s"][0] for r in rs])
            entry["tok_s"] = _median_spread([ntok / s for s in steady])
            entry["tokens"] = rs[0]["tokens"]
            entry["tokens_stable"] = all(r["tokens"] == rs[0]["tokens"] for r in rs)
        out[key] = entry
    return out


def checks(summary: dict, prompt: int = 10) -> dict:
    """Agreement of the implementations: first losses, gradient norms, generated tokens."""
    result = {}
    for threads, workload in sorted({(t, w) for t, w, _ in summary}):
        impls = {i: e for (t, w, i), e in summary.items() if t == threads and w == workload}
        if workload in TRAINING:
            ref = impls.get("numpy")
            if ref is None:
                continue
            bad = []
            for impl, e in impls.items():
                if abs(e["first_loss"] - ref["first_loss"]) > 1e-4 * max(1.0, abs(ref["first_loss"])):
                    bad.append(f"{impl}: first loss {e['first_loss']:.6f} vs floor {ref['first_loss']:.6f}")
                for name, g in ref["grad_norms"].items():
                    h = e["grad_norms"].get(name)
                    if h is None or abs(h - g) > 1e-3 * max(abs(g), 1e-6) + 1e-7:
                        bad.append(f"{impl}: gradient norm of {name} {h} vs floor {g}")
            result[f"{workload}/{threads}"] = {"agree": not bad, "problems": bad[:5]}
        else:
            toks = {i: e["tokens"] for i, e in impls.items()}
            tt = [toks[i] for i in ("tinytorch_cached", "tinytorch_uncached", "fused") if i in toks]
            same_tt = all(t == tt[0] for t in tt)
            ref = toks.get("numpy_cached")
            prefix = {}
            for i, t in toks.items():
                n = 0
                while ref is not None and n < min(len(t), len(ref)) and t[n] == ref[n]:
                    n += 1
                prefix[i] = n
            need = prompt + 16  # far into a greedy sequence a float32 near-tie may flip between libraries
            result[f"{workload}/{threads}"] = {
                "agree": same_tt and all(v >= need for v in prefix.values()),
                "tinytorch_cached_uncached_fused_identical": same_tt,
                "matching_prefix_vs_floor": prefix,
            }
    return result


# ----------------------------------------------------------------------------- tables


def _cell(s: dict | None, nd=2) -> str:
    if s is None:
        return "-"
    if s["n"] == 1:
        return f"{s['median']:.{nd}f}"
    return f"{s['median']:.{nd}f} ({s['min']:.{nd}f}-{s['max']:.{nd}f})"


def _ratio(a: dict | None, b: dict | None) -> str:
    if not a or not b:
        return "-"
    return f"{a['median'] / b['median']:.2f}x"


def training_table(summary: dict, threads: int) -> str:
    rows = [
        "| workload | tinytorch ms | NumPy floor ms | PyTorch ms | Module 18 ms | tinytorch / PyTorch "
        "| Module 18 / PyTorch | tinytorch / floor |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w in TRAINING:
        e = {i: summary.get((threads, w, i)) for i in TRAIN_IMPLS}
        if not any(e.values()):
            continue
        s = {i: (v or {}).get("steady_ms") for i, v in e.items()}
        acc = s["accelerated"] if ACCELERATED_APPLIES[w] else None
        rows.append(
            f"| {w} | {_cell(s['tinytorch'])} | {_cell(s['numpy'])} | {_cell(s['torch'])} | "
            f"{_cell(acc) if ACCELERATED_APPLIES[w] else 'n/a'} | {_ratio(s['tinytorch'], s['torch'])} | "
            f"{_ratio(acc, s['torch']) if acc else '-'} | {_ratio(s['tinytorch'], s['numpy'])} |"
        )
    return "\n".join(rows)


def first_steps_table(summary: dict, threads: int) -> str:
    rows = [
        "| workload | tinytorch first 10 / steady ms | floor | PyTorch | Module 18 |",
        "|---|---:|---:|---:|---:|",
    ]
    for w in TRAINING:
        cells = []
        for i in TRAIN_IMPLS:
            e = summary.get((threads, w, i))
            if e is None or (i == "accelerated" and not ACCELERATED_APPLIES[w]):
                cells.append("-")
                continue
            f10, st = e["first10_ms"]["median"], e["steady_ms"]["median"]
            cells.append(f"{f10:.2f} / {st:.2f} ({f10 / st:.2f}x)")
        if any(c != "-" for c in cells):
            rows.append(f"| {w} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def memory_table(summary: dict, threads: int) -> str:
    rows = [
        "| workload | tinytorch MB | floor MB | PyTorch MB | Module 18 MB | tinytorch / PyTorch (net) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for w in WORKLOADS:
        impls = TRAIN_IMPLS if w in TRAINING else MEMORY_GEN_IMPLS
        cells, net = [], {}
        for i in impls:
            e = summary.get((threads, w, i))
            if e is None:
                cells.append("-")
                continue
            net[i] = e["workload_mb"]
            cells.append(f"{e['peak_rss_mb']['median']:.0f} (+{e['workload_mb']['median']:.0f})")
        if any(c != "-" for c in cells):
            ratio = _ratio(net.get(impls[0]), net.get(impls[2]))  # tinytorch / torch
            rows.append(f"| {w} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(rows)


def generation_table(summary: dict, threads: int, check: dict) -> str:
    rows = [
        "| | tinytorch | NumPy floor | PyTorch | Module 18 fused |",
        "|---|---:|---:|---:|---:|",
    ]
    get = lambda i: (summary.get((threads, "generate", i)) or {}).get("tok_s")  # noqa: E731
    if not any(get(i) for i in GEN_IMPLS):
        return ""
    rows.append(
        f"| with KV cache, tok/s | {_cell(get('tinytorch_cached'), 0)} | {_cell(get('numpy_cached'), 0)} | "
        f"{_cell(get('torch_cached'), 0)} | {_cell(get('fused'), 0)} |"
    )
    rows.append(
        f"| without KV cache, tok/s | {_cell(get('tinytorch_uncached'), 0)} | "
        f"{_cell(get('numpy_uncached'), 0)} | {_cell(get('torch_uncached'), 0)} | |"
    )
    sp = [
        _ratio(get(f"{lib}_cached"), get(f"{lib}_uncached")) for lib in ("tinytorch", "numpy", "torch")
    ]
    fused = _ratio(get("fused"), get("tinytorch_uncached"))
    rows.append(f"| cached / uncached | {sp[0]} | {sp[1]} | {sp[2]} | {fused} |")
    c = check.get(f"generate/{threads}", {})
    same = c.get("tinytorch_cached_uncached_fused_identical")
    rows.append("")
    rows.append(
        f"tinytorch cached, uncached and fused tokens identical: {same}; tokens matching the floor's "
        f"(of {10 + 256}): {c.get('matching_prefix_vs_floor')}"
    )
    return "\n".join(rows)


def report(runs: list, meta: dict, clock_1: str) -> str:
    """Markdown: per thread count, the steady-state table, first steps, memory, generation."""
    out = []
    for threads in meta["threads"]:
        clock = clock_1 if threads == 1 else "wall"
        summary = summarize(runs, clock)
        check = checks(summary)
        loads = [r.get("load_before") for r in runs if r.get("threads_requested") == threads]
        loads = [x for x in loads if x is not None]
        load = f"{min(loads):.1f}-{max(loads):.1f}" if loads else "unknown"
        out += [
            f"### {threads} thread{'s' if threads > 1 else ''}, {clock} clock",
            "",
            f"Steady-state training step (median of the last half of each process's steps; median and "
            f"min-max over {meta['rounds']} interleaved rounds of fresh processes). Load average during "
            f"the runs: {load} on {meta['cpus']} CPUs.",
            "",
            training_table(summary, threads),
            "",
            "First 10 steps of a fresh process (mean) against its steady state:",
            "",
            first_steps_table(summary, threads),
            "",
            "Peak resident memory of each process (net of what it held after its imports):",
            "",
            memory_table(summary, threads),
            "",
        ]
        gen = generation_table(summary, threads, check)
        if gen:
            out += ["Generation, 256 tokens after a 10-token prompt, batch 1, greedy (each variant its "
                    "own process; median of the runs after the first):", "", gen, ""]  # fmt: skip
        bad = {k: v for k, v in check.items() if not v["agree"]}
        out.append("Cross-check (same first loss, gradient norms and tokens as the floor): " +
                   ("all agree." if not bad else f"DISAGREE: {json.dumps(bad)}"))  # fmt: skip
        errors = [r for r in runs if "error" in r and r.get("threads_requested", threads) == threads]
        for r in errors:
            out.append(f"ERROR {r['workload']}/{r['impl']}: {r['error']}")
        out.append("")
    out.append(
        f"numpy {meta['numpy']}, torch {meta['torch']}, Python {meta['python']}, {meta['cpus']} CPUs, "
        f"peak float32 matmul {meta.get('peak_gflops')} GFLOP/s per thread count; "
        f"load average {meta['load_before']} before, {meta['load_after']} after."
    )
    return "\n".join(out)


# ----------------------------------------------------------------------------- entry


def versions(with_torch: bool) -> dict:
    code = "import numpy, json, sys; d={'numpy': numpy.__version__}\n"
    if with_torch:
        code += "try:\n import torch; d['torch']=torch.__version__\nexcept ImportError:\n d['torch']=None\n"
    code += "print(json.dumps(d))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py",
        description="tinytorch vs the hand-written NumPy floor vs PyTorch (CPU), each in a fresh process",
    )
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--workload", action="append", choices=WORKLOADS, help="repeatable; default all")
    parser.add_argument("--impl", action="append", help="only these implementations (repeatable)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="clock of the one-thread tables (CPU time only where every side runs one "
                             "thread; two threads always use the wall clock)")  # fmt: skip
    parser.add_argument("--steps", type=int, default=30, help="training steps per process, at least (30)")
    parser.add_argument("--max-seconds", type=float, default=30.0,
                        help="a training process stops after this long once it has 12 steps (30)")
    parser.add_argument("--quick", action="store_true", help="2 rounds, 12 steps, 64 tokens: a smoke run")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    parser.add_argument("--malloc", choices=("default",), help="TINYTORCH_MALLOC=default: glibc's defaults")
    parser.add_argument("--json", metavar="PATH", help="write every child's report and the summary here")
    parser.add_argument("--report", metavar="PATH", help="only print the tables of an earlier --json file")
    args = parser.parse_args(argv)
    if args.report:
        data = json.loads(Path(args.report).read_text())
        print(report(data["runs"], data["meta"], args.clock))
        return 0
    if any(t < 1 for t in args.threads) or args.rounds < 1:
        parser.error("--threads and --rounds must be >= 1")
    names = args.workload or list(WORKLOADS)
    if args.quick:
        args.rounds, args.steps = min(args.rounds, 2), 12
    vers = versions(not args.no_torch)
    with_torch = vers.get("torch") is not None
    impls_of = {
        w: [i for i in (TRAIN_IMPLS if w in TRAINING else GEN_IMPLS)
            if (with_torch or not i.startswith("torch")) and (not args.impl or i in args.impl)
            and (w not in TRAINING or i != "accelerated" or ACCELERATED_APPLIES[w])]
        for w in names
    }  # fmt: skip
    meta = {
        "threads": args.threads,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": vers["numpy"],
        "torch": vers.get("torch"),
        "malloc": args.malloc or "tinytorch",
        "load_before": load_average(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    peak = {"workload": "peak", "impl": "numpy"}
    meta["peak_gflops"] = {t: round(run_child(peak, t).get("gflops", 0), 1) for t in args.threads}
    print(f"peak float32 matmul GFLOP/s: {meta['peak_gflops']}; load {meta['load_before']}", file=sys.stderr)
    runs = []
    for r in range(args.rounds):
        for w in names:
            for threads in args.threads:
                for impl in rotated(impls_of[w], r):
                    spec = {"workload": w, "impl": impl}
                    if w in TRAINING:
                        spec.update(steps=args.steps, min_seconds=0.3 if args.quick else 1.0,
                                    max_seconds=args.max_seconds)
                    else:
                        spec["reps"] = 1 if impl.endswith("uncached") else 3
                        if args.quick:
                            spec["config"] = {"tokens": 64}
                    run = run_child(spec, threads, args.malloc)
                    runs.append(run)
                    if "error" in run:
                        print(f"  {w}/{impl}/{threads}: ERROR {run['error']}", file=sys.stderr)
        print(f"round {r + 1}/{args.rounds} done, load {load_average()}", file=sys.stderr, flush=True)
    meta["load_after"] = load_average()
    text = report(runs, meta, args.clock)
    print(text)
    if args.json:
        summaries = {
            clock: {"/".join(map(str, k)): v for k, v in summarize(runs, clock).items()}
            for clock in ("wall", "cpu")
        }
        Path(args.json).write_text(json.dumps({"meta": meta, "summary": summaries, "runs": runs}, indent=1))
    return 1 if any("error" in r for r in runs) else 0
