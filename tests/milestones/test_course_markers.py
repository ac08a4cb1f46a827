"""Solution markers: which blocks are accepted, which are refused, and what replacing them gives."""

from __future__ import annotations

import textwrap

import pytest
from tinytorch.milestones.course.markers import (
    STUB_RE,
    MarkerError,
    find_blocks,
    replace_blocks,
    stub_line,
    surviving_solutions,
)

B, E = "### BEGIN SOLUTION", "### END SOLUTION"


def src(text: str) -> str:
    return textwrap.dedent(text).replace("BEGIN", B).replace("END", E)


GOOD = src(
    '''
    """A module; the docstring may quote markers: BEGIN"""
    import math


    def area(r):
        """Circle area."""
        BEGIN
        return math.pi * r * r
        END


    class Acc:
        def __init__(self):
            BEGIN
            self.total = 0
            END

        def add(self, v):
            if v is None:
                raise ValueError("v")
            BEGIN
            self.total += v
            return self.total
            END

        def branch(self, flag):
            if flag:
                BEGIN
                return 1
                END
            return 0
    '''
)


def test_good_blocks_are_found_with_their_functions():
    blocks = find_blocks(GOOD)
    assert [b.qualname for b in blocks] == ["area", "Acc.__init__", "Acc.add", "Acc.branch"]
    lines = GOOD.splitlines()
    for b in blocks:
        assert lines[b.begin - 1].strip() == B and lines[b.end - 1].strip() == E
    assert blocks[3].indent == " " * 12


def test_replacement_is_valid_python_with_one_raise_per_block():
    out, blocks = replace_blocks(GOOD, message=lambda b: stub_line(b, "07", "training"))
    compile(out, "<out>", "exec")
    assert B not in out.split('"""', 2)[2] and E not in out
    assert out.count("raise NotImplementedError(") == len(blocks) == 4
    assert "raise NotImplementedError('Module 07 (training): implement Acc.add')" in out
    # scaffolding outside the blocks stays: validation before the block, the fallback return
    assert 'raise ValueError("v")' in out and "\n        return 0\n" in out
    namespace: dict = {}
    exec(compile(out, "<out>", "exec"), namespace)
    with pytest.raises(NotImplementedError, match=r"^Module 07 \(training\): implement area$"):
        namespace["area"](1.0)
    assert namespace["Acc"].branch.__code__  # the class still defines, only calls fail


def test_stub_messages_match_the_shared_pattern():
    (block,) = find_blocks(src("def f():\n    BEGIN\n    return 1\n    END\n"))
    line = stub_line(block, "12", "attention")
    message = line.split("(", 1)[1].rsplit(")", 1)[0].strip("'")
    assert STUB_RE.match(message).groups() == ("12", "attention", "f")


