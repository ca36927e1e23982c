"""Database access: the registry of targets, the engines, the guarded executor, its worker pool and caches."""
