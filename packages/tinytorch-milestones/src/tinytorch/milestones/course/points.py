"""Points: how `tito course grade` turns test results into a score.

One TOML file per tier ships with tinytorch-milestones (``course/points/<tier>.toml``);
``tito course points --tier T`` prints it, an instructor edits a copy and passes it with
``--points FILE``. A file may hold any subset of modules (of one or several tiers):
modules it leaves out keep their defaults. Format::

    [limits]
    test_timeout = 60          # seconds one test may run
    submission_timeout = 900   # seconds for every test of one submission

    [modules.09]
    points = 25                # the module's total
    hidden = 5                 # the part carried by the hidden tests (the visible tests carry the rest)

    [modules.09.weights]       # optional: glob over test names -> weight (default 1, 0 = ungraded);
    "test_conv_gradcheck*" = 3 # the first pattern that matches wins

Within a module and a visibility (visible or hidden), each test earns its share
of that part's points in proportion to its weight. When a module has no hidden
tests its hidden points go to the visible tests, so the module is always worth
``points``.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from pathlib import Path

from tinytorch.milestones.course import _toml
from tinytorch.milestones.tiers import MODULES, TIERS

POINTS_DIR = Path(__file__).resolve().parent / "points"
LIMIT_KEYS = {"test_timeout", "submission_timeout"}
MODULE_KEYS = {"points", "hidden", "weights", "title"}


class PointsError(ValueError):
    """A points file that cannot be used; the message names the file and the key."""


@dataclass
class ModulePoints:
    number: str
    points: float
    hidden: float = 0.0
    weights: list[tuple[str, float]] = field(default_factory=list)  # (glob, weight), first match wins

    def weight(self, test_name: str) -> float:
        """Weight of a test, by its name (``test_conv_gradcheck[2-2]``; module path not included)."""
        for pattern, weight in self.weights:
            if fnmatch.fnmatchcase(test_name, pattern):
                return weight
        return 1.0


@dataclass
class Points:
    modules: dict[str, ModulePoints]
    test_timeout: float = 60.0
    submission_timeout: float = 900.0
    sources: list[str] = field(default_factory=list)  # the files read, in order

    def module(self, number: str) -> ModulePoints:
        return self.modules[number]

    def total(self, numbers) -> float:
        return sum(self.modules[n].points for n in numbers)


def default_path(tier: str) -> Path:
    if tier not in TIERS:
        raise ValueError(f"tier must be one of {', '.join(TIERS)}, got {tier!r}")
    return POINTS_DIR / f"{tier}.toml"


def _number(value, where: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PointsError(f"{where} must be a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise PointsError(f"{where} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def _apply(points: Points, data: dict, source: str) -> None:
    unknown = set(data) - {"limits", "modules"}
    if unknown:
        raise PointsError(
            f"{source}: unknown table(s) {sorted(unknown)} (expected [limits] and [modules.NN])"
        )
    limits = data.get("limits", {})
    if not isinstance(limits, dict) or set(limits) - LIMIT_KEYS:
        raise PointsError(f"{source}: [limits] takes only {sorted(LIMIT_KEYS)}")
    for key, value in limits.items():
        setattr(points, key, _number(value, f"{source}: limits.{key}", positive=True))
    modules = data.get("modules", {})
    if not isinstance(modules, dict):
        raise PointsError(f"{source}: [modules] must be a table of [modules.NN] tables")
    known = {m.number for m in MODULES}
    for number, table in modules.items():
        where = f"{source}: modules.{number}"
        if number not in known:
            raise PointsError(f"{where}: unknown module (write two digits, 01-20, e.g. [modules.05])")
        if not isinstance(table, dict) or set(table) - MODULE_KEYS:
            raise PointsError(f"{where}: takes only {sorted(MODULE_KEYS)}")
        current = points.modules.get(number) or ModulePoints(number, 0.0)
        total = _number(table.get("points", current.points), f"{where}.points")
        hidden = _number(table.get("hidden", min(current.hidden, total)), f"{where}.hidden")
        if hidden > total:
            raise PointsError(f"{where}.hidden ({hidden:g}) exceeds the module's points ({total:g})")
        weights = current.weights
        if "weights" in table:
            if not isinstance(table["weights"], dict):
                raise PointsError(f'{where}.weights must be a table of "glob" = weight')
            weights = [
                (str(pattern), _number(w, f"{where}.weights.{pattern!r}"))
                for pattern, w in table["weights"].items()
            ]
        points.modules[number] = ModulePoints(number, total, hidden, weights)


def load(tiers, path: str | Path | None = None) -> Points:
    """The points of the modules of ``tiers``: the shipped defaults, then ``path`` on top."""
    points = Points({})
    for tier in tiers:
        source = default_path(tier)
        _apply(points, _toml.load_path(source), str(source))
        points.sources.append(str(source))
    if path is not None:
        path = Path(path)
        try:
            data = _toml.load_path(path)
        except OSError as exc:
            raise PointsError(f"cannot read the points file {path}: {exc.strerror}") from None
        except ValueError as exc:  # tomllib.TOMLDecodeError is a ValueError
            raise PointsError(f"{path}: not valid TOML: {exc}") from None
        _apply(points, data, str(path))
        points.sources.append(str(path))
    missing = [m.number for m in MODULES if m.tier in tiers and m.number not in points.modules]
    if missing:
        raise PointsError(f"no points for modules {', '.join(missing)} (in {', '.join(points.sources)})")
    return points


def default_text(tier: str) -> str:
    return default_path(tier).read_text(encoding="utf-8")
