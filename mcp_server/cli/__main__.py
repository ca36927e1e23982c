"""`python -m mcp_server.cli.main` runs `sqlr1`."""

from mcp_server.cli.main import main

main()
