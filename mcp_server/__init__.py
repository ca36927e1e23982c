"""The sqlr1 engine and MCP server.

Owns database access (registry, guard, engines, executor), schema inspection,
result comparison, the SQL-R1 prompt/answer contract, model backends and the
MCP tools over them. It must never import ``agent``, ``tui`` or ``training``.
"""

__version__ = "0.1.0"
