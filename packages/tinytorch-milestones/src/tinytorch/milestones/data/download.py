"""Download one file into the cache: mirrors, retries, streaming, verification, atomic rename.

The file is streamed (reads of at most 64 KiB, constant memory) into a temporary file
in the destination directory while its SHA-256 (and MD5, when pinned) is computed,
with a tqdm progress bar on stderr. Only when the byte count matches the
``Content-Length`` and the pinned size, and the digests match the pins, is the
temporary file renamed onto its final name with ``os.replace`` (atomic on one
file system). Any failure deletes the temporary file, so the cache only ever
holds complete, verified files.

Bounds, so that a bad mirror can neither fill the disk nor hang us:

* *size*: a mirror that announces a different size than the pinned one is refused
  before the body is read, and the transfer stops the moment it passes the pinned
  size (or the announced one, or 1 GiB for an unpinned file);
* *time*: ``timeout`` bounds each wait for the network, and ``deadline`` bounds the
  whole file, all mirrors and retries included (default: 60 s plus 100 KiB/s of the
  pinned size), so a server trickling one byte at a time gives up too.

Failures are classified:

* *transient* (connection refused or reset, timeout, HTTP 5xx/408/429, body
  shorter than announced): retried on the same mirror after an exponential
  backoff ``backoff * 2**attempt`` seconds;
* *permanent for this mirror* (other HTTP 4xx, wrong size or checksum, too many
  bytes): the next mirror is tried at once;
* *local* (the cache cannot be written: permissions, a full disk): reported at once
  as :class:`CacheError`, never retried and never blamed on the mirrors.

Downloads into one directory are serialized by a lock file (``_lock.py``); under
the lock, temporary files a killed run left behind are removed. When every mirror
failed, :class:`DownloadError` lists what each attempt did and says where to put
the file by hand.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tinytorch.milestones.data._cache import CacheError, DownloadError, make_dir
from tinytorch.milestones.data._lock import DirectoryLock, LockTimeout

CHUNK = 1 << 16
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_UNPINNED_BYTES = 1 << 30  # a file without a pinned size still stops here
DEADLINE_BASE = 60.0  # seconds every file gets, plus its size at DEADLINE_RATE
DEADLINE_RATE = 100 * 1024  # bytes per second


def default_deadline(size: int | None) -> float:
    """Seconds allowed for one file, all attempts included: 60 s + size at 100 KiB/s."""
    return DEADLINE_BASE + (size or 0) / DEADLINE_RATE


def check_seconds(name: str, value) -> float:
    """``value`` as a finite number of seconds > 0, else ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class RemoteFile:
    """A file to download: its name in the cache, pinned digests and size, and where to get it.

    Attributes:
        filename: name in the cache directory (no path components).
        sha256: pinned SHA-256, lowercase hex.
        urls: full URLs, tried in order (mirrors).
        size: pinned size in bytes, or None.
        md5: pinned MD5 (checked in addition to SHA-256), or None.
    """

    filename: str
    sha256: str
    urls: tuple[str, ...]
    size: int | None = None
    md5: str | None = None

    def __post_init__(self):
        if not self.filename or Path(self.filename).name != self.filename or self.filename in (".", ".."):
            raise ValueError(f"filename must be a plain file name, got {self.filename!r}")
        if len(self.sha256) != 64:
            raise ValueError(f"sha256 must be 64 hex digits, got {self.sha256!r}")


class _Transient(Exception):
    """Worth retrying on the same mirror."""


class _Permanent(Exception):
    """This mirror will not give us the right file: try the next one."""


class _Local(Exception):
    """Writing the cache failed (an OSError on our side): stop, report, do not retry."""

    def __init__(self, path: Path, err: OSError):
        super().__init__(str(err))
        self.path, self.err = path, err


def stale_partials(directory: Path, filename: str) -> list[Path]:
    """Temporary files of ``filename`` in ``directory`` (``.NAME.*.part``), e.g. from a killed run."""
    return sorted(directory.glob(f".{filename}.*.part"))


def file_digests(path: str | Path) -> tuple[str, str]:
    """(SHA-256, MD5) of a file, read in chunks."""
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)
            md5.update(chunk)
    return sha.hexdigest(), md5.hexdigest()


