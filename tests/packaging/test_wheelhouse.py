"""The wheelhouse (issue 18): a PEP 503 index of the four distributions that plain pip installs from.

Fast tests check the index pages and the install hints on small fake distributions. The
slow ones build the real wheelhouse once (each sdist, then its wheel from the sdist) and
install from it into fresh virtual environments, through a ``file://`` URL and through
``python -m http.server`` on 127.0.0.1: each tier alone, the milestones with and without
extras, and an editable tier over the index (the whole matrix with
TINYTORCH_FULL_INSTALL_MATRIX=1, as the release check runs it). NumPy comes from the usual index.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import time
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from tinytorch.milestones.course import wheelhouse

ROOT = Path(__file__).resolve().parents[2]
VERSION = (ROOT / "packages" / "VERSION").read_text().strip()
PACKAGES = ("foundation", "architecture", "optimization", "milestones")


class Links(HTMLParser):
    """Every <a>: (href, attributes, text)."""

    def __init__(self):
        super().__init__()
        self.links, self._open = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._open = [dict(attrs), ""]

    def handle_data(self, data):
        if self._open is not None:
            self._open[1] += data

    def handle_endtag(self, tag):
        if tag == "a" and self._open is not None:
            self.links.append((self._open[0]["href"], self._open[0], self._open[1]))
            self._open = None


def links(page: Path):
    parser = Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.links


def fake_wheel(directory: Path, dist: str, version: str) -> Path:
    path = directory / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{dist}-{version}.dist-info/METADATA",
                    f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\nRequires-Python: >=3.10\n")
    return path


def fake_sdist(directory: Path, dist: str, version: str) -> Path:
    path = directory / f"{dist}-{version}.tar.gz"
    data = f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\nRequires-Python: >=3.10\n".encode()
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo(f"{dist}-{version}/PKG-INFO")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def fake_house(tmp_path):
    house = tmp_path / "house"
    house.mkdir()
    for name in PACKAGES:
        fake_wheel(house, f"tinytorch_{name}", "1.0.0")
        fake_sdist(house, f"tinytorch_{name}", "1.0.0")
    (house / "notes.txt").write_text("not a distribution: ignored")
    return house


def test_index_is_pep503_with_sha256_fragments(fake_house):
    files = wheelhouse.write_index(fake_house)
    assert len(files) == 8
    root = links(fake_house / "simple" / "index.html")
    assert [(href, text) for href, _, text in root] == [
        (f"tinytorch-{n}/", f"tinytorch-{n}") for n in sorted(PACKAGES)]  # normalized names
    for name in PACKAGES:
        page = fake_house / "simple" / f"tinytorch-{name}" / "index.html"
        anchors = links(page)
        assert {text for _, _, text in anchors} == {
            f"tinytorch_{name}-1.0.0-py3-none-any.whl", f"tinytorch_{name}-1.0.0.tar.gz"}
        for href, attrs, text in anchors:
            url, digest = href.split("#sha256=")
            target = (page.parent / url).resolve()
            assert target == (fake_house / text).resolve()
            assert digest == hashlib.sha256(target.read_bytes()).hexdigest()  # independent hash
            assert attrs["data-requires-python"] == ">=3.10"  # the parser unescaped &gt;
    record = json.loads((fake_house / "wheelhouse.json").read_text())
    assert record["versions"] == ["1.0.0"] and len(record["files"]) == 8
    page = (fake_house / "index.html").read_text()
    assert "pip install --extra-index-url" in page and "/simple tinytorch-architecture" in page
    # index.html doubles as a --find-links page: one link per file, hashed
    assert len([h for h, _, _ in links(fake_house / "index.html") if "#sha256=" in h]) == 8


def test_index_with_a_url_and_a_second_version(fake_house):
    fake_wheel(fake_house, "tinytorch_foundation", "1.1.0")
    wheelhouse.write_index(fake_house, url="https://course.example.org/tt/")
    page = (fake_house / "index.html").read_text()
    assert "pip install --extra-index-url https://course.example.org/tt/simple tinytorch-architecture" in page
    assert "<script>" not in page  # the URL is known: no script needed
    texts = [t for _, _, t in links(fake_house / "simple" / "tinytorch-foundation" / "index.html")]
    assert "tinytorch_foundation-1.1.0-py3-none-any.whl" in texts and len(texts) == 3
    assert json.loads((fake_house / "wheelhouse.json").read_text())["versions"] == ["1.0.0", "1.1.0"]


def test_empty_directory_is_an_error(tmp_path):
    with pytest.raises(wheelhouse.WheelhouseError, match="no TinyTorch wheel"):
        wheelhouse.write_index(tmp_path)


# ----------------------------------------------------------------------------- hints


def test_install_command_follows_where_the_user_is(tmp_path, monkeypatch):
    monkeypatch.delenv(wheelhouse.ENV_VAR, raising=False)
    # 1. inside this checkout: the package directory, relative to the working directory
    assert wheelhouse.install_command("tinytorch-architecture", cwd=ROOT) == (
        "pip install ./packages/tinytorch-architecture")
    assert wheelhouse.install_command("tinytorch-optimization", cwd=ROOT / "tests") == (
        "pip install ../packages/tinytorch-optimization")
    # 2. elsewhere, nothing configured: --find-links with where a wheelhouse comes from
    outside = wheelhouse.install_command("tinytorch-architecture", cwd=tmp_path)
    assert outside.startswith("pip install --find-links WHEELHOUSE tinytorch-architecture")
    assert "tito course wheelhouse" in outside
    # 3. a release that names its course's wheelhouse
    release = tmp_path / "student-architecture"
    (release / "src").mkdir(parents=True)
    (release / "tinytorch-release.json").write_text(json.dumps({"wheelhouse": "https://c.example/tt"}))
    assert wheelhouse.install_command("tinytorch-foundation", cwd=release / "src") == (
        "pip install --extra-index-url https://c.example/tt/simple tinytorch-foundation")
    # 4. the environment variable wins everywhere; a folder becomes a file:// URL
    monkeypatch.setenv(wheelhouse.ENV_VAR, str(tmp_path / "house"))
    assert wheelhouse.install_command("tinytorch-foundation", cwd=ROOT) == (
        f"pip install --extra-index-url {(tmp_path / 'house').as_uri()}/simple tinytorch-foundation")
    for cwd in (ROOT, tmp_path, release):
        assert not re.search(r"pip install tinytorch-", wheelhouse.install_command("tinytorch-foundation",
                                                                                    cwd=cwd))


def test_tier_hints_and_test_skips_name_the_configured_wheelhouse(monkeypatch):
    from tinytorch.milestones import tiers

    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import conftest as tests_conftest
    finally:
        sys.path.remove(str(ROOT / "tests"))
    monkeypatch.setenv(wheelhouse.ENV_VAR, "https://c.example/tt/")
    expected = "pip install --extra-index-url https://c.example/tt/simple tinytorch-optimization"
    assert tiers.install_hint("optimization") == f"tinytorch-optimization is not installed: {expected}"
    reason = tests_conftest.absent_reason("optimization")
    assert reason == f"tinytorch-optimization is not installed: {expected}"


def test_student_install_lines():
    lines = wheelhouse.student_install_lines("optimization", "1.2.3", "https://c.example/tt")
    text = "\n".join(lines)
    assert ("pip install --extra-index-url https://c.example/tt/simple tinytorch-foundation==1.2.3 "
            "tinytorch-architecture==1.2.3 tinytorch-milestones==1.2.3 pytest hypothesis") in text
    assert "pip install --no-deps -e ." in text
    unset = "\n".join(wheelhouse.student_install_lines("foundation", "1.2.3"))
    assert "WHEELHOUSE/simple tinytorch-milestones==1.2.3" in unset and "your instructor" in unset
    assert "# optional, the tiers above" in unset and "tinytorch-architecture==1.2.3" in unset
    with pytest.raises(ValueError, match="tier"):
        wheelhouse.student_install_lines("milestones", "1.2.3")


def test_course_configs_use_the_wheelhouse(monkeypatch, capsys):
    from tinytorch.milestones.cli import main

    monkeypatch.setenv(wheelhouse.ENV_VAR, "https://c.example/tt")
    assert main(["course", "configs"]) == 0
    out = capsys.readouterr().out
    assert "tito course wheelhouse --out wheelhouse" in out
    assert f"pip install --extra-index-url https://c.example/tt/simple tinytorch-foundation=={VERSION}" in out
    assert ".whl" not in out  # no wheel file paths any more


# ----------------------------------------------------------------------------- the real wheelhouse


def have_hatchling() -> bool:
    import importlib.util

    return importlib.util.find_spec("hatchling") is not None


@pytest.fixture(scope="module")
def real_house(tmp_path_factory) -> Path:
    """A wheelhouse of this checkout: nox's (TINYTORCH_DIST with an index) or built here."""
    given = os.environ.get("TINYTORCH_DIST")
    if given and (Path(given) / "simple" / "index.html").is_file():
        return Path(given)
    house = tmp_path_factory.mktemp("wheelhouse") / "house"
    wheelhouse.build(ROOT, house, isolation=not have_hatchling())
    return house


