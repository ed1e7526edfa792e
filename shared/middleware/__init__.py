"""dramatiq middleware of our own, one per file."""
