"""Which TinyTorch tiers are installed, and what each of the 20 modules is.

The tiers are separate distributions sharing the ``tinytorch`` namespace, so
"is architecture installed?" is a question about distribution metadata, not
about importing: a student's editable release has the same distribution name
as the reference wheel it replaces.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

TIERS = ("foundation", "architecture", "optimization")


@dataclass(frozen=True)
class ModuleInfo:
    number: str  # "01" .. "20"
    name: str  # short name used in test files: tests/<tier>/test_NN_<name>.py
    title: str
    tier: str
    import_path: str

    @property
    def test_file(self) -> str:
        return f"tests/{self.tier}/test_{self.number}_{self.name}.py"


MODULES = (
    ModuleInfo("01", "tensor", "Tensor", "foundation", "tinytorch.core.tensor"),
    ModuleInfo("02", "activations", "Activations", "foundation", "tinytorch.core.activations"),
    ModuleInfo("03", "layers", "Layers", "foundation", "tinytorch.core.layers"),
    ModuleInfo("04", "losses", "Losses", "foundation", "tinytorch.core.losses"),
    ModuleInfo("05", "autograd", "Autograd", "foundation", "tinytorch.core.autograd"),
    ModuleInfo("06", "optimizers", "Optimizers", "foundation", "tinytorch.core.optimizers"),
    ModuleInfo("07", "training", "Training", "foundation", "tinytorch.core.training"),
    ModuleInfo("08", "dataloader", "DataLoader", "architecture", "tinytorch.data.loader"),
    ModuleInfo("09", "spatial", "Convolution and pooling", "architecture", "tinytorch.core.spatial"),
    ModuleInfo("10", "tokenization", "Tokenization", "architecture", "tinytorch.text.tokenization"),
    ModuleInfo("11", "embeddings", "Embeddings", "architecture", "tinytorch.text.embeddings"),
    ModuleInfo("12", "attention", "Attention", "architecture", "tinytorch.core.attention"),
    ModuleInfo("13", "transformer", "Transformer", "architecture", "tinytorch.models.transformer"),
    ModuleInfo("14", "profiling", "Profiling", "optimization", "tinytorch.profiling.profiler"),
    ModuleInfo("15", "quantization", "Quantization", "optimization", "tinytorch.optimization.quantization"),
    ModuleInfo("16", "compression", "Compression", "optimization", "tinytorch.optimization.compression"),
    ModuleInfo("17", "kv_cache", "KV cache (memoization)", "optimization", "tinytorch.generation.kv_cache"),
    ModuleInfo("18", "acceleration", "Acceleration", "optimization", "tinytorch.optimization.acceleration"),
    ModuleInfo("19", "benchmarking", "Benchmarking", "optimization", "tinytorch.benchmarking.benchmark"),
    ModuleInfo("20", "capstone", "TinyGPT capstone", "optimization", "tinytorch.applications.tinygpt"),
)


def distribution_name(tier: str) -> str:
    if tier not in TIERS + ("milestones",):
        raise ValueError(f"tier must be one of {TIERS + ('milestones',)}, got {tier!r}")
    return f"tinytorch-{tier}"


def installed_version(tier: str) -> str | None:
    """The installed version of ``tinytorch-<tier>``, or None when absent."""
    try:
        return metadata.version(distribution_name(tier))
    except metadata.PackageNotFoundError:
        return None


def is_installed(tier: str) -> bool:
    return installed_version(tier) is not None


def install_hint(tier: str) -> str:
    """The sentence every tool prints when a tier is missing, with a command that works here.

    The distributions are not on PyPI: the command names the course's wheelhouse when one is
    configured, the package directory inside a repository checkout, else ``--find-links``
    (see ``tinytorch.milestones.course.wheelhouse.install_command``).
    """
    from tinytorch.milestones.course.wheelhouse import install_command

    dist = distribution_name(tier)
    return f"{dist} is not installed: {install_command(dist)}"


def module(number_or_name: str) -> ModuleInfo:
    key = str(number_or_name).zfill(2) if str(number_or_name).isdigit() else str(number_or_name)
    for info in MODULES:
        if key in (info.number, info.name):
            return info
    names = [m.name for m in MODULES]
    raise ValueError(f"unknown module {number_or_name!r}: expected 01-20 or one of {names}")
