"""The text of MCP content in tests: a block, a tool result or a resource read (fails on non-text)."""

from __future__ import annotations

from typing import Any

from mcp.types import CallToolResult, ReadResourceResult, TextContent, TextResourceContents


def text(block: Any) -> str:
    """A content block's text (a tool result's, a prompt message's or a resource's)."""
    assert isinstance(block, TextContent | TextResourceContents), f"not a text block: {block!r}"
    return block.text


def first_text(result: CallToolResult | ReadResourceResult, index: int = 0) -> str:
    """The ``index``-th content block's text (a tool result) or contents' text (a resource)."""
    return text(result.content[index] if isinstance(result, CallToolResult) else result.contents[index])
