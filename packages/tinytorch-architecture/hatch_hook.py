"""Build-time metadata of this distribution: the shared hook ``packages/version_hook.py``.

In a repository checkout this file loads ``../version_hook.py``, which reads the one version
file, ``packages/VERSION``, and pins the sibling distributions to it. An sdist does not contain
``..``: there hatchling takes version, dependencies and extras from the sdist's ``PKG-INFO``
(written, resolved, when the sdist was built) and never calls the hook, so a wheel builds from
the sdist alone. The four packages carry identical copies of this file (a packaging test checks).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hatchling.metadata.plugin.interface import MetadataHookInterface

SHARED = Path(__file__).resolve().parent.parent / "version_hook.py"

if SHARED.is_file():
    _spec = importlib.util.spec_from_file_location("tinytorch_version_hook", SHARED)
    _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
    VersionHook = _module.VersionHook
else:

    class VersionHook(MetadataHookInterface):
        """In an sdist: hatchling filled the fields from PKG-INFO; a field PKG-INFO lacks is empty."""

        PLUGIN_NAME = "custom"

        def update(self, metadata: dict) -> None:
            if not (Path(self.root) / "PKG-INFO").is_file() or "version" not in metadata:
                raise RuntimeError(
                    f"{SHARED} not found: build TinyTorch distributions from a clone of the repository "
                    "(packages/tinytorch-*) or from their sdists, not from a copied package directory"
                )
            # PKG-INFO lists every resolved requirement; a field it does not mention has none
            # (tinytorch-foundation declares no extras, so PKG-INFO has no Provides-Extra).
            metadata.setdefault("dependencies", [])
            metadata.setdefault("optional-dependencies", {})
