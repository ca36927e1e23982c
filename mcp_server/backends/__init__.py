"""Model backends behind one interface (:class:`~mcp_server.backends.base.Backend`)."""
