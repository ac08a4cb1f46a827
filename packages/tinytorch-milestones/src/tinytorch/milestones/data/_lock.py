"""An inter-process lock on one dataset directory, so concurrent downloads cannot collide.

Two ``tito data download cifar10`` (or two milestone runs with ``--download``) started
together would otherwise write, verify, extract and rename in the same directory at
once. :class:`DirectoryLock` takes an exclusive OS lock on ``DIR/.lock``
(``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows): the second process waits,
then finds the files the first one verified and downloads nothing. The OS drops the
lock when a process dies, so a killed download never leaves the directory locked; the
``.lock`` file itself stays (it is empty and harmless).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

LOCK_NAME = ".lock"
POLL_SECONDS = 0.1


class LockTimeout(TimeoutError):
    """Another process kept the directory locked for longer than we were willing to wait."""


def _try_lock(fd: int) -> bool:
    if os.name == "nt":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(fd: int) -> None:
    if os.name == "nt":  # pragma: no cover
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)


class DirectoryLock:
    """``with DirectoryLock(directory, timeout=600, on_wait=print): ...``: exclusive use of ``directory``.

    Args:
        directory: created if needed (an ``OSError`` from that is the caller's to report).
        timeout: seconds to wait for another holder; ``None`` waits without limit.
        on_wait: called once with a sentence when we have to wait.
        clock, sleep: injected by tests.

    The lock is per open file, so two threads of one process exclude each other too.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        timeout: float | None = None,
        on_wait: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.path = Path(directory) / LOCK_NAME
        self.timeout = timeout
        self.on_wait = on_wait
        self.clock, self.sleep = clock, sleep
        self._fd: int | None = None

    def __enter__(self) -> DirectoryLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        start, told = self.clock(), False
        try:
            while not _try_lock(fd):
                if self.timeout is not None and self.clock() - start >= self.timeout:
                    raise LockTimeout(
                        f"another process has been using {self.path.parent} for {self.timeout:.0f} s "
                        f"(it holds {self.path}); wait for it to finish, or stop it, and try again"
                    )
                if not told and self.on_wait is not None:
                    self.on_wait(f"waiting for another process downloading into {self.path.parent} ...")
                    told = True
                self.sleep(POLL_SECONDS)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                _unlock(fd)
            finally:
                os.close(fd)