def verify_file(path: str | Path, remote: RemoteFile) -> str | None:
    """None if ``path`` has the pinned size and digests, else a sentence saying what differs."""
    path = Path(path)
    if not path.is_file():
        return f"{path} does not exist"
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        return f"{path} has {size} bytes, expected {remote.size}"
    sha, md5 = file_digests(path)
    if sha != remote.sha256:
        return f"{path} has SHA-256 {sha}, expected {remote.sha256}"
    if remote.md5 is not None and md5 != remote.md5:
        return f"{path} has MD5 {md5}, expected {remote.md5}"
    return None


def fetch(
    remote: RemoteFile,
    dest_dir: str | Path,
    *,
    retries: int = 3,
    backoff: float = 1.0,
    timeout: float = 30.0,
    deadline: float | None = None,
    progress: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    lock: bool = True,
) -> Path:
    """Make ``dest_dir/remote.filename`` a verified copy of ``remote``; return its path.

    An existing file that verifies is kept (no network access). Otherwise each
    URL of ``remote.urls`` is tried, up to ``retries`` attempts each for
    transient failures, until ``deadline`` seconds have passed.

    Args:
        remote: what to fetch.
        dest_dir: cache directory (created if needed).
        retries: attempts per mirror (an int >= 1).
        backoff: seconds before the first retry (finite, >= 0); doubles each retry.
        timeout: seconds to wait for connecting and between bytes (finite, > 0).
        deadline: seconds for the whole file, every attempt included (finite, > 0);
            default :func:`default_deadline` of the pinned size.
        progress: show a tqdm bar on stderr.
        sleep, clock: the functions used to wait and to read the time (tests pass their own).
        lock: hold the directory's lock (:mod:`._lock`) while fetching; False when the
            caller already holds it.

    Raises:
        ValueError: an argument is out of range (nothing is touched on disk).
        CacheError: the cache directory cannot be written (not retried).
        DownloadError: no mirror delivered the right bytes in time; nothing was written.
    """
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 1:
        raise ValueError(f"retries must be an int >= 1, got {retries!r}")
    if isinstance(backoff, bool) or not isinstance(backoff, (int, float)) or not (
        math.isfinite(backoff) and backoff >= 0
    ):
        raise ValueError(f"backoff must be a finite number of seconds >= 0, got {backoff!r}")
    timeout = check_seconds("timeout", timeout)
    deadline = default_deadline(remote.size) if deadline is None else check_seconds("deadline", deadline)
    dest_dir = Path(dest_dir)
    dest = dest_dir / remote.filename
    if dest.is_file() and verify_file(dest, remote) is None:
        return dest
    make_dir(dest_dir)
    args = (remote, dest, retries, backoff, timeout, deadline, progress, sleep, clock)
    if not lock:
        return _fetch_locked(*args)
    try:
        with DirectoryLock(dest_dir, timeout=deadline, on_wait=_notice if progress else None):
            return _fetch_locked(*args)
    except LockTimeout as err:
        raise DownloadError(f"could not download {remote.filename}: {err}") from None
    except OSError as err:  # the lock file itself could not be made
        raise CacheError(dest_dir, err) from None


