"""``tito milestone`` and ``tito system``, run in-process through ``tinytorch.milestones.cli.main``.

Runs here use the cheapest parts (milestone 01), so the CLI's behaviour is
checked without retraining the big models (test_milestones.py does that).
"""

from __future__ import annotations

import json

import pytest
from tinytorch.milestones import runner, tiers
from tinytorch.milestones.cli import main

JSON_KEYS = {"milestone", "part", "title", "passed", "criterion", "metrics", "seconds"}


def tito(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def only_foundation(monkeypatch):
    monkeypatch.setattr(tiers, "is_installed", lambda tier: tier in ("foundation", "milestones"))


def test_list_shows_every_milestone_and_readiness(capsys, monkeypatch):
    code, out, _ = tito(capsys, "milestone", "list")
    assert code == 0
    for m in runner.all_milestones():
        assert m.id in out and m.title in out and str(m.year) in out
    only_foundation(monkeypatch)
    code, out, _ = tito(capsys, "milestone", "list")
    lines = {line.split()[0]: line for line in out.splitlines()[2:] if line.strip()}
    assert lines["01"].rstrip().endswith("ready")
    for mid in ("04", "05"):
        assert lines[mid].rstrip().endswith("needs tinytorch-architecture")
    assert "tinytorch-optimization" in lines["06"]
    # One install line for what is missing; in this checkout, the package directories.
    assert "to install what is missing: pip install ./packages/tinytorch-architecture" in out
    assert "pip install tinytorch-" not in out  # never the bare name: it is not on PyPI


def test_info_explains_a_milestone(capsys):
    code, out, _ = tito(capsys, "milestone", "info", "3")
    assert code == 0
    m = runner.get("03")
    for text in ("History", "Architecture", "What it proves", "criterion:", "1986", "--download"):
        assert text in out
    for p in m.parts:
        assert p.criterion in out


def test_unknown_milestone_and_part_are_usage_errors(capsys):
    code, _, err = tito(capsys, "milestone", "info", "42")
    assert code == 2 and "unknown milestone" in err
    code, _, err = tito(capsys, "milestone", "run", "01", "--part", "7")
    assert code == 2 and "no part 7" in err
    assert tito(capsys, "milestone")[0] == 2  # no action: help, usage error


def test_run_prints_history_verdict_and_summary(capsys):
    code, out, _ = tito(capsys, "milestone", "run", "01", "--part", "1", "--no-progress")
    assert code == 0
    assert "Milestone 01 (1958)" in out
    assert "PASS  criterion:" in out and "measured:" in out
    assert "1 passed, 0 failed, 0 skipped" in out


def test_json_mode_one_object_per_part_on_stdout(capsys):
    code, out, err = tito(capsys, "milestone", "run", "01", "--part", "1", "--json")
    assert code == 0
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 2  # nothing but JSON on stdout: the part, then the summary
    record = json.loads(lines[0])
    assert json.loads(lines[1]) == {"summary": True, "passed": 1, "failed": 0, "skipped": 0,
                                    "seconds": record["seconds"], "exit_code": 0}
    assert JSON_KEYS <= set(record)
    assert record["milestone"] == "01" and record["part"] == 1 and record["passed"] is True
    assert record["metrics"]["max_abs_error"] < 1e-5
    assert "PASS" in err  # the human text went to stderr


def test_failing_part_exits_1(capsys, monkeypatch):
    import numpy as np
    from tinytorch.milestones import m01_perceptron

    monkeypatch.setattr(
        m01_perceptron,
        "separable_points",
        lambda n, rng, margin=0.1: (rng.uniform(-1, 1, (n, 2)).astype(np.float32), rng.integers(0, 2, n)),
    )
    code, out, _ = tito(capsys, "milestone", "run", "01", "--part", "2", "--json", "--no-progress")
    assert code == 1
    record, summary = [json.loads(line) for line in out.strip().splitlines()]
    assert record["passed"] is False and record["metrics"]["test_accuracy"] < 0.8
    assert summary["failed"] == 1 and summary["exit_code"] == 1


def test_missing_tier_names_the_distribution(capsys, monkeypatch):
    only_foundation(monkeypatch)
    code, out, err = tito(capsys, "milestone", "run", "04", "--json")
    assert code == 3  # a single milestone asked for, nothing could run
    *records, summary = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert summary == {"summary": True, "passed": 0, "failed": 0, "skipped": 2, "seconds": 0, "exit_code": 3}
    assert [r["part"] for r in records] == [1, 2]
    for r in records:
        assert r["skipped"] is True and "passed" not in r
        assert "tinytorch-architecture is not installed: pip install ./packages/tinytorch-architecture" in r[
            "reason"
        ]
    assert "SKIP" in err


def test_download_part_skips_without_data(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("TINYTORCH_DATA", str(tmp_path))  # an empty cache: MNIST is not there
    code, out, _ = tito(capsys, "milestone", "run", "03", "--part", "2", "--json")
    assert code == 3
    record, summary = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert record["skipped"] is True and "download" in record["reason"]
    assert summary["summary"] is True and summary["exit_code"] == 3
    assert not list(tmp_path.rglob("*.gz"))  # nothing is downloaded without --download


def test_plot_without_matplotlib_says_so(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(runner, "matplotlib_available", lambda: False)
    code, out, _ = tito(
        capsys, "milestone", "run", "01", "--part", "2", "--plot", str(tmp_path), "--no-progress"
    )
    assert code == 0
    assert "matplotlib is not installed" in out
    assert not list(tmp_path.glob("*.png"))


def test_plot_writes_png(capsys, tmp_path):
    pytest.importorskip("matplotlib", reason="optional oracle: matplotlib is not installed (extra `plot`)")
    code, out, _ = tito(
        capsys, "milestone", "run", "01", "--part", "2", "--plot", str(tmp_path), "--no-progress"
    )
    assert code == 0
    (png,) = tmp_path.glob("*.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_system_doctor(capsys):
    import numpy as np

    code, out, _ = tito(capsys, "system", "doctor")
    assert code == 0
    assert np.__version__ in out
    assert "BLAS" in out
    for tier in tiers.TIERS:
        version = tiers.installed_version(tier)
        assert f"tinytorch-{tier}" in out and (version is None or version in out)
    assert "cache directory" in out and "torch" in out


def test_doctor_reports_missing_foundation(capsys, monkeypatch):
    monkeypatch.setattr(tiers, "installed_version", lambda tier: None)
    monkeypatch.setattr(tiers, "is_installed", lambda tier: False)
    code, out, _ = tito(capsys, "system", "doctor")
    assert code == 1
    assert "tinytorch-foundation" in out and "not installed" in out
    assert "to install" in out and "./packages/tinytorch-foundation" in out


def test_run_all_with_foundation_only_runs_what_it_can_and_exits_0(capsys, monkeypatch, tmp_path):
    only_foundation(monkeypatch)
    monkeypatch.setenv("TINYTORCH_DATA", str(tmp_path))  # no MNIST / CIFAR in the cache
    code, out, err = tito(capsys, "milestone", "run", "all", "--json", "--no-progress")
    assert code == 0  # everything that ran passed; skipped parts do not fail `all`
    *records, summary = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert summary["passed"] == 5 and summary["skipped"] == 7 and summary["exit_code"] == 0
    expected = [(m.id, p.number) for m in runner.all_milestones() for p in m.parts]
    assert [(r["milestone"], r["part"]) for r in records] == expected
    ran = {(r["milestone"], r["part"]) for r in records if not r.get("skipped")}
    assert ran == {("01", 1), ("01", 2), ("02", 1), ("02", 2), ("03", 1)}
    assert all(r["passed"] for r in records if not r.get("skipped"))
    assert "5 passed, 0 failed, 7 skipped" in err
