"""Solution markers: find, check and replace ``### BEGIN SOLUTION`` / ``### END SOLUTION`` blocks.

The reference source marks every part a student writes with two comment lines
(the nbgrader convention)::

    def forward(self, x):
        \"\"\"Docstring stays.\"\"\"
        ### BEGIN SOLUTION
        return x @ self.weight
        ### END SOLUTION

A student release replaces each block, markers included, with one
``raise NotImplementedError("Module NN (name): implement Class.method")`` at the
marker's indentation. For that to be safe a block must:

* be balanced and not nested (a BEGIN closes with an END before the next BEGIN);
* hold whole statements of one function or method body, at the marker's
  indentation (never module or class level, never half of an ``if``);
* leave valid Python once replaced.

A block belongs to the module of its file (``tinytorch.milestones.tiers.MODULES``
maps import paths to modules) unless its BEGIN line names another module::

    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        return grad, grad
        ### END SOLUTION

Derivatives are Module 05's lesson wherever the op lives, so those blocks carry
``(Module 05)``; nbgrader still recognises the line (it looks for the substring
``BEGIN SOLUTION``). The tag must name a module of the file's own tier.

Markers are found with :mod:`tokenize` (only real comments count, so a marker
quoted in a docstring is ignored) and placed with :mod:`ast`. This file needs
only the standard library (the packaging guard loads it by path); the module
table comes from ``tiers.py`` next to it.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import re
import sys
import tokenize
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
# The BEGIN marker alone, or tagged with the module the block belongs to: "(Module 05)".
BEGIN_RE = re.compile(r"^### BEGIN SOLUTION(?: \(Module (\d\d)\))?$")
# The message every stub carries; `tito module status` and the course checks recognise stubs by it.
STUB_MESSAGE = "Module {number} ({name}): implement {qualname}"
# Files outside the module table (helpers) name their distribution and import path instead.
STUB_OTHER = "{dist} ({import_path}): implement {qualname}"
STUB_RE = re.compile(r"^(?:Module (\d\d) \(([^)]*)\)|tinytorch-[a-z]+ \([\w.]+\)): implement ([\w.]+)$")


class MarkerError(ValueError):
    """A solution block that cannot be replaced safely; ``problems`` lists every one found."""

    def __init__(self, path: str, problems: list[str]):
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


def _module_table():
    """``tinytorch.milestones.tiers.MODULES``; loaded from the file next door when the package is absent."""
    try:
        from tinytorch.milestones.tiers import MODULES
    except ImportError:
        name = "_tinytorch_course_tiers"
        module = sys.modules.get(name)
        if module is None:
            path = Path(__file__).resolve().parent.parent / "tiers.py"
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # dataclasses look their module up while the class is built
            spec.loader.exec_module(module)
        MODULES = module.MODULES
    return MODULES


def module_info(number: str):
    """The ModuleInfo of module ``number`` ("05"), or None."""
    return next((m for m in _module_table() if m.number == number), None)


def file_module(import_path: str):
    """The ModuleInfo whose import path is ``import_path`` (the module of a file), or None."""
    return next((m for m in _module_table() if m.import_path == import_path), None)


@dataclass(frozen=True)
class Block:
    """One solution block: 1-based line numbers of its two markers (inclusive range).

    ``module`` is the number ("05") of the module the block belongs to: the tag of its
    BEGIN line, else the module of its file when the caller gave one, else None.
    ``tagged`` says whether the BEGIN line carried the tag.
    """

    begin: int
    end: int
    indent: str
    qualname: str  # enclosing function, e.g. "Conv2d.forward"
    module: str | None = None
    tagged: bool = False

    def body_lines(self, lines: list[str]) -> list[str]:
        """The source lines strictly between the markers (``lines`` is 0-based)."""
        return lines[self.begin : self.end - 1]


def _marker_comments(source: str, path: str) -> list[tuple[int, str, str, str | None]]:
    """(line, kind, indent, tag) of every marker comment; kind is "begin" or "end", tag "05" or None."""
    found, problems = [], []
    lines = source.splitlines()
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError) as exc:
        raise MarkerError(path, [f"cannot tokenize: {exc}"]) from None
    for tok in tokens:
        if tok.type != tokenize.COMMENT:
            continue
        text = tok.string.rstrip()
        begin = BEGIN_RE.match(text)
        kind = "begin" if begin else "end" if text == END else None
        if kind is None:
            if "BEGIN SOLUTION" in text or "END SOLUTION" in text:
                problems.append(
                    f"line {tok.start[0]}: malformed marker {text!r} "
                    f"(write {BEGIN!r}, {BEGIN + ' (Module NN)'!r} or {END!r})"
                )
            continue
        tag = begin.group(1) if begin else None
        if tag is not None and module_info(tag) is None:
            problems.append(f"line {tok.start[0]}: {text!r} names an unknown module (01-20)")
        line = lines[tok.start[0] - 1]
        indent = line[: tok.start[1]]
        if indent.strip():
            problems.append(f"line {tok.start[0]}: marker must be alone on its line")
        found.append((tok.start[0], kind, indent, tag))
    if problems:
        raise MarkerError(path, problems)
    return found


def marker_lines(source: str, path: str = "<source>") -> list[int]:
    """Line numbers of every marker comment in ``source``."""
    return [m[0] for m in _marker_comments(source, path)]


def _pair(
    markers: list[tuple[int, str, str, str | None]], path: str
) -> list[tuple[int, int, str, str | None]]:
    """Pair BEGIN/END markers; unbalanced or nested blocks are errors."""
    problems, pairs, open_at = [], [], None
    for line, kind, indent, tag in markers:
        if kind == "begin":
            if open_at is not None:
                problems.append(
                    f"line {line}: BEGIN SOLUTION nested inside the block opened at line {open_at[0]}"
                )
                continue
            open_at = (line, indent, tag)
        else:
            if open_at is None:
                problems.append(f"line {line}: END SOLUTION without a BEGIN SOLUTION")
                continue
            if indent != open_at[1]:
                problems.append(
                    f"line {line}: END SOLUTION indented differently from its BEGIN (line {open_at[0]})"
                )
            pairs.append((open_at[0], line, open_at[1], open_at[2]))
            open_at = None
    if open_at is not None:
        problems.append(f"line {open_at[0]}: BEGIN SOLUTION never closed")
    if problems:
        raise MarkerError(path, problems)
    return pairs


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    return parents


def _place(tree: ast.Module, begin: int, end: int, indent: str) -> tuple[str | None, str | None]:
    """(qualname, problem) of the block between lines ``begin`` and ``end``."""
    parents = _parents(tree)
    statements = [n for n in ast.walk(tree) if isinstance(n, ast.stmt)]
    inside = [s for s in statements if begin < s.lineno < end]
    if not inside:
        return None, "empty solution block (no statement between the markers)"
    outer = [s for s in inside if not (begin < getattr(parents.get(s), "lineno", 0) < end)]
    # All outer statements must sit in one statement list (one body, not body + else).
    holders = set()
    for s in outer:
        parent = parents[s]
        for field, value in ast.iter_fields(parent):
            if isinstance(value, list) and any(v is s for v in value):
                holders.add((id(parent), field))
    if len(holders) != 1:
        return None, "the block spans statements of different bodies"
    ancestors, node = set(), parents[outer[0]]
    while node is not None:
        ancestors.add(id(node))
        node = parents.get(node)
    # A statement starting inside must end inside; one starting before may end inside only if it
    # encloses the block (the block is the tail of its body).
    for s in statements:
        if begin < s.lineno < end and s.end_lineno >= end:
            return None, f"the statement at line {s.lineno} runs past END SOLUTION"
        if s.lineno < begin and begin < s.end_lineno < end and id(s) not in ancestors:
            return None, f"the statement at line {s.lineno} ends inside the block: markers split it"
    if any(s.col_offset != len(indent) for s in outer):
        return None, "marker indentation differs from the block's statements"
    chain, node = [], parents[outer[0]]
    while node is not None and not isinstance(node, ast.Module):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            chain.append(node.name)
        node = parents.get(node)
    # The nearest enclosing definition must be a function (a block directly in a class body is not).
    nearest = parents[outer[0]]
    while not isinstance(nearest, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
        nearest = parents[nearest]
    if not isinstance(nearest, (ast.FunctionDef, ast.AsyncFunctionDef)):
        where = "module level" if isinstance(nearest, ast.Module) else f"the body of class {nearest.name}"
        return None, f"solution block at {where}: blocks belong inside a function or method body"
    return ".".join(reversed(chain)), None


def find_blocks(source: str, path: str = "<source>", module: str | None = None) -> list[Block]:
    """Every solution block of ``source``, checked; raises :class:`MarkerError` listing all problems.

    ``module`` ("03") is the module of the file: untagged blocks belong to it.
    """
    markers = _marker_comments(source, path)
    if not markers:
        return []
    pairs = _pair(markers, path)
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        raise MarkerError(path, [f"not valid Python: {exc}"]) from None
    blocks, problems = [], []
    for begin, end, indent, tag in pairs:
        qualname, problem = _place(tree, begin, end, indent)
        if problem:
            problems.append(f"lines {begin}-{end}: {problem}")
        else:
            blocks.append(Block(begin, end, indent, qualname, tag or module, tag is not None))
    if problems:
        raise MarkerError(path, problems)
    return blocks


def stub_message(block: Block) -> str:
    """``Module 05 (autograd): implement Add.backward`` for a block that belongs to a module."""
    info = module_info(block.module) if block.module else None
    if info is None:
        raise ValueError(f"block {block.qualname} (lines {block.begin}-{block.end}) belongs to no module")
    return STUB_MESSAGE.format(number=info.number, name=info.name, qualname=block.qualname)


def stub_line(block: Block, number: str | None = None, name: str | None = None) -> str:
    """The stub replacing ``block``: its module's (or the given ``number``/``name``) message."""
    if number is None:
        message = stub_message(block)
    else:
        message = STUB_MESSAGE.format(number=number, name=name, qualname=block.qualname)
    return f"{block.indent}raise NotImplementedError({message!r})"


