"""One engine per database kind behind the :class:`~mcp_server.engines.base.Engine` protocol."""
