"""The milestone runner: a registry of milestones, each a list of parts, and the code that runs them.

A *milestone* re-runs a landmark result of the field on TinyTorch. Each is split
into *parts*; a part trains or measures something and returns an `Outcome`: the
metrics it measured on held-out data and whether they meet its criterion. The
runner adds what every part needs and nothing more:

* a history line and an architecture summary before the work starts,
* progress bars (tqdm, always on stderr so ``--json`` keeps stdout clean),
* one verdict line per part: ``PASS  criterion: ...  measured: ...``,
* timing, skipping (a tier that is not installed, data that is not cached)
  with the reason, and JSON output (one object per part on stdout),
* training curves as PNG with ``--plot DIR`` when matplotlib is importable.

Milestone files (``m01_perceptron.py`` ...) import the tiers lazily *inside*
their part functions, so ``tito milestone list`` works with any set of tiers.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TextIO

from tinytorch.milestones import tiers

# One module per milestone, in order. Each defines ``MILESTONE = Milestone(...)``.
MILESTONE_MODULES = (
    "m01_perceptron",
    "m02_xor",
    "m03_mlp",
    "m04_cnn",
    "m05_transformer",
    "m06_mlperf",
)


class Skip(Exception):
    """Raised by a part that cannot run here (data not cached, optional package missing)."""


@dataclass
class Outcome:
    """What a part measured. ``passed`` is computed by the part from ``metrics``, never hard-coded."""

    passed: bool
    measured: str  # human summary of the measured values, e.g. "test accuracy 97.5%"
    metrics: dict = field(default_factory=dict)


@dataclass
class Part:
    number: int
    title: str
    criterion: str
    run: Callable[[Context], Outcome]
    download: bool = False  # needs a dataset downloaded on request: skipped unless --download or cached
    tiers: tuple[str, ...] = ()  # tiers needed beyond the milestone's own


@dataclass
class Milestone:
    id: str  # "01" .. "06"
    year: int
    title: str
    tiers: tuple[str, ...]  # distributions needed, e.g. ("foundation", "architecture")
    history: str  # a few sentences, our own words
    architecture: str  # a short text diagram of the model(s)
    proves: str  # what success demonstrates about the tiers beneath
    parts: tuple[Part, ...]

    def part(self, number: int) -> Part:
        for p in self.parts:
            if p.number == number:
                return p
        raise ValueError(
            f"milestone {self.id} has no part {number}: parts are {[p.number for p in self.parts]}"
        )

    def missing_tiers(self, part: Part | None = None) -> list[str]:
        needed = list(self.tiers) + (list(part.tiers) if part else [])
        return [t for t in dict.fromkeys(needed) if not tiers.is_installed(t)]


def all_milestones() -> list[Milestone]:
    """Every registered milestone, in order (importing a milestone file imports no tier)."""
    return [importlib.import_module(f"tinytorch.milestones.{name}").MILESTONE for name in MILESTONE_MODULES]


def get(milestone_id: str) -> Milestone:
    key = str(milestone_id).strip().zfill(2)
    for m in all_milestones():
        if m.id == key:
            return m
    ids = ", ".join(m.id for m in all_milestones())
    raise ValueError(f"unknown milestone {milestone_id!r}: expected one of {ids} or 'all'")


# ----------------------------------------------------------------------------- context


class Context:
    """What a part function receives: its seed, options, a printer, progress bars and curves.

    ``ctx.say(...)`` prints a line for the student (stdout normally; stderr in JSON
    mode so stdout holds only JSON). ``ctx.progress(...)`` wraps an iterable in a
    tqdm bar on stderr. ``ctx.curve(name, value)`` appends a point to a training
    curve (plotted with ``--plot``).
    """

    def __init__(
        self,
        seed: int = 0,
        download: bool = False,
        json_mode: bool = False,
        out: TextIO | None = None,
        err: TextIO | None = None,
        progress: bool = True,
    ):
        self.seed = seed
        self.download = download
        self.json_mode = json_mode
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.show_progress = progress
        self.curves: dict[str, list[float]] = {}
        self.curve_x_labels: dict[str, str] = {}

    @property
    def text(self) -> TextIO:
        return self.err if self.json_mode else self.out

    def say(self, *lines: str) -> None:
        for line in lines:
            print(line, file=self.text, flush=True)

    def progress(self, iterable: Iterable | None = None, total: int | None = None, desc: str = ""):
        """A tqdm progress bar on stderr over ``iterable`` (or ``range(total)``); silent when bars are off.

        Always a tqdm object, so ``set_postfix_str`` / ``update`` / ``close`` work either way.
        """
        from tqdm.auto import tqdm

        if iterable is None:
            iterable = range(total or 0)
        # On a terminal the bar redraws in place; in a log file every redraw is text, so redraw rarely.
        interactive = hasattr(self.err, "isatty") and self.err.isatty()
        return tqdm(
            iterable,
            total=total,
            desc=f"    {desc}",
            file=self.err,
            leave=not self.json_mode,
            disable=not self.show_progress,
            ncols=88,
            mininterval=0.25 if interactive else 15.0,
            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
        )

    def curve(self, name: str, value: float, x_label: str = "step") -> None:
        """Append a point to the training curve ``name`` (x counts in ``x_label`` units)."""
        self.curves.setdefault(name, []).append(float(value))
        self.curve_x_labels[name] = x_label


# ----------------------------------------------------------------------------- running

RULE = "=" * 72


def _banner(m: Milestone, ctx: Context) -> None:
    ctx.say("", RULE, f"Milestone {m.id} ({m.year}): {m.title}", RULE)
    first = m.history.strip().split("\n\n")[0]
    ctx.say(*("  " + line for line in _wrap(first, 70)))


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False, break_long_words=False)


def format_verdict(passed: bool, criterion: str, measured: str) -> str:
    return f"{'PASS' if passed else 'FAIL'}  criterion: {criterion}  |  measured: {measured}"


BLAS_THREADS_VAR = "TINYTORCH_BLAS_THREADS"


def blas_thread_setting() -> int:
    """``$TINYTORCH_BLAS_THREADS`` as a number: default 1, 0 means "the library's default".

    Raises:
        ValueError: the variable is set to something other than a whole number >= 0.
    """
    text = os.environ.get(BLAS_THREADS_VAR, "1").strip() or "0"
    if not text.isdigit():
        raise ValueError(
            f"{BLAS_THREADS_VAR} must be a whole number >= 0 (threads for NumPy's BLAS; 0 keeps the "
            f"library's default), got {os.environ.get(BLAS_THREADS_VAR)!r}: fix or unset it"
        )
    return int(text)


def blas_threads():
    """Limit NumPy's BLAS to ``$TINYTORCH_BLAS_THREADS`` threads (default 1) while a part runs.

    The milestone models are small: their matmuls gain little from a second BLAS
    thread, and on a busy machine (CI, a shared laptop) BLAS threads that wait
    for a core spin and can make training many times slower. Needs the optional
    ``threadpoolctl``; without it NumPy's default is kept. Set the variable to 0
    to keep the default anyway.
    """
    limit = blas_thread_setting()
    if limit <= 0:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=limit, user_api="blas")


def run_part(m: Milestone, part: Part, ctx: Context, plot_dir: str | None = None) -> dict:
    """Run one part (or skip it) and return its JSON record; prints the verdict."""
    record = {"milestone": m.id, "part": part.number, "title": part.title, "criterion": part.criterion}
    ctx.say("", f"--- Part {part.number}: {part.title}")
    missing = m.missing_tiers(part)
    if missing:
        reason = "; ".join(tiers.install_hint(t) for t in missing)
        return _skipped(record, reason, ctx)
    ctx.curves, ctx.curve_x_labels = {}, {}
    start = time.perf_counter()
    try:
        with blas_threads():
            outcome = part.run(ctx)
    except Skip as skip:
        return _skipped(record, str(skip), ctx)
    except Exception as exc:  # a student's NotImplementedError, a shape error...: report it, keep going
        seconds = time.perf_counter() - start
        message = f"{type(exc).__name__}: {exc}"
        where = traceback.extract_tb(exc.__traceback__)[-1]
        ctx.say(f"    error: {message}", f"    (raised at {where.filename}:{where.lineno}, in {where.name})")
        ctx.say(f"  FAIL  criterion: {part.criterion}  |  the part raised {type(exc).__name__}")
        record.update(passed=False, metrics={}, seconds=round(seconds, 3), error=message)
        return record
    seconds = time.perf_counter() - start
    ctx.say(f"  {format_verdict(outcome.passed, part.criterion, outcome.measured)}  ({seconds:.1f} s)")
    record.update(passed=bool(outcome.passed), metrics=_jsonable(outcome.metrics), seconds=round(seconds, 3))
    if plot_dir is not None and ctx.curves:
        try:
            written = write_plot(m, part, ctx.curves, plot_dir, ctx.curve_x_labels)
        except OSError as exc:  # an unwritable --plot directory costs the picture, not the run
            from tinytorch.milestones.cli import describe_os_error

            record["plot_error"] = describe_os_error(exc)
            ctx.say(f"    curves not written: {record['plot_error']}")
        else:
            if written:
                ctx.say(f"    curves written to {written}")
                record["plot"] = written
    return record


def _skipped(record: dict, reason: str, ctx: Context) -> dict:
    lines = _wrap(reason, 74) or [""]
    ctx.say(f"  SKIP  {lines[0]}", *(f"        {line}" for line in lines[1:]))
    record.update(skipped=True, reason=reason)
    return record


def _jsonable(metrics: dict) -> dict:
    out = {}
    for key, value in metrics.items():
        if hasattr(value, "item") and callable(value.item):  # numpy scalar
            value = value.item()
        if isinstance(value, float):
            value = round(value, 6)
        out[key] = value
    return out


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_plot(
    m: Milestone,
    part: Part,
    curves: dict[str, list[float]],
    plot_dir: str,
    x_labels: dict[str, str] | None = None,
) -> str | None:
    """Training curves of one part as ``DIR/milestone<ID>_part<N>.png``; None without matplotlib."""
    if not matplotlib_available():
        return None
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    os.makedirs(plot_dir, exist_ok=True)
    fig, axes = plt.subplots(1, len(curves), figsize=(4.5 * len(curves), 3.4), squeeze=False)
    for ax, (name, values) in zip(axes[0], curves.items()):
        ax.plot(range(1, len(values) + 1), values)
        ax.set_title(name)
        ax.set_xlabel((x_labels or {}).get(name, "step"))
        ax.grid(alpha=0.3)
    fig.suptitle(f"Milestone {m.id} part {part.number}: {part.title}")
    fig.tight_layout()
    path = os.path.join(plot_dir, f"milestone{m.id}_part{part.number}.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def select_parts(m: Milestone, part: int | None, download: bool) -> list[Part]:
    """The parts to run: the one asked for, else all (download parts skip themselves when data is absent)."""
    if part is not None:
        return [m.part(part)]
    return list(m.parts)


def run_milestones(
    milestones: list[Milestone],
    part: int | None = None,
    seed: int = 0,
    download: bool = False,
    json_mode: bool = False,
    plot_dir: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    progress: bool = True,
) -> list[dict]:
    """Run the selected parts of each milestone; return one record per part (also printed in JSON mode)."""
    ctx = Context(seed=seed, download=download, json_mode=json_mode, out=out, err=err, progress=progress)
    records = []
    for m in milestones:
        _banner(m, ctx)
        for p in select_parts(m, part, download):
            record = run_part(m, p, ctx, plot_dir)
            records.append(record)
            if json_mode:
                print(json.dumps(record), file=ctx.out, flush=True)
    return records
