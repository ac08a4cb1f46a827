"""Where downloaded datasets live, and the errors the data layer raises.

The cache directory is ``$TINYTORCH_DATA`` when that variable is set, else the
user's cache directory: ``$XDG_CACHE_HOME/tinytorch`` (``~/.cache/tinytorch``)
on Linux, ``~/Library/Caches/tinytorch`` on macOS, ``%LOCALAPPDATA%\\tinytorch\\Cache``
on Windows. Each dataset gets one sub-directory (``mnist/``, ``cifar10/``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV_VAR = "TINYTORCH_DATA"


class DataUnavailable(RuntimeError):
    """A dataset is not in the cache and downloading was not requested.

    The message (``str(err)`` or ``err.reason``) says how to get it: the
    ``tito data download NAME`` command, or which files to place where by hand.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class DownloadError(RuntimeError):
    """Every mirror failed (network error, HTTP error, truncated or corrupted file).

    Nothing is left in the cache when this is raised; the message lists what each
    mirror did and how to place the file by hand.
    """


def data_dir(create: bool = False) -> Path:
    """The root of the dataset cache (see the module docstring); made (with parents) if ``create``."""
    env = os.environ.get(ENV_VAR)
    if env:
        root = Path(env).expanduser()
    elif sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        root = Path(base) / "tinytorch" / "Cache"
    elif sys.platform == "darwin":
        root = Path.home() / "Library" / "Caches" / "tinytorch"
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = Path(base) / "tinytorch"
    if create:
        root.mkdir(parents=True, exist_ok=True)
    return root
