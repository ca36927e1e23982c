"""What pyproject.toml cannot say: the packages under one import name, and the shipped files.

**One import name.** The folders ``agent/``, ``mcp_server/``, ``training/`` and ``tui/`` install as
``sqlr1.agent``, ``sqlr1.mcp_server``, ``sqlr1.training`` and ``sqlr1.tui`` (``sqlr1`` is a namespace
package), so the distribution cannot collide with other packages named ``agent`` or ``training``; the
folder layout of the checkout stays. An editable install maps the names onto the folders.

**Shipped files.** The wheel ships the example database and the default adapter.

They live at the top of the checkout (``examples/``, ``models/``), outside every package, so
package data cannot name them. The wheel carries copies under ``sqlr1/mcp_server/_shipped/<same path>``,
where ``mcp_server.core.locations.shipped_path`` finds them. An editable install copies nothing: it
imports the packages from the checkout, next to the originals. ``MANIFEST.in`` puts them in the sdist.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

# Paths from the checkout's root; keep in step with mcp_server.core.locations.EXAMPLE_DB and the adapters
# of mcp_server.backends.model_registry.MODELS (tests/test_packaging.py checks a built wheel).
SHIPPED = ("examples/chinook.sqlite", "models/sqlr1-smollm2-lora")
TARGET = Path("sqlr1") / "mcp_server" / "_shipped"


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


FOLDERS = ("agent", "mcp_server", "training", "tui")
PACKAGES = [f"sqlr1.{name}" for name in find_packages(include=[f"{f}*" for f in FOLDERS]) if "._" not in name]

setup(
    packages=PACKAGES,
    package_dir={f"sqlr1.{folder}": folder for folder in FOLDERS},
    cmdclass={"build_py": BuildPyWithShippedFiles},
)
