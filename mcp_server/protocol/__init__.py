"""The MCP server: tools, prompts, resources, completions, logging, and the stdio / HTTP transports."""
