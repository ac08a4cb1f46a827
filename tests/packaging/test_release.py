"""The release pipeline's pieces that can run here: the tag check and the workflow's wiring."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check_version_tag.py"
VERSION = (ROOT / "packages" / "VERSION").read_text().strip()
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"


def check(tag: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), tag], capture_output=True, text=True)


def test_the_tag_of_this_version_passes():
    for tag in (f"v{VERSION}", f"refs/tags/v{VERSION}"):
        proc = check(tag)
        assert proc.returncode == 0, proc.stderr
        assert VERSION in proc.stdout


@pytest.mark.parametrize("tag", [VERSION, f"v{VERSION}.1", f"v{VERSION}rc1", "v", "latest", f"V{VERSION}"])
def test_other_tags_fail_with_one_line(tag):
    proc = check(tag)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "check_version_tag:" in proc.stderr


def test_version_rules():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import check_version_tag as mod
    finally:
        sys.path.remove(str(SCRIPT.parent))
    for good in ("0.1.0", "1.2", "2.0.0rc1", "1.0.0.post2", "3.1.0.dev4", "10.20.30a5"):
        assert mod.check(f"v{good}", good) is None, good
    for bad in ("01.2", "1.2.0-rc1", "1.2.0 ", "v1.2", "1.2.0+local", ""):
        assert mod.check(f"v{bad}", bad) is not None, repr(bad)


def test_workflow_runs_the_checks_and_publishes_only_when_asked():
    text = WORKFLOW.read_text()
    assert 'tags: ["v*"]' in text
    assert 'python scripts/check_version_tag.py "$GITHUB_REF_NAME"' in text
    assert "uses: ./.github/workflows/ci.yml" in text  # the full test matrix first
    assert "nox -s wheelhouse" in text and "nox -s release_check" in text
    assert "if: vars.PYPI_PUBLISH == 'true'" in text and "id-token: write" in text  # trusted, opt-in
    assert "password" not in text.lower() and "secrets." not in text  # no stored credentials
    ci = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    assert "workflow_call:" in ci
    # the nox sessions the workflow names exist
    noxfile = (ROOT / "noxfile.py").read_text()
    for session in ("wheelhouse", "release_check"):
        assert f"def {session}(session" in noxfile


def test_workflow_is_valid_yaml_when_a_parser_is_at_hand():
    yaml = pytest.importorskip("yaml", reason="optional oracle: PyYAML is not installed")
    data = yaml.safe_load(WORKFLOW.read_text())
    jobs = data["jobs"]
    assert list(jobs) == ["version", "test", "build", "check", "release", "pypi"]
    assert jobs["release"]["needs"] == ["version", "check"] and jobs["pypi"]["needs"] == "check"
    assert jobs["release"]["permissions"] == {"contents": "write"}
    assert data["permissions"] == {"contents": "read"}
