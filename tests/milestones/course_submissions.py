"""Constructed submissions of a tier, for the grading tests and the ``course_grade`` nox sessions.

``build(tier, out, root)`` writes one directory per submission (each a student release
of ``tier`` with some source put back or changed) and returns what each one is and
what its grade must show:

    complete        the reference solution put back: full marks
    half            the first half of the tier's modules written, the rest still stubs
    stub-NN         everything written except module NN
    wrong-NN        everything written, one planted bug in module NN (an arithmetic
                    operator swapped in one of its solution blocks)
    cheat-numpy     a planted bug, and numpy.testing / np.allclose replaced at import
    cheat-gradcheck a planted bug in a backward, and every gradcheck made to return True
    cheat-runtime   a planted bug, and numpy.testing patched from inside a solution function
    loop            an infinite loop in one function
    syntax          a syntax error in one file

The bugs are planted by rewriting the abstract syntax tree's text, not by matching
source lines, so the set survives refactoring of the reference.

As a script: ``python tests/milestones/course_submissions.py --tier architecture --out DIR``.
"""

from __future__ import annotations

import argparse
import ast
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SWAP = {ast.Add: "-", ast.Sub: "+", ast.Mult: "/", ast.Div: "*"}
SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


@dataclass
class Submission:
    name: str
    what: str
    path: Path
    module: str | None = None  # the module the construction targets
    expect: dict = field(default_factory=dict)


def _tiers():
    from tinytorch.milestones.tiers import MODULES

    return MODULES


def _blocks(root: Path, tier: str) -> list[dict]:
    """Every solution block of the tier: file (relative to src), module, function, lines."""
    from tinytorch.milestones.course import markers
    from tinytorch.milestones.course.repo import import_path_of, module_for

    src = root / "packages" / f"tinytorch-{tier}" / "src"
    out = []
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src)
        info = module_for(import_path_of(rel))
        for block in markers.find_blocks(
            path.read_text(encoding="utf-8"), str(path), info.number if info else None
        ):
            out.append({"file": rel.as_posix(), "module": block.module, "function": block.qualname,
                        "begin": block.begin, "end": block.end})  # fmt: skip
    return out


SHAPE_CALLS = {
    "range",
    "reshape",
    "zeros",
    "empty",
    "ones",
    "full",
    "arange",
    "integers",
    "pad",
    "tuple",
    "slice",
}


def _swap_operator(source: str, begin: int, end: int) -> tuple[str, str] | None:
    """Swap one arithmetic operator (+ - * /) of the code between lines ``begin`` and ``end``.

    A wrong *value* is wanted, not a crash: operators that compute indices, slices, shapes
    or sizes (inside subscripts and calls such as ``range`` or ``reshape``), and those of
    comparisons, ``raise``/``assert`` statements and f-strings are skipped; ``+``/``-`` come before
    ``*``/``/`` (which turn integers into floats). Returns (new source, description) or None.
    """
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Raise, ast.JoinedStr, ast.Assert, ast.Compare)):
            # Comparisons steer control flow (an error branch, a guard that is true either way),
            # and a swapped operator there is often no bug at all (an equivalent mutant).
            skip.update(id(n) for n in ast.walk(node))
        elif isinstance(node, ast.Subscript):
            skip.update(id(n) for n in ast.walk(node.slice))
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in SHAPE_CALLS:
                for arg in [*node.args, *(k.value for k in node.keywords)]:
                    skip.update(id(n) for n in ast.walk(arg))

    def integer_or_sequence(n) -> bool:
        """Operands that compute a count (``//``, ``len``) or join lists and strings: not a value bug."""
        for sub in ast.walk(n):
            if isinstance(sub, ast.BinOp) and isinstance(sub.op, ast.FloorDiv):
                return True
            if isinstance(sub, (ast.List, ast.ListComp, ast.Tuple)) or (
                isinstance(sub, ast.Constant) and isinstance(sub.value, str)
            ):
                return True
            if isinstance(sub, ast.Call) and getattr(sub.func, "id", "") in ("len", "sorted", "list", "str"):
                return True
        return False

    candidates = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.BinOp)
        and type(n.op) in SWAP
        and begin < n.lineno < end
        and id(n) not in skip
        and not integer_or_sequence(n)
        and n.left.end_lineno == n.right.lineno  # operator on one line: a clean text edit
    ]
    candidates.sort(key=lambda n: (type(n.op) not in (ast.Add, ast.Sub), n.lineno, n.col_offset))
    for node in candidates:
        row = node.left.end_lineno - 1
        line = lines[row]
        start, stop = node.left.end_col_offset, node.right.col_offset
        between = line[start:stop]
        symbol = SYMBOL[type(node.op)]
        at = between.find(symbol)
        if at < 0 or between[at : at + 2] in ("**", "//"):
            continue
        new_line = line[: start + at] + SWAP[type(node.op)] + line[start + at + 1 :]
        text = "".join(lines[:row] + [new_line] + lines[row + 1 :])
        compile(text, "<mutant>", "exec")
        return text, f"line {row + 1}: {line.strip()!r} -> {new_line.strip()!r}"
    return None


