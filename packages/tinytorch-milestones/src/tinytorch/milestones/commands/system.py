"""``tito system doctor``: what this machine offers TinyTorch, in one screen.

Python, NumPy and the BLAS it calls (the library that does every matmul),
the installed tiers with their versions, the data cache, and the optional
packages (PyTorch as a test oracle, matplotlib for ``--plot``). Exit 0 when
NumPy and the foundation tier are usable, 1 otherwise.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

from tinytorch.milestones import tiers


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "system",
        help="check this installation (tito system doctor)",
        description="Information about this installation.",
    )
    parser.set_defaults(func=None, parser=parser)
    sub = parser.add_subparsers(dest="system_command", metavar="ACTION")
    doctor = sub.add_parser(
        "doctor",
        help="Python, NumPy/BLAS, tiers, data cache, optional packages",
        description="Report Python, NumPy and its BLAS, installed tiers with versions, "
        "the data cache directory and optional packages.",
    )
    doctor.set_defaults(func=cmd_doctor, parser=doctor)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def blas_info() -> list[str]:
    """Human lines describing the BLAS/LAPACK NumPy was built with and the thread pools it runs."""
    import numpy as np

    lines = []
    try:  # NumPy >= 1.25 can return its build configuration as a dict
        config = np.show_config(mode="dicts")
        deps = config.get("Build Dependencies", {})
        for key in ("blas", "lapack"):
            dep = deps.get(key, {})
            if dep:
                lines.append(f"{key}: {dep.get('name', '?')} {dep.get('version', '')}".rstrip())
    except (TypeError, AttributeError, ValueError):  # older NumPy: show_config() only prints
        pass
    try:
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            lines.append(
                f"threads: {pool.get('internal_api')} ({pool.get('user_api')}) "
                f"{pool.get('version') or ''} num_threads={pool.get('num_threads')}"
            )
    except ImportError:
        lines.append("threads: install threadpoolctl to see the BLAS thread pool")
    return lines or ["unknown (np.show_config() prints the build details)"]


def data_cache_dir() -> str:
    """The data cache directory, as the data module resolves it (TINYTORCH_DATA, else the user cache dir)."""
    try:
        from tinytorch.milestones import data

        for name in ("cache_dir", "data_dir", "get_cache_dir"):
            fn = getattr(data, name, None)
            if callable(fn):
                return str(fn())
    except ImportError:
        pass
    if os.environ.get("TINYTORCH_DATA"):
        return os.environ["TINYTORCH_DATA"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tinytorch")


def cmd_doctor(args) -> int:
    ok = True

    def row(label: str, value: str) -> None:
        print(f"  {label:<22} {value}")

    print("TinyTorch system doctor")
    print("Python")
    row("version", f"{platform.python_version()} ({platform.python_implementation()})")
    row("executable", sys.executable)
    row("platform", f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU(s)")

    print("NumPy")
    try:
        import numpy as np

        row("version", np.__version__)
        for line in blas_info():
            row("BLAS" if not line.startswith("threads") else "", line)
    except ImportError:
        row("version", "NOT INSTALLED: pip install numpy")
        ok = False

    print("Tiers")
    absent = []
    for tier in (*tiers.TIERS, "milestones"):
        version = tiers.installed_version(tier)
        row(f"tinytorch-{tier}", version if version else "not installed")
        if not version:
            absent.append(f"tinytorch-{tier}")
    if absent:
        from tinytorch.milestones.course.wheelhouse import install_command

        row("to install", install_command(*absent))
    if not tiers.is_installed("foundation"):
        ok = False

    print("Data")
    cache = data_cache_dir()
    exists = os.path.isdir(cache)
    row(
        "cache directory",
        f"{cache} ({'exists' if exists else 'not created yet'}; set TINYTORCH_DATA to move it)",
    )

    print("Other packages")
    for dist, why in (
        ("torch", "optional: test oracle"),
        ("matplotlib", "optional: tito milestone run --plot"),
        ("tqdm", "progress bars"),
        ("requests", "dataset downloads"),
        ("threadpoolctl", "optional: milestones keep BLAS at TINYTORCH_BLAS_THREADS=1 thread"),
    ):
        version = _version(dist)
        row(dist, f"{version} ({why})" if version else f"not installed ({why})")

    print("\nstatus: " + ("ok" if ok else "problems found (see above)"))
    return 0 if ok else 1
