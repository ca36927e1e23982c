"""The named-model registry: lookup, assembling a GGUF from part packages, SHA-256 verification,
the default model resolving by name (real parts for the default; fake parts for the failure paths)."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from sqlr1.mcp_server.backends import model_registry as registry
from sqlr1.mcp_server.backends.loading import resolve_model
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.method.prompt import INSTRUCT_PROMPT_VERSION


def _fake_parts(root: Path, stem: str, chunks: list[bytes]) -> None:
    """Installed-looking part packages ``{stem}{i}/data/partNN.bin`` under ``root`` (on sys.path)."""
    for i, chunk in enumerate(chunks, start=1):
        pkg = root / f"{stem.replace('-', '_')}{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("", encoding="utf-8")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(chunk)


@pytest.fixture
def fake_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    chunks = [b"GGUF" + bytes(range(256)) * 40, b"tail" * 1000, b"end"]
    whole = b"".join(chunks)
    stem = f"sqlr1-test-parts-{tmp_path.name[-8:].replace('-', '')}-part"
    site = tmp_path / "site"
    _fake_parts(site, stem, chunks)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("SQLR1_CACHE", str(tmp_path / "cache"))
    parts = registry.GgufParts(
        stem=stem, count=3, version="0", sha256=hashlib.sha256(whole).hexdigest(), size=len(whole)
    )
    yield (
        registry.NamedModel(name="fake", title="fake", summary="", file_name="fake.gguf", parts=parts),
        whole,
    )
    for name in [m for m in sys.modules if m.startswith(stem.replace("-", "_"))]:
        del sys.modules[name]


def test_names_resolve_case_insensitively() -> None:
    assert registry.lookup("Qwen2.5-Coder-0.5B") is registry.MODELS["qwen2.5-coder-0.5b"]
    assert registry.lookup("gpt-17") is None
    assert registry.DEFAULT_MODEL in registry.MODELS


def test_assembles_verifies_and_reuses(fake_model) -> None:
    model, whole = fake_model
    assert registry.is_installed(model) and not registry.is_assembled(model)
    path = registry.assemble(model, quiet=True)
    assert path.read_bytes() == whole and registry.is_assembled(model)
    stamp = path.stat().st_mtime_ns
    assert registry.assemble(model, quiet=True) == path and path.stat().st_mtime_ns == stamp  # not redone
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_a_wrong_checksum_leaves_nothing(fake_model) -> None:
    model, _ = fake_model
    bad = registry.NamedModel(
        name="fake",
        title="",
        summary="",
        file_name="fake.gguf",
        parts=registry.GgufParts(model.parts.stem, 3, "0", "0" * 64, model.parts.size),
    )
    with pytest.raises(QueryFailed, match="does not match the pinned SHA-256") as err:
        registry.assemble(bad, quiet=True)
    assert err.value.error.kind == "config"
    assert list(registry.gguf_path(bad).parent.iterdir()) == []


def test_a_missing_part_names_the_install_command(fake_model, tmp_path: Path) -> None:
    model, _ = fake_model
    missing = registry.NamedModel(
        name="fake",
        title="",
        summary="",
        file_name="fake.gguf",
        parts=registry.GgufParts(model.parts.stem, 4, "0", model.parts.sha256, model.parts.size),
    )
    assert not registry.is_installed(missing)
    with pytest.raises(QueryFailed, match=r"1 of 4 part packages missing.*sqlr1 models install fake"):
        registry.assemble(missing, quiet=True)


def test_the_default_model_is_installed_and_verified() -> None:
    """scripts/setup.sh installs the default; its assembled GGUF matches the pinned SHA-256."""
    named = registry.MODELS[registry.DEFAULT_MODEL]
    resolved = resolve_model(registry.DEFAULT_MODEL)
    assert resolved.kind == "gguf" and resolved.named is named
    assert resolved.prompt_version == INSTRUCT_PROMPT_VERSION
    data = Path(resolved.source).read_bytes()
    assert named.parts is not None
    assert len(data) == named.parts.size and data[:4] == b"GGUF"
    assert hashlib.sha256(data).hexdigest() == named.parts.sha256


def test_the_smollm2_name_is_the_shipped_adapter_with_its_manifest() -> None:
    resolved = resolve_model("smollm2-135m")
    assert resolved.kind == "adapter" and resolved.base is not None and resolved.base.spec == "bundled"
    assert resolved.manifest is not None and resolved.prompt_version == resolved.manifest.prompt_version