def test_real_wheelhouse_has_every_distribution_and_sdists_that_build(real_house):
    files = wheelhouse.scan(real_house)
    assert sorted((f.project, f.kind) for f in files) == sorted(
        (f"tinytorch-{n}", k) for n in PACKAGES for k in ("sdist", "wheel"))
    assert {f.version for f in files} == {VERSION}
    for f in files:
        if f.kind == "sdist":
            with tarfile.open(f.path) as tf:
                names = tf.getnames()
            # the sdist carries its hook shim and resolved PKG-INFO, never the repository's ../ files
            assert any(n.endswith("/hatch_hook.py") for n in names)
            assert any(n.endswith("/PKG-INFO") for n in names)


def test_build_refuses_to_change_a_published_file(real_house, tmp_path):
    house = tmp_path / "copy"
    house.mkdir()
    for f in wheelhouse.scan(real_house):
        target = house / f.path.name
        target.write_bytes(f.path.read_bytes() + (b"x" if f.kind == "sdist" else b""))
    with pytest.raises(wheelhouse.WheelhouseError, match="must not change"):
        wheelhouse.build(ROOT, house, isolation=not have_hatchling())


class PipVenv:
    """A fresh virtual environment with pip: the commands a student types."""

    def __init__(self, path: Path):
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, capture_output=True)
        self.python = path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        self.bin = self.python.parent

    def pip(self, *args, cwd=None) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(self.python), "-m", "pip", "install", "--quiet", *map(str, args)],
                              capture_output=True, text=True, cwd=cwd)
        assert proc.returncode == 0, f"pip install {args} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc

    def installed(self) -> dict[str, str]:
        proc = subprocess.run([str(self.python), "-m", "pip", "list", "--format=json"], capture_output=True,
                              text=True, check=True)
        return {p["name"]: p["version"] for p in json.loads(proc.stdout) if p["name"].startswith("tinytorch")}

    def run(self, *args, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def http_index(real_house):
    """``python -m http.server`` serving the wheelhouse on 127.0.0.1; yields its simple/ URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                               "--directory", str(real_house)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):  # up to 10 s for the server to listen
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("python -m http.server did not start")
        yield f"http://127.0.0.1:{port}/simple"
    finally:
        server.terminate()
        server.wait(timeout=10)


MATRIX = {
    # requirement -> the TinyTorch distributions it must bring, and a module that must import
    "tinytorch-foundation": ({"foundation"}, "tinytorch.core.tensor"),
    "tinytorch-architecture": ({"foundation", "architecture"}, "tinytorch.core.spatial"),
    "tinytorch-optimization": ({"foundation", "architecture", "optimization"},
                               "tinytorch.generation.kv_cache"),
    "tinytorch-milestones": ({"foundation", "milestones"}, "tinytorch.milestones.cli"),
    "tinytorch-milestones[all]": (set(PACKAGES), "tinytorch.applications.tinygpt"),
}


# Each fresh environment costs 15-25 s of pip. The default run (nox's packaging session) installs
# the two requirements that pull every tier through the exact pins, plus tito over HTTP; the
# release check (TINYTORCH_FULL_INSTALL_MATRIX=1, `nox -s release_check`) installs all of them.
FULL_MATRIX = os.environ.get("TINYTORCH_FULL_INSTALL_MATRIX") == "1"
FILE_URL_CASES = list(MATRIX) if FULL_MATRIX else ["tinytorch-optimization", "tinytorch-milestones[all]"]
HTTP_CASES = ["tinytorch-architecture", "tinytorch-milestones[architecture]"]
HTTP_CASES = HTTP_CASES if FULL_MATRIX else HTTP_CASES[1:]


@pytest.mark.parametrize("requirement", FILE_URL_CASES)
def test_fresh_venv_installs_through_a_file_url(real_house, tmp_path, requirement):
    venv = PipVenv(tmp_path / "venv")
    index = (real_house / "simple").as_uri()
    venv.pip("--extra-index-url", index, requirement, cwd=tmp_path)
    expected, module = MATRIX[requirement]
    assert venv.installed() == {f"tinytorch-{n}": VERSION for n in expected}
    proc = venv.run(venv.python, "-c", f"import {module}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("requirement", HTTP_CASES)
def test_fresh_venv_installs_through_http_server(http_index, tmp_path, requirement):
    venv = PipVenv(tmp_path / "venv")
    venv.pip("--extra-index-url", http_index, requirement, cwd=tmp_path)
    names = {"foundation", "architecture"} | ({"milestones"} if "milestones" in requirement else set())
    assert venv.installed() == {f"tinytorch-{n}": VERSION for n in names}
    if "milestones" in requirement:
        # tito names the wheelhouse for the tier that is still missing
        env = dict(os.environ, TINYTORCH_WHEELHOUSE=http_index.rsplit("/simple", 1)[0])
        proc = venv.run(venv.bin / "tito", "milestone", "list", cwd=tmp_path, env=env)
        assert proc.returncode == 0, proc.stderr
        assert f"pip install --extra-index-url {http_index} tinytorch-optimization" in proc.stdout


def test_editable_tier_over_the_index(real_house, tmp_path):
    # Architecture focus: the reference foundation and tito from the index, the architecture tier
    # from source, editable (a student release installs the same way).
    venv = PipVenv(tmp_path / "venv")
    index = (real_house / "simple").as_uri()
    venv.pip("--extra-index-url", index, f"tinytorch-foundation=={VERSION}",
             f"tinytorch-milestones=={VERSION}", cwd=tmp_path)
    venv.pip("--extra-index-url", index, "-e", ROOT / "packages" / "tinytorch-architecture", cwd=tmp_path)
    probe = ("import tinytorch.core.spatial as s, tinytorch.core.tensor as t; "
             "print(s.__file__); print(t.__file__)")
    proc = venv.run(venv.python, "-c", probe, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    spatial, tensor = proc.stdout.splitlines()
    assert Path(spatial).is_relative_to(ROOT / "packages" / "tinytorch-architecture" / "src")
    assert "site-packages" in tensor  # the foundation wheel from the index
    proc = venv.run(venv.bin / "tito", "milestone", "list", cwd=tmp_path)
    assert proc.returncode == 0 and "needs tinytorch-optimization" in proc.stdout
