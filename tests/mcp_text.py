"""The text of an MCP tool result or resource read, for tests (fails on a non-text block)."""

from __future__ import annotations

from mcp.types import CallToolResult, ReadResourceResult, TextContent, TextResourceContents


def first_text(result: CallToolResult | ReadResourceResult, index: int = 0) -> str:
    """The ``index``-th content block's text (a tool result) or contents' text (a resource)."""
    block = result.content[index] if isinstance(result, CallToolResult) else result.contents[index]
    assert isinstance(block, TextContent | TextResourceContents), f"not a text block: {block!r}"
    return block.text
