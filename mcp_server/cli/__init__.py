"""The `sqlr1` command line."""
