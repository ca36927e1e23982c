"""Turning a question into SQL: candidate generation and voting over the model backends."""
