"""Hatchling metadata hook shared by the four TinyTorch distributions.

The version lives in one file, ``packages/VERSION``. Every distribution reads it
here, and every dependency written as ``name=={version}`` in the hook's table is
pinned to exactly that version, so the four wheels always move together.

Configured per package in ``pyproject.toml``::

    [tool.hatch.metadata.hooks.custom]
    path = "../version_hook.py"
    dependencies = ["numpy>=1.24", "tinytorch-foundation=={version}"]
    optional-dependencies = {all = ["tinytorch-optimization=={version}"]}
"""

from pathlib import Path

from hatchling.metadata.plugin.interface import MetadataHookInterface

VERSION_FILE = Path(__file__).with_name("VERSION")


def read_version() -> str:
    return VERSION_FILE.read_text(encoding="utf-8").strip()


class VersionHook(MetadataHookInterface):
    PLUGIN_NAME = "custom"

    def update(self, metadata: dict) -> None:
        version = read_version()
        metadata["version"] = version
        metadata["dependencies"] = [d.format(version=version) for d in self.config.get("dependencies", [])]
        extras = self.config.get("optional-dependencies", {})
        metadata["optional-dependencies"] = {
            name: [d.format(version=version) for d in deps] for name, deps in extras.items()
        }