def replace_blocks(
    source: str,
    path: str = "<source>",
    message: Callable[[Block], str] | None = None,
    *,
    module: str | None = None,
    only: Callable[[Block], bool] | None = None,
) -> tuple[str, list[Block]]:
    """Replace the blocks of ``source`` by one stub line each; returns (new source, replaced blocks).

    ``module`` is the file's module (untagged blocks belong to it). ``message(block)``
    gives the stub line; by default the block's module names it (``stub_line``), or
    module "00" when the block belongs to none. With ``only``, just the blocks it
    accepts are stubbed; the others keep their code and lose their two marker lines
    (the code is given, not work to do). The result is checked to be valid Python
    (``MarkerError`` otherwise).
    """
    blocks = find_blocks(source, path, module)
    if not blocks:
        return source, []
    if message is None:

        def message(b: Block) -> str:
            return stub_line(b) if b.module and module_info(b.module) else stub_line(b, "00", "module")

    lines = source.splitlines(keepends=True)
    out, cursor, replaced = [], 0, []
    for block in blocks:
        out.extend(lines[cursor : block.begin - 1])
        if only is None or only(block):
            out.append(message(block) + "\n")
            replaced.append(block)
        else:
            out.extend(lines[block.begin : block.end - 1])  # the body, without its markers
        cursor = block.end
    out.extend(lines[cursor:])
    result = "".join(out)
    try:
        compile(result, path, "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise MarkerError(path, [f"replacing the blocks gives invalid Python: {exc}"]) from None
    return result, replaced


def _normalized(lines: list[str]) -> list[str]:
    return [line.strip() for line in lines if line.strip()]


def _count(haystack: list[str], needle: list[str]) -> int:
    n = len(needle)
    return sum(1 for i in range(len(haystack) - n + 1) if haystack[i : i + n] == needle)


def surviving_solutions(reference: str, release: str, blocks: list[Block]) -> list[Block]:
    """Blocks whose solution text still appears in ``release``.

    Checked by block, not by line: a block's body (its non-blank lines, stripped,
    in order) may appear in the release only as often as it appears in the
    reference *outside* every block (``return x`` legitimately repeats).
    """
    ref_lines = reference.splitlines()
    scaffold, cursor = [], 0
    for block in blocks:
        scaffold.extend(ref_lines[cursor : block.begin - 1])
        cursor = block.end
    scaffold.extend(ref_lines[cursor:])
    scaffold_n, release_n = _normalized(scaffold), _normalized(release.splitlines())
    leaks = []
    for block in blocks:
        body = _normalized(block.body_lines(ref_lines))
        if body and _count(release_n, body) > _count(scaffold_n, body):
            leaks.append(block)
    return leaks


def import_path_of(relative: Path) -> str:
    """``tinytorch/core/spatial.py`` -> ``tinytorch.core.spatial`` (``__init__.py`` names its package)."""
    parts = list(Path(relative).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def check_file(path: str | Path, import_path: str | None = None, tier: str | None = None) -> list[Block]:
    """Check one file's markers and that its replacement is valid Python; returns its blocks.

    With ``import_path`` (where the file is imported from), every block must belong to a
    module: untagged blocks take the file's module, and a file outside the module table
    must tag each block. With ``tier``, a tag must name a module of that tier (a release
    of one tier cannot stub another tier's module).
    """
    path = Path(path)
    source = path.read_text(encoding="utf-8")
    info = file_module(import_path) if import_path else None
    blocks = find_blocks(source, str(path), info.number if info else None)
    problems = []
    for b in blocks:
        where = f"lines {b.begin}-{b.end} ({b.qualname})"
        if import_path is not None and b.module is None:
            problems.append(
                f"{where}: {import_path} is not a module file: tag the block with {BEGIN + ' (Module NN)'!r}"
            )
        owner = module_info(b.module) if b.module else None
        if tier is not None and owner is not None and owner.tier != tier:
            problems.append(
                f"{where}: tagged Module {owner.number} ({owner.name}), a module of tinytorch-{owner.tier}, "
                f"in a file of tinytorch-{tier}"
            )
    if problems:
        raise MarkerError(str(path), problems)
    replace_blocks(source, str(path), module=info.number if info else None)
    return blocks


def _tier_of_src(src: Path) -> str | None:
    """``packages/tinytorch-architecture/src`` -> "architecture" (a tier's source tree), else None."""
    name = src.resolve().parent.name
    tier = name.removeprefix("tinytorch-")
    return tier if name.startswith("tinytorch-") and tier in {m.tier for m in _module_table()} else None


def check_tree(src: str | Path, tier: str | None = None) -> tuple[dict[Path, list[Block]], list[str]]:
    """Check every ``.py`` file under ``src`` (a ``src/`` directory holding ``tinytorch/``).

    Returns ({file: blocks}, problems). Blocks carry their module. The tier (from the
    argument, else from ``packages/tinytorch-<tier>/src``) restricts tags to its modules.
    """
    src = Path(src)
    tier = tier or _tier_of_src(src)
    results, problems = {}, []
    for path in sorted(src.rglob("*.py")):
        import_path = import_path_of(path.relative_to(src))
        try:
            results[path] = check_file(path, import_path, tier)
        except MarkerError as exc:
            problems.append(str(exc))
    return results, problems
