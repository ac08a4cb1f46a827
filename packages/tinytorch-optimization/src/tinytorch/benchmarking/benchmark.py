"""Module 19: benchmarking, measuring performance so that the numbers can be trusted.

One timing is an anecdote: the OS scheduler, caches, CPU frequency and other
processes all add noise. A benchmark therefore

1. warms up (first calls pay for allocation, caches, lazy initialisation),
2. repeats the measurement and keeps every sample,
3. reports robust statistics: the median (insensitive to outliers), the mean
   and standard deviation, and a 95% confidence interval for the mean
   (``mean +- t * std / sqrt(n)``, Student's t because ``n`` is small),
4. fixes everything else: inputs from a fixed seed, the same inputs for every
   model, the same number of repeats.

:class:`BenchmarkResult` holds the samples and their statistics,
:class:`Benchmark` compares models on latency, accuracy and memory,
:class:`BenchmarkSuite` runs several datasets and writes Markdown and JSON, and
:class:`TinyMLPerf` defines fixed tasks (inputs, seed, reference model) with a
score normalized by the reference measured in the same run, so that scores
from different machines in one class can be compared.
"""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

# Two-sided 95% Student-t critical values t_{0.975, df} for df = 1..30.
_T_975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_Z_975 = 1.959963984540054


def t_critical_95(df: int) -> float:
    """Two-sided 95% critical value of Student's t with ``df`` degrees of freedom.

    A table for ``df <= 30``; above, the Cornish-Fisher expansion around the
    normal quantile ``z``: ``t ~ z + (z^3 + z) / (4 df) + (5 z^5 + 16 z^3 + 3 z) / (96 df^2)``
    (error below 1e-4 for df > 30).
    """
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    if df <= len(_T_975):
        return _T_975[df - 1]
    z = _Z_975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclass
class BenchmarkResult:
    """Repeated measurements of one quantity and their statistics.

    Args:
        name: what was measured (e.g. ``"mlp latency"``).
        samples: the raw measurements (at least one).
        unit: unit of the samples (``"ms"`` by default).
        metadata: free-form context (model, input shape, ...), kept in the JSON.
    """

    name: str
    samples: list
    unit: str = "ms"
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        values = np.asarray(self.samples, dtype=np.float64).ravel()
        if values.size == 0:
            raise ValueError(f"BenchmarkResult {self.name!r}: samples must not be empty")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"BenchmarkResult {self.name!r}: samples must be finite")
        self.samples = values.tolist()

    @property
    def n(self) -> int:
        return len(self.samples)

    @property
    def mean(self) -> float:
        ### BEGIN SOLUTION
        return float(np.mean(self.samples))
        ### END SOLUTION

    @property
    def median(self) -> float:
        ### BEGIN SOLUTION
        return float(np.median(self.samples))
        ### END SOLUTION

    @property
    def std(self) -> float:
        """Sample standard deviation (``ddof=1``; 0 for a single sample)."""
        ### BEGIN SOLUTION
        return float(np.std(self.samples, ddof=1)) if self.n > 1 else 0.0
        ### END SOLUTION

    @property
    def min(self) -> float:
        return float(np.min(self.samples))

    @property
    def max(self) -> float:
        return float(np.max(self.samples))

    @property
    def p90(self) -> float:
        return float(np.percentile(self.samples, 90))

    @property
    def ci95(self) -> tuple[float, float]:
        """95% confidence interval of the mean: ``mean +- t_{0.975, n-1} * std / sqrt(n)``."""
        ### BEGIN SOLUTION
        if self.n < 2:
            return (self.mean, self.mean)
        half = t_critical_95(self.n - 1) * self.std / math.sqrt(self.n)
        return (self.mean - half, self.mean + half)
        ### END SOLUTION

    def to_dict(self) -> dict:
        low, high = self.ci95
        return {
            "name": self.name,
            "unit": self.unit,
            "n": self.n,
            "median": self.median,
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "p90": self.p90,
            "ci95": [low, high],
            "samples": list(self.samples),
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, payload: dict) -> BenchmarkResult:
        return cls(
            payload["name"], payload["samples"], payload.get("unit", "ms"), payload.get("metadata", {})
        )

    def __str__(self) -> str:
        low, high = self.ci95
        return (
            f"{self.name}: median {self.median:.4g} {self.unit}, mean {self.mean:.4g} +- {self.std:.2g} "
            f"(95% CI [{low:.4g}, {high:.4g}], n={self.n})"
        )


