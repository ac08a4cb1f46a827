"""Scaling curves: batch size, sequence length and width, for tinytorch, the NumPy floor and PyTorch.

Module 18's opt-in path is a fourth implementation (``accelerate`` with
``fused_cross_entropy``, blockwise attention for sequences longer than 128;
``fast_generate`` for generation). Each point of each curve is ``--repeats``
(3) fresh processes per implementation (the same child as ``run.py``), one
thread, threads pinned through the environment, the implementations
interleaved in an order that rotates from one repeat to the next; the
medians are kept (every time too, as ``ms_all``). A training process reports
the steady-state step time (median of the last half of at least ``steps``
steps) and the peak memory net of the imports; a generation process the
tokens/s of cached greedy decoding (median of the runs after the
first). Curves (``--full`` adds larger points)::

    mlp        batch 1..256 (784-256-128-10), width 64..1024 (784-w-w/2-10, batch 64)
    cifar_cnn  batch 1..256 (conv 3->32->64)
    gpt        batch 1..64 (seq 64, d 128), seq 32..1024 (batch 4, d 128), width 64..1024 (batch 4, seq 64)
    generate   tokens 32..1024 (d 128), width 64..1024 (256 tokens), batch 1..16 (256 tokens), KV cache

The results go to ``results/sweep.json``; ``results/sweep.png`` plots them when
matplotlib is importable (``--plot-only`` redraws from the JSON).

*Where matrix multiplication dominates*: a point whose matrix products alone,
at the machine's measured peak float32 rate (same clock, one thread), would take
at least half of PyTorch's time for the whole step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from ttbench.child import CACHED_GEN_IMPL, TRAIN_IMPLS, matmul_flops
from ttbench.harness import load_average, run_child, versions

HERE = Path(__file__).resolve().parent.parent  # benchmarks/
IMPLS = TRAIN_IMPLS  # tinytorch, the NumPy floor, PyTorch, Module 18 ("accelerated")


def curves(full: bool) -> list:
    """[(curve name, workload, swept key, [values], fixed config)]."""
    big = full
    return [
        ("mlp / batch", "mlp", "batch", [1, 16, 64, 256], {"width": 256}),
        ("mlp / width", "mlp", "width", [64, 256, 1024], {"batch": 64}),
        ("cifar_cnn / batch", "cifar_cnn", "batch", [1, 4, 32, 256] if not big else [1, 4, 16, 32, 64, 256],
         {"width": 32}),
        ("gpt / batch", "gpt", "batch", [1, 4, 16, 64], {"seq": 64, "width": 128}),
        ("gpt / seq", "gpt", "seq", [32, 128, 512, 1024], {"batch": 4, "width": 128}),
        ("gpt / width", "gpt", "width", [64, 256, 1024] if not big else [64, 128, 256, 512, 1024],
         {"batch": 4, "seq": 64}),
        ("generate / tokens", "generate", "tokens", [32, 128, 512, 1024], {"width": 128, "batch": 1}),
        ("generate / width", "generate", "width", [64, 256, 1024], {"tokens": 256, "batch": 1}),
        ("generate / batch", "generate", "batch", [1, 4, 16], {"tokens": 256, "width": 128}),
    ]  # fmt: skip


def measure(workload: str, impl: str, config: dict, clock: str) -> dict:
    if workload == "generate":
        spec = {"workload": workload, "impl": CACHED_GEN_IMPL[impl], "config": config, "reps": 2}
    else:
        spec = {"workload": workload, "impl": impl, "config": config, "steps": 6, "min_seconds": 0.6}
    run = run_child(spec, threads=1)
    if "error" in run:
        return {"error": run["error"]}
    times = run[f"{clock}_s"]
    if workload == "generate":
        seconds = statistics.median(times[1:] or times)
        out = {"ms": 1e3 * seconds, "tok_s": config["tokens"] * config["batch"] / seconds}
    else:
        out = {"ms": 1e3 * statistics.median(times[len(times) // 2 :])}
    out.update(peak_rss_mb=run["peak_rss_mb"], workload_mb=run["workload_mb"], load=run["load_before"])
    if workload != "generate":
        out["first_loss"] = run["first_loss"]
    else:
        out["tokens"] = run["tokens"][:64]
    return out


def _median_run(runs: list) -> dict:
    """One implementation at one point over ``repeats`` fresh processes: the medians, and every time."""
    ok = [r for r in runs if "ms" in r]
    if not ok:
        return runs[0]
    out = dict(ok[0])
    for key in ("ms", "tok_s", "peak_rss_mb", "workload_mb"):
        if key in out:
            out[key] = statistics.median(r[key] for r in ok)
    out["ms_all"] = [round(r["ms"], 4) for r in ok]
    return out


def run_sweep(full: bool, clock: str, with_torch: bool, log, repeats: int = 1) -> dict:
    peak = run_child({"workload": "peak", "impl": "numpy"}, threads=1)
    result = {
        "meta": {
            "clock": clock,
            "threads": 1,
            "peak_gflops_1_thread": round(peak.get("gflops", 0.0), 1),
            "load_before": load_average(),
            "repeats": repeats,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            **versions(with_torch),
        },
        "curves": [],
    }
    impls = [i for i in IMPLS if with_torch or i != "torch"]
    for k, (title, workload, key, values, fixed) in enumerate(curves(full)):
        points = []
        for j, value in enumerate(values):
            config = {**fixed, key: value}
            point = {"value": value, "config": config, "matmul_gflop": matmul_flops(workload, {
                **{"batch": 1, "seq": 64, "width": 128, "tokens": 256, "prompt": 10}, **config}) / 1e9}
            runs = {impl: [] for impl in impls}
            for r in range(repeats):  # interleaved: the order rotates with the point and the repeat
                turn = (k + j + r) % len(impls)
                for impl in impls[turn:] + impls[:turn]:
                    runs[impl].append(measure(workload, impl, config, clock))
            for impl in impls:
                point[impl] = _median_run(runs[impl])
            points.append(point)
            log(f"{title} = {value}: " + ", ".join(
                f"{i} {point[i].get('ms', float('nan')):.1f} ms" for i in impls))  # fmt: skip
        result["curves"].append({"title": title, "workload": workload, "key": key, "points": points})
    result["meta"]["load_after"] = load_average()
    return result


def analyse(result: dict) -> dict:
    """Ratios to PyTorch (time and net peak memory) per point, and the matmul-dominated points."""
    peak = result["meta"]["peak_gflops_1_thread"] or float("nan")
    rows = []
    for curve in result["curves"]:
        for p in curve["points"]:
            tt, tr = p.get("tinytorch", {}), p.get("torch", {})
            if "ms" not in tt or "ms" not in tr:
                continue
            share = p["matmul_gflop"] / peak / (tr["ms"] / 1e3)
            m18 = p.get("accelerated", {})
            rows.append({
                "curve": curve["title"], "value": p["value"],
                "time_ratio": tt["ms"] / tr["ms"],
                "floor_ratio": tt["ms"] / p["numpy"]["ms"] if "ms" in p.get("numpy", {}) else None,
                "memory_ratio": tt["workload_mb"] / max(tr["workload_mb"], 1.0),
                "m18_time_ratio": m18["ms"] / tr["ms"] if "ms" in m18 else None,
                "m18_memory_ratio": m18["workload_mb"] / max(tr["workload_mb"], 1.0) if "ms" in m18 else None,
                "matmul_share": share, "matmul_dominated": share >= 0.5,
            })  # fmt: skip
    dominated = [r for r in rows if r["matmul_dominated"]]
    return {
        "points": rows,
        "matmul_dominated_max_time_ratio": max((r["time_ratio"] for r in dominated), default=None),
        "max_memory_ratio": max((r["memory_ratio"] for r in rows), default=None),
        "m18_matmul_dominated_max_time_ratio": max(
            (r["m18_time_ratio"] for r in dominated if r["m18_time_ratio"] is not None), default=None
        ),
        "m18_max_memory_ratio": max(
            (r["m18_memory_ratio"] for r in rows if r["m18_memory_ratio"] is not None), default=None
        ),
    }


def markdown(result: dict) -> str:
    a = analyse(result)
    lines = [
        "| curve | value | tinytorch / PyTorch time | tinytorch / floor time "
        "| matmul share of PyTorch's time | tinytorch / PyTorch net peak memory "
        "| Module 18 / PyTorch time | Module 18 / PyTorch memory |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def ratio(value) -> str:
        return "-" if value is None else f"{value:.2f}x"

    for r in a["points"]:
        lines.append(
            f"| {r['curve']} | {r['value']} | {r['time_ratio']:.2f}x | {ratio(r['floor_ratio'])} "
            f"| {r['matmul_share']:.0%}{' (dominates)' if r['matmul_dominated'] else ''} "
            f"| {r['memory_ratio']:.2f}x | {ratio(r.get('m18_time_ratio'))} "
            f"| {ratio(r.get('m18_memory_ratio'))} |"
        )
    m = result["meta"]
    lines += [
        "",
        f"One thread, {m['clock']} clock, peak float32 matmul {m['peak_gflops_1_thread']} GFLOP/s; "
        f"load average {m['load_before']} before, {m['load_after']} after; numpy {m.get('numpy')}, "
        f"torch {m.get('torch')}.",
        f"Largest tinytorch / PyTorch time ratio where matmul dominates: "
        f"{a['matmul_dominated_max_time_ratio'] and round(a['matmul_dominated_max_time_ratio'], 2)}; "
        f"largest net peak memory ratio: {a['max_memory_ratio'] and round(a['max_memory_ratio'], 2)}.",
        f"Module 18: largest time ratio where matmul dominates "
        f"{ratio(a.get('m18_matmul_dominated_max_time_ratio'))}; "
        f"largest net peak memory ratio {ratio(a.get('m18_max_memory_ratio'))}.",
    ]
    return "\n".join(lines)


def plot(result: dict, path: Path) -> bool:
    """Step time (or tokens/s) per curve, three implementations; ratios on a second row of axes."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    n = len(result["curves"])
    cols = 3
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    style = {
        "tinytorch": ("tab:red", "o"),
        "numpy": ("tab:gray", "s"),
        "torch": ("tab:blue", "^"),
        "accelerated": ("tab:orange", "D"),
    }
    label = {"tinytorch": "tinytorch", "numpy": "NumPy floor", "torch": "PyTorch", "accelerated": "Module 18"}
    for ax, curve in zip(axes.flat, result["curves"]):
        gen = curve["workload"] == "generate"
        for impl, (color, marker) in style.items():
            pts = [(p["value"], p[impl]["tok_s" if gen else "ms"]) for p in curve["points"]
                   if "ms" in p.get(impl, {})]  # fmt: skip
            if pts:
                ax.plot(*zip(*pts), color=color, marker=marker, label=label[impl])
        both = [p for p in curve["points"] if "ms" in p.get("tinytorch", {}) and "ms" in p.get("torch", {})]
        ratio_pts = [
            (p["value"], p["tinytorch"]["workload_mb"] / max(p["torch"]["workload_mb"], 1.0)) for p in both
        ]
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(curve["title"] + (" (KV cache)" if gen else " (training step)"), fontsize=10)
        ax.set_xlabel(curve["key"])
        ax.set_ylabel("tokens/s" if gen else "ms per step")
        ax.grid(True, which="both", alpha=0.3)
        if ratio_pts:
            twin = ax.twinx()
            twin.plot(*zip(*ratio_pts), color="tab:green", linestyle=":", marker=".")
            twin.axhline(1.5, color="tab:green", linewidth=0.6, linestyle="--")  # the memory goal
            twin.set_ylim(0, max(1.6, 1.1 * max(r for _, r in ratio_pts)))
            twin.set_ylabel("net peak memory, tinytorch / PyTorch", fontsize=7, color="tab:green")
            twin.tick_params(axis="y", labelsize=7, colors="tab:green")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    m = result["meta"]
    fig.suptitle(f"Scaling, one thread, {m['clock']} clock (median of {m.get('repeats', 1)} fresh processes "
                 f"per point and implementation; load {m['load_before']}-{m['load_after']})",
                 fontsize=11)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/sweep.py", description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="more points (about twice as long)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="cpu (default: one thread everywhere, steadier on a shared machine) or wall")
    parser.add_argument("--repeats", type=int, default=3,
                        help="fresh processes per point and implementation; the median is kept (3)")
    parser.add_argument("--out", default=str(HERE / "results" / "sweep.json"))
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--plot-only", action="store_true", help="redraw the PNG from --out")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.plot_only:
        result = json.loads(out.read_text())
    else:
        if args.repeats < 1:
            parser.error("--repeats must be at least 1")
        result = run_sweep(args.full, args.clock, not args.no_torch,
                           lambda msg: print(msg, file=sys.stderr, flush=True), args.repeats)  # fmt: skip
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
    result["analysis"] = analyse(result)
    if not args.plot_only:
        out.write_text(json.dumps(result, indent=1))
    png = out.with_suffix(".png")
    print(markdown(result))
    print(f"\n{'plot: ' + str(png) if plot(result, png) else 'matplotlib not installed: no plot'}")
    return 0
