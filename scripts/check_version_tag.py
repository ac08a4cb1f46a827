"""Check that a release tag names the version in packages/VERSION (the release workflow calls this).

    python scripts/check_version_tag.py v0.1.0        # exit 0: the tag and packages/VERSION agree
    python scripts/check_version_tag.py "$GITHUB_REF_NAME"

A tag is ``v`` followed by the version, exactly as packages/VERSION holds it (``v0.1.0`` for
``0.1.0``). The version must be a canonical PEP 440 public version (digits and dots, an
optional pre-release ``a``/``b``/``rc`` N, ``.postN``, ``.devN``): it becomes the version of
all four distributions, which pin each other exactly to it. Exit 1 with one line saying what
differs.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

VERSION_FILE = Path(__file__).resolve().parents[1] / "packages" / "VERSION"
# Canonical PEP 440 public versions, the form the wheel file names and pins carry.
NUMBER = r"(0|[1-9]\d*)"
CANONICAL = re.compile(
    rf"^{NUMBER}(\.{NUMBER})*((a|b|rc){NUMBER})?(\.post{NUMBER})?(\.dev{NUMBER})?$"
)


def check(tag: str, version: str) -> str | None:
    """None when ``tag`` is ``v<version>`` and ``version`` is canonical; else the problem."""
    if not CANONICAL.match(version):
        return f"packages/VERSION holds {version!r}, not a canonical PEP 440 version (1.2.0, 1.2.0rc1)"
    tag = tag.strip()
    if tag.startswith("refs/tags/"):
        tag = tag[len("refs/tags/"):]
    if not tag.startswith("v"):
        return f"release tags are v<version>, got {tag!r} (packages/VERSION: {version})"
    if tag[1:] != version:
        return f"tag {tag!r} says {tag[1:]!r} but packages/VERSION says {version!r} (tag v{version})"
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: check_version_tag.py TAG", file=sys.stderr)
        return 2
    version = VERSION_FILE.read_text(encoding="utf-8").strip()
    problem = check(argv[0], version)
    if problem:
        print(f"check_version_tag: {problem}", file=sys.stderr)
        return 1
    print(f"tag {argv[0]} matches packages/VERSION {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
