"""`python -m sqlr1.mcp_server.cli.main` runs `sqlr1`."""

from sqlr1.mcp_server.cli.main import main

main()
