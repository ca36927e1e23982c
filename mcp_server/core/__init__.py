"""Value types, settings and errors shared by every layer (no imports from the others)."""
