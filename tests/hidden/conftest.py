"""Hidden tests: instructor-only, never shipped in a student release (tests/hidden/<tier>/).

``tito course grade`` runs them next to the visible tests (in its kit they sit at
``tests/<tier>/hidden/``) and reports them separately. In the repository they run with
``pytest tests/hidden``; the files of a tier that is not installed are not collected.
"""

from __future__ import annotations

from importlib import metadata


def _installed(tier: str) -> bool:
    try:
        metadata.version(f"tinytorch-{tier}")
    except metadata.PackageNotFoundError:
        return False
    return True


collect_ignore_glob = [f"{t}/*" for t in ("foundation", "architecture", "optimization") if not _installed(t)]
