"""Where sqlr1 keeps its files and finds the ones it ships: the one home of both decisions.

The cache root is ``$SQLR1_CACHE``, else the platform's user cache directory for sqlr1
(``platformdirs``). Assembled models, converted adapters, value indexes, saved prompt states and the
gold-result cache all live under it; no other module reads ``SQLR1_CACHE``.

The shipped files (the example database ``examples/chinook.sqlite`` and the adapters under
``models/``) sit at the top of a source checkout, which is where an editable install finds them. A
built wheel carries copies under ``mcp_server/_shipped/`` with the same relative paths (``setup.py``
puts them there), so an installed sqlr1 finds them without a checkout. This module never creates,
downloads or writes anything.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "CACHE_ENV",
    "EXAMPLE_DB",
    "SHIPPED_DIR",
    "cache_root",
    "shipped_candidates",
    "shipped_path",
]

CACHE_ENV = "SQLR1_CACHE"
EXAMPLE_DB = "examples/chinook.sqlite"  # the bundled Chinook database, relative to the checkout root
SHIPPED_DIR = "_shipped"  # the folder inside the installed package that holds the shipped files

_PACKAGE = Path(__file__).resolve().parents[1]  # mcp_server/ (this file is mcp_server/core/locations.py)


def cache_root() -> Path:
    """``$SQLR1_CACHE`` or the platform's user cache dir for sqlr1 (it may not exist yet)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("sqlr1"))


def _shipped_bases() -> tuple[Path, Path]:
    """The installed package's copies first, then the checkout the package was imported from."""
    return _PACKAGE / SHIPPED_DIR, _PACKAGE.parent


def shipped_path(relative: str) -> Path | None:
    """The shipped file or folder at ``relative`` (a path from the checkout's root, e.g.
    :data:`EXAMPLE_DB` or ``models/sqlr1-smollm2-lora``), or ``None`` when this installation lacks it."""
    for base in _shipped_bases():
        candidate = base / relative
        if candidate.exists():
            return candidate
    return None


def shipped_candidates(relative: str) -> list[Path]:
    """Every place :func:`shipped_path` looks for ``relative`` (for error messages)."""
    return [base / relative for base in _shipped_bases()]
