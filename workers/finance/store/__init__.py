"""Finance reads and writes, one module per business area; bulk statements only, never one per row."""
