"""The chat's widgets, one per module, each with its own ``.tcss`` next to it."""
