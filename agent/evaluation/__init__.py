"""Scripted evaluation on BIRD and Spider (``sqlr1 eval``).

Owns dataset loading in the official layouts, prediction files, parallel scoring
with engine-level timeouts, the gold-result cache, resumable runs and reports.
Scores are computed by ``mcp_server.method.compare`` (the one comparison module) over
results from ``mcp_server.db.executor`` (the one guarded executor).
"""
