"""A wheelhouse: the reference distributions as a package index a course can host.

``tito course wheelhouse --out DIR`` (inside a clone of the repository) builds, for each of
the four distributions, its sdist and then its wheel *from that sdist* (what a release and
an install from an sdist do), and writes beside them::

    DIR/
      tinytorch_foundation-0.1.0-py3-none-any.whl, tinytorch_foundation-0.1.0.tar.gz, ...
      index.html                         what this is, the one install line, every file (a --find-links page)
      simple/index.html                  PEP 503 root: one link per project
      simple/tinytorch-foundation/index.html   one link per file, ``../../FILE#sha256=HEX``
      wheelhouse.json                    version(s), files and their SHA-256 (for tools and people)

Any static host serves it (GitHub Pages, a course web server, a shared folder or a
``file://`` path), and plain pip uses it::

    pip install --extra-index-url https://HOST/PATH/simple tinytorch-architecture

pulls the matching ``tinytorch-foundation`` through the exact pins and NumPy from the usual
index. Running the command again with a new version adds that version's files; the index
lists every version present, so an older course setup keeps resolving.

Where a tier is missing, ``tito`` and the tests print an install command that works where
the user is (:func:`install_command`): the course's wheelhouse when one is configured
(``$TINYTORCH_WHEELHOUSE``, or ``"wheelhouse"`` in the ``tinytorch-release.json`` of the
student release the user is in), else the package directory in a repository checkout, else
``--find-links`` with a wheelhouse directory. The distributions are not on PyPI, so a bare
``pip install tinytorch-architecture`` is never suggested.
"""

from __future__ import annotations

import hashlib
import html
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

from tinytorch.milestones.tiers import TIERS

ENV_VAR = "TINYTORCH_WHEELHOUSE"
MANIFEST = "tinytorch-release.json"  # the student release's manifest; key "wheelhouse"
MANIFEST_KEY = "wheelhouse"
PACKAGES = (*TIERS, "milestones")
INDEX_JSON = "wheelhouse.json"
# tinytorch_foundation-0.1.0-py3-none-any.whl / tinytorch_foundation-0.1.0.tar.gz
_FILE_RE = re.compile(r"^(tinytorch[_-][a-z]+)-([^-]+?)(-[^-]+-[^-]+-[^-]+\.whl|\.tar\.gz)$")


class WheelhouseError(RuntimeError):
    """The wheelhouse could not be built or written (the message says what to do)."""


# --------------------------------------------------------------------------- where the user is


def configured(start: str | os.PathLike | None = None) -> str | None:
    """The course's wheelhouse (a URL or a directory), or None when none is configured.

    ``$TINYTORCH_WHEELHOUSE`` wins; else the ``"wheelhouse"`` entry of the
    ``tinytorch-release.json`` at or above ``start`` (default: the working directory),
    which a student release carries when the instructor set one.
    """
    value = os.environ.get(ENV_VAR, "").strip()
    if value:
        return value
    here = Path(start or os.getcwd()).resolve()
    for candidate in (here, *here.parents):
        manifest = candidate / MANIFEST
        if manifest.is_file():
            try:
                value = json.loads(manifest.read_text(encoding="utf-8")).get(MANIFEST_KEY)
            except (OSError, ValueError, AttributeError):
                return None  # an unreadable manifest configures nothing; other tools report it
            return value.strip() if isinstance(value, str) and value.strip() else None
    return None


def index_url(wheelhouse: str) -> str:
    """The ``--extra-index-url`` of a wheelhouse given as a URL or a local directory."""
    wheelhouse = wheelhouse.strip()
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", wheelhouse):
        url = wheelhouse.rstrip("/")
    else:
        url = Path(wheelhouse).expanduser().resolve().as_uri()
    return url if url.endswith("/simple") else url + "/simple"


def _repository_root(start: Path) -> Path | None:
    from tinytorch.milestones.course.repo import RepoNotFound, find_root

    try:
        return find_root(start)
    except RepoNotFound:
        return None


def install_command(*distributions: str, cwd: str | os.PathLike | None = None) -> str:
    """A ``pip install`` line for ``distributions`` (e.g. ``"tinytorch-architecture"``) that works here.

    1. a configured wheelhouse (:func:`configured`): ``pip install --extra-index-url URL/simple NAME``;
    2. inside a clone of the repository: ``pip install ./packages/NAME`` (relative to ``cwd``);
    3. else: ``pip install --find-links WHEELHOUSE NAME``, naming where a wheelhouse comes from.
    """
    if not distributions:
        raise ValueError("install_command needs at least one distribution name")
    here = Path(cwd or os.getcwd()).resolve()
    names = " ".join(distributions)
    wheelhouse = configured(here)
    if wheelhouse:
        return f"pip install --extra-index-url {index_url(wheelhouse)} {names}"
    root = _repository_root(here)
    if root is not None:
        paths = []
        for dist in distributions:
            rel = os.path.relpath(root / "packages" / dist, here)
            paths.append(rel if rel.startswith("..") else "./" + Path(rel).as_posix())
        return "pip install " + " ".join(paths)
    return (
        f"pip install --find-links WHEELHOUSE {names}  (WHEELHOUSE: your course's wheelhouse URL or "
        f"folder, or set {ENV_VAR}; `tito course wheelhouse --out WHEELHOUSE` in a clone of the "
        "repository builds one)"
    )