def _notice(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _fetch_locked(remote, dest, retries, backoff, timeout, deadline, progress, sleep, clock) -> Path:
    """:func:`fetch` with the directory lock held: clean stale partials, then try the mirrors."""
    for stale in stale_partials(dest.parent, remote.filename):  # under the lock: nobody writes them
        try:
            stale.unlink()
        except OSError as err:
            raise CacheError(stale, err) from None
    if dest.is_file() and verify_file(dest, remote) is None:
        return dest  # another process finished it while we waited for the lock
    end = clock() + deadline
    errors: list[str] = []
    out_of_time = False
    for url in remote.urls:
        for attempt in range(retries):
            remaining = end - clock()
            if remaining <= 0:
                out_of_time = True
                break
            try:
                _download_once(url, remote, dest, timeout=min(timeout, remaining), end=end, clock=clock,
                               progress=progress)
                return dest
            except _Local as err:
                raise CacheError(err.path, err.err) from None
            except _Permanent as err:
                errors.append(f"{url}: {err}")
                break
            except _Transient as err:
                errors.append(f"{url} (attempt {attempt + 1}/{retries}): {err}")
                if attempt + 1 < retries:
                    sleep(min(backoff * 2**attempt, max(end - clock(), 0.0)))
        if out_of_time:
            break
    why = "every mirror failed"
    if out_of_time:
        why = f"gave up at the deadline of {deadline:.0f} s for this file (raise it with --deadline)"
    raise DownloadError(
        f"could not download {remote.filename}; {why}:\n  "
        + "\n  ".join(errors or ["no attempt finished in time"])
        + f"\nNothing was written. To install it by hand, download {remote.filename} from one of\n  "
        + "\n  ".join(remote.urls)
        + f"\nand place it at {dest} (SHA-256 {remote.sha256})."
    )


def _reader(raw) -> Callable[[int], bytes]:
    """A function returning the next bytes of the body as soon as any arrive (at most n).

    ``read1`` does at most one read on the socket, so a server that trickles bytes
    cannot keep one call waiting past our deadline (``read(n)`` waits for all n bytes).
    """
    read1 = getattr(raw, "read1", None)  # urllib3 >= 2
    if read1 is not None:
        return lambda n: read1(n, decode_content=False)
    return raw._fp.read1  # urllib3 1.x: the http.client response underneath has read1


def _download_once(url: str, remote: RemoteFile, dest: Path, *, timeout: float, end: float,
                   clock: Callable[[], float], progress: bool) -> None:
    """One attempt: stream ``url`` to a temporary file, verify, rename onto ``dest``."""
    import requests  # imported here: loading shipped data never needs it
    import urllib3
    from tqdm import tqdm

    network_errors = (requests.RequestException, urllib3.exceptions.HTTPError, OSError)
    try:
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{remote.filename}.", suffix=".part")
    except OSError as err:
        raise _Local(dest.parent, err) from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                # identity encoding: we hash the bytes of the file itself, never a re-encoded body.
                headers = {"Accept-Encoding": "identity"}
                resp = requests.get(url, stream=True, timeout=timeout, headers=headers)
            except network_errors as err:  # connection refused/reset, DNS, connect timeout
                raise _Transient(f"{type(err).__name__}: {err}") from err
            with resp:
                if resp.status_code != 200:
                    msg = f"HTTP {resp.status_code} {resp.reason or ''}".strip()
                    raise (_Transient if resp.status_code in RETRY_STATUS else _Permanent)(msg)
                announced = resp.headers.get("Content-Length")
                announced = int(announced) if announced and announced.isdigit() else None
                if announced is not None and remote.size is not None and announced != remote.size:
                    raise _Permanent(f"wrong size: the server announces {announced} bytes, "
                                     f"the pinned size is {remote.size}")
                limit = remote.size if remote.size is not None else (announced or MAX_UNPINNED_BYTES)
                read = _reader(resp.raw)
                sha, md5, received = hashlib.sha256(), hashlib.md5(), 0
                with tqdm(
                    total=limit if limit != MAX_UNPINNED_BYTES else None, unit="B", unit_scale=True,
                    unit_divisor=1024, desc=remote.filename, file=sys.stderr, disable=not progress,
                    leave=False,
                ) as bar:
                    while True:
                        try:
                            chunk = read(CHUNK)
                        except network_errors as err:  # reset, read timeout, body cut short
                            raise _Transient(f"{type(err).__name__}: {err}") from err
                        if not chunk:
                            break
                        received += len(chunk)
                        if received > limit:
                            raise _Permanent(f"too many bytes: stopped at {received}, the file has {limit}")
                        try:
                            out.write(chunk)
                        except OSError as err:
                            raise _Local(tmp, err) from None
                        sha.update(chunk)
                        md5.update(chunk)
                        bar.update(len(chunk))
                        if clock() > end:
                            raise _Transient(f"deadline passed after {received} of {limit} bytes")
            try:
                out.flush()
                os.fsync(out.fileno())
            except OSError as err:
                raise _Local(tmp, err) from None
        if announced is not None and received != announced:
            raise _Transient(f"transfer cut short: received {received} of {announced} bytes")
        if remote.size is not None and received != remote.size:
            raise _Permanent(f"wrong size: received {received} bytes, expected {remote.size}")
        if sha.hexdigest() != remote.sha256:
            raise _Permanent(f"checksum mismatch: SHA-256 {sha.hexdigest()}, expected {remote.sha256}")
        if remote.md5 is not None and md5.hexdigest() != remote.md5:
            raise _Permanent(f"checksum mismatch: MD5 {md5.hexdigest()}, expected {remote.md5}")
        try:
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        except OSError as err:
            raise _Local(dest, err) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
