"""Packaging: the built wheel ships the example database and the shipped adapters, an installed sqlr1
finds them without a checkout, and set-up installs from the lock file."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

from sqlr1.mcp_server.backends.model_registry import MODELS
from sqlr1.mcp_server.core.locations import EXAMPLE_DB, SHIPPED_DIR

ADAPTERS = sorted({m.adapter for m in MODELS.values() if m.adapter})
PACKAGES = ("agent", "mcp_server", "training", "tui")
LOCK = REPO / "requirements" / "lock.txt"

_FIND = """
import json
import sqlr1.mcp_server as mcp_server
from sqlr1.mcp_server.cli.main import default_example_db
from sqlr1.mcp_server.backends.model_registry import MODELS
print(json.dumps({
    "package": mcp_server.__file__,
    "example_db": str(default_example_db()),
    "adapters": {m.adapter: str(m.adapter_dir) for m in MODELS.values() if m.adapter},
}))
"""


def _source_copy(root: Path) -> Path:
    """What an sdist holds, copied (building in the checkout would leave build/ and *.egg-info in it)."""
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(REPO / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in PACKAGES:
        shutil.copytree(REPO / package, src / package, ignore=skip)
    (src / "examples").mkdir()
    shutil.copy2(REPO / EXAMPLE_DB, src / EXAMPLE_DB)
    for adapter in ADAPTERS:
        shutil.copytree(REPO / "models" / adapter, src / "models" / adapter)
    return src


@pytest.mark.slow
def test_wheel_ships_and_an_install_finds_the_example_database_and_adapters(tmp_path: Path) -> None:
    assert ADAPTERS, "the registry names no shipped adapter"
    dist = tmp_path / "dist"
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w"]
    proc = subprocess.run(
        [*build, str(dist), str(_source_copy(tmp_path))], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = dist.glob("sqlr1-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        shipped = [f"sqlr1/mcp_server/{SHIPPED_DIR}/{EXAMPLE_DB}"]
        shipped += [
            f"sqlr1/mcp_server/{SHIPPED_DIR}/models/{a}/{f}" for a in ADAPTERS for f in _adapter_files(a)
        ]
        assert not [n for n in shipped if n not in names], "missing from the wheel"
        # one import name: nothing at the top of site-packages but sqlr1/ and the dist-info
        tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
        assert tops == {"sqlr1"}, tops
        assert {f"sqlr1/{p}/__init__.py" for p in PACKAGES} <= names and "sqlr1/__init__.py" not in names
        site = tmp_path / "site"
        zf.extractall(site)  # what pip install puts in site-packages

    # Run from elsewhere, the unpacked wheel first on the path: no checkout, no examples/ in the cwd.
    env = {k: v for k, v in os.environ.items() if k not in ("SQLR1_EXAMPLE_DB", "PYTHONPATH")}
    env["PYTHONPATH"] = str(site)
    run = subprocess.run(
        [sys.executable, "-c", _FIND], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr[-3000:]
    found = json.loads(run.stdout)
    assert Path(found["package"]).is_relative_to(site)
    example_db = Path(found["example_db"])
    assert example_db.is_relative_to(site) and example_db.stat().st_size > 0
    for adapter, folder in found["adapters"].items():
        assert Path(folder).is_relative_to(site), adapter
        assert (Path(folder) / "adapter_config.json").is_file(), adapter


def _adapter_files(adapter: str) -> list[str]:
    """The files a shipped adapter needs at run time (what the checkout has of them)."""
    wanted = ("adapter_config.json", "adapter_model.safetensors", "sqlr1_manifest.json", "tokenizer.json")
    return [f for f in wanted if (REPO / "models" / adapter / f).is_file()]


def test_lock_pins_every_dev_requirement_and_torch() -> None:
    """The lock is exact (``==`` only), pins torch 2.13.0, and agrees with every exact pin in pyproject."""
    import tomllib

    pins: dict[str, str] = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and re.fullmatch(r"[a-z0-9-]+", name) and version, f"not an exact pin: {line!r}"
            pins[name] = version
    assert pins.get("torch") == "2.13.0"
    assert "sqlr1" not in pins
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    for requirement in [*project["dependencies"], *(r for rs in extras.values() for r in rs)]:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^]]*\])?==([^;\s]+)", requirement.strip())
        if match:
            name = re.sub(r"[-_.]+", "-", match[1]).lower()
            assert pins.get(name) == match[3], f"{requirement} but the lock has {name}=={pins.get(name)}"
    dev = [r for r in extras["dev"] if not r.startswith("sqlr1[")]
    assert dev and all("==" in r for r in dev), f"dev tools not pinned exactly: {dev}"


def test_setup_installs_with_the_lock_and_stamps_it() -> None:
    script = (REPO / "scripts" / "setup.sh").read_text(encoding="utf-8")
    assert "LOCK=requirements/lock.txt" in script
    installs = [line for line in script.splitlines() if "pip install" in line and not line.startswith("#")]
    assert installs and all('-c "$LOCK"' in line for line in installs), installs
    assert re.search(r"want=.*\$LOCK", script), "the set-up stamp must cover the lock"
