"""The ``tito`` command: one entry point, one subcommand module per topic.

Each module in ``tinytorch.milestones.commands`` exposes ``register(subparsers)``,
which adds its parser and sets ``func(args) -> int`` (the exit code).

No traceback reaches the user. :func:`main` turns what can go wrong into one line on
stderr that says what to do, and an exit code:

* 2: a usage error (bad option or value, bad ``TINYTORCH_BLAS_THREADS``), printed with
  the usage of the (sub)command the user typed;
* 1: an operating-system error (permissions, full disk, a missing file), or a failure the
  command reports;
* 130: interrupted with Ctrl-C (one line, no traceback);
* 141: stdout was closed by the reader (``tito milestone list | head -1``): quiet.

With ``--json`` the last line on stdout is always a JSON object, also when the command
fails: the command's own records, or ``{"error": ..., "exit_code": ...}``.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import os
import sys

COMMANDS = ["milestone", "data", "system", "module", "course", "capstone"]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE
DEBUG_VAR = "TINYTORCH_DEBUG"  # set to 1 to see the traceback of an unexpected error


class UsageError(Exception):
    """A bad command line or setting; ``parser`` is the (sub)command whose usage to print."""

    def __init__(self, message: str, parser: argparse.ArgumentParser | None = None):
        super().__init__(message)
        self.parser = parser


class CommandError(RuntimeError):
    """A failure whose message is written for the user: printed as one line, exit 1."""


def have_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def check_tools(args) -> None:
    """Name a missing tool with its install command before a command needs it.

    * ``tito module status`` without pytest: the static check only, saying so (not "none ran");
    * ``tito module test`` without pytest, ``tito course grade`` without build (or uv): an error.
    """
    import shutil

    action = (args.command, getattr(args, f"{args.command}_command", None))
    if action == ("module", "status") and not getattr(args, "no_tests", True) and not have_module("pytest"):
        print("tito module status: pytest is not installed, so the tests do not run "
              "(pip install pytest hypothesis); the implementation check follows", file=sys.stderr)
        args.no_tests = True
    elif action == ("module", "test") and not have_module("pytest"):
        raise CommandError("running a module's tests needs pytest: pip install pytest hypothesis")
    elif action == ("course", "grade") and not have_module("build") and not shutil.which("uv"):
        raise CommandError("grading builds the reference wheels and needs the build package: "
                           "pip install build (or install uv)")


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise :class:`UsageError` instead of exiting.

    ``add_subparsers`` makes every sub-parser of the same class, so an error anywhere
    carries the parser of the command the user typed, and its usage is the one printed.
    """

    def error(self, message: str):
        raise UsageError(message, self)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (``--seed``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (``--retries``, ``--part``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """argparse type: a finite number of seconds > 0 (``--timeout``); 0, negatives, nan, inf refused."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}") from None
    if not (value > 0 and value != float("inf")):  # also false for nan
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds > 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="tito",
        description="TinyTorch course tool: run milestones, manage data, check modules, build releases.",
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keeps --version on one line
    )
    parser.add_argument("--version", action="version", version=f"tito {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"tinytorch.milestones.commands.{name}").register(subparsers)
    return parser


def _version() -> str:
    from importlib import metadata

    from tinytorch.milestones import tiers

    try:
        own = metadata.version("tinytorch-milestones")
    except metadata.PackageNotFoundError:
        own = "(not installed)"
    present = [f"{t} {tiers.installed_version(t)}" for t in tiers.TIERS if tiers.is_installed(t)]
    return f"{own} (tinytorch-milestones; tiers: {', '.join(present) or 'none installed'})"


BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def limit_blas_threads_for_milestones() -> None:
    """Start BLAS with ``$TINYTORCH_BLAS_THREADS`` threads (default 1) for ``tito milestone``.

    Milestone models are small: a second BLAS thread gains little on their
    matmuls, and on a busy machine waiting BLAS threads spin and can make
    training several times slower. BLAS reads these variables once, when NumPy
    is first imported, so this must run before that; a variable the user set
    wins. ``TINYTORCH_BLAS_THREADS=0`` keeps the library's default.

    Raises:
        UsageError: the variable is not a whole number >= 0.
    """
    from tinytorch.milestones.runner import blas_thread_setting

    try:
        threads = blas_thread_setting()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if threads == 0 or "numpy" in sys.modules:
        return
    for name in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(name, str(threads))


def describe_os_error(exc: OSError) -> str:
    """One line for an operating-system error: what failed, on which path, and what to do."""
    where = exc.filename if exc.filename is not None else ""
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    what = exc.strerror or str(exc) or type(exc).__name__
    advice = {
        errno.EACCES: "choose a directory you can write to, or fix its permissions",
        errno.EPERM: "choose a directory you can write to, or fix its permissions",
        errno.EROFS: "the file system is read-only: choose another directory",
        errno.ENOSPC: "the disk is full: free some space or choose a directory on another disk",
        errno.EDQUOT: "your disk quota is used up: free some space or choose another directory",
        errno.ENOENT: "check the path",
        errno.ENOTDIR: "a part of the path is a file, not a directory: check the path",
        errno.EISDIR: "the path is a directory: give a file name",
    }.get(exc.errno)
    line = f"{what}: {where}" if where else what
    return f"{line} ({advice})" if advice else line


def _emit_json_error(message: str, code: int) -> None:
    try:
        print(json.dumps({"error": message, "exit_code": code}), flush=True)
    except (BrokenPipeError, ValueError, OSError):
        pass


def _silence_stdout() -> None:
    """After the reader closed stdout: point it at /dev/null so the final flush cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (tests capture stdout)
        pass


def _say(line: str) -> None:
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    json_mode = "--json" in argv
    where = "tito"
    try:
        parser = build_parser()
        if argv[:1] == ["milestone"]:
            limit_blas_threads_for_milestones()
        args, extra = parser.parse_known_args(argv)
        where = (getattr(args, "parser", None) or parser).prog
        if extra:
            # parse_known_args leaves what no parser knew; report it with the deepest parser's usage.
            deepest = getattr(args, "parser", None) or parser
            raise UsageError(f"unrecognized arguments: {' '.join(extra)}", deepest)
        if not getattr(args, "func", None):
            # `tito` or `tito milestone` alone: show the help of the level the user reached.
            (getattr(args, "parser", None) or parser).print_help()
            return EXIT_USAGE
        check_tools(args)
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # here, not at exit: a reader that closed the pipe is handled below
        return code
    except UsageError as exc:
        target = exc.parser
        if target is not None:
            try:
                target.print_usage(sys.stderr)
            except OSError:
                pass
        _say(f"{target.prog if target is not None else where}: error: {exc}")
        if json_mode:
            _emit_json_error(f"usage: {exc}", EXIT_USAGE)
        return EXIT_USAGE
    except CommandError as exc:
        _say(f"{where}: {exc}")
        if json_mode:
            _emit_json_error(str(exc), EXIT_FAILED)
        return EXIT_FAILED
    except KeyboardInterrupt:
        _say(f"{where}: interrupted")
        if json_mode:
            _emit_json_error("interrupted", EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        _say(f"{where}: {describe_os_error(exc)}")
        if json_mode:
            _emit_json_error(describe_os_error(exc), EXIT_FAILED)
        return EXIT_FAILED
    except Exception as exc:  # the last resort: a bug, still without a traceback unless asked for
        from tinytorch.milestones.data._cache import DataUnavailable, DownloadError

        if isinstance(exc, (DownloadError, DataUnavailable)):  # written for the user (CacheError too)
            _say(f"{where}: {exc}")
            if json_mode:
                _emit_json_error(str(exc), EXIT_FAILED)
            return EXIT_FAILED
        if os.environ.get(DEBUG_VAR):
            raise
        _say(f"{where}: unexpected error: {type(exc).__name__}: {exc} "
             f"(please report it; {DEBUG_VAR}=1 shows the traceback)")
        if json_mode:
            _emit_json_error(f"{type(exc).__name__}: {exc}", EXIT_FAILED)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