def student_install_lines(tier: str, version: str, wheelhouse: str | None = None) -> list[str]:
    """The commands of a student release README's install section (for ``course/release.py``).

    ``tier`` is the tier the student builds (the release directory is installed editable);
    the tiers below come prebuilt from the course's wheelhouse, with the milestones and the
    test tools. Without a wheelhouse URL the lines say where to put it.
    """
    if tier not in TIERS:
        raise ValueError(f"tier must be one of {', '.join(TIERS)}, got {tier!r}")
    url = index_url(wheelhouse) if wheelhouse else "WHEELHOUSE/simple"
    below = TIERS[: TIERS.index(tier)]
    above = TIERS[TIERS.index(tier) + 1 :]
    lines = [
        "python -m venv .venv && . .venv/bin/activate      # Windows: .venv\\Scripts\\activate",
    ]
    if not wheelhouse:
        lines.append("# WHEELHOUSE: the URL of your course's wheelhouse (your instructor gives it)")
    prebuilt = " ".join(f"tinytorch-{t}=={version}" for t in below)
    lines.append(
        f"pip install --extra-index-url {url} {prebuilt + ' ' if prebuilt else ''}"
        f"tinytorch-milestones=={version} pytest hypothesis"
    )
    lines.append("pip install --no-deps -e .      # this directory, editable: your edits apply at once")
    if above:
        names = " ".join(f"tinytorch-{t}=={version}" for t in above)
        lines.append(f"# optional, the tiers above (they import your code): pip install --no-deps "
                     f"--extra-index-url {url} {names}")
    return lines


# --------------------------------------------------------------------------- the index


@dataclass(frozen=True)
class DistFile:
    """One file of the wheelhouse."""

    path: Path
    project: str  # normalized (PEP 503): tinytorch-foundation
    version: str
    sha256: str
    requires_python: str | None

    @property
    def kind(self) -> str:
        return "wheel" if self.path.suffix == ".whl" else "sdist"


