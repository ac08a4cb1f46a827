"""Extract a tar archive without trusting its member names.

A tar member can be named ``../../.bashrc`` or ``/etc/passwd``, or be a symbolic
or hard link pointing anywhere; a naive ``extractall`` writes wherever the
archive says. Here every member is checked *before anything is written*:

* only regular files and directories are accepted (links, devices, FIFOs are refused);
* names must be relative, without ``..`` components or drive letters, and must
  resolve inside the target directory.

Files are written by copying their bytes (never by ``TarFile.extract``, so no
permissions, owners or times from the archive are applied) into a staging
directory next to the target, which is renamed into place only when the whole
archive has been extracted. A failure leaves neither the target nor the staging
directory behind.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath


class UnsafeArchiveError(ValueError):
    """An archive member would escape the target directory, or is not a plain file/directory."""


def check_member(member: tarfile.TarInfo, root: Path) -> Path | None:
    """Where ``member`` would go under ``root`` (``None`` for the root itself); raise if unsafe."""
    name = member.name
    if not (member.isfile() or member.isdir()):
        kind = "link" if (member.issym() or member.islnk()) else "special file"
        raise UnsafeArchiveError(f"archive member {name!r} is a {kind}; only regular files are accepted")
    if "\\" in name or "\x00" in name:
        raise UnsafeArchiveError(f"archive member {name!r} has a backslash or NUL in its name")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or (parts and ":" in parts[0]):
        raise UnsafeArchiveError(f"archive member {name!r} has an absolute path")
    if ".." in parts:
        raise UnsafeArchiveError(f"archive member {name!r} points outside the target ('..')")
    parts = tuple(p for p in parts if p != ".")
    if not parts:
        if member.isdir():
            return None
        raise UnsafeArchiveError(f"archive member {name!r} has an empty name")
    dest = root.joinpath(*parts)
    # Defence in depth: the resolved path must stay under the resolved root.
    if not dest.resolve().is_relative_to(root.resolve()):
        raise UnsafeArchiveError(f"archive member {name!r} resolves outside the target")
    return dest


def safe_extract_tar(archive: str | Path, target: str | Path) -> Path:
    """Extract ``archive`` (any compression tarfile reads) into the new directory ``target``.

    Args:
        archive: path of the ``.tar``/``.tar.gz``.
        target: directory to create; it must not exist yet.

    Returns:
        ``target``.

    Raises:
        UnsafeArchiveError: a member is a link or special file, or its name escapes ``target``
            (nothing is written in that case).
        FileExistsError: ``target`` already exists.
        tarfile.TarError: the archive is corrupt.
    """
    archive, target = Path(archive), Path(target)
    if target.exists():
        raise FileExistsError(f"extraction target {target} already exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".extract"))
    try:
        with tarfile.open(archive, "r:*") as tf:
            members = tf.getmembers()
            plan = [(m, check_member(m, staging)) for m in members]  # validate all first
            for member, dest in plan:
                if dest is None:
                    continue
                if member.isdir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                src = tf.extractfile(member)
                if src is None:  # cannot happen for isfile(), but do not trust it
                    raise UnsafeArchiveError(f"archive member {member.name!r} has no data")
                with src, open(dest, "xb") as out:  # "x": a duplicate member name is an error
                    shutil.copyfileobj(src, out, 1 << 20)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
