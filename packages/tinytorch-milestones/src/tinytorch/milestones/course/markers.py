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

Markers are found with :mod:`tokenize` (only real comments count, so a marker
quoted in a docstring is ignored) and placed with :mod:`ast`.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
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


@dataclass(frozen=True)
class Block:
    """One solution block: 1-based line numbers of its two markers (inclusive range)."""

    begin: int
    end: int
    indent: str
    qualname: str  # enclosing function, e.g. "Conv2d.forward"

    def body_lines(self, lines: list[str]) -> list[str]:
        """The source lines strictly between the markers (``lines`` is 0-based)."""
        return lines[self.begin : self.end - 1]


def _marker_comments(source: str, path: str) -> list[tuple[int, str, str]]:
    """(line, kind, indent) of every marker comment; kind is "begin" or "end"."""
    found = []
    lines = source.splitlines()
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError) as exc:
        raise MarkerError(path, [f"cannot tokenize: {exc}"]) from None
    for tok in tokens:
        if tok.type != tokenize.COMMENT:
            continue
        text = tok.string.rstrip()
        kind = "begin" if text == BEGIN else "end" if text == END else None
        if kind is None:
            if "BEGIN SOLUTION" in text or "END SOLUTION" in text:
                raise MarkerError(path, [f"line {tok.start[0]}: malformed marker {text!r} (write {BEGIN!r})"])
            continue
        line = lines[tok.start[0] - 1]
        indent = line[: tok.start[1]]
        if indent.strip():
            raise MarkerError(path, [f"line {tok.start[0]}: marker must be alone on its line"])
        found.append((tok.start[0], kind, indent))
    return found


def marker_lines(source: str, path: str = "<source>") -> list[int]:
    """Line numbers of every marker comment in ``source``."""
    return [line for line, _, _ in _marker_comments(source, path)]


def _pair(markers: list[tuple[int, str, str]], path: str) -> list[tuple[int, int, str]]:
    """Pair BEGIN/END markers; unbalanced or nested blocks are errors."""
    problems, pairs, open_at = [], [], None
    for line, kind, indent in markers:
        if kind == "begin":
            if open_at is not None:
                problems.append(
                    f"line {line}: BEGIN SOLUTION nested inside the block opened at line {open_at[0]}"
                )
                continue
            open_at = (line, indent)
        else:
            if open_at is None:
                problems.append(f"line {line}: END SOLUTION without a BEGIN SOLUTION")
                continue
            if indent != open_at[1]:
                problems.append(
                    f"line {line}: END SOLUTION indented differently from its BEGIN (line {open_at[0]})"
                )
            pairs.append((open_at[0], line, open_at[1]))
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


def find_blocks(source: str, path: str = "<source>") -> list[Block]:
    """Every solution block of ``source``, checked; raises :class:`MarkerError` listing all problems."""
    markers = _marker_comments(source, path)
    if not markers:
        return []
    pairs = _pair(markers, path)
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        raise MarkerError(path, [f"not valid Python: {exc}"]) from None
    blocks, problems = [], []
    for begin, end, indent in pairs:
        qualname, problem = _place(tree, begin, end, indent)
        if problem:
            problems.append(f"lines {begin}-{end}: {problem}")
        else:
            blocks.append(Block(begin, end, indent, qualname))
    if problems:
        raise MarkerError(path, problems)
    return blocks


def stub_line(block: Block, number: str, name: str) -> str:
    message = STUB_MESSAGE.format(number=number, name=name, qualname=block.qualname)
    return f"{block.indent}raise NotImplementedError({message!r})"


def replace_blocks(
    source: str, path: str = "<source>", message: Callable[[Block], str] | None = None
) -> tuple[str, list[Block]]:
    """Replace every block of ``source`` by one stub line; returns (new source, blocks).

    ``message(block)`` gives the stub line; by default a generic module number.
    The result is checked to be valid Python (``MarkerError`` otherwise).
    """
    blocks = find_blocks(source, path)
    if not blocks:
        return source, []
    message = message or (lambda b: stub_line(b, "00", "module"))
    lines = source.splitlines(keepends=True)
    out, cursor = [], 0
    for block in blocks:
        out.extend(lines[cursor : block.begin - 1])
        out.append(message(block) + "\n")
        cursor = block.end
    out.extend(lines[cursor:])
    result = "".join(out)
    try:
        compile(result, path, "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise MarkerError(path, [f"replacing the blocks gives invalid Python: {exc}"]) from None
    return result, blocks


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


def check_file(path: str | Path) -> list[Block]:
    """Check one file's markers and that its replacement is valid Python; returns its blocks."""
    path = Path(path)
    source = path.read_text(encoding="utf-8")
    _, blocks = replace_blocks(source, str(path))
    return blocks


def check_tree(src: str | Path) -> tuple[dict[Path, list[Block]], list[str]]:
    """Check every ``.py`` file under ``src``: ({file: blocks}, problems)."""
    results, problems = {}, []
    for path in sorted(Path(src).rglob("*.py")):
        try:
            results[path] = check_file(path)
        except MarkerError as exc:
            problems.append(str(exc))
    return results, problems
