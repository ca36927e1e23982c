"""Build hook (everything else is in pyproject.toml): the wheel ships the example database and the
default adapter.

They live at the top of the checkout (``examples/``, ``models/``), outside every package, so
package data cannot name them. The wheel carries copies under ``mcp_server/_shipped/<same path>``,
where ``mcp_server.core.locations.shipped_path`` finds them. An editable install copies nothing: it
imports the packages from the checkout, next to the originals. ``MANIFEST.in`` puts them in the sdist.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

# Paths from the checkout's root; keep in step with mcp_server.core.locations.EXAMPLE_DB and the adapters
# of mcp_server.backends.model_registry.MODELS (tests/test_packaging.py checks a built wheel).
SHIPPED = ("examples/chinook.sqlite", "models/sqlr1-smollm2-lora")
TARGET = Path("mcp_server") / "_shipped"


class BuildPyWithShippedFiles(build_py):
    """``build_py`` plus a copy of :data:`SHIPPED` into the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        root = Path(__file__).resolve().parent
        for relative in SHIPPED:
            source, target = root / relative, Path(self.build_lib) / TARGET / relative
            if not source.exists():
                raise FileNotFoundError(f"{source}: a shipped file is missing from the source tree")
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)


setup(cmdclass={"build_py": BuildPyWithShippedFiles})