def normalize(name: str) -> str:
    """PEP 503 normalized project name: runs of ``-``, ``_``, ``.`` become one ``-``, lowercase."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _requires_python(path: Path) -> str | None:
    """The ``Requires-Python`` of a wheel's METADATA or an sdist's PKG-INFO (None if absent)."""
    text = None
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1]
            if names:
                text = zf.read(names[0]).decode("utf-8")
    else:
        with tarfile.open(path, "r:gz") as tf:
            member = next((m for m in tf.getmembers() if m.name.count("/") == 1
                           and m.name.endswith("/PKG-INFO")), None)
            fh = tf.extractfile(member) if member is not None else None
            if fh is not None:
                text = fh.read().decode("utf-8")
    if text is None:
        raise WheelhouseError(f"{path.name} has no metadata (METADATA / PKG-INFO): not a distribution")
    return Parser().parsestr(text, headersonly=True).get("Requires-Python")


def scan(directory: Path) -> list[DistFile]:
    """Every TinyTorch wheel and sdist directly in ``directory``, sorted by project, version, kind."""
    found = []
    for path in sorted(directory.iterdir()):
        match = _FILE_RE.match(path.name)
        if not match or not path.is_file():
            continue
        found.append(DistFile(path, normalize(match.group(1)), match.group(2), _sha256(path),
                              _requires_python(path)))
    return found


def _page(title: str, body: list[str]) -> str:
    return "\n".join([
        "<!DOCTYPE html>",
        "<html>",
        f"  <head><meta charset=\"utf-8\"><title>{html.escape(title)}</title></head>",
        "  <body>",
        *("    " + line for line in body),
        "  </body>",
        "</html>",
        "",
    ])


def _anchor(f: DistFile, prefix: str) -> str:
    requires = f' data-requires-python="{html.escape(f.requires_python)}"' if f.requires_python else ""
    href = html.escape(f"{prefix}{f.path.name}#sha256={f.sha256}")
    return f'<a href="{href}"{requires}>{html.escape(f.path.name)}</a><br>'


def write_index(directory: str | os.PathLike, url: str | None = None) -> list[DistFile]:
    """(Re)write ``index.html``, ``simple/`` and ``wheelhouse.json`` for the files in ``directory``.

    Each page is written to a temporary name and renamed into place, so a reader never sees a
    half-written page. ``url`` (where the directory will be served) goes into the install line
    of ``index.html``; without it the line shows the directory's ``file://`` URL, and a line of
    JavaScript puts the page's own address there when it is served over HTTP.
    """
    directory = Path(directory)
    files = scan(directory)
    if not files:
        raise WheelhouseError(f"{directory} holds no TinyTorch wheel or sdist")
    projects: dict[str, list[DistFile]] = {}
    for f in files:
        projects.setdefault(f.project, []).append(f)

    pages = {
        Path("simple") / "index.html": _page("Simple index", [
            f'<a href="{html.escape(name)}/">{html.escape(name)}</a><br>' for name in sorted(projects)
        ]),
    }
    for name, entries in projects.items():
        links = [_anchor(f, "../../") for f in entries]  # the files sit two levels up
        pages[Path("simple") / name / "index.html"] = _page(
            f"Links for {name}", [f"<h1>Links for {html.escape(name)}</h1>", *links]
        )
    versions = sorted({f.version for f in files}, key=_version_key)
    newest = versions[-1]
    base = (url or directory.resolve().as_uri()).rstrip("/")
    line = f"pip install --extra-index-url {index_url(base)} tinytorch-architecture"
    body = [
        "<h1>TinyTorch reference wheels</h1>",
        "<p>A package index of the TinyTorch distributions (versions "
        f"{html.escape(', '.join(versions))}): prebuilt reference tiers a course installs next to the "
        "tier its students build. NumPy and the other dependencies come from the usual index.</p>",
        "<p>Install a tier (here: architecture, which brings the matching foundation):</p>",
        f'<pre id="install">{html.escape(line)}</pre>',
        "<p>Other distributions: tinytorch-foundation, tinytorch-optimization, tinytorch-milestones "
        "(the <code>tito</code> command; extras <code>[architecture]</code>, <code>[optimization]</code>, "
        "<code>[all]</code>, <code>[plot]</code>). The same files work with "
        "<code>pip install --find-links THIS-PAGE-URL NAME</code>.</p>",
        "<h2>Files</h2>",
        *[_anchor(f, "") for f in files],
    ]
    if url is None:
        body.append(
            "<script>if (location.protocol.startsWith('http')) { document.getElementById('install')"
            ".textContent = 'pip install --extra-index-url ' + new URL('simple', location.href).href"
            ".replace(/\\/$/, '') + ' tinytorch-architecture'; }</script>"
        )
    pages[Path("index.html")] = _page(f"TinyTorch wheelhouse {newest}", body)
    record = {
        "what": "TinyTorch wheelhouse (PEP 503 simple index under simple/)",
        "versions": versions,
        "install": line,
        "files": [{"name": f.path.name, "project": f.project, "version": f.version, "kind": f.kind,
                   "sha256": f.sha256, "requires_python": f.requires_python} for f in files],
    }
    pages[Path(INDEX_JSON)] = json.dumps(record, indent=2) + "\n"
    for rel, text in pages.items():
        _write_atomic(directory / rel, text)
    # Project pages of projects no longer present would list dead files: remove them.
    for page_dir in (directory / "simple").iterdir():
        if page_dir.is_dir() and page_dir.name not in projects:
            shutil.rmtree(page_dir)
    return files


def _version_key(version: str) -> tuple:
    return tuple(int(p) if p.isdigit() else -1 for p in re.split(r"[.+-]", version))


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # served to everyone: readable by all
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- building


def builder_command(python: str = sys.executable) -> list[str]:
    """The command that builds an sdist and then a wheel from it: ``python -m build`` or ``uv build``."""
    if importlib.util.find_spec("build") is not None:
        return [python, "-m", "build"]
    uv = shutil.which("uv")
    if uv:
        return [uv, "build"]
    raise WheelhouseError(
        "building the distributions needs the `build` package: pip install build "
        "(or install uv); then run the command again"
    )


def build(
    root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    url: str | None = None,
    force: bool = False,
    isolation: bool = True,
    log: Callable[[str], None] = lambda msg: None,
) -> list[DistFile]:
    """Build the four sdists and wheels of the repository at ``root`` into the wheelhouse ``out``.

    Each sdist is built first and the wheel is built from it (never from the tree), so every
    sdist is proven to build. Everything is built in a staging directory beside ``out``; files
    move into ``out`` only when all eight exist. A file of the same name already in ``out``
    with different bytes is refused unless ``force`` (a published file must not change under
    the hashes students' installs recorded).

    Returns the files now in the wheelhouse (every version present), after :func:`write_index`.
    """
    root, out = Path(root), Path(out)
    packages = [root / "packages" / f"tinytorch-{name}" for name in PACKAGES]
    missing = [str(p) for p in packages if not (p / "pyproject.toml").is_file()]
    if missing:
        raise WheelhouseError(f"not a TinyTorch repository: no {', '.join(missing)}")
    if out.exists() and not out.is_dir():
        raise WheelhouseError(f"--out {out} exists and is not a directory")
    command = builder_command()
    try:
        out.mkdir(parents=True, exist_ok=True)
        # Beside ``out``, not in it: a run killed mid-way leaves nothing in the served directory.
        staging = Path(tempfile.mkdtemp(dir=out.resolve().parent, prefix=f".{out.name}.build-"))
    except OSError as err:
        raise WheelhouseError(f"cannot write the wheelhouse {out}: {err.strerror or err}") from None
    try:
        for package in packages:
            log(f"building {package.name} (sdist, then the wheel from the sdist)")
            args = [*command, "-o", str(staging)]  # both builders: sdist, then the wheel from it
            if not isolation:
                args.append("--no-isolation" if "-m" in command else "--no-build-isolation")
            result = subprocess.run([*args, str(package)], capture_output=True, text=True)
            if result.returncode != 0:
                tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
                raise WheelhouseError(f"building {package.name} failed:\n{tail}")
        built = sorted(p for p in staging.iterdir() if _FILE_RE.match(p.name))
        kinds = {(normalize(_FILE_RE.match(p.name).group(1)), p.suffix) for p in built}
        expected = {(f"tinytorch-{n}", s) for n in PACKAGES for s in (".whl", ".gz")}
        if kinds != expected or len(built) != len(expected):
            names = [p.name for p in built]
            raise WheelhouseError(f"expected one wheel and one sdist per package, got {names}")
        clashes = [p.name for p in built if (out / p.name).exists() and _sha256(out / p.name) != _sha256(p)]
        if clashes and not force:
            raise WheelhouseError(
                f"{out} already has different files of the same names: {', '.join(clashes)}. A hosted file "
                "must not change (installs recorded its hash): bump packages/VERSION, or pass --force"
            )
        for path in built:
            os.chmod(path, 0o644)
            os.replace(path, out / path.name)
    except OSError as err:
        raise WheelhouseError(f"cannot write the wheelhouse {out}: {err}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return write_index(out, url=url)


# --------------------------------------------------------------------------- tito course wheelhouse


def register_command(sub) -> None:
    """Add ``wheelhouse`` to the ``tito course`` subparsers ``sub``."""
    p = sub.add_parser(
        "wheelhouse",
        help="build the reference wheels and sdists into a package index a course can host",
        description="Build the four distributions (sdist, then the wheel from the sdist) into DIR with a "
        "PEP 503 simple index under DIR/simple/ and an index.html with the install line. Serve DIR from "
        "any static host; students run: pip install --extra-index-url URL/simple tinytorch-architecture",
    )
    p.add_argument("--out", required=True, metavar="DIR",
                   help="the wheelhouse directory (created, or extended with this version)")
    p.add_argument("--url", default=None, help="the URL DIR will be served from (for the install line)")
    p.add_argument("--force", action="store_true", help="replace files of the same name with different bytes")
    p.add_argument("--no-isolation", action="store_true",
                   help="build with the packages of this environment (hatchling installed here) instead of "
                   "fresh build environments")
    p.set_defaults(func=_cmd_wheelhouse, parser=p)


def _cmd_wheelhouse(args) -> int:
    from tinytorch.milestones.course.repo import RepoNotFound, find_root

    if args.url is not None and not re.match(r"^(https?|file)://\S+$", args.url):
        args.parser.error(f"--url must be an http(s):// or file:// URL, got {args.url!r}")
    try:
        files = build(find_root(), args.out, url=args.url, force=args.force, isolation=not args.no_isolation,
                      log=lambda msg: print(f"... {msg}", file=sys.stderr, flush=True))
    except (WheelhouseError, RepoNotFound) as exc:
        print(f"tito course wheelhouse: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out)
    print(f"wheelhouse {out}: {len(files)} files, versions {', '.join(sorted({f.version for f in files}))}")
    print(f"  simple index: {out / 'simple'}   page: {out / 'index.html'}")
    print(f"  try it here:  pip install --extra-index-url {index_url(str(out))} tinytorch-architecture")
    if args.url:
        print(f"  once served:  pip install --extra-index-url {index_url(args.url)} tinytorch-architecture")
    print(f"  hints: set {ENV_VAR}=URL (or \"{MANIFEST_KEY}\" in a release's {MANIFEST}) so tito names it")
    return 0