def _data(x) -> np.ndarray:
    return np.asarray(getattr(x, "data", x))


def _no_grad():
    """``tinytorch.core.autograd.no_grad()`` (inference must not build graphs)."""
    from tinytorch.core.autograd import no_grad

    return no_grad()


def time_function(fn, warmup: int = 5, iterations: int = 30, name: str = "latency", metadata=None):
    """Call ``fn()`` ``warmup`` times untimed, then ``iterations`` times timed.

    Returns:
        :class:`BenchmarkResult` of the per-call wall-clock times in milliseconds.
    """
    ### BEGIN SOLUTION
    for arg, value, low in (("warmup", warmup, 0), ("iterations", iterations, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{arg} must be an int >= {low}, got {value!r}")
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return BenchmarkResult(name, samples, "ms", dict(metadata or {}))
    ### END SOLUTION


def accuracy_of(model, inputs, labels) -> float:
    """Fraction of rows whose ``argmax`` over the last axis of ``model(inputs)`` equals ``labels``."""
    ### BEGIN SOLUTION
    with _no_grad():
        logits = _data(model(inputs))
    labels = _data(labels).reshape(-1)
    predictions = logits.reshape(-1, logits.shape[-1]).argmax(axis=-1)
    if predictions.shape != labels.shape:
        raise ValueError(f"accuracy: {predictions.shape[0]} predictions but {labels.shape[0]} labels")
    return float(np.mean(predictions == labels))
    ### END SOLUTION


class Benchmark:
    """Compare several models on the same inputs: latency, accuracy, memory.

    Args:
        models: ``{name: model}`` (a model is any callable taking the input Tensor).
        warmup, iterations: untimed and timed calls per latency measurement.

    Example::

        bench = Benchmark({"fp32": mlp, "int8": qmlp})
        results = bench.run(x_test, y_test)      # {name: {"latency": BenchmarkResult, ...}}
    """

    def __init__(self, models: dict, warmup: int = 5, iterations: int = 30):
        if not isinstance(models, dict) or not models:
            raise ValueError("models must be a non-empty dict {name: model}")
        for arg, value, low in (("warmup", warmup, 0), ("iterations", iterations, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{arg} must be an int >= {low}, got {value!r}")
        self.models = dict(models)
        self.warmup = warmup
        self.iterations = iterations

    def run_latency(self, inputs) -> dict:
        """``{name: BenchmarkResult}`` of forward latency (ms) on ``inputs``, in no_grad mode.

        Models are timed *interleaved* (one call of each per round, rotating
        the order), so a burst of load from other processes slows every model
        alike instead of penalizing whichever happened to run at that moment.
        """
        ### BEGIN SOLUTION
        names = list(self.models)
        samples = {name: [] for name in names}
        with _no_grad():
            for _ in range(self.warmup):
                for name in names:
                    self.models[name](inputs)
            for i in range(self.iterations):
                for name in names[i % len(names) :] + names[: i % len(names)]:
                    start = time.perf_counter()
                    self.models[name](inputs)
                    samples[name].append((time.perf_counter() - start) * 1e3)
        meta = {"input_shape": list(_data(inputs).shape), "interleaved_with": names}
        return {name: BenchmarkResult(f"{name} latency", samples[name], "ms", dict(meta)) for name in names}
        ### END SOLUTION

    def run_accuracy(self, inputs, labels) -> dict:
        """``{name: accuracy}`` (argmax over the last axis)."""
        ### BEGIN SOLUTION
        return {name: accuracy_of(model, inputs, labels) for name, model in self.models.items()}
        ### END SOLUTION

    def run_memory(self, inputs) -> dict:
        """``{name: dict}`` from :meth:`tinytorch.profiling.profiler.Profiler.measure_memory`."""
        ### BEGIN SOLUTION
        from tinytorch.profiling.profiler import Profiler

        profiler = Profiler()
        return {name: profiler.measure_memory(model, inputs) for name, model in self.models.items()}
        ### END SOLUTION

    def run(self, inputs, labels=None, memory: bool = True) -> dict:
        """All measurements: ``{name: {"latency": BenchmarkResult, "accuracy": ..., "memory": ...}}``.

        ``accuracy`` is a float or is None without ``labels``; ``memory`` is None when ``memory=False``.
        """
        latency = self.run_latency(inputs)
        accuracy = self.run_accuracy(inputs, labels) if labels is not None else {}
        mem = self.run_memory(inputs) if memory else {}
        return {
            name: {"latency": latency[name], "accuracy": accuracy.get(name), "memory": mem.get(name)}
            for name in self.models
        }


def _write_text_atomic(path, text: str) -> None:
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def platform_info() -> dict:
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "system": platform.system(),
        "cpu_count": os.cpu_count(),
    }


class BenchmarkSuite:
    """Run a :class:`Benchmark` on several datasets and report it as Markdown and JSON.

    Args:
        models: ``{name: model}``.
        datasets: ``{dataset name: (inputs, labels or None)}``.
        warmup, iterations: as in :class:`Benchmark`.
        memory: also measure memory (slower: one forward and backward under tracemalloc).
    """

    def __init__(
        self, models: dict, datasets: dict, warmup: int = 5, iterations: int = 30, memory: bool = True
    ):
        if not isinstance(datasets, dict) or not datasets:
            raise ValueError("datasets must be a non-empty dict {name: (inputs, labels)}")
        self.benchmark = Benchmark(models, warmup, iterations)
        self.datasets = dict(datasets)
        self.memory = memory
        self.results: dict = {}

    def run(self) -> dict:
        """``{dataset: {model: {"latency", "accuracy", "memory"}}}`` (also kept in ``self.results``)."""
        ### BEGIN SOLUTION
        self.results = {
            dataset: self.benchmark.run(inputs, labels, memory=self.memory)
            for dataset, (inputs, labels) in self.datasets.items()
        }
        return self.results
        ### END SOLUTION

    def _require_results(self) -> None:
        if not self.results:
            raise ValueError("BenchmarkSuite: call run() before writing a report")

    def to_markdown(self) -> str:
        """One table row per (dataset, model): median latency, 95% CI, accuracy, peak memory."""
        ### BEGIN SOLUTION
        self._require_results()
        lines = [
            "| dataset | model | median ms | 95% CI ms | accuracy | peak memory KiB |",
            "|---|---|---|---|---|---|",
        ]
        for dataset, per_model in self.results.items():
            for name, r in per_model.items():
                low, high = r["latency"].ci95
                acc = f"{r['accuracy']:.4f}" if r["accuracy"] is not None else "-"
                mem = f"{r['memory']['peak_bytes'] / 1024:.1f}" if r["memory"] else "-"
                lines.append(
                    f"| {dataset} | {name} | {r['latency'].median:.3f} | "
                    f"[{low:.3f}, {high:.3f}] | {acc} | {mem} |"
                )
        return "\n".join(lines)
        ### END SOLUTION

    def to_dict(self) -> dict:
        self._require_results()
        return {
            "platform": platform_info(),
            "results": {
                dataset: {
                    name: {
                        "latency": r["latency"].to_dict(),
                        "accuracy": r["accuracy"],
                        "memory": r["memory"],
                    }
                    for name, r in per_model.items()
                }
                for dataset, per_model in self.results.items()
            },
        }

    def to_json(self, path=None) -> str:
        """The results as JSON text; also written (atomically) to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            _write_text_atomic(path, text)
        return text


# ---------------------------------------------------------------------------------------------
# TinyMLPerf: fixed tasks, fixed seed, score normalized by a reference model run on the same machine
# ---------------------------------------------------------------------------------------------


def _mlp_reference(seed: int):
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential

    np.random.seed(seed)  # layer initialisers draw from NumPy's global generator
    return Sequential(Linear(64, 128), ReLU(), Linear(128, 64), ReLU(), Linear(64, 10))


def _cnn_reference(seed: int):
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.spatial import Conv2d, Flatten, MaxPool2d

    np.random.seed(seed)
    return Sequential(
        Conv2d(1, 8, 3, padding=1), ReLU(), MaxPool2d(2), Conv2d(8, 16, 3, padding=1), ReLU(), MaxPool2d(2),
        Flatten(), Linear(16 * 4 * 4, 10),
    )  # fmt: skip


def _gpt_reference(seed: int):
    from tinytorch.models.transformer import GPT

    np.random.seed(seed)
    return GPT(vocab_size=65, embed_dim=64, num_layers=2, num_heads=4, max_seq_len=32)


@dataclass(frozen=True)
class TaskSpec:
    """One TinyMLPerf task: a reference model and fixed inputs, both from the seed."""

    name: str
    description: str
    input_shape: tuple
    integer_inputs: int  # 0: float inputs; else token inputs in [0, integer_inputs)
    build_reference: object  # seed -> model
    quality_target: float  # minimum agreement with the reference's predictions


TASKS = {
    "mlp_digits": TaskSpec(
        "mlp_digits", "MLP 64-128-64-10 on a batch of 256 8x8 images (TinyDigits shape)",
        (256, 64), 0, _mlp_reference, 0.97,
    ),
    "cnn_digits": TaskSpec(
        "cnn_digits", "two-conv CNN on a batch of 64 1x16x16 images",
        (64, 1, 16, 16), 0, _cnn_reference, 0.97,
    ),
    "gpt_next_token": TaskSpec(
        "gpt_next_token", "GPT (vocab 65, d 64, 2 layers) next-token logits on 4 x 32 tokens",
        (4, 32), 65, _gpt_reference, 0.90,
    ),
}  # fmt: skip


class TinyMLPerf:
    """Fixed benchmark tasks with a normalized score (an MLPerf for the classroom).

    For each task the seed fixes the inputs and the weights of a reference
    model. A submission is a model for that task (typically the reference
    model after quantization, pruning, ...). It is scored by

    * ``fidelity``: fraction of predictions (argmax of the last axis) that
      agree with the reference model's; it must reach the task's
      ``quality_target`` for the result to be ``valid``;
    * ``normalized_score = reference median latency / submission median latency``,
      both measured in the same run, so a score of 2.0 means "twice as fast as
      the reference on this machine" and is comparable across machines.

    Args:
        seed: fixes inputs and reference weights (keep the default to compare with a class).
        warmup, iterations: per latency measurement.
    """

    VERSION = 1

    def __init__(self, seed: int = 42, warmup: int = 3, iterations: int = 20):
        self.seed = seed
        self.warmup = warmup
        self.iterations = iterations

    @staticmethod
    def tasks() -> list:
        return list(TASKS)

    def _task(self, task: str) -> TaskSpec:
        if task not in TASKS:
            raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}")
        return TASKS[task]

    def reference_model(self, task: str):
        """A fresh copy of the task's reference model (the starting point to optimize)."""
        return self._task(task).build_reference(self.seed)

    def inputs(self, task: str):
        """The task's fixed input Tensor."""
        from tinytorch.core.tensor import Tensor

        spec = self._task(task)
        rng = np.random.default_rng(self.seed)
        if spec.integer_inputs:
            return Tensor(rng.integers(0, spec.integer_inputs, size=spec.input_shape))
        return Tensor(rng.standard_normal(spec.input_shape).astype(np.float32))

    def run(self, task: str, model, model_name: str = "submission") -> dict:
        """Score ``model`` on ``task``; returns the JSON-ready result dict."""
        ### BEGIN SOLUTION
        spec = self._task(task)
        x = self.inputs(task)
        reference = self.reference_model(task)
        with _no_grad():
            expected = _data(reference(x)).argmax(axis=-1)
            got = _data(model(x))
        if got.shape[:-1] != expected.shape:
            raise ValueError(
                f"TinyMLPerf {task}: model output {got.shape} does not match the reference's "
                f"{expected.shape + (got.shape[-1],)}"
            )
        fidelity = float(np.mean(got.argmax(axis=-1) == expected))
        bench = Benchmark({"reference": reference, model_name: model}, self.warmup, self.iterations)
        latency = bench.run_latency(x)
        score = latency["reference"].median / latency[model_name].median
        return {
            "tinymlperf_version": self.VERSION,
            "task": task,
            "description": spec.description,
            "seed": self.seed,
            "model_name": model_name,
            "fidelity": fidelity,
            "quality_target": spec.quality_target,
            "valid": fidelity >= spec.quality_target,
            "normalized_score": score,
            "latency": latency[model_name].to_dict(),
            "reference_latency": latency["reference"].to_dict(),
            "platform": platform_info(),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        ### END SOLUTION

    @staticmethod
    def save(result: dict, path) -> None:
        """Write one result as JSON (atomically)."""
        _write_text_atomic(path, json.dumps(result, indent=2))

    @staticmethod
    def load(path) -> dict:
        with open(path, encoding="utf-8") as handle:
            result = json.load(handle)
        missing = {"task", "seed", "model_name", "normalized_score", "valid"} - set(result)
        if missing:
            raise ValueError(f"{path}: not a TinyMLPerf result (missing {sorted(missing)})")
        return result

    @classmethod
    def compare(cls, results) -> list:
        """Leaderboard rows from result dicts or JSON paths, per task, valid first, best score first.

        Results with a different seed than the first one of their task are
        rejected (their inputs differ, so scores are not comparable).
        """
        ### BEGIN SOLUTION
        loaded = [r if isinstance(r, dict) else cls.load(r) for r in results]
        seeds = {}
        for r in loaded:
            if seeds.setdefault(r["task"], r["seed"]) != r["seed"]:
                raise ValueError(
                    f"cannot compare {r['model_name']!r} on {r['task']}: "
                    f"seed {r['seed']} != {seeds[r['task']]}"
                )
        rows = [
            {
                "task": r["task"],
                "model_name": r["model_name"],
                "normalized_score": r["normalized_score"],
                "fidelity": r["fidelity"],
                "valid": r["valid"],
                "median_ms": r["latency"]["median"],
            }
            for r in loaded
        ]
        rows.sort(key=lambda row: (row["task"], not row["valid"], -row["normalized_score"]))
        for rank, row in enumerate(rows):
            row["rank"] = 1 + sum(1 for other in rows[:rank] if other["task"] == row["task"])
        return rows
        ### END SOLUTION

    @staticmethod
    def leaderboard_markdown(rows) -> str:
        lines = [
            "| task | rank | model | score | fidelity | valid | median ms |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            lines.append(
                f"| {r['task']} | {r['rank']} | {r['model_name']} | {r['normalized_score']:.3f} | "
                f"{r['fidelity']:.3f} | {'yes' if r['valid'] else 'no'} | {r['median_ms']:.3f} |"
            )
        return "\n".join(lines)
