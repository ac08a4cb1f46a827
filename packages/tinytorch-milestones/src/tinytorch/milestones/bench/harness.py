"""Interleaved timing, the machine's BLAS peak, the report, and the command-line entry.

Timing protocol. Every implementation of a workload lives in the same
process and is timed in turn, round-robin, with the order rotated each
round, so a slow minute on a shared machine hits all columns alike. The
first round(s) are warm-up and discarded; the report gives the median and,
beside it, the min and max of the remaining rounds. The number of rounds is
chosen from the warm-up cost to fit a time budget (``--quick`` uses a
smaller budget and shorter generations).

Threads. NumPy's BLAS and PyTorch get the same thread count (``--threads``,
default: what NumPy's BLAS is configured with), so the ratios compare
implementations, not thread pools. On a machine that other jobs are using, a
BLAS with more threads than free cores slows down by orders of magnitude on
small matrices; ``--threads 1`` gives steadier numbers there, and
``--clock cpu`` (this process's CPU time instead of wall time) removes the
time spent descheduled while other jobs ran.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import traceback

import numpy as np
from tinytorch.milestones.bench.options import add_arguments
from tinytorch.milestones.bench.workloads import WORKLOADS, Built

# ---------------------------------------------------------------------------
# Threads and machine scale
# ---------------------------------------------------------------------------


def numpy_blas_threads() -> int:
    """Threads NumPy's BLAS will use (threadpoolctl when available, else the environment, else cores)."""
    try:
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            if pool.get("user_api") == "blas" and "torch" not in pool.get("filepath", ""):
                return int(pool["num_threads"])
    except ImportError:
        pass
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return os.cpu_count() or 1


