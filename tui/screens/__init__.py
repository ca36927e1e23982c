"""Modal screens of the chat: help and the SQL editor."""