BAD = {
    "unbalanced begin": ("def f():\n    BEGIN\n    return 1\n", "never closed"),
    "unbalanced end": ("def f():\n    return 1\n    END\n", "without a BEGIN"),
    "nested": ("def f():\n    BEGIN\n    x = 1\n    BEGIN\n    return x\n    END\n    END\n", "nested"),
    "module level": ("BEGIN\nx = 1\nEND\n", "module level"),
    "class body": ("class A:\n    BEGIN\n    x = 1\n    END\n", "class A"),
    "splits an if": (
        "def f(a):\n    if a:\n        BEGIN\n        x = 1\n    else:\n"
        "        x = 2\n        END\n    return x\n",
        "different bodies",
    ),
    "runs past end": ("def f(a):\n    BEGIN\n    if a:\n        x = 1\n    END\n        return x\n", None),
    "empty": ("def f():\n    BEGIN\n    END\n    return 1\n", "empty"),
    "indentation": ("def f(a):\n    if a:\n    BEGIN\n        return 1\n    END\n", "indentation"),
    "malformed marker": ("def f():\n    ## BEGIN SOLUTION!\n    return 1\n", "malformed"),
    "not alone on line": ("def f():\n    x = 1  " + B + "\n    return x\n    " + E + "\n", "alone"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_blocks_are_refused(case):
    text, expected = BAD[case]
    text = text.replace("BEGIN", B).replace("END", E) if "##" not in text else text
    with pytest.raises(MarkerError) as info:
        replace_blocks(text, "bad.py")
    if expected:
        assert expected in str(info.value)
    assert "bad.py" in str(info.value)


def test_every_problem_of_a_file_is_reported():
    text = src("BEGIN\nx = 1\nEND\nclass A:\n    BEGIN\n    y = 2\n    END\n")
    with pytest.raises(MarkerError) as info:
        find_blocks(text, "two.py")
    assert len(info.value.problems) == 2


def test_survivors_are_checked_by_block_not_by_line():
    # `return x` legitimately appears outside the block too: replacing the block is not a leak
    reference = src(
        """
        def ident(x):
            return x

        def same(x):
            BEGIN
            return x
            END
        """
    )
    out, blocks = replace_blocks(reference)
    assert surviving_solutions(reference, out, blocks) == []
    # a release that kept the solution line (replacement forgot the block) is caught
    leaked = out.replace("    raise NotImplementedError", "    return x\n    raise NotImplementedError")
    assert [b.qualname for b in surviving_solutions(reference, leaked, blocks)] == ["same"]


def test_source_without_markers_is_unchanged():
    text = "def f():\n    return 1\n"
    assert replace_blocks(text) == (text, [])


# --- module tags: `### BEGIN SOLUTION (Module NN)` ------------------------------------------------

TAGGED = src(
    """
    def forward(x):
        BEGIN
        return 2 * x
        END


    def backward(g):
        BEGIN (Module 05)
        return 2 * g
        END
    """
)


def test_tags_attribute_blocks_and_untagged_blocks_take_the_file_module():
    blocks = find_blocks(TAGGED, "tensor.py", module="01")
    assert [(b.qualname, b.module, b.tagged) for b in blocks] == [
        ("forward", "01", False),
        ("backward", "05", True),
    ]
    assert [b.module for b in find_blocks(TAGGED, "tensor.py")] == [None, "05"]  # no file module given


def test_stub_messages_name_the_block_module():
    out, blocks = replace_blocks(TAGGED, "tensor.py", module="01")
    assert "raise NotImplementedError('Module 01 (tensor): implement forward')" in out
    assert "raise NotImplementedError('Module 05 (autograd): implement backward')" in out
    assert all(STUB_RE.match(m) for m in ("Module 05 (autograd): implement backward",))


def test_only_stubs_the_chosen_modules_and_gives_the_rest_without_markers():
    out, replaced = replace_blocks(TAGGED, "tensor.py", module="01", only=lambda b: b.module == "05")
    assert [b.qualname for b in replaced] == ["backward"]
    assert "return 2 * x" in out and "return 2 * g" not in out
    assert "BEGIN SOLUTION" not in out and "END SOLUTION" not in out
    compile(out, "tensor.py", "exec")


@pytest.mark.parametrize(
    "line, expected",
    [
        ("### BEGIN SOLUTION (Module 21)", "unknown module"),
        ("### BEGIN SOLUTION (Module 00)", "unknown module"),
        ("### BEGIN SOLUTION (Module 5)", "malformed"),
        ("### BEGIN SOLUTION (module 05)", "malformed"),
        ("### BEGIN SOLUTION(Module 05)", "malformed"),
        ("### BEGIN SOLUTION (Module 05) extra", "malformed"),
    ],
)
def test_unknown_and_malformed_tags_are_refused(line, expected):
    text = f"def f():\n    {line}\n    return 1\n    {E}\n"
    with pytest.raises(MarkerError, match=expected):
        find_blocks(text, "bad.py")


def test_check_tree_refuses_tags_of_another_tier_and_untagged_helpers(tmp_path):
    from tinytorch.milestones.course.markers import check_tree

    src_dir = tmp_path / "packages" / "tinytorch-architecture" / "src" / "tinytorch"
    (src_dir / "core").mkdir(parents=True)
    (src_dir / "core" / "spatial.py").write_text(f"def f():\n    {B} (Module 05)\n    return 1\n    {E}\n")
    (src_dir / "core" / "helpers.py").write_text(f"def g():\n    {B}\n    return 2\n    {E}\n")
    _, problems = check_tree(src_dir.parent)
    text = "\n".join(problems)
    assert (
        "tagged Module 05 (autograd), a module of tinytorch-foundation, in a file of tinytorch-architecture"
        in text
    )
    assert "tinytorch.core.helpers is not a module file: tag the block" in text
    (src_dir / "core" / "helpers.py").write_text(f"def g():\n    {B} (Module 09)\n    return 2\n    {E}\n")
    (src_dir / "core" / "spatial.py").write_text(f"def f():\n    {B}\n    return 1\n    {E}\n")
    results, problems = check_tree(src_dir.parent)
    assert not problems and sorted(b.module for bs in results.values() for b in bs) == ["09", "09"]
