"""Where downloaded datasets live, and the errors the data layer raises.

The cache directory is ``$TINYTORCH_DATA`` when that variable is set, else the
user's cache directory: ``$XDG_CACHE_HOME/tinytorch`` (``~/.cache/tinytorch``)
on Linux, ``~/Library/Caches/tinytorch`` on macOS, ``%LOCALAPPDATA%\\tinytorch\\Cache``
on Windows. Each dataset gets one sub-directory (``mnist/``, ``cifar10/``).
"""

from __future__ import annotations

import errno
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


class CacheError(DownloadError):
    """The cache directory cannot be used: permissions, a full disk, a file where a directory
    should be, a bad ``$TINYTORCH_DATA``. Local, so never retried; the message says what to do.
    """

    def __init__(self, path: str | os.PathLike, err: OSError | str):
        reason = err if isinstance(err, str) else (err.strerror or str(err))
        advice = {
            errno.ENOSPC: "free some disk space",
            errno.EDQUOT: "free some disk space",
            errno.EACCES: "fix its permissions",
            errno.EPERM: "fix its permissions",
            errno.EROFS: "it is on a read-only file system",
            errno.ENOTDIR: "a part of the path is a file, not a directory",
        }.get(getattr(err, "errno", None), "check the path")
        super().__init__(
            f"cannot use the data cache: {path}: {reason} ({advice}, or set {ENV_VAR} to a writable "
            "directory); nothing was written"
        )
        self.path = Path(path)


def data_dir(create: bool = False) -> Path:
    """The root of the dataset cache (see the module docstring); made (with parents) if ``create``."""
    env = os.environ.get(ENV_VAR)
    if env:
        if "\x00" in env:
            raise CacheError(repr(env), f"{ENV_VAR} contains a NUL character")
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
        make_dir(root)
    return root


def make_dir(path: Path) -> Path:
    """``path.mkdir(parents=True, exist_ok=True)``, an ``OSError`` becoming a :class:`CacheError`."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise CacheError(path, "exists and is not a directory") from None
    except OSError as err:
        raise CacheError(path, err) from None
    return path