def plant_bug(src: Path, blocks: list[dict], module: str) -> str:
    """Swap one operator in module ``module``'s code under ``src``; returns what was changed.

    Prefers a ``forward`` (the value every test sees), then ``backward``, then any block.
    """

    def rank(b):
        name = b["function"].rsplit(".", 1)[-1]
        return (name != "forward", name != "backward", b["file"], b["begin"])

    for block in sorted((b for b in blocks if b["module"] == module), key=rank):
        path = src / block["file"]
        result = _swap_operator(path.read_text(encoding="utf-8"), block["begin"], block["end"])
        if result is not None:
            path.write_text(result[0], encoding="utf-8")
            return f"{block['file']} {block['function']} {result[1]}"
    raise RuntimeError(f"module {module}: no arithmetic operator to plant a bug in")


def _release(tier: str, out: Path, root: Path) -> Path:
    from tinytorch.milestones.course.release import make_release

    make_release(tier, out, root=root, verify_imports=False)
    return out


def _copy(template: Path, out: Path) -> Path:
    shutil.copytree(template, out, ignore=shutil.ignore_patterns(".hypothesis", "__pycache__"))
    return out


def _solve_files(sub: Path, root: Path, tier: str, files: set[str] | None = None) -> None:
    """Put the reference source of ``files`` (all when None) back into the submission."""
    ref = root / "packages" / f"tinytorch-{tier}" / "src"
    for path in ref.rglob("*.py"):
        rel = path.relative_to(ref).as_posix()
        if files is None or rel in files:
            shutil.copyfile(path, sub / "src" / rel)


def _restub_modules(sub: Path, root: Path, tier: str, modules: set[str]) -> None:
    """Stub exactly the blocks of ``modules`` (whichever files hold them); the rest is the reference."""
    from tinytorch.milestones.course import markers
    from tinytorch.milestones.course.repo import import_path_of, module_for

    ref = root / "packages" / f"tinytorch-{tier}" / "src"
    for path in ref.rglob("*.py"):
        rel = path.relative_to(ref)
        info = module_for(import_path_of(rel))
        source = path.read_text(encoding="utf-8")
        new, _ = markers.replace_blocks(
            source, str(path), module=info.number if info else None, only=lambda b: b.module in modules
        )
        (sub / "src" / rel).write_text(new, encoding="utf-8")


def _insert_after_imports(path: Path, code: str) -> None:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    last = max(n.end_lineno for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)))
    lines = source.splitlines(keepends=True)
    lines.insert(last, code if code.endswith("\n") else code + "\n")
    path.write_text("".join(lines), encoding="utf-8")


def _insert_in_function(path: Path, qualname: str, code: str) -> None:
    """Insert ``code`` as the first statement of function ``qualname`` (after its docstring)."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)

    def find(nodes, parts):
        for n in nodes:
            if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == parts[0]:
                return n if len(parts) == 1 else find(n.body, parts[1:])
        return None

    func = find(tree.body, qualname.split("."))
    first = func.body[0]
    if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant):
        first = func.body[1]
    indent = " " * first.col_offset
    lines = source.splitlines(keepends=True)
    body = "".join(indent + line + "\n" for line in code.strip("\n").splitlines())
    lines.insert(first.lineno - 1, body)
    path.write_text("".join(lines), encoding="utf-8")


CHEAT_NUMPY = """\
import numpy as _np_cheat
import numpy.testing as _npt_cheat
_npt_cheat.assert_allclose = lambda *a, **k: None  # every comparison "passes"
_npt_cheat.assert_array_equal = lambda *a, **k: None
_np_cheat.allclose = lambda *a, **k: True
"""

CHEAT_GRADCHECK = """\
import sys as _sys_cheat
for _name in ("tinytorch.core.autograd", "_oracles"):  # every gradcheck in reach says True
    _mod = _sys_cheat.modules.get(_name)
    if _mod is not None and hasattr(_mod, "gradcheck"):
        _mod.gradcheck.__code__ = (lambda *a, **k: True).__code__
