"""Everything that touches Redis: the client, the key layout, the writer and
the maintenance commands. Nothing here imports from ``track`` or ``report``."""
