"""One engine per database kind behind the :class:`~mcp_server.db.engines.base.Engine` protocol."""