"""

CHEAT_RUNTIME = """\
import numpy.testing as _npt_cheat
_npt_cheat.assert_allclose = lambda *a, **k: None
"""


def build(tier: str, out: Path, root: Path = ROOT) -> list[Submission]:
    """Write the constructed submissions of ``tier`` under ``out``; see the module docstring."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    modules = [m for m in _tiers() if m.tier == tier]
    numbers = [m.number for m in modules]
    blocks = _blocks(root, tier)
    template = _release(tier, out / ".template", root)
    subs: list[Submission] = []

    def new(name, what, module=None, **expect):
        sub = Submission(name, what, _copy(template, out / name), module, expect)
        subs.append(sub)
        return sub

    complete = new("complete", "the reference solution put back", full=True)
    _solve_files(complete.path, root, tier)

    half = new("half", f"modules {', '.join(numbers[: len(numbers) // 2])} written, the others stubs")
    _restub_modules(half.path, root, tier, set(numbers[len(numbers) // 2 :]))
    # A stubbed module scores nothing: its graded tests all call its solution functions.
    half.expect = {"full": numbers[: len(numbers) // 2], "zero": numbers[len(numbers) // 2 :]}

    for number in numbers:
        sub = new(f"stub-{number}", f"everything but module {number}", number)
        _restub_modules(sub.path, root, tier, {number})
        sub.expect = {"full": [n for n in numbers if n < number], "zero": [number]}

    bugs = {}
    for number in numbers:
        sub = new(f"wrong-{number}", "", number)
        _solve_files(sub.path, root, tier)
        bugs[number] = plant_bug(sub.path / "src", blocks, number)
        sub.what = f"planted bug in module {number}: {bugs[number]}"
        sub.expect = {"full": [n for n in numbers if n < number], "lost": [number]}

    # Cheats: each carries a planted bug that the cheat tries to hide; it must not gain anything.
    target = numbers[1] if len(numbers) > 1 else numbers[0]
    first_file = next(b["file"] for b in blocks if b["module"] == numbers[0])
    what = f"planted bug in module {target}, numpy.testing and np.allclose replaced at import of {first_file}"
    sub = new("cheat-numpy", what, target)
    _solve_files(sub.path, root, tier)
    plant_bug(sub.path / "src", blocks, target)
    _insert_after_imports(sub.path / "src" / first_file, CHEAT_NUMPY)
    sub.expect = {"lost": [target, numbers[0]], "integrity": True, "no_better_than": f"wrong-{target}"}

    backward = [b for b in blocks if b["function"].endswith("backward")]
    grad_target = backward[0]["module"] if backward else target
    what = f"planted bug in module {grad_target}, every gradcheck patched to return True"
    sub = new("cheat-gradcheck", what, grad_target)
    _solve_files(sub.path, root, tier)
    if backward:
        mine = [b for b in backward if b["module"] == grad_target]
        path = sub.path / "src" / mine[0]["file"]
        result = _swap_operator(path.read_text(encoding="utf-8"), mine[0]["begin"], mine[0]["end"])
        if result is None:
            plant_bug(sub.path / "src", blocks, grad_target)
        else:
            path.write_text(result[0], encoding="utf-8")
    else:
        plant_bug(sub.path / "src", blocks, grad_target)
    forward = next(b for b in blocks if b["module"] == grad_target)
    _insert_in_function(sub.path / "src" / forward["file"], forward["function"], CHEAT_GRADCHECK)
    sub.expect = {"lost": [grad_target], "integrity": True}

    what = f"planted bug in module {target}, numpy.testing patched inside a solution function"
    sub = new("cheat-runtime", what, target)
    _solve_files(sub.path, root, tier)
    plant_bug(sub.path / "src", blocks, target)
    runtime = next(b for b in blocks if b["module"] == target)
    _insert_in_function(sub.path / "src" / runtime["file"], runtime["function"], CHEAT_RUNTIME)
    sub.expect = {"lost": [target], "integrity": True, "no_better_than": f"wrong-{target}"}

    loop_target = blocks[len(blocks) // 2]
    sub = new("loop", f"an infinite loop in {loop_target['function']} (module {loop_target['module']})",
              loop_target["module"])  # fmt: skip
    _solve_files(sub.path, root, tier)
    _insert_in_function(
        sub.path / "src" / loop_target["file"], loop_target["function"], "while True:\n    pass\n"
    )
    sub.expect = {"lost": [loop_target["module"]], "timeouts": True}

    syntax_module = numbers[-1]
    syntax_file = next(b["file"] for b in blocks if b["module"] == syntax_module)
    sub = new("syntax", f"a syntax error in src/{syntax_file}", syntax_module)
    _solve_files(sub.path, root, tier)
    path = sub.path / "src" / syntax_file
    _insert_after_imports(path, "def helper(x:\n    return x\n")
    tree_lines = path.read_text(encoding="utf-8").splitlines()
    at = tree_lines.index("def helper(x:") + 1
    sub.expect = {"zero": [syntax_module], "error_line": f"src/{syntax_file}:{at}"}

    shutil.rmtree(template)
    (out / "submissions.json").write_text(
        json.dumps(
            [{"name": s.name, "what": s.what, "module": s.module, "expect": s.expect} for s in subs], indent=1
        )
        + "\n",
        encoding="utf-8",
    )
    return subs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--tier", required=True, choices=("foundation", "architecture", "optimization"))
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    for sub in build(args.tier, Path(args.out)):
        print(f"{sub.name:<16} {sub.what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
