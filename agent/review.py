"""The agent's review of an attempt: ``mcp_server.method.feedback`` (its one home, shared with multi-turn
training so a trained checkpoint reads the same feedback sentences it was trained on), and the
question-vs-result shape checks of ``mcp_server.method.shape`` as a softer review (``shape_review``)."""

from __future__ import annotations

from sqlr1.mcp_server.method.feedback import Verdict, expects_single_value, review, shape_review, value_hints

__all__ = ["Verdict", "expects_single_value", "review", "shape_review", "value_hints"]
