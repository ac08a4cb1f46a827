"""The four distributions really behave as one PEP 420 namespace once installed."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TIERS = ("foundation", "architecture", "optimization")
ALL_IMPORTS = (
    "import tinytorch.core.tensor, tinytorch.core.spatial, tinytorch.models.transformer, "
    "tinytorch.generation.kv_cache, tinytorch.milestones.cli"
)


def test_probe_on_pythonpath_joins_the_namespace(wheels, make_venv, tmp_path):
    venv = make_venv()
    venv.install("numpy", *wheels.values(), "--no-deps")
    probe_root = tmp_path / "probe"
    (probe_root / "tinytorch").mkdir(parents=True)
    (probe_root / "tinytorch" / "zz_probe.py").write_text("VALUE = 42\n")
    code = f"{ALL_IMPORTS}; import tinytorch.zz_probe as p; assert p.VALUE == 42; print('ok')"
    result = venv.python_ok(code, env={"PYTHONPATH": str(probe_root)}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_editable_installs_of_all_four_import_together(make_venv, tmp_path):
    venv = make_venv()
    venv.install("numpy", "hatchling>=1.24", "editables")
    editables = [arg for p in (*TIERS, "milestones") for arg in ("-e", ROOT / "packages" / f"tinytorch-{p}")]
    venv.install("--no-deps", "--no-build-isolation", *editables)
    result = venv.python_ok(f"{ALL_IMPORTS}; print('ok')", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_each_tier_set_imports_only_what_it_installs(wheels, make_venv, tmp_path):
    expectations = {
        ("foundation",): ("tinytorch.core.tensor", "tinytorch.core.spatial"),
        ("foundation", "architecture"): ("tinytorch.models.transformer", "tinytorch.generation.kv_cache"),
    }
    for installed, (present, absent) in expectations.items():
        venv = make_venv()
        venv.install("numpy", "--quiet", *(wheels[t] for t in installed), "--no-deps")
        code = (
            f"import {present}\n"
            "try:\n"
            f"    import {absent}\n"
            "except ImportError:\n"
            "    print('absent as expected')\n"
        )
        result = venv.python_ok(code, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "absent as expected", f"{absent} importable with only {installed}"
