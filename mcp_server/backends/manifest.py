"""The checkpoint manifest: what a trained checkpoint folder is and how to serve it.

``training/`` writes it (``sqlr1 train export``) next to the weights or LoRA adapter; serving reads
it so ``sqlr1 serve --model DIR`` needs no other flags: the base model, the prompt variant the
checkpoint was trained with (by version string, see ``mcp_server.method.prompt``), generation defaults,
and a record of the run (reward weights, data, steps, metrics). Unknown keys are errors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.method.prompt import PROMPT_VERSION

__all__ = ["MANIFEST_NAME", "CheckpointManifest", "GenerationDefaults", "read_manifest", "write_manifest"]

MANIFEST_NAME = "sqlr1_manifest.json"


class GenerationDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    num_candidates: int = Field(default=8, ge=1)
    temperature: float = Field(default=0.8, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(default=1024, ge=1)


class CheckpointManifest(BaseModel):
    """Written by training, read by serving."""

    model_config = ConfigDict(extra="forbid")

    format_version: Literal[1] = 1
    base_model: str = Field(
        description='What the checkpoint starts from: "bundled", a Hugging Face id, or a path.'
    )
    weights: Literal["adapter", "merged"] = Field(
        description='"adapter": a LoRA adapter (adapter_config.json) on top of base_model; "merged": full weights.'
    )
    prompt_version: str = PROMPT_VERSION
    schema_example_values: int = Field(
        default=2, ge=0, description="Example values per column in the schema text it was trained on."
    )
    generation: GenerationDefaults = Field(default_factory=GenerationDefaults)
    reward_weights: dict[str, float] = Field(default_factory=dict)
    reward_settings: dict[str, Any] = Field(
        default_factory=dict, description="The GRPO reward's settings (order_by, timeout_s, max_rows, ...)."
    )
    data: list[str] = Field(
        default_factory=list, description="Datasets used, e.g. 'spider/train_spider.json'."
    )
    stages: list[str] = Field(default_factory=list, description='Training stages run, e.g. ["sft", "grpo"].')
    steps: int = 0
    metrics: dict[str, float] = Field(default_factory=dict)
    created_at: str | None = None
    notes: str = ""


def read_manifest(folder: str | Path) -> CheckpointManifest | None:
    """The manifest in ``folder``, or ``None`` when there is none.

    Raises ``QueryFailed`` (kind ``config``) for an unreadable or invalid manifest.
    """
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        return CheckpointManifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, ValidationError) as exc:
        raise QueryFailed.of("config", f"invalid checkpoint manifest {path}: {exc}") from exc


def write_manifest(folder: str | Path, manifest: CheckpointManifest) -> Path:
    """Write ``manifest`` into ``folder`` (created if needed); returns the file's path."""
    path = Path(folder) / MANIFEST_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path