def limit_blas_threads(n: int):
    """Limit NumPy's BLAS to ``n`` threads for the run; returns the controller (or None)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=n, user_api="blas")


def peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best observed float32 GFLOP/s of an (n, n) @ (n, n) matmul: 2 n^3 flops per call."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty_like(a)
    np.matmul(a, b, out=out)  # warm-up: page in, spin up threads
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def time_interleaved(
    runners: dict,
    warmup: int,
    budget_s: float,
    min_reps: int,
    max_reps: int,
    clock="wall",
    errors: dict | None = None,
):
    """Time each callable of ``runners`` round-robin; returns ({name: [seconds]}, {name: first result}).

    The warm-up rounds' results are returned (the first call of each runner),
    so the caller can check that the implementations agree. A tinytorch runner
    that raises during warm-up (a student's unfinished module) is dropped and
    its error stored in ``errors``; any other runner's exception propagates.
    """
    names = list(runners)
    tick = CLOCKS[clock]
    first, warm_cost = {}, 0.0
    for w in range(warmup):
        for name in list(names):
            t0 = time.perf_counter()  # the budget is always wall time
            try:
                out = runners[name]()
            except Exception as exc:
                if not name.startswith("tinytorch") or errors is None:
                    raise
                errors[name.split("_")[0]] = f"{type(exc).__name__}: {exc}"
                names.remove(name)
                continue
            warm_cost += time.perf_counter() - t0
            if w == 0:
                first[name] = out
    per_round = max(warm_cost / max(warmup, 1), 1e-6)
    reps = int(min(max_reps, max(min_reps, budget_s // per_round)))
    times = {name: [] for name in names}
    start = time.perf_counter()
    for r in range(reps):
        # A machine that got busier after the warm-up must not stretch the run without bound.
        if r >= 3 and time.perf_counter() - start > 2 * budget_s:
            break
        k = r % len(names)
        for name in names[k:] + names[:k]:  # rotate who goes first
            t0 = tick()
            runners[name]()
            times[name].append(tick() - t0)
    return times, first


def summary_ms(samples: list) -> dict:
    ms = [s * 1e3 for s in samples]
    return {"median": statistics.median(ms), "min": min(ms), "max": max(ms), "n": len(ms)}


# ---------------------------------------------------------------------------
# Suite
# ---------------------------------------------------------------------------

SETTINGS = {
    # budget per workload (s), min/max timed rounds, warm-up rounds, generated tokens
    False: dict(budget=15.0, min_reps=5, max_reps=100, warmup=2, tokens=256, peak_n=2048),
    True: dict(budget=2.5, min_reps=3, max_reps=15, warmup=1, tokens=64, peak_n=1024),
}


def _round(x, nd=3):
    return None if x is None else round(float(x), nd)


def _ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def run_workload(name: str, quick: bool, with_torch: bool, log=None, clock="wall") -> dict:
    """Build, check and time one workload; returns its report object."""
    wl = WORKLOADS[name]
    cfg = SETTINGS[quick]
    rec = {"workload": name, "description": wl.description, "status": "ok"}
    missing = wl.missing_tiers()
    if missing:
        from tinytorch.milestones.tiers import install_hint

        rec.update(status="skipped", reason="; ".join(install_hint(t) for t in missing))
        rec.update({k: None for k in ("tinytorch_ms", "numpy_ms", "torch_ms", "ratio_numpy", "ratio_torch")})
        return rec
    built: Built = wl.build(quick=quick, with_torch=with_torch, tokens=cfg["tokens"])
    if built.long_running:
        warmup, min_reps = 1, min(3, cfg["min_reps"])
    else:
        warmup, min_reps = cfg["warmup"], cfg["min_reps"]
    errors = dict(built.errors)
    times, first = time_interleaved(
        built.runners, warmup, cfg["budget"], min_reps, cfg["max_reps"], clock, errors=errors
    )
    if errors:
        rec["errors"] = errors
    stats = {k: summary_ms(v) for k, v in times.items()}
    rec["timings_ms"] = {k: {s: _round(v, 3) for s, v in st.items()} for k, st in stats.items()}
    rec.update(built.check(first))
    main = built.main_suffix  # generation reports the cached run as the headline time
    for impl in ("tinytorch", "numpy", "torch"):
        st = stats.get(impl + main)
        rec[f"{impl}_ms"] = _round(st["median"]) if st else None
        rec[f"{impl}_ms_min"] = _round(st["min"]) if st else None
        rec[f"{impl}_ms_max"] = _round(st["max"]) if st else None
    if built.tokens:
        rec["tokens"] = built.tokens
        rec["prompt_tokens"] = built.prompt_tokens
        for impl in ("tinytorch", "numpy", "torch"):
            for mode in ("cached", "uncached"):
                st = stats.get(f"{impl}_{mode}")
                rec[f"{impl}_tok_s_{mode}"] = _round(built.tokens / (st["median"] / 1e3), 1) if st else None
    rec["ratio_numpy"] = _round(_ratio(rec["tinytorch_ms"], rec["numpy_ms"]))
    rec["ratio_torch"] = _round(_ratio(rec["tinytorch_ms"], rec["torch_ms"]))
    if log:
        log(f"{name}: {_line(rec)}")
    return rec


def _fmt(x, spec="{:.1f}"):
    return "-" if x is None else spec.format(x)


def _line(rec) -> str:
    return (
        f"tinytorch {_fmt(rec.get('tinytorch_ms'))} ms, numpy {_fmt(rec.get('numpy_ms'))} ms, "
        f"torch {_fmt(rec.get('torch_ms'))} ms"
    )


def _cell(rec: dict, impl: str) -> str:
    if rec.get(f"{impl}_ms") is None:
        return "-"
    return f"{rec[f'{impl}_ms']:.2f} ({rec[f'{impl}_ms_min']:.2f}-{rec[f'{impl}_ms_max']:.2f})"


def table(records: list, meta: dict) -> str:
    """The Markdown table printed by default (and pasted into the README)."""
    head = (
        "| workload | tinytorch ms | numpy floor ms | torch ms | tinytorch / numpy | tinytorch / torch |\n"
        "|---|---:|---:|---:|---:|---:|"
    )
    rows = []
    for r in records:
        if r["status"] == "skipped":
            rows.append(f"| {r['workload']} | skipped: {r['reason']} | | | | |")
            continue
        rows.append(
            f"| {r['workload']} | {_cell(r, 'tinytorch')} | {_cell(r, 'numpy')} | {_cell(r, 'torch')} | "
            f"{_fmt(r['ratio_numpy'], '{:.2f}x')} | {_fmt(r['ratio_torch'], '{:.2f}x')} |"
        )
    out = [head, *rows]
    gen = [r for r in records if r.get("tokens") and r["status"] == "ok"]
    for r in gen:
        out += [
            "",
            f"Generation ({r['workload']}: {r['tokens']} new tokens after a {r['prompt_tokens']}-token "
            "prompt, batch 1, greedy), tokens/s:",
            "",
            "| | tinytorch | numpy floor | torch |",
            "|---|---:|---:|---:|",
        ]
        for mode in ("cached", "uncached"):
            cells = [_fmt(r.get(f"{i}_tok_s_{mode}"), "{:.0f}") for i in ("tinytorch", "numpy", "torch")]
            out.append(
                f"| {'with' if mode == 'cached' else 'without'} KV cache | " + " | ".join(cells) + " |"
            )
    problems = [(r["workload"], r["errors"]) for r in records if r.get("errors")]
    mism = [r["workload"] for r in records if r.get("agree") is False]
    out += [
        "",
        (
            f"Median (min-max) over interleaved rounds ({meta['clock']} clock); {meta['threads']} BLAS "
            f"thread(s) for NumPy and PyTorch; peak float32 matmul {meta['peak_gflops']:.0f} GFLOP/s; "
            f"numpy {meta['numpy']}, "
            f"torch {meta['torch'] or 'not installed'}, Python {meta['python']}, {meta['cpus']} CPUs."
        ),
    ]
    before, after = meta.get("load_before"), meta.get("load_after")
    # Our own run adds about `threads` to the load average; anything beyond is someone else.
    if (before is not None and before > 0.5) or (after is not None and after > meta["threads"] + 0.5):
        hint = " (a BLAS with more threads than free cores slows down sharply; try --threads 1)"
        out.append(
            f"Load average {before} before and {after} after the run on {meta['cpus']} CPUs: other processes "
            f"were using the CPUs, absolute times are inflated{hint if meta['threads'] > 1 else ''}."
        )
    if mism:
        out.append("WARNING: implementations disagree (loss or tokens) on: " + ", ".join(mism))
    for wl, errs in problems:
        for impl, msg in errs.items():
            out.append(f"{wl} / {impl}: {msg}")
    return "\n".join(out)


def run_suite(names: list, quick: bool, with_torch: bool, threads: int | None, log=None, clock="wall"):
    """Run the named workloads; returns (records, meta)."""
    threads = threads or numpy_blas_threads()
    controller = limit_blas_threads(threads)
    torch_version = None
    if with_torch:
        try:
            import torch

            torch.set_num_threads(threads)
            torch_version = torch.__version__
        except ImportError:
            with_torch = False
    try:
        meta = {
            "threads": threads,
            "cpus": os.cpu_count(),
            "numpy": np.__version__,
            "torch": torch_version,
            "python": platform.python_version(),
            "quick": quick,
            "clock": clock,
        }
        meta["load_before"] = _load_average()
        meta["peak_gflops"] = round(peak_gflops(SETTINGS[quick]["peak_n"]), 1)
        if log:
            log(f"peak float32 matmul: {meta['peak_gflops']} GFLOP/s with {threads} thread(s)")
        records = []
        for name in names:
            try:
                rec = run_workload(name, quick, with_torch, log, clock)
            except Exception as exc:  # one broken workload must not hide the others
                rec = {"workload": name, "status": "error", "reason": f"{type(exc).__name__}: {exc}"}
                rec.update(
                    {k: None for k in ("tinytorch_ms", "numpy_ms", "torch_ms", "ratio_numpy", "ratio_torch")}
                )
                if log:
                    log(traceback.format_exc())
            rec["peak_gflops"] = meta["peak_gflops"]
            rec["threads"] = threads
            rec["clock"] = clock
            rec["load_before"] = meta["load_before"]
            records.append(rec)
    finally:
        if controller is not None:
            controller.restore_original_limits()
    meta["load_after"] = _load_average()
    return records, meta


def _load_average():
    """1-minute load average (None where the OS does not report one)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def main_from_args(args: argparse.Namespace) -> int:
    names = args.workload or list(WORKLOADS)
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        print(f"unknown workload(s) {unknown}: choose from {list(WORKLOADS)}", file=sys.stderr)
        return 2
    threads = getattr(args, "threads", None)
    if threads is not None and threads < 1:
        print(f"--threads must be >= 1, got {threads}", file=sys.stderr)
        return 2

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    clock = getattr(args, "clock", "wall")
    records, meta = run_suite(names, args.quick, not getattr(args, "no_torch", False), threads, log, clock)
    if args.json:
        print(json.dumps(records, indent=2))
    else:
        print(table(records, meta))
    # Non-zero when anything could not be measured: a broken workload or an unfinished tinytorch.
    return 1 if any(r["status"] == "error" or r.get("errors") for r in records) else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py", description="tinytorch vs the hand-written NumPy floor vs PyTorch (CPU)"
    )
    add_arguments(parser)
    return main_from_args(parser.parse_args(argv))
