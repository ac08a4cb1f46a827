"""Reading TOML on every supported Python: ``tomllib`` (3.11+), else ``tomli``.

Python 3.10 has no ``tomllib``. ``tomli`` is the same parser published separately;
pip vendors a copy, used as the last resort so that ``tito course`` works on a bare
3.10 environment that has pip.
"""

from __future__ import annotations


def _parser():
    try:
        import tomllib  # novm: Python 3.11+, with the fallbacks below

        return tomllib
    except ModuleNotFoundError:
        pass
    try:
        import tomli

        return tomli
    except ModuleNotFoundError:
        pass
    try:
        from pip._vendor import tomli  # noqa: PLC2701 - last resort on Python 3.10

        return tomli
    except ImportError:
        raise ModuleNotFoundError(
            "reading TOML on Python 3.10 needs the tomli package: pip install tomli"
        ) from None


def loads(text: str) -> dict:
    """Parse TOML text (raises ``ValueError`` subclasses on bad TOML, as tomllib does)."""
    return _parser().loads(text)


def load_path(path) -> dict:
    with open(path, encoding="utf-8") as f:
        return loads(f.read())
